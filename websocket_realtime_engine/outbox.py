"""The outbox drainer: one node at a time publishes the outbox's rows, in id order, exactly once.

Every node runs a drainer; the one holding the ``outbox`` lease (:mod:`db.lease`) drains, the others
stand by and try for the lease each ``REALTIME_OUTBOX_POLL_INTERVAL``, so when the draining node
dies another takes over within ``REALTIME_OUTBOX_LEASE_TTL`` (plus one poll).

The drainer reads up to ``REALTIME_OUTBOX_BATCH_SIZE`` waiting rows in id order, publishes each
(:meth:`Node.publish_once`, keyed by the row's id and creation time: ``outbox:<id>.<µs>:<n>``), then
marks them published in one statement. A drainer that dies after publishing and before marking leaves rows that the next
drainer publishes again under the same keys: on Redis the key is checked and set in the script that
publishes, so those publications are recognised and skipped (within ``REALTIME_IDEMPOTENCY_TTL``).
Publications therefore go out once each and, per channel, in id order. With the in-process backends
(one node) a ``kill -9`` loses the node's history too; rows published but not yet marked go out again
after the restart.

A row that can never be published (its payload over the node's limits) is logged, counted as
``failed`` and marked, so it cannot hold back the rows behind it; a broker or database outage stops
the drainer, which retries with back-off and loses nothing.

Wake-ups: a row committed in this process wakes the drainer at once (:func:`runtime.wake_outbox`);
on PostgreSQL every commit of a row sends ``NOTIFY realtime_outbox``, which the drainer ``LISTEN``s
to; on SQLite the drainer polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine import errors, runtime
from websocket_realtime_engine.db import outbox
from websocket_realtime_engine.db.lease import DatabaseLease
from websocket_realtime_engine.db.models import OutboxEntry
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.outbox")
TRANSIENT = (DBAPIError, errors.UnavailableError, OSError, TimeoutError)
MAX_RETRY_DELAY = 5.0


class OutboxDrainer:
    """The node's outbox drainer (a service started and stopped with the node).

    :param node: the node publications go through.
    :param engine: the platform database holding ``realtime_outbox``.
    """

    def __init__(self, node: Node, engine: AsyncEngine) -> None:
        settings = node.settings
        self.node = node
        self.engine = engine
        self.poll_interval = settings.outbox_poll_interval
        self.batch_size = settings.outbox_batch_size
        holder = f"{settings.node_id}@{node.started_at:.6f}"  # a restarted node is a new holder
        self.lease = DatabaseLease(engine, "outbox", holder, settings.outbox_lease_ttl)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: Any = None  # asyncpg connection LISTENing, on PostgreSQL
        self._unmarked: list[tuple[int, datetime]] = []  # published, not yet marked: (id, created_at)
        self.published = 0  # rows published by this node
        self.failed = 0  # rows that could not be published, marked and logged
        self.depth = 0  # rows waiting, at the last look
        self.oldest: datetime | None = None  # when the oldest waiting row was written
        self.last_error = ""

    # -- service -----------------------------------------------------------------------------------

    async def start(self) -> None:
        runtime.set_outbox_waker(self._wake.set)
        self._task = asyncio.create_task(self._run(), name="realtime-outbox")

    async def stop(self) -> None:
        runtime.set_outbox_waker(None)
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self._unlisten()
        if self.lease.held:
            with contextlib.suppress(*TRANSIENT):
                if self._unmarked:
                    await self._mark()
                await self.lease.release()  # the next node takes over at once

    def stats(self) -> dict[str, Any]:
        """Status figures: waiting rows, the oldest one's age, whether this node drains."""
        age = (datetime.now(UTC) - _aware(self.oldest)).total_seconds() if self.oldest is not None else 0.0
        return {
            "depth": self.depth,
            "oldest_age": round(max(0.0, age), 3),
            "draining": self.lease.held,
            "published": self.published,
            "failed": self.failed,
            "last_error": self.last_error,
        }

    # -- the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.poll_interval
        while True:
            self._wake.clear()
            try:
                await self._listen()
                more = await self._cycle()
                delay = self.poll_interval
                self.last_error = ""
            except Exception as exc:  # noqa: BLE001 - the drainer never dies: it retries, loudly
                more = False
                message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                if message != self.last_error:
                    if isinstance(exc, TRANSIENT):
                        log.warning("outbox: cannot drain now, retrying: %s", message)
                    else:
                        log.exception("outbox: draining failed, retrying")
                self.last_error = message
                delay = min(MAX_RETRY_DELAY, max(delay * 2, self.poll_interval))
            if more:
                await asyncio.sleep(0)
                continue
            if not self.lease.held:  # a standby node tries for the lease at least once a lease time
                delay = min(delay, self.lease.ttl)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _cycle(self) -> bool:
        """One look: take or renew the lease; drain one batch when held. ``True`` when rows remain."""
        if not await self.lease.acquire():
            await self._refresh()
            return False
        if self._unmarked:
            await self._mark()
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(OutboxEntry.id, OutboxEntry.created_at, OutboxEntry.kind, OutboxEntry.body)
                    .where(OutboxEntry.published_at.is_(None))
                    .order_by(OutboxEntry.id)
                    .limit(self.batch_size)
                )
            ).all()
        for row in rows:
            if not self.lease.held:  # renewed once per batch: a slow batch stops before it runs out
                break
            await self._publish(_row_key(row.id, row.created_at), row.kind, row.body)
            self._unmarked.append((row.id, row.created_at))
        if self._unmarked:
            await self._mark()
        await self._refresh()
        return len(rows) == self.batch_size

    async def _publish(self, row_key: str, kind: str, body: str) -> None:
        try:
            content = orjson.loads(body)
            if kind == outbox.BROADCASTS:
                for number, (channels, event, data) in enumerate(content):
                    await self.node.publish_once(channels, event, data, f"outbox:{row_key}:{number}")
            elif kind == outbox.DISCONNECT_USER:
                await self.node.disconnect_user(str(content["user_id"]))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except TRANSIENT:
            raise
        except Exception as exc:  # noqa: BLE001 - a row that can never go out must not block the rest
            self.failed += 1
            log.error("outbox row %s cannot be published and is skipped: %s: %s", row_key, type(exc).__name__, exc)
            return
        self.published += 1

    async def _mark(self) -> None:
        rows, now = list(self._unmarked), datetime.now(UTC)
        # by id and creation time: a row erased meanwhile (erase-user) whose id came back is not marked
        published = or_(*(and_(OutboxEntry.id == row_id, OutboxEntry.created_at == at) for row_id, at in rows))
        async with self.engine.begin() as conn:
            await conn.execute(update(OutboxEntry).where(published).values(published_at=now))
        del self._unmarked[: len(rows)]

    async def _refresh(self) -> None:
        async with self.engine.connect() as conn:
            self.depth, self.oldest = await outbox.figures(conn)
        self.depth = max(0, self.depth - len(self._unmarked))

    # -- LISTEN/NOTIFY (PostgreSQL) ----------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN on a connection of its own (PostgreSQL only); polling covers the time it is down."""
        if self.engine.dialect.name != "postgresql" or (self._listener is not None and not self._listener.is_closed()):
            return
        import asyncpg

        url = make_url(self.engine.url).set(drivername="postgresql")
        try:
            self._listener = await asyncpg.connect(url.render_as_string(hide_password=False), timeout=5)
            await self._listener.add_listener(outbox.NOTIFY_CHANNEL, self._notified)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            await self._unlisten()
            raise OSError(f"cannot LISTEN for new outbox rows: {type(exc).__name__}: {exc}") from exc
        self._wake.set()  # rows may have come while nobody listened

    def _notified(self, *args: Any) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._listener.close()
            self._listener = None


def _row_key(row_id: int, created_at: datetime) -> str:
    """A row's key in its publications' once-keys: its id and its creation time (microseconds), so a
    row whose id was given again (a recreated table, SQLite before AUTOINCREMENT) is not taken for
    an older one."""
    return f"{row_id}.{round(_aware(created_at).timestamp() * 1_000_000)}"


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
