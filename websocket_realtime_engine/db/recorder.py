"""The write-behind recorder: the durable record is written in batches, never on the delivery path.

The node calls the recording methods, which only append to a bounded in-memory backlog. A task
writes the backlog every ``db_flush_interval`` seconds (or at ``db_batch_size`` records) in one
transaction. While the database is unreachable the engine keeps delivering: the backlog is kept
and retried with back-off, and records beyond ``db_backlog_limit`` are dropped and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from websocket_realtime_engine.db import models
from websocket_realtime_engine.observers import Observer
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.ratelimit import Drops
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.recorder")


def _is_outage(exc: DBAPIError) -> bool:
    """Whether the database could not be reached or used (retry later), as opposed to refusing data."""
    return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)


Record = tuple[str, datetime, tuple[Any, ...], int]  # kind, when, values, bytes held
DROP_LOG_INTERVAL = 10.0  # seconds between two warnings about dropped records
RECORD_OVERHEAD = 200  # bytes a record holds besides its text and payloads (tuple, datetime, deque slot)


class NullRecorder(Observer):
    """Records nothing (tests of the engine alone, benchmarks that ask for it)."""


class DatabaseRecorder(Observer):
    """Batches records into the platform database behind the engine's back (an observer of the node).

    ``store_private_payloads`` false: messages of private and presence channels (``channel_type``) are
    recorded without their payload (``NULL``); their channel, event and time are kept.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        node_id: str,
        batch_size: int = 500,
        interval: float = 0.5,
        backlog_limit: int = 100_000,
        channel_type: Callable[[str], str] = lambda name: "public",
        retry_max_delay: float = 5.0,
        backlog_max_bytes: int = 64 * 1024 * 1024,
        store_private_payloads: bool = True,
    ) -> None:
        self.store_private_payloads = store_private_payloads
        self.retry_max_delay = retry_max_delay
        self.backlog_max_bytes = backlog_max_bytes
        self.engine = engine
        self.channel_type = channel_type
        self.node_id = node_id
        self.batch_size = batch_size
        self.interval = interval
        self.backlog_limit = backlog_limit
        self.backlog: deque[Record] = deque()
        self.written = 0
        self.backlog_bytes = 0  # payload bytes held, bounded by backlog_max_bytes
        self.drops = Drops(DROP_LOG_INTERVAL)
        self.rejected = 0
        self.failures = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- recording (no I/O) ------------------------------------------------------------------------

    def _add(self, kind: str, *values: Any) -> None:
        """Queue a record; dropped (and counted) past ``backlog_limit`` records or ``backlog_max_bytes``
        bytes, counting every text and payload value a record holds and its overhead."""
        size = RECORD_OVERHEAD + sum(len(value) for value in values if isinstance(value, str | bytes))
        if len(self.backlog) >= self.backlog_limit or self.backlog_bytes + size > self.backlog_max_bytes:
            if since := self.drops.drop():
                log.warning(
                    "the durable record is behind: %d records dropped (backlog full: %d records, %d bytes)",
                    since,
                    len(self.backlog),
                    self.backlog_bytes,
                )
            return
        self.backlog_bytes += size
        self.backlog.append((kind, datetime.now(UTC), values, size))
        if len(self.backlog) >= self.batch_size:
            self._wakeup.set()

    def connection_opened(self, connection_id: str, node_id: str, remote: str) -> None:
        self._add("open", connection_id, node_id, remote[:64])

    def connection_closed(self, connection_id: str, user_id: str | None, node_id: str) -> None:
        self._add("close", connection_id)

    def signed_in(self, connection_id: str, user_id: str) -> None:
        self._add("signin", connection_id, user_id)

    def presence_joined(self, channel: str, connection_id: str, user_id: str, user_info: Any) -> None:
        # held as its JSON, counted in bytes: a decoded object can take many times its text in memory
        self._add("join", channel, connection_id, user_id, orjson.dumps(user_info))

    def presence_left(self, channel: str, connection_id: str) -> None:
        self._add("leave", channel, connection_id)

    def published(self, publication: Publication) -> None:
        data: bytes | None = publication.data
        # REALTIME_STORE_PRIVATE_PAYLOADS=false: what a private or presence channel carried is not
        # kept, only that it carried an event and when
        if not self.store_private_payloads and self.channel_type(publication.channel) != "public":
            data = None
        self._add("message", publication.channel, publication.event[:200], data)

    def node_reaped(self, node_id: str) -> None:
        """Close what a dead node left open: its connections, their presence rows, its node row."""
        self._add("reap", node_id)

    @property
    def dropped(self) -> int:
        return self.drops.count

    def stats(self) -> dict[str, int]:
        return {
            "rejected": self.rejected,
            "backlog": len(self.backlog),
            "written": self.written,
            "dropped": self.dropped,
            "failures": self.failures,
        }

    # -- node lifecycle ----------------------------------------------------------------------------

    async def start(self, node_id: str, host: str, port: int) -> None:
        """Record the node (best effort: the engine starts even if the database is down)."""
        try:
            async with self.engine.begin() as conn:
                # a run under this id that was killed: what it left open ends now
                await self._close_node(conn, node_id, datetime.now(UTC))
                await conn.execute(delete(models.ServerNode).where(models.ServerNode.id == node_id))
                await conn.execute(insert(models.ServerNode).values(id=node_id, host=host, port=port))
        except Exception as exc:  # noqa: BLE001 - any database error: keep serving
            self.failures += 1
            log.warning("could not record the node start: %s", type(exc).__name__)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="realtime-recorder")

    async def stop(self, node_id: str) -> None:
        """Flush what is left (a few seconds at most), then mark the node stopped."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        try:
            async with asyncio.timeout(5):
                while self.backlog:
                    await self._write_batch()
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(models.ServerNode)
                        .where(models.ServerNode.id == node_id)
                        .values(stopped_at=datetime.now(UTC))
                    )
        except Exception as exc:  # noqa: BLE001
            log.warning("records left unwritten at shutdown: %d (%s)", len(self.backlog), type(exc).__name__)

    # -- writing -----------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.0  # the back-off after a failure; 0 while the database answers
        while True:
            if delay:
                await asyncio.sleep(delay)  # a full backlog must not cut the back-off short
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):  # not wait_for: it can swallow a cancellation
                        await self._wakeup.wait()
            self._wakeup.clear()
            try:
                while self.backlog:
                    await self._write_batch()
                await self._heartbeat()
                delay = 0.0
            except Exception as exc:  # noqa: BLE001 - the database is unreachable or refused: retry
                self.failures += 1
                delay = min(max(delay * 2, 0.1), self.retry_max_delay)
                log.warning(
                    "database write failed, retrying in %.1fs (backlog %d): %s",
                    delay,
                    len(self.backlog),
                    type(exc).__name__,
                )

    async def _heartbeat(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(models.ServerNode)
                .where(models.ServerNode.id == self.node_id)
                .values(last_seen_at=datetime.now(UTC))
            )

    async def _write_batch(self) -> None:
        batch = [self.backlog[i] for i in range(min(self.batch_size, len(self.backlog)))]
        try:
            async with self.engine.begin() as conn:
                await self._write(conn, batch)
            self.written += len(batch)
        except DBAPIError as exc:
            if _is_outage(exc):
                raise
            # The database refused the data itself (a NUL in a text column, a duplicate left by a
            # retried commit): write the records one by one and drop only those it refuses, so
            # one bad record cannot stop the durable record.
            await self._write_one_by_one(len(batch))
            return
        for _ in batch:  # only now, after the commit, are they gone from the backlog
            self._pop()

    def _pop(self) -> None:
        self.backlog_bytes -= self.backlog.popleft()[3]

    async def _write_one_by_one(self, count: int) -> None:
        for _ in range(count):
            record = self.backlog[0]
            try:
                async with self.engine.begin() as conn:
                    await self._write(conn, [record])
                self.written += 1
            except DBAPIError as exc:
                if _is_outage(exc):
                    raise
                self.rejected += 1
                log.warning("the database refused a %s record; dropped: %s", record[0], type(exc.orig).__name__)
            self._pop()

    async def _write(self, conn: AsyncConnection, batch: list[Record]) -> None:
        opened = [
            {"id": v[0], "node_id": v[1], "remote": v[2], "opened_at": at} for kind, at, v, _ in batch if kind == "open"
        ]
        if opened:
            await conn.execute(insert(models.Connection), opened)
        by_kind: dict[str, list[tuple[datetime, tuple[Any, ...]]]] = {}
        for kind, at, values, _ in batch:
            by_kind.setdefault(kind, []).append((at, values))
        connection = models.Connection
        if signins := by_kind.get("signin"):
            await conn.execute(
                update(connection).where(connection.id == bindparam("c")).values(user_id=bindparam("u")),
                [{"c": v[0], "u": v[1]} for _, v in signins],
            )
        presence = models.Presence
        if joins := by_kind.get("join"):
            rows = [
                {"channel": c, "connection_id": i, "user_id": u, "user_info": orjson.loads(info), "joined_at": at}
                for at, (c, i, u, info) in joins
            ]
            await conn.execute(insert(presence), rows)
        if leaves := by_kind.get("leave"):
            await conn.execute(
                update(presence)
                .where(
                    presence.channel == bindparam("ch"),
                    presence.connection_id == bindparam("c"),
                    presence.left_at.is_(None),
                )
                .values(left_at=bindparam("at")),
                [{"ch": v[0], "c": v[1], "at": at} for at, v in leaves],
            )
        if closes := by_kind.get("close"):
            await conn.execute(
                update(connection).where(connection.id == bindparam("c")).values(closed_at=bindparam("at")),
                [{"c": v[0], "at": at} for at, v in closes],
            )
        for at, (node_id,) in by_kind.get("reap", ()):
            await self._close_node(conn, node_id, at)
        messages = [
            {"channel": v[0], "event": v[1], "payload": v[2], "node_id": self.node_id, "created_at": at}
            for kind, at, v, _ in batch
            if kind == "message"
        ]
        if messages:
            await conn.execute(insert(models.Message), messages)
            await self._touch_channels(conn, {m["channel"]: m["created_at"] for m in messages})

    async def _close_node(self, conn: AsyncConnection, node_id: str, at: datetime) -> None:
        """A dead node's open rows get their end time ``at`` (presence first: it finds them by
        connection). Rows begun after ``at`` are a new run's under the same id, and stay open."""
        connection, presence, node = models.Connection, models.Presence, models.ServerNode
        still_open = select(connection.id).where(
            connection.node_id == node_id, connection.closed_at.is_(None), connection.opened_at <= at
        )
        await conn.execute(
            update(presence)
            .where(presence.left_at.is_(None), presence.connection_id.in_(still_open))
            .values(left_at=at)
        )
        await conn.execute(update(connection).where(connection.id.in_(still_open)).values(closed_at=at))
        ended = update(node).where(node.id == node_id, node.stopped_at.is_(None), node.started_at <= at)
        await conn.execute(ended.values(stopped_at=at))

    async def _touch_channels(self, conn: AsyncConnection, last: dict[str, datetime]) -> None:
        known = set(
            (await conn.execute(select(models.Channel.name).where(models.Channel.name.in_(list(last))))).scalars()
        )
        new = [
            {"name": name, "type": self.channel_type(name), "last_message_at": at}
            for name, at in last.items()
            if name not in known
        ]
        if new:
            await conn.execute(insert(models.Channel), new)
        seen = [{"channel_name": name, "at": at} for name, at in last.items() if name in known]
        if seen:
            await conn.execute(
                update(models.Channel)
                .where(models.Channel.name == bindparam("channel_name"))
                .values(last_message_at=bindparam("at")),
                seen,
            )
