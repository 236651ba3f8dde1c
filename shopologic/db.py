"""The host's own tables (plugin activation state) in the platform database."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData, String
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

HOST_TABLE_PREFIX = "shopologic_"


class HostBase(DeclarativeBase):
    """Declarative base of the host's tables; plugins' tables never share its metadata."""

    metadata = MetaData()


class PluginState(HostBase):
    """One row per known plugin: whether it is active, and since when."""

    __tablename__ = "shopologic_plugins"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


def create_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """An async engine for the platform database; SQLite files get their folder created."""
    if url.startswith("sqlite+aiosqlite:///"):
        from pathlib import Path

        path = url.removeprefix("sqlite+aiosqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    if pooled:
        return create_async_engine(url, pool_pre_ping=True)
    return create_async_engine(url, poolclass=NullPool)


async def create_host_tables(engine: AsyncEngine) -> None:
    """Create the host's tables if they are missing (the host's schema is one table)."""
    async with engine.begin() as conn:
        await conn.run_sync(HostBase.metadata.create_all)
