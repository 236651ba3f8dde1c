"""The engine's own live channels: what the admin dashboard and the debug console watch.

Two channels under the reserved prefix ``private-realtime.`` (no REST broadcast or client publish may
use it, error ``reserved_channel``; only admins get it signed):

- ``private-realtime.stats``: once every ``REALTIME_ADMIN_STATS_INTERVAL`` seconds (1) while anyone in
  the cluster is subscribed, a ``stats`` event with this node's snapshot (:meth:`AdminFeeds.snapshot`):
  connections, messages a second in and out, the busiest channels, presence members, the nodes with
  their heartbeat age, errors, slow consumers, rate-limit hits, the outbox.
- ``private-realtime.log``: while anyone is subscribed, a ``log`` event every 100 ms that anything
  happened, holding the list of engine events since the last one (connections opened and closed,
  subscriptions, sign-ins, presence, publications, errors sent to clients), at most
  ``REALTIME_ADMIN_LOG_RATE`` events a second (beyond that they are dropped and counted).

Every node publishes its own (``node_id`` in every payload), so a page subscribed on any node sees
them all. Whether anyone watches is asked of the cluster state once per interval (one count per
channel; on Redis cluster-wide), and known at once when a connection of this node subscribes. The
events come through the observer list, so nothing is added to the delivery path; unwatched, an event
costs one attribute test. The feeds publish straight to the broker, without history, recorder or
hooks: they are live figures, not shop messages. docs/admin.md has the exact payloads.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import orjson

from websocket_realtime_engine.backends import Backends
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.membership import Membership
from websocket_realtime_engine.observers import Observer
from websocket_realtime_engine.protocol.channels import ChannelPolicy, ChannelType
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.ratelimit import TokenBucket
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.feeds")

RESERVED_PREFIX = "private-realtime."
STATS_CHANNEL = RESERVED_PREFIX + "stats"
LOG_CHANNEL = RESERVED_PREFIX + "log"
TOP_CHANNELS = 50  # channels listed in a snapshot, the most subscribed first
LOG_BATCH_SECONDS = 0.1  # one log publication per this, at most
MAX_MESSAGE = 200  # characters of an error's message kept in a log event


def is_reserved(channel: str) -> bool:
    """Whether ``channel`` is one of the engine's own (``private-realtime.*``)."""
    return channel.startswith(RESERVED_PREFIX)


class FeedNode(Protocol):
    """What the feeds read of their node (so that this module does not import :mod:`node`)."""

    settings: Settings
    backends: Backends
    policy: ChannelPolicy
    membership: Membership
    connections: dict[str, Any]
    published: int  # publications made through this node (REST, shop events, client messages)
    deliveries: int  # publications queued for this node's subscribers, one per subscriber
    slow_consumers: int
    frames_dropped: int
    flooding_closed: int
    client_errors: collections.Counter[str]
    status_sections: dict[str, Callable[[], dict[str, Any]]]

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


class AdminFeeds(Observer):
    """The stats and log publisher of one node; an observer of its engine events."""

    def __init__(self, node: FeedNode) -> None:
        self.node = node
        # figures the web layer adds, by name: "api_errors" (by code), "connections_refused" (by reason)
        self.sources: dict[str, Callable[[], dict[str, int]]] = {}
        self.log_watched = False
        self.publications = 0  # feed publications made by this node
        self.failed = 0  # feed publications the broker refused (Redis away)
        self.log_dropped = 0  # log events over REALTIME_ADMIN_LOG_RATE, since start
        self._log_bucket = TokenBucket(node.settings.admin_log_rate)
        self._pending: list[dict[str, Any]] = []
        self._unreported_drops = 0
        self._flush: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._rates = {"in_per_second": 0.0, "out_per_second": 0.0}
        self._baseline = (time.monotonic(), node.published, node.deliveries)
        self._failing = False

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, node_id: str, host: str, port: int) -> None:
        """Start looking, once per interval, whether anyone watches."""
        self._running = True
        self._baseline = (time.monotonic(), self.node.published, self.node.deliveries)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="realtime-admin-feeds")

    async def stop(self, node_id: str) -> None:
        """Stop publishing (the node calls it before it closes its clients; again is a no-op)."""
        self._running = False
        self.log_watched = False
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def stats(self) -> dict[str, int]:
        return {"publications": self.publications, "failed": self.failed, "log_dropped": self.log_dropped}

    # -- stats -------------------------------------------------------------------------------------

    async def _run(self) -> None:
        interval = self.node.settings.admin_stats_interval
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self._wake.wait()  # a local subscriber to the stats: a snapshot at once
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self._tick()
                self._failing = False
            except Exception as exc:  # noqa: BLE001 - a backend away: try again next interval, say so once
                if not self._failing:
                    log.warning("the admin feeds cannot read the cluster: %r", exc)
                self._failing = True

    async def _tick(self) -> None:
        cluster = self.node.backends.cluster
        stats_watchers, log_watchers = await asyncio.gather(cluster.count(STATS_CHANNEL), cluster.count(LOG_CHANNEL))
        self.log_watched = log_watchers > 0
        rates = self._measure()
        if stats_watchers > 0:
            await self._publish(STATS_CHANNEL, "stats", await self.snapshot(rates))

    def _measure(self) -> dict[str, float]:
        """Messages a second in (published through this node) and out (queued for its subscribers),
        over the last interval; a tick sooner than half an interval after the last keeps its figures."""
        node, now = self.node, time.monotonic()
        at, published, deliveries = self._baseline
        elapsed = now - at
        if elapsed >= self.node.settings.admin_stats_interval / 2:
            self._rates = {
                "in_per_second": round((node.published - published) / elapsed, 2),
                "out_per_second": round((node.deliveries - deliveries) / elapsed, 2),
            }
            self._baseline = (now, node.published, node.deliveries)
        return self._rates

    async def snapshot(self, rates: dict[str, float] | None = None) -> dict[str, Any]:
        """This node's figures, as published on ``private-realtime.stats`` (docs/admin.md)."""
        node = self.node
        backends, policy = node.backends, node.policy
        occupied = await backends.cluster.channels()
        top = sorted(heapq.nlargest(TOP_CHANNELS, occupied.items(), key=lambda item: item[1]), key=_busiest)
        presence = [name for name, _ in top if policy.type_of(name) is ChannelType.PRESENCE]
        members = dict(zip(presence, await asyncio.gather(*map(backends.presence.count, presence)), strict=True))
        channels = [_channel(name, count, policy.type_of(name).value, members.get(name)) for name, count in top]
        if backends.kind == "memory":  # the memory cluster state is this node's
            cluster_connections = len(node.connections)
        else:
            cluster_connections = (await backends.cluster.connections(limit=1)).count  # a page of one: the count
        api_errors = self._source("api_errors")
        outbox = node.status_sections.get("outbox")
        return {
            "node_id": node.settings.node_id,
            "at": round(time.time(), 3),
            "connections": {"cluster": cluster_connections, "node": len(node.connections)},
            "messages": {**(rates or self._rates), "in_total": node.published, "out_total": node.deliveries},
            "channels": {"occupied": len(occupied), "top": channels},
            "presence": {"channels": len(members), "members": sum(members.values())},
            "nodes": await self._nodes(),
            "errors": {"client": dict(node.client_errors), "api": api_errors},
            "slow_consumers": node.slow_consumers,
            "rate_limits": {
                "frames_dropped": node.frames_dropped,
                "flooding_closed": node.flooding_closed,
                "client_rate_limited": node.client_errors.get("rate_limited", 0),
                "api_rate_limited": api_errors.get("rate_limited", 0),
                "connections_refused": self._source("connections_refused"),
            },
            "outbox": _outbox(outbox()) if outbox is not None else None,
            "log": {"dropped": self.log_dropped},
        }

    async def _nodes(self) -> list[dict[str, Any]]:
        now = time.time()
        nodes = await self.node.membership.nodes()
        return [
            {
                "node_id": node_id,
                "connections": info.get("connections", 0),
                "heartbeat_age": round(max(0.0, now - float(info.get("last_seen", now))), 3),
                "started_at": info.get("started_at"),
            }
            for node_id, info in sorted(nodes.items())
        ]

    def _source(self, name: str) -> dict[str, int]:
        source = self.sources.get(name)
        return source() if source is not None else {}

    async def _publish(self, channel: str, event: str, data: dict[str, Any]) -> None:
        try:
            await self.node.backends.broker.publish(Publication(channel, event, orjson.dumps(data)), history=False)
        except Exception as exc:  # noqa: BLE001 - the broker away: the next one may go through
            self.failed += 1
            log.warning("could not publish on %s: %r", channel, exc)
        else:
            self.publications += 1

    # -- the log -----------------------------------------------------------------------------------

    def _log(self, event: dict[str, Any]) -> None:
        """Queue one event for the next batch, within the rate; the caller checked ``log_watched``."""
        if self._log_bucket.take():
            event["at"] = round(time.time(), 3)
            self._pending.append(event)
        else:
            self.log_dropped += 1
            self._unreported_drops += 1
        if self._flush is None and self._running:
            self._flush = asyncio.get_running_loop().call_later(LOG_BATCH_SECONDS, self._send_batch)

    def _send_batch(self) -> None:
        self._flush = None
        events, self._pending = self._pending, []
        dropped, self._unreported_drops = self._unreported_drops, 0
        if self._running and self.log_watched:
            batch = {"node_id": self.node.settings.node_id, "events": events, "dropped": dropped}
            self.node.spawn(self._publish(LOG_CHANNEL, "log", batch))

    def connection_opened(self, connection_id: str, node_id: str, remote: str) -> None:
        if self.log_watched:
            self._log({"type": "connection_opened", "connection_id": connection_id})

    def connection_closed(self, connection_id: str, user_id: str | None, node_id: str) -> None:
        if self.log_watched:
            self._log({"type": "connection_closed", "connection_id": connection_id, "user_id": user_id})

    def signed_in(self, connection_id: str, user_id: str) -> None:
        if self.log_watched:
            self._log({"type": "signed_in", "connection_id": connection_id, "user_id": user_id})

    def subscribed(self, channel: str, connection_id: str) -> None:
        if channel == LOG_CHANNEL:
            self.log_watched = self._running
        elif channel == STATS_CHANNEL:
            self._wake.set()
        if self.log_watched:
            self._log({"type": "subscribed", "channel": channel, "connection_id": connection_id})

    def unsubscribed(self, channel: str, connection_id: str) -> None:
        if self.log_watched:
            self._log({"type": "unsubscribed", "channel": channel, "connection_id": connection_id})

    def channel_occupied(self, channel: str) -> None:
        if self.log_watched:
            self._log({"type": "channel_occupied", "channel": channel})

    def channel_vacated(self, channel: str) -> None:
        if self.log_watched:
            self._log({"type": "channel_vacated", "channel": channel})

    def member_added(self, channel: str, user_id: str, user_info: Any) -> None:
        if self.log_watched:
            self._log({"type": "member_added", "channel": channel, "user_id": user_id})

    def member_removed(self, channel: str, user_id: str) -> None:
        if self.log_watched:
            self._log({"type": "member_removed", "channel": channel, "user_id": user_id})

    def published(self, publication: Publication) -> None:
        if self.log_watched:
            event = {"type": "published", "channel": publication.channel, "event": publication.event}
            self._log({**event, "offset": publication.offset, "bytes": len(publication.data)})

    def client_message(self, channel: str, data: bytes, connection_id: str, user_id: str | None) -> None:
        if self.log_watched:
            event = {"type": "client_message", "channel": channel, "connection_id": connection_id}
            self._log({**event, "user_id": user_id, "bytes": len(data)})

    def client_error(self, connection_id: str, code: int, name: str, message: str) -> None:
        if self.log_watched:
            event = {"type": "error", "connection_id": connection_id, "code": code, "name": name}
            self._log({**event, "message": message[:MAX_MESSAGE]})


def _busiest(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]


def _channel(name: str, subscribers: int, kind: str, members: int | None) -> dict[str, Any]:
    shown: dict[str, Any] = {"name": name, "type": kind, "subscribers": subscribers}
    if members is not None:
        shown["members"] = members
    return shown


def _outbox(section: dict[str, Any]) -> dict[str, Any]:
    return {name: section.get(name) for name in ("depth", "oldest_age", "draining")}
