"""The host's own tables in the platform database: plugin activation state, and each user's shop
session version (bumped to revoke every session signed before)."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, String, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

HOST_TABLE_PREFIX = "shopologic_"
MAX_USER_ID = 255  # characters of a user id whose sessions can be revoked


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


class SessionVersion(HostBase):
    """One row per user whose sessions were ever revoked: the version a session must carry to be valid.

    A user without a row is at version 0; a session signed with a lower version than the row's is revoked.
    """

    __tablename__ = "shopologic_session_versions"

    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID), primary_key=True)
    version: Mapped[int] = mapped_column(default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


async def session_version(engine: AsyncEngine, user_id: str) -> int:
    """The user's current session version (0 when their sessions were never revoked)."""
    async with engine.connect() as conn:
        version = await conn.scalar(select(SessionVersion.version).where(SessionVersion.user_id == user_id))
    return int(version or 0)


async def bump_session_version(connection: AsyncConnection, user_id: str) -> int:
    """Raise the user's session version by one, in ``connection``'s transaction; the new version.

    One upsert, so two revocations at once both count and neither fails.
    """
    if not user_id or len(user_id) > MAX_USER_ID:
        raise ValueError(f"a user id is 1 to {MAX_USER_ID} characters")
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = insert(SessionVersion).values(user_id=user_id, version=1, changed_at=datetime.now(UTC))
    statement = statement.on_conflict_do_update(
        index_elements=[SessionVersion.user_id],
        set_={"version": SessionVersion.version + 1, "changed_at": statement.excluded.changed_at},
    )
    return int((await connection.execute(statement.returning(SessionVersion.version))).scalar_one())


def create_engine(url: str, *, pooled: bool = True) -> AsyncEngine:
    """An async engine for the platform database; an SQLite file is created for its owner only.

    Statement parameters (credentials being stored) are kept out of error messages.
    """
    if url.startswith("sqlite+aiosqlite:///"):
        path = url.removeprefix("sqlite+aiosqlite:///").partition("?")[0]
        if path and path != ":memory:":
            create_private_file(Path(path))
    if pooled:
        engine = create_async_engine(url, pool_pre_ping=True, hide_parameters=True)
    else:
        engine = create_async_engine(url, poolclass=NullPool, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite_write_ahead)
    return engine


def sqlite_write_ahead(dbapi_connection: Any, connection_record: Any) -> None:
    """SQLite in write-ahead-log mode: readers never wait for a writer (the drainer reading the outbox
    while a shop commits an order), a commit is one append rather than a journal's rewrite, and
    ``synchronous=NORMAL`` syncs at checkpoints (a power cut may lose the last commits, never
    corrupt the file). A writer waits up to 5 s for another. The WAL files take the database file's
    mode (0600)."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


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
    """Create the host's tables if they are missing (the host's schema is these few tables, no migrations)."""
    async with engine.begin() as conn:
        await conn.run_sync(HostBase.metadata.create_all)
