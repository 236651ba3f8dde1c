"""The engine: local connections, subscriptions, presence, publishing.

``Node`` owns a :class:`Hub` (local fan-out) and talks to a broker and a presence store through
their interfaces, so the same code runs on one process (memory) or a cluster (Redis). It raises
:mod:`errors` for clients and knows nothing of aiohttp.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
from collections.abc import Iterable
from typing import Any

import orjson

from websocket_realtime_engine import errors
from websocket_realtime_engine.broker.base import Broker
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.connection import Closer, Connection
from websocket_realtime_engine.db.recorder import NullRecorder, Recorder
from websocket_realtime_engine.dispatch import EventDispatcher, EventHandler
from websocket_realtime_engine.hub import Hub
from websocket_realtime_engine.presence.base import PresenceStore
from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.protocol.channels import ChannelPolicy, ChannelType, check_name
from websocket_realtime_engine.protocol.native import encode, websocket_text_frame

log = logging.getLogger("realtime.node")

Member = dict[str, Any]


def policy_from(settings: Settings) -> ChannelPolicy:
    """The channel policy the settings describe."""
    return ChannelPolicy(
        presence_patterns=settings.presence_patterns,
        private_patterns=settings.private_patterns,
        signin_presence_patterns=settings.signin_presence_patterns,
        client_message_types=settings.client_message_types,
        client_message_patterns=settings.client_message_patterns,
    )


class Node:
    """One realtime node."""

    def __init__(
        self,
        settings: Settings,
        broker: Broker,
        presence: PresenceStore,
        recorder: Recorder | None = None,
        event_handler: EventHandler | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy_from(settings)
        self.broker = broker
        self.presence = presence
        self.recorder: Recorder = recorder or NullRecorder()
        self.events = EventDispatcher(event_handler, settings.hook_queue_limit)
        self.hub = Hub(settings.write_buffer_limit, self._slow_consumer)
        self.connections: dict[str, Connection] = {}
        self.users: dict[str, set[Connection]] = {}
        # connection ids: "<incarnation>.<counter>", the form of Pusher's socket_id
        self._incarnation = secrets.randbelow(900_000_000) + 100_000_000
        self._counter = itertools.count(secrets.randbelow(1_000_000) + 1)
        self.published = 0
        self.slow_consumers = 0
        self.accepting = True
        self._tasks: set[asyncio.Task[None]] = set()
        self._subscribing: dict[str, asyncio.Task[None]] = {}  # broker subscriptions under way

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self._on_publication)
        self.events.start()
        await self.recorder.node_started(self.settings.node_id, self.settings.host, self.settings.port)
        log.info("node started", extra={"node_id": self.settings.node_id})

    async def stop(self, code: int = errors.CLOSE_SERVICE_RESTART) -> None:
        """Stop accepting, close every client with ``code`` (reconnect elsewhere), stop backends."""
        await self.close_all(code)
        for task in list(self._tasks):  # evictions still closing
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.stop()
        await self.broker.stop()
        await self.recorder.node_stopped(self.settings.node_id)

    async def close_all(self, code: int = errors.CLOSE_SERVICE_RESTART) -> None:
        """Stop accepting and close every client with ``code``; every error is collected and logged."""
        self.accepting = False
        results = await asyncio.gather(
            *(self.close_connection(c, code, "server shutting down") for c in list(self.connections.values())),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("error closing a connection at shutdown: %r", result)

    # -- connections -------------------------------------------------------------------------------

    def new_connection_id(self) -> str:
        return f"{self._incarnation}.{next(self._counter)}"

    def open_connection(self, transport: asyncio.Transport, closer: Closer, remote: str = "") -> Connection:
        """Register a new client; raises LimitError when the node is full or shutting down."""
        if not self.accepting:
            raise errors.LimitError("the node is shutting down", code=errors.CLOSE_SERVICE_RESTART)
        if len(self.connections) >= self.settings.max_connections:
            raise errors.LimitError("the node is at its connection limit", code=errors.CLOSE_OVER_CAPACITY)
        connection = Connection(
            self.new_connection_id(),
            transport,
            closer,
            remote,
            self.settings.client_messages_per_second,
            self.settings.client_frames_per_second,
        )
        self.connections[connection.id] = connection
        self.recorder.connection_opened(connection.id, self.settings.node_id, remote)
        self.events.emit("connection_opened", connection_id=connection.id, node_id=self.settings.node_id)
        return connection

    def send(self, connection: Connection, payload: bytes) -> None:
        """Queue one JSON frame for one connection."""
        self.hub.send(connection, websocket_text_frame(payload))

    async def connection_lost(self, connection: Connection) -> None:
        """Forget a connection that has ended: leave every channel, tell plugins."""
        if self.connections.pop(connection.id, None) is None:
            return
        connection.closing = True
        for channel in list(connection.channels):
            await self._leave(connection, channel)
        if connection.user_id is not None:
            users = self.users.get(connection.user_id)
            if users is not None:
                users.discard(connection)
                if not users:
                    del self.users[connection.user_id]
        self.recorder.connection_closed(connection.id)
        self.events.emit(
            "connection_closed", connection_id=connection.id, user_id=connection.user_id, node_id=self.settings.node_id
        )

    async def close_connection(self, connection: Connection, code: int, reason: str) -> None:
        """End a connection from the server side with a close code."""
        if connection.closing:
            return
        self.hub.flush()  # what was queued before the close goes out before it
        connection.closing = True
        await connection.closer(code, reason)

    def _slow_consumer(self, connection: Connection) -> None:
        """Called by the hub during a flush: nothing more is written to it from now on."""
        self.slow_consumers += 1
        log.warning("slow consumer closed", extra={"connection_id": connection.id})
        connection.closing = True
        task = asyncio.get_running_loop().create_task(self._evict(connection))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evict(self, connection: Connection) -> None:
        """Leave every channel properly (presence, broker), then close with 4101."""
        for channel in list(connection.channels):
            await self._leave(connection, channel)
        await connection.closer(errors.CLOSE_SLOW_CONSUMER, "slow consumer")

    async def disconnect(self, connection_id: str) -> bool:
        """REST: end one connection (close code 4009). ``False`` when it is not on this node."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return False
        await self.close_connection(connection, errors.CLOSE_DISCONNECTED, "disconnected by the server")
        return True

    async def disconnect_user(self, user_id: str) -> int:
        """REST: end every connection of a user (signed in or a presence member); how many were ended."""
        connections = [c for c in self.connections.values() if c.is_user(user_id)]
        for connection in connections:
            await self.close_connection(connection, errors.CLOSE_DISCONNECTED, "disconnected by the server")
        return len(connections)

    # -- sign-in -----------------------------------------------------------------------------------

    def signin(self, connection: Connection, auth_value: str, user_data: str) -> Member:
        """Bind a user to the connection after checking ``auth`` over ``user_data``."""
        settings = self.settings
        if not auth.verify_auth(
            settings.app_key, settings.app_secret, auth.user_string(connection.id, user_data), auth_value
        ):
            raise errors.AuthError("invalid signature for user_data")
        member = self._parse_member(user_data, "id", "user_data")
        if connection.user_id is not None and connection.user_id != member["user_id"]:
            raise errors.AuthError("the connection is already signed in as another user")
        connection.user_id = member["user_id"]
        connection.user_info = member["user_info"]
        self.users.setdefault(member["user_id"], set()).add(connection)
        self.recorder.signed_in(connection.id, member["user_id"])
        return member

    def _parse_member(self, text: str, id_key: str, what: str) -> Member:
        """Read ``{id_key, user_info?}`` from a JSON string that has already been verified."""
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            raise errors.ProtocolError(f"{what} is not valid JSON") from None
        if not isinstance(value, dict):
            raise errors.ProtocolError(f"{what} must be a JSON object")
        user_id = value.get(id_key)
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id or len(user_id) > self.settings.max_user_id_length:
            raise errors.ProtocolError(
                f"{what}.{id_key} must be a non-empty string of at most {self.settings.max_user_id_length} characters"
            )
        info = value.get("user_info")
        if info is not None and not isinstance(info, dict):
            raise errors.ProtocolError(f"{what}.user_info must be an object")
        try:
            size = len(orjson.dumps(info)) if info is not None else 0
        except orjson.JSONEncodeError:
            raise errors.ProtocolError(f"{what}.user_info cannot be sent as JSON") from None
        if size > self.settings.max_user_info_bytes:
            raise errors.LimitError(f"{what}.user_info is larger than {self.settings.max_user_info_bytes} bytes")
        return {"user_id": user_id, "user_info": info}

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe(
        self, connection: Connection, channel: str, auth_value: str | None = None, channel_data: str | None = None
    ) -> dict[str, Any]:
        """Authorise and add a subscription; the ``subscribed`` data (presence: the members).

        Subscribing again to a channel is not an error: it answers as the first time did.
        """
        kind = self.policy.type_of(channel)
        if channel in connection.channels:
            return await self._subscribed_data(channel, kind)
        if len(connection.channels) >= self.settings.max_channels_per_connection:
            raise errors.LimitError(f"at most {self.settings.max_channels_per_connection} channels per connection")
        member = None
        if kind is ChannelType.PRIVATE:
            self._check_channel_auth(connection, channel, auth_value, None)
        elif kind is ChannelType.PRESENCE:
            member = self._presence_member(connection, channel, auth_value, channel_data)
        connection.channels.add(channel)  # first, so that every way out below cleans it up
        try:
            if member is not None:
                await self._join_presence(connection, channel, member)
            await self._attach(connection, channel)
        except BaseException:
            await self._leave(connection, channel)
            raise
        if connection.id not in self.connections:  # it ended while this subscribe was waiting
            connection.channels.add(channel)
            await self._leave(connection, channel)
            raise errors.ForbiddenError("the connection closed while subscribing")
        return await self._subscribed_data(channel, kind)

    async def _attach(self, connection: Connection, channel: str) -> None:
        """Add to the hub; return only once the broker delivers the channel to this node.

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
            self.events.emit("channel_occupied", channel=channel)
            return
        pending = self._subscribing.get(channel)
        if pending is not None:
            await asyncio.shield(pending)

    async def _subscribed_data(self, channel: str, kind: ChannelType) -> dict[str, Any]:
        if kind is not ChannelType.PRESENCE:
            return {}
        return await self.members(channel)

    def _check_channel_auth(
        self, connection: Connection, channel: str, auth_value: str | None, channel_data: str | None
    ) -> None:
        if not auth_value:
            raise errors.AuthError(f"auth is required for {channel}")
        text = auth.channel_string(connection.id, channel, channel_data)
        if not auth.verify_auth(self.settings.app_key, self.settings.app_secret, text, auth_value):
            raise errors.AuthError(f"invalid signature for {channel}")

    def _presence_member(
        self, connection: Connection, channel: str, auth_value: str | None, channel_data: str | None
    ) -> Member:
        """The member a presence subscription joins as: signed channel_data, or the signed-in user."""
        if channel_data is not None or auth_value:
            if channel_data is None:
                raise errors.ProtocolError("channel_data is required with auth on a presence channel")
            self._check_channel_auth(connection, channel, auth_value, channel_data)
            return self._parse_member(channel_data, "user_id", "channel_data")
        if connection.user_id is not None and self.policy.allows_signed_in_presence(channel):
            return {"user_id": connection.user_id, "user_info": connection.user_info}
        if self.policy.allows_signed_in_presence(channel):
            raise errors.AuthError(f"sign in before joining {channel}, or give auth and channel_data")
        raise errors.AuthError(f"auth and channel_data are required for {channel}")

    async def _join_presence(self, connection: Connection, channel: str, member: Member) -> None:
        user_id = member["user_id"]
        limit = self.settings.max_presence_members
        if not await self.presence.is_member(channel, user_id) and await self.presence.count(channel) >= limit:
            raise errors.LimitError(f"{channel} has {limit} members, the most allowed")
        first = await self.presence.join(channel, connection.id, user_id, member["user_info"])
        connection.presence[channel] = user_id
        self.recorder.presence_joined(channel, connection.id, user_id, member["user_info"])
        if first:
            await self.broker.publish(channel, encode("member_added", channel, member), connection.id)
            self.events.emit("member_added", channel=channel, user_id=user_id, user_info=member["user_info"])

    async def unsubscribe(self, connection: Connection, channel: str) -> None:
        """Remove a subscription; unsubscribing from a channel one is not on is not an error."""
        if channel in connection.channels:
            await self._leave(connection, channel)

    async def _leave(self, connection: Connection, channel: str) -> None:
        connection.channels.discard(channel)
        if self.hub.detach(connection, channel):
            await self.broker.unsubscribe(channel)
            self.events.emit("channel_vacated", channel=channel)
        if connection.presence.pop(channel, None) is not None:
            self.recorder.presence_left(channel, connection.id)
            user_id = await self.presence.leave(channel, connection.id)
            if user_id is not None:
                await self.broker.publish(channel, encode("member_removed", channel, {"user_id": user_id}))
                self.events.emit("member_removed", channel=channel, user_id=user_id)

    async def members(self, channel: str) -> dict[str, Any]:
        """A presence channel's members as clients and the REST API see them."""
        members = await self.presence.members(channel)
        return {"members": [{"user_id": u, "user_info": i} for u, i in members.items()], "count": len(members)}

    # -- publishing --------------------------------------------------------------------------------

    async def publish(
        self, channels: Iterable[str], event: str, data: Any, exclude: str | None = None, **extra: Any
    ) -> int:
        """Publish one event to channels: one JSON encoding per channel, whoever subscribes."""
        count = 0
        for channel in channels:
            check_name(channel)
            payload = encode(event, channel, data, **extra)
            await self.broker.publish(channel, payload, exclude)
            self.recorder.message(channel, event, payload)
            count += 1
        self.published += count
        return count

    async def client_message(self, connection: Connection, channel: str, data: Any, echo: bool) -> None:
        """A subscriber publishes to a channel whose policy allows it."""
        if channel not in connection.channels:
            raise errors.ForbiddenError(f"subscribe to {channel} before publishing to it")
        if not self.policy.allows_client_messages(channel):
            raise errors.ForbiddenError(f"clients may not publish to {channel}")
        if not connection.message_bucket.take():
            raise errors.RateLimitError(f"more than {self.settings.client_messages_per_second:g} messages per second")
        user_id = connection.presence.get(channel, connection.user_id)
        extra = {"user_id": user_id} if user_id is not None else {}
        await self.publish([channel], "message", data, None if echo else connection.id, **extra)
        self.events.emit("client_message", channel=channel, data=data, connection_id=connection.id, user_id=user_id)

    def _on_publication(self, channel: str, payload: bytes, exclude: str | None) -> None:
        """Broker delivery: build the WebSocket frame once, queue it for every local subscriber."""
        excluded = self.connections.get(exclude) if exclude else None
        self.hub.deliver(channel, websocket_text_frame(payload), excluded)

    # -- introspection -----------------------------------------------------------------------------

    def channel_info(self, channel: str) -> dict[str, Any]:
        check_name(channel)
        return {
            "name": channel,
            "type": self.policy.type_of(channel).value,
            "subscription_count": self.hub.count(channel),
            "occupied": self.hub.count(channel) > 0,
        }

    def status(self) -> dict[str, Any]:
        return {
            "node_id": self.settings.node_id,
            "connections": len(self.connections),
            "channels": len(self.hub.channels),
            "users": len(self.users),
            "published": self.published,
            "slow_consumers": self.slow_consumers,
            "hook_events_dropped": self.events.dropped,
            "recorder": self.recorder.stats(),
        }
