"""The outbox: shop events written as rows of the platform database, published later by one node.

A writer (a hook implementation, in any process: the engine's, a worker, a CLI) inserts one row
and returns: no network call, no error when no engine runs. Inserted on a connection in the caller's
transaction, the row exists only if that transaction commits. On PostgreSQL the insert also sends
``NOTIFY realtime_outbox`` (delivered at commit) so the draining node wakes at once; on SQLite the
drainer polls.

Rows (``realtime_outbox``): ``kind`` is ``broadcasts`` (``body`` a JSON list of ``[channels, event,
data]``) or ``disconnect_user`` (``{"user_id": ...}``); ``customer_id`` names whose personal data
the row holds, for ``websocket erase-user``. See :mod:`websocket_realtime_engine.outbox` for the drainer.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from websocket_realtime_engine.db.models import OutboxEntry

NOTIFY_CHANNEL = "realtime_outbox"
BROADCASTS = "broadcasts"
DISCONNECT_USER = "disconnect_user"
KINDS = (BROADCASTS, DISCONNECT_USER)


@dataclass(frozen=True)
class OutboxRow:
    """What a writer gets back: the row's id (also the publications' idempotency key)."""

    id: int

    def __str__(self) -> str:
        return f"realtime outbox row {self.id}"


def _values(kind: str, body: Any, customer_id: str | None) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown outbox kind {kind!r} (known: {', '.join(KINDS)})")
    return {"kind": kind, "body": orjson.dumps(body).decode(), "customer_id": customer_id}


async def write(connection: AsyncConnection, kind: str, body: Any, customer_id: str | None = None) -> OutboxRow:
    """Insert one row on ``connection``, in its transaction (the caller commits it)."""
    result = await connection.execute(
        insert(OutboxEntry).values(**_values(kind, body, customer_id)).returning(OutboxEntry.id)
    )
    row_id = int(result.scalar_one())
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return OutboxRow(row_id)


def write_sync(database_url: str, kind: str, body: Any, customer_id: str | None = None) -> OutboxRow:
    """Insert and commit one row from code that runs no event loop (a worker, a script), through the
    synchronous driver of the same database (``sqlite3``, psycopg)."""
    with sync_engine(database_url).begin() as connection:
        return _write_sync(connection, kind, body, customer_id)


def _write_sync(connection: Connection, kind: str, body: Any, customer_id: str | None) -> OutboxRow:
    result = connection.execute(
        insert(OutboxEntry).values(**_values(kind, body, customer_id)).returning(OutboxEntry.id)
    )
    row_id = int(result.scalar_one())
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return OutboxRow(row_id)


_sync_lock = threading.Lock()


@functools.cache
def _sync_engine(url: str) -> Engine:
    engine = create_engine(url, pool_size=1, max_overflow=4, pool_pre_ping=True, hide_parameters=True)
    if engine.dialect.name == "sqlite":  # the platform's engine set WAL mode on the file; wait for writers as it does
        event.listen(engine, "connect", _sqlite_busy_timeout)
    return engine


def _sqlite_busy_timeout(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def sync_engine(database_url: str) -> Engine:
    """A synchronous engine on the platform database (one per URL and process): the async URL's
    database through ``sqlite3`` or psycopg."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    driver = {"sqlite": "pysqlite", "postgresql": "psycopg"}.get(backend)
    if driver is None:
        raise ValueError(f"no synchronous driver for {backend!r} databases")
    with _sync_lock:
        return _sync_engine(url.set(drivername=f"{backend}+{driver}").render_as_string(hide_password=False))


async def figures(connection: AsyncConnection) -> tuple[int, Any]:
    """``(rows waiting, when the oldest waiting row was written or None)``."""
    result = await connection.execute(
        select(func.count(OutboxEntry.id), func.min(OutboxEntry.created_at)).where(OutboxEntry.published_at.is_(None))
    )
    count, oldest = result.one()
    return int(count), oldest
