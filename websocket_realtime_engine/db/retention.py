"""Retention and erasure: the durable record is bounded in time and can forget one customer.

**Retention.** Every ``interval`` seconds, one node of the cluster (the holder of the ``retention``
lease, :mod:`~websocket_realtime_engine.db.lease`) deletes the rows that ended more than
``retention`` seconds ago: ``batch`` rows per statement, each statement its own transaction, with a
short pause between two, so that no table and no database is held for long.

=========================  ==================================================================
table                      a row is old when it was
=========================  ==================================================================
``realtime_messages``      created before the cut-off
``realtime_connections``   closed before it (an open connection stays, however old)
``realtime_presence``      left before it (a member still present stays)
``realtime_outbox``        published before it (a row still waiting is never pruned)
``realtime_server_nodes``  stopped before it
=========================  ==================================================================

**Erasure** (``websocket erase-user ID``): :func:`erase_user` deletes one customer's rows in one
transaction (the messages and channel row of ``private-customer.{channel_id(ID)}``, their connections,
presence rows and outbox rows); :func:`erase_history` deletes that channel's history from Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as redis
from sqlalchemy import ColumnElement, Delete, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import InstrumentedAttribute

from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.lease import DatabaseLease
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.protocol.channels import channel_id
from websocket_realtime_engine.redis_calls import redis_call
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.retention")

LEASE_NAME = "retention"
BATCH_PAUSE = 0.1  # seconds between two delete statements: other writers get the tables in between
MIN_LEASE_TTL = 60.0  # seconds; the lease outlives two intervals, so its holder keeps it between runs
MAX_USER_ID_LENGTH = 128  # the width of the user id columns


@dataclass(frozen=True)
class Pruned:
    """One table retention prunes: its key column, and the column saying when a row ended (``NULL``:
    it has not, and stays)."""

    model: type[models.Base]
    key: InstrumentedAttribute[Any]
    ended: InstrumentedAttribute[Any]

    @property
    def table(self) -> str:
        return str(self.model.__tablename__)

    def batch(self, cutoff: datetime, size: int) -> Delete:
        """``DELETE`` of at most ``size`` rows that ended before ``cutoff``."""
        old = select(self.key).where(self.ended < cutoff).limit(size)
        return delete(self.model).where(self.key.in_(old))


PRUNED = (
    Pruned(models.Message, models.Message.id, models.Message.created_at),
    Pruned(models.Connection, models.Connection.id, models.Connection.closed_at),
    Pruned(models.Presence, models.Presence.id, models.Presence.left_at),
    Pruned(models.OutboxEntry, models.OutboxEntry.id, models.OutboxEntry.published_at),
    Pruned(models.ServerNode, models.ServerNode.id, models.ServerNode.stopped_at),
)


class Retention:
    """The pruning service of one node run: :meth:`start` and :meth:`stop` with the node.

    :param engine: the platform database.
    :param node_id: this node; with the time of this run's start it names the lease's holder.
    :param retention: seconds a row is kept after it ended; ``0`` turns pruning off.
    :param interval: seconds between two runs (the first one at :meth:`start`).
    :param batch: rows deleted per statement.
    :param pause: seconds between two statements.
    :param lease_ttl: seconds the lease lasts after each renewal (default: two intervals, 60 s at least).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        node_id: str,
        retention: float,
        interval: float = 3600.0,
        batch: int = 1_000,
        *,
        pause: float = BATCH_PAUSE,
        lease_ttl: float | None = None,
    ) -> None:
        self.engine = engine
        self.retention = retention
        self.interval = interval
        self.batch = batch
        self.pause = pause
        ttl = lease_ttl if lease_ttl is not None else max(2 * interval, MIN_LEASE_TTL)
        self.lease = DatabaseLease(engine, LEASE_NAME, f"{node_id}@{time.time():.6f}", ttl)
        self.last_run: float | None = None
        self.last_pruned: dict[str, int] = {}
        self.pruned = {table.table: 0 for table in PRUNED}
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self.retention > 0

    def stats(self) -> dict[str, Any]:
        """For ``GET /api/v1/status``: when this node last pruned (seconds since the epoch, ``None``
        before its first run as the lease's holder), rows pruned by table in that run and since start."""
        return {
            "enabled": self.enabled,
            "last_run": self.last_run,
            "last_pruned": dict(self.last_pruned),
            "pruned": dict(self.pruned),
            "failures": self.failures,
        }

    async def start(self) -> None:
        """Run every ``interval`` seconds from now on (nothing when retention is off)."""
        if self.enabled:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="realtime-retention")

    async def stop(self) -> None:
        """Stop (a batch under way is rolled back) and give the lease up, so another node takes over."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if not self.lease.held_until:  # never taken (or lost): nothing to give up
            return
        try:
            await self.lease.release()
        except Exception as exc:  # noqa: BLE001 - it expires by itself
            log.warning("could not release the retention lease: %s", type(exc).__name__)

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # noqa: BLE001 - the database is away: the next run tries again
                self.failures += 1
                log.warning("retention run failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def run_once(self) -> dict[str, int] | None:
        """Prune once, when this node holds the lease or takes it: the rows pruned by table, or
        ``None`` when another node holds it, or when retention is off."""
        if not self.enabled or not await self.lease.acquire():
            return None
        cutoff = datetime.now(UTC) - timedelta(seconds=self.retention)
        pruned = {table.table: await self._prune(table, cutoff) for table in PRUNED}
        self.last_run, self.last_pruned = time.time(), pruned
        if any(pruned.values()):
            log.info("pruned old rows of the durable record", extra={"pruned": pruned})
        return dict(pruned)

    async def _prune(self, table: Pruned, cutoff: datetime) -> int:
        total = 0
        while await self._still_held():
            async with self.engine.begin() as conn:
                count = (await conn.execute(table.batch(cutoff, self.batch))).rowcount
            total += count
            self.pruned[table.table] += count
            if count < self.batch:
                break
            await asyncio.sleep(self.pause)
        return total

    async def _still_held(self) -> bool:
        """Renew the lease when half of it is gone: a long run keeps it, a node that lost it stops."""
        if self.lease.held_until - time.time() > self.lease.ttl / 2:
            return True
        return await self.lease.acquire()


# -- erasure ---------------------------------------------------------------------------------------


def check_user_id(user_id: str) -> None:
    """:raises ValueError: when ``user_id`` is empty or longer than the user id columns."""
    if not user_id:
        raise ValueError("the user id is empty")
    if len(user_id) > MAX_USER_ID_LENGTH:
        raise ValueError(f"the user id has {len(user_id)} characters, more than {MAX_USER_ID_LENGTH}")


def customer_channel(user_id: str) -> str:
    """The customer's private channel (the shop events' ``private-customer.{channel_id(id)}``)."""
    return f"private-customer.{channel_id(user_id)}"


async def erase_user(engine: AsyncEngine, user_id: str) -> dict[str, int]:
    """Delete one customer's rows in one transaction; the rows deleted by table.

    Their channel's messages and channel row, their connections and presence rows (by user id), and
    the outbox rows holding their data (``customer_id``), published or not.

    :raises ValueError: for an empty or too long ``user_id``.
    """
    check_user_id(user_id)
    channel = customer_channel(user_id)
    whose: list[tuple[type[models.Base], ColumnElement[bool]]] = [
        (models.Message, models.Message.channel == channel),
        (models.Channel, models.Channel.name == channel),
        (models.Connection, models.Connection.user_id == user_id),
        (models.Presence, models.Presence.user_id == user_id),
        (models.OutboxEntry, models.OutboxEntry.customer_id == user_id),
    ]
    removed: dict[str, int] = {}
    async with engine.begin() as conn:
        for model, condition in whose:
            removed[model.__tablename__] = (await conn.execute(delete(model).where(condition))).rowcount
    return removed


async def erase_history(redis_url: str, prefix: str, channel: str, timeout: float = 2.0) -> int:
    """Delete ``channel``'s history keys (:meth:`RedisHistory.keys`, under ``prefix``) from the Redis
    at ``redis_url``; how many existed.

    :raises UnavailableError: when Redis cannot be reached within ``timeout`` seconds.
    """
    client = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    history = RedisHistory(client, prefix, 0, 1.0, timeout=timeout)  # for its key names only
    try:
        return int(await redis_call(client.delete(*history.keys(channel)), timeout))
    finally:
        await history.close()
        await client.aclose()
