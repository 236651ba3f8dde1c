"""The engine: local connections, subscriptions, presence, publishing and recovery.

``Node`` owns a :class:`Hub` (local fan-out) and talks to the broker, history, presence store and
node registry through their interfaces (:mod:`backends` chooses them), so the same code runs on
one process (memory) or a cluster (Redis). It speaks no dialect: publications are dialect-neutral
values, replies are :mod:`protocol.commands` values, and a connection is closed with a
:class:`~errors.CloseReason` that its dialect maps to a code. It raises :mod:`errors` for clients
and knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import orjson
from prometheus_client import Histogram

from websocket_realtime_engine import admission, errors
from websocket_realtime_engine.admission import Member
from websocket_realtime_engine.backends import Backends
from websocket_realtime_engine.catchup import GapFiller
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.connection import Closer, Connection, State, Wire
from websocket_realtime_engine.db.recorder import NullRecorder
from websocket_realtime_engine.dispatch import EventDispatcher, EventHandler
from websocket_realtime_engine.feeds import AdminFeeds, is_reserved
from websocket_realtime_engine.hub import Hub
from websocket_realtime_engine.membership import Membership, recorded
from websocket_realtime_engine.observers import Observer, Observers
from websocket_realtime_engine.presence.base import Joined
from websocket_realtime_engine.protocol.channels import ChannelType, check_name
from websocket_realtime_engine.publication import Publication, StreamPosition
from websocket_realtime_engine.recovery import Subscription, catch_up
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.node")

MOST_USER_CONNECTIONS = 100_000  # a user disconnect looks this many of the user's connections up
# seconds; from 100 us (one node, a few subscribers) to 2.5 s (a broker in trouble)
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def encode_data(data: Any) -> bytes:
    """A publication's data as JSON, once, at the publisher.

    The data is kept (history, hook queue, write-behind record), so it is copied into bytes of its
    own size: orjson's result keeps the block it was written in, 4 KB at least and about 16 times
    the text for nested lists (a 63 KB payload held 1 MB)."""
    try:
        encoded = orjson.dumps(data)
    except orjson.JSONEncodeError as exc:  # e.g. nesting deeper than orjson writes (254)
        raise errors.ProtocolError(f"data cannot be sent as JSON: {exc}") from None
    return bytes(memoryview(encoded))


class Node:
    """One realtime node."""

    def __init__(
        self,
        settings: Settings,
        backends: Backends,
        recorder: Observer | None = None,
        event_handler: EventHandler | None = None,
    ) -> None:
        self.settings = settings
        self.policy = admission.policy_from(settings)
        self.backends = backends
        self.broker = backends.broker
        self.history = backends.history
        self.presence = backends.presence
        self.registry = backends.registry
        self.cluster = backends.cluster
        self.recorder: Observer = recorder or NullRecorder()
        self.events = EventDispatcher(event_handler, settings.hook_queue_limit, settings.hook_queue_max_bytes)
        self.observers = Observers([self.recorder, self.events])
        self.hub = Hub(settings.write_buffer_limit, self._slow_consumer)
        self.gaps = GapFiller(self.history, self._deliver, self.hub.channels.keys)
        self.connections: dict[str, Connection] = {}
        self.users: dict[str, set[Connection]] = {}
        # connection ids: "<incarnation>.<counter>", the form of Pusher's socket_id
        self._incarnation = secrets.randbelow(900_000_000) + 100_000_000
        self._counter = itertools.count(secrets.randbelow(1_000_000) + 1)
        self.started_at = time.time()
        self.published = 0
        self.publications: collections.Counter[str] = collections.Counter()  # published, by source
        self.deliveries = 0  # publications queued for local subscribers, one per subscriber
        self.client_messages = 0  # client "message" requests received (refused ones too)
        # per publication, never per subscriber (web/metrics.py serves them at /metrics): from the
        # start of publish() until the hub has queued it (memory broker) or Redis has answered the
        # publish script, which has pushed it to every subscribed node (Redis)
        fanout = "Seconds from a publish's start until its publication is queued for the subscribers"
        self.fanout_latency = Histogram("realtime_fanout_seconds", fanout, buckets=LATENCY_BUCKETS, registry=None)
        # the Redis broker's publish round trips (a broker with an on_round_trip attribute reports them)
        round_trip = "Seconds each publish to the broker took, its round trip"
        self.broker_round_trip = Histogram(
            "realtime_broker_publish_seconds", round_trip, buckets=LATENCY_BUCKETS, registry=None
        )
        self.slow_consumers = 0
        self.frames_dropped = 0  # over a connection's frame rate
        self.flooding_closed = 0  # connections closed with CloseReason.FLOODING
        self.client_errors: collections.Counter[str] = collections.Counter()  # error frames sent, by name
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribing: dict[str, asyncio.Task[None]] = {}  # broker subscriptions under way
        self._seen: dict[str, StreamPosition] = {}  # last publication of channels with pending subscribers
        self.membership = Membership(self, backends, self.gaps)
        # more sections of status() (the outbox drainer's, the retention pruner's), by name
        self.status_sections: dict[str, Callable[[], dict[str, Any]]] = {}
        # the engine's own live channels (private-realtime.stats and .log), fed by the observer list
        self.feeds = AdminFeeds(self)
        self.observers.observers.append(self.feeds)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the broker, take the node id in the cluster, start the observers.

        :raises errors.StartupError: when another live node runs under this node id.
        """
        if hasattr(self.broker, "on_state_change"):  # a broker that can lose its connection (Redis)
            self.broker.on_state_change = self.membership.broker_state
        if hasattr(self.broker, "on_round_trip"):  # a broker with a network round trip (Redis)
            self.broker.on_round_trip = self.broker_round_trip.observe
        await self.broker.start(self._on_publication)
        try:
            await self.membership.join()
        except BaseException:
            await self.broker.stop()
            await self.backends.close()
            raise
        settings = self.settings
        await self.observers.start(settings.node_id, settings.host, settings.port)
        log.info("node started", extra={"node_id": settings.node_id})

    async def stop(self) -> None:
        """Stop accepting, close every client (reconnect elsewhere), stop backends and observers."""
        await self.feeds.stop(self.settings.node_id)  # before the clients go: their closing is not news
        await self.close_all()
        await cancel_and_wait(*self._tasks)  # evictions still closing
        await self.membership.leave()
        await self.broker.stop()
        await self.backends.close()
        await self.observers.stop(self.settings.node_id)

    async def close_all(self, reason: errors.CloseReason = errors.CloseReason.SHUTDOWN) -> None:
        """Stop accepting and close every client; every error is collected and logged."""
        self.accepting = False
        results = await asyncio.gather(
            *(self.close_connection(c, reason) for c in list(self.connections.values())), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("error closing a connection at shutdown: %r", result)

    # -- connections -------------------------------------------------------------------------------

    def new_connection_id(self) -> str:
        return f"{self._incarnation}.{next(self._counter)}"

    def open_connection(self, transport: asyncio.Transport, closer: Closer, wire: Wire, remote: str = "") -> Connection:
        """Register a new client; raises ConnectionRefused when the node is full or shutting down."""
        if not self.accepting:
            raise errors.ConnectionRefused(errors.CloseReason.SHUTDOWN)
        if len(self.connections) >= self.settings.max_connections:
            raise errors.ConnectionRefused(errors.CloseReason.OVER_CAPACITY)
        settings = self.settings
        connection = Connection(
            self.new_connection_id(),
            transport,
            closer,
            wire,
            remote,
            settings.client_messages_per_second,
            settings.client_frames_per_second,
            settings.client_flood_close_after,
            settings.client_presence_per_minute,
        )
        self.connections[connection.id] = connection
        self.cluster.opened(settings.node_id, connection.id, connection.connected_at, remote)
        self.observers.connection_opened(connection.id, settings.node_id, remote)
        return connection

    def send(self, connection: Connection, text: bytes) -> None:
        """Queue one message (the connection's dialect) for one connection."""
        self.hub.send(connection, text)

    async def connection_lost(self, connection: Connection) -> None:
        """Forget a connection that has ended: leave every channel, tell the observers."""
        if self.connections.pop(connection.id, None) is None:
            return
        connection.state = State.CLOSED
        vacated = await recorded(self.cluster.closed(connection.id), [])
        for channel in list(connection.channels):
            await self._leave(connection, channel, channel in vacated)
        if connection.user_id is not None:
            users = self.users.get(connection.user_id)
            if users is not None:
                users.discard(connection)
                if not users:
                    del self.users[connection.user_id]
        self.observers.connection_closed(connection.id, connection.user_id, self.settings.node_id)

    async def close_connection(self, connection: Connection, reason: errors.CloseReason) -> None:
        """End a connection from the server side."""
        if connection.state is not State.OPEN:
            return
        self.hub.flush()  # what was queued before the close goes out before it
        connection.state = State.CLOSING
        await connection.closer(reason)

    def _slow_consumer(self, connection: Connection) -> None:
        """Called by the hub during a flush: nothing more is written to it from now on."""
        self.slow_consumers += 1
        log.warning("slow consumer closed", extra={"connection_id": connection.id})
        connection.state = State.CLOSING
        self.spawn(self._evict(connection))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; :meth:`stop` cancels and awaits what is still running."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evict(self, connection: Connection) -> None:
        """Leave every channel properly (presence, broker), then close (the transport is aborted
        when the close cannot be sent within the close timeout)."""
        for channel in list(connection.channels):
            await self._leave(connection, channel)
        await connection.closer(errors.CloseReason.SLOW_CONSUMER)

    async def disconnect(self, connection_id: str) -> bool:
        """REST: end one connection, on any node (its owner is told through its control channel).
        ``False`` when no node has it."""
        connection = self.connections.get(connection_id)
        if connection is not None:
            await self.close_connection(connection, errors.CloseReason.DISCONNECTED)
            return True
        record = await self.cluster.connection(connection_id)
        if record is None or record.node_id == self.settings.node_id:
            return False
        await self.membership.send_disconnect(record.node_id, [connection_id])
        return True

    async def vouch(self, connection_id: str, channel: str, user_id: str) -> None:
        """A user's shop session got ``channel`` signed for a connection: once it subscribes with it,
        the connection counts as the user's (:meth:`disconnect_user` ends it when their sessions are
        revoked). A connection of another node is told through that node's control channel."""
        connection = self.connections.get(connection_id)
        if connection is not None:
            connection.vouch(channel, user_id)
            return
        record = await self.cluster.connection(connection_id)
        if record is not None and record.node_id != self.settings.node_id:
            await self.membership.send_vouch(record.node_id, connection_id, channel, user_id)

    async def disconnect_user(self, user_id: str) -> int:
        """REST: end every connection of a user (signed in or a presence member) on every node;
        how many were ended (or asked to end, on other nodes)."""
        connections = [c for c in self.connections.values() if c.is_user(user_id)]
        elsewhere: dict[str, list[str]] = {}
        page = await self.cluster.connections(user_id=user_id, limit=MOST_USER_CONNECTIONS)
        for record in page.connections:
            if record.node_id != self.settings.node_id:
                elsewhere.setdefault(record.node_id, []).append(record.id)
        for node_id, ids in elsewhere.items():
            await self.membership.send_disconnect(node_id, ids)
        for connection in connections:
            await self.close_connection(connection, errors.CloseReason.DISCONNECTED)
        return len(connections) + sum(len(ids) for ids in elsewhere.values())

    # -- sign-in -----------------------------------------------------------------------------------

    def signin(self, connection: Connection, auth_value: str, user_data: str) -> Member:
        """Bind a user to the connection after checking ``auth`` over ``user_data``."""
        member = admission.signed_in_member(self.settings, connection, auth_value, user_data)
        connection.user_id = member["user_id"]
        connection.user_info = member["user_info"]
        self.users.setdefault(member["user_id"], set()).add(connection)
        self.cluster.signed_in(connection.id, member["user_id"])
        self.observers.signed_in(connection.id, member["user_id"])
        return member

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe(
        self,
        connection: Connection,
        channel: str,
        auth_value: str | None = None,
        channel_data: str | None = None,
        since: StreamPosition | None = None,
        members_again: bool = False,
    ) -> Subscription:
        """Authorise a subscription, catch it up from ``since`` and make it live.

        On return the connection receives the channel's publications; the caller queues the reply
        and then ``missed`` before anything else can be queued (nothing is awaited in between).
        Subscribing again to a channel is not an error: it answers with the channel's position and,
        unless ``members_again`` (the ``presence`` command reads them), no member list. Presence
        joins and member-list reads are limited per connection (``client_presence_per_minute``).
        """
        kind = self.policy.type_of(channel)
        if channel in connection.channels:
            members = None
            if members_again and kind is ChannelType.PRESENCE:
                self._take_presence_turn(connection)
                members = await self.members(channel)
            return Subscription(await self.history.position(channel), members)
        if len(connection.channels) >= self.settings.max_channels_per_connection:
            raise errors.LimitError(f"at most {self.settings.max_channels_per_connection} channels per connection")
        member = None
        if kind is ChannelType.PRIVATE:
            admission.check_channel_auth(self.settings, connection.id, channel, auth_value, None)
        elif kind is ChannelType.PRESENCE:
            member = admission.presence_member(
                self.settings, self.policy, connection, channel, auth_value, channel_data
            )
            self._take_presence_turn(connection)
        connection.channels.add(channel)  # first, so that every way out below cleans it up
        try:
            if member is not None:
                await self._join_presence(connection, channel, member)
            await self._attach(connection, channel)
            subscription = await catch_up(self.history, self._seen, channel, since)
            subscription.members = await self._members_of(channel, kind)
        except BaseException:
            await self._leave(connection, channel)
            raise
        if connection.id not in self.connections or channel not in connection.channels:
            # it ended (or unsubscribed) while this subscribe was waiting
            connection.channels.add(channel)
            await self._leave(connection, channel)
            raise errors.ForbiddenError("the connection closed while subscribing")
        self.hub.go_live(connection, channel)
        if connection.vouched is not None and channel in connection.vouched:
            vouched_user = connection.vouched[channel][0]
            connection.vouch(channel, vouched_user, joined=True)  # now the user's
            if connection.user_id is None:  # so that any node finds it (disconnect_user, /connections)
                self.cluster.signed_in(connection.id, vouched_user)
        self.observers.subscribed(channel, connection.id)
        self.gaps.live(channel, subscription.position)
        if channel not in self.hub.pending:
            self._seen.pop(channel, None)
        return subscription

    async def _attach(self, connection: Connection, channel: str) -> None:
        """Add to the hub (pending); return only once the broker delivers the channel to this node.

        The first local subscriber starts the broker subscription; later ones wait for the same one,
        so no one is told "subscribed" while publications could still be missed.
        """
        if self.hub.attach(connection, channel):
            task = asyncio.get_running_loop().create_task(self.broker.subscribe(channel))
            self._subscribing[channel] = task
            try:
                await asyncio.shield(task)
            finally:
                self._subscribing.pop(channel, None)
        else:
            pending = self._subscribing.get(channel)
            if pending is not None:
                await asyncio.shield(pending)
        member_id = connection.presence.get(channel)
        if await recorded(self.cluster.subscribed(connection.id, channel, member_id), False):
            self.observers.channel_occupied(channel)  # once per cluster: the store decided it

    def _take_presence_turn(self, connection: Connection) -> None:
        if not connection.presence_bucket.take():
            limit = self.settings.client_presence_per_minute
            raise errors.RateLimitError(f"more than {limit:g} presence joins or member lists per minute")

    async def _members_of(self, channel: str, kind: ChannelType) -> dict[str, Any] | None:
        return await self.members(channel) if kind is ChannelType.PRESENCE else None

    async def _join_presence(self, connection: Connection, channel: str, member: Member) -> None:
        user_id, user_info = member["user_id"], member["user_info"]
        limit = self.settings.max_presence_members
        joined = await self.presence.join(channel, connection.id, user_id, user_info, self.settings.node_id, limit)
        if joined is Joined.FULL:
            raise errors.LimitError(f"{channel} has {limit} members, the most allowed")
        connection.presence[channel] = user_id
        connection.member_info[channel] = user_info
        self.observers.presence_joined(channel, connection.id, user_id, user_info)
        if joined is Joined.FIRST:
            added = Publication(channel, "member_added", orjson.dumps(member), exclude=connection.id)
            await self.broker.publish(added, history=False)
            self.observers.member_added(channel, user_id, user_info)

    async def unsubscribe(self, connection: Connection, channel: str) -> None:
        """Remove a subscription; unsubscribing from a channel one is not on is not an error."""
        if channel in connection.channels:
            await self._leave(connection, channel)

    async def _leave(self, connection: Connection, channel: str, vacated: bool | None = None) -> None:
        """Leave a channel; ``vacated`` when the cluster state was already told (a connection closing)."""
        connection.channels.discard(channel)
        if connection in self.hub.channels.get(channel, ()):  # live: its subscription is news, not a failed one
            self.observers.unsubscribed(channel, connection.id)
        if self.hub.detach(connection, channel):
            self._seen.pop(channel, None)
            self.gaps.forget(channel)
            await self.broker.unsubscribe(channel)
        if vacated is None:
            vacated = await recorded(self.cluster.unsubscribed(connection.id, channel), False)
        if vacated:
            self.observers.channel_vacated(channel)
        connection.member_info.pop(channel, None)
        if connection.presence.pop(channel, None) is not None:
            self.observers.presence_left(channel, connection.id)
            user_id = await self.presence.leave(channel, connection.id)
            if user_id is not None:
                await self.publish_member_removed(channel, user_id)

    async def publish_member_removed(self, channel: str, user_id: str) -> None:
        removed = Publication(channel, "member_removed", orjson.dumps({"user_id": user_id}))
        await self.broker.publish(removed, history=False)
        self.observers.member_removed(channel, user_id)

    async def members(self, channel: str) -> dict[str, Any]:
        """A presence channel's members as clients and the REST API see them."""
        members = await self.presence.members(channel)
        return {"members": [{"user_id": u, "user_info": i} for u, i in members.items()], "count": len(members)}

    # -- publishing --------------------------------------------------------------------------------

    async def publish(
        self,
        channels: Iterable[str],
        event: str,
        data: Any,
        exclude: str | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        source: str = "rest",
    ) -> list[StreamPosition]:
        """Publish one event to channels: its data encoded once; each channel's position returned.

        ``source`` names the publisher in the counters (``rest``, ``client``; the engine's own feeds
        name theirs). With ``idempotency_key``: when the key was claimed within ``REALTIME_IDEMPOTENCY_TTL`` s
        (cluster-wide on Redis), nothing is published and ``[]`` is returned; when the publish
        fails, the key is released so that a retry publishes.
        """
        started = time.perf_counter()
        names = [check_name(channel) for channel in channels]
        payload = encode_data(data)
        store = self.backends.idempotency
        if idempotency_key is not None and not await store.claim(idempotency_key, self.settings.idempotency_ttl):
            return []
        positions = []
        try:
            for channel in names:
                publication = Publication(channel, event, payload, exclude=exclude, user_id=user_id)
                position = await self.broker.publish(publication)
                self.fanout_latency.observe(time.perf_counter() - started)
                self.observers.published(publication.at(position))
                positions.append(position)
        except BaseException:
            if idempotency_key is not None:
                try:
                    await store.release(idempotency_key)
                except Exception as exc:  # noqa: BLE001 - the publish's own error is the one to raise
                    log.warning("could not release idempotency key %r: %r", idempotency_key, exc)
            raise
        finally:
            self.published += len(positions)
            self.publications[source] += len(positions)
        return positions

    async def publish_once(self, channels: Iterable[str], event: str, data: Any, key: str) -> int:
        """Publish one event to channels, each unless it went out under ``key`` before (within
        ``REALTIME_IDEMPOTENCY_TTL`` s, cluster-wide on Redis): the check and the publish are one
        atomic step per channel, so a publisher killed halfway and retried publishes each channel
        exactly once. How many channels it went to now (``0``: all of them before). Counted as
        published by the ``outbox``, its only caller."""
        started = time.perf_counter()
        names = [check_name(channel) for channel in channels]
        payload = encode_data(data)
        sent = 0
        for channel in names:
            publication = Publication(channel, event, payload)
            position = await self.broker.publish_once(publication, f"{key}:{channel}", self.settings.idempotency_ttl)
            if position is not None:
                self.fanout_latency.observe(time.perf_counter() - started)
                self.observers.published(publication.at(position))
                sent += 1
        self.published += sent
        self.publications["outbox"] += sent
        return sent

    async def client_message(self, connection: Connection, channel: str, data: Any, echo: bool) -> None:
        """A subscriber publishes to a channel whose policy allows it."""
        self.client_messages += 1
        if is_reserved(channel):
            raise errors.ReservedChannelError(f"{channel} is the engine's own: only the engine publishes there")
        if channel not in connection.channels:
            raise errors.ForbiddenError(f"subscribe to {channel} before publishing to it")
        if not self.policy.allows_client_messages(channel):
            raise errors.ForbiddenError(f"clients may not publish to {channel}")
        if not connection.message_bucket.take():
            raise errors.RateLimitError(f"more than {self.settings.client_messages_per_second:g} messages per second")
        user_id = connection.presence.get(channel, connection.user_id)
        payload = encode_data(data)  # once: published as it is, and the plugins' hooks get it as text
        exclude = None if echo else connection.id
        await self.publish([channel], "message", orjson.Fragment(payload), exclude, user_id, source="client")
        self.observers.client_message(channel, payload, connection.id, user_id)

    def _on_publication(self, publication: Publication) -> None:
        """Broker delivery: queue it for every live local subscriber (encoded once per wire)."""
        channel = publication.channel
        if channel == self.membership.control_channel:
            self.membership.on_control(publication)
            return
        if publication.offset and channel in self.hub.pending:
            self._seen[channel] = StreamPosition(publication.offset, publication.epoch)
        if self.gaps.admit(publication):
            self._deliver(publication)

    def _deliver(self, publication: Publication) -> None:
        exclude = publication.exclude
        excluded = self.connections.get(exclude) if exclude else None
        self.deliveries += self.hub.deliver(publication, excluded)

    # -- introspection -----------------------------------------------------------------------------

    async def channel_info(self, channel: str) -> dict[str, Any]:
        """A channel's type and subscriber count, cluster-wide."""
        check_name(channel)
        count = await self.cluster.count(channel)
        return {
            "name": channel,
            "type": self.policy.type_of(channel).value,
            "subscription_count": count,
            "occupied": count > 0,
        }

    async def channel_list(self, prefix: str = "", kind: ChannelType | None = None) -> dict[str, dict[str, Any]]:
        """Every occupied channel in the cluster (named ``prefix``…, of type ``kind``), by name."""
        answer = {}
        for name, count in sorted((await self.cluster.channels()).items()):
            channel_type = self.policy.type_of(name)
            if name.startswith(prefix) and (kind is None or channel_type is kind):
                answer[name] = {"type": channel_type.value, "subscription_count": count}
        return answer

    async def connection_list(
        self, channel: str | None, user_id: str | None, limit: int, after: str | None = None
    ) -> dict[str, Any]:
        """Open connections in the cluster (on ``channel``, being ``user_id``): at most ``limit`` by id
        above ``after``, the count of all, and ``next`` (the ``after`` of the next page, or ``None``)."""
        page = await self.cluster.connections(channel, user_id, limit, after)
        listed = [record.describe() for record in page.connections]
        return {"connections": listed, "count": page.count, "next": page.next}

    def status(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "backends": self.backends.kind,
            "backend_stats": self.backends.stats(),
            "connections": len(self.connections),
            "channels": len(self.hub.names()),
            "users": len(self.users),
            "published": self.published,
            "slow_consumers": self.slow_consumers,
            "hook_events_dropped": self.events.dropped,
            "hook_queue_bytes": self.events.queued_bytes,
            "frames_dropped": self.frames_dropped,
            "flooding_closed": self.flooding_closed,
            "client_errors": dict(self.client_errors),
            "recorder": self.recorder.stats(),
            **{name: section() for name, section in self.status_sections.items()},
        }
