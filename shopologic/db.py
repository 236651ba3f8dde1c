"""The host's own tables (plugin activation state) in the platform database."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

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
    """An async engine for the platform database; an SQLite file is created for its owner only.

    Statement parameters (credentials being stored) are kept out of error messages.
    """
    if url.startswith("sqlite+aiosqlite:///"):
        path = url.removeprefix("sqlite+aiosqlite:///").partition("?")[0]
        if path and path != ":memory:":
            create_private_file(Path(path))
    if pooled:
        return create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    return create_async_engine(url, poolclass=NullPool, hide_parameters=True)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty, readable by its owner only (0600), unless it exists; its folder too (0700).

    The database holds the app's secret and API key: SQLite would create the file with the umask's
    mode (usually world-readable), and its journal files take the database file's mode.
    """
    if path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another process created it first
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


async def create_host_tables(engine: AsyncEngine) -> None:
    """Create the host's tables if they are missing (the host's schema is one table)."""
    async with engine.begin() as conn:
        await conn.run_sync(HostBase.metadata.create_all)
