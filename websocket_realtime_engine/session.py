"""A client's session: the dialect-neutral handling of what one connection asks for.

A transport (a WebSocket handler, an SSE stream, later the Pusher socket) is a thin loop: it
hands each text message to :meth:`Session.receive` and the session does the rest. The session
parses with its connection's dialect, applies the per-connection frame rate, carries the command
out on the node and queues the reply (or an error) in the same dialect. It never raises.
"""

from __future__ import annotations

import logging

from websocket_realtime_engine import errors
from websocket_realtime_engine.connection import Connection
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol.channels import ChannelType
from websocket_realtime_engine.protocol.commands import (
    Acknowledged,
    Command,
    Dialect,
    FrameError,
    Message,
    Ping,
    Pong,
    Presence,
    Reply,
    RequestId,
    SignedIn,
    Signin,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)
from websocket_realtime_engine.ratelimit import Verdict

log = logging.getLogger("realtime.session")


class Session:
    """One connection's commands, in one dialect."""

    __slots__ = ("node", "connection", "dialect")

    def __init__(self, node: Node, connection: Connection, dialect: Dialect) -> None:
        self.node = node
        self.connection = connection
        self.dialect = dialect

    def hello(self) -> None:
        """Queue the dialect's first message (the connection's id, the heartbeat, the protocol)."""
        self.node.send(self.connection, self.dialect.connected(self.connection.id, self.node.settings.heartbeat))

    async def receive(self, text: str | bytes) -> None:
        """One text message in; a reply or an error queued out. Never raises."""
        if self.admit():
            await self.process(text)

    async def process(self, text: str | bytes) -> None:
        """One text message already admitted by :meth:`admit`: a reply or an error queued out."""
        connection = self.connection
        if not connection.is_open:  # being closed (evicted, disconnected): what it still sends is ignored
            return
        try:
            command = self.dialect.parse(text)
        except FrameError as exc:
            self.error(exc, exc.request_id, exc.channel)
            return
        channel = getattr(command, "channel", None)
        try:
            reply = await self.handle(command)
        except errors.RealtimeError as exc:
            self.error(exc, command.id, channel)
            return
        except Exception:
            log.exception("internal error handling a request", extra={"connection_id": connection.id})
            self.error(errors.RealtimeError("internal error"), command.id, channel)
            return
        self.reply(reply, command.id)

    def admit(self) -> bool:
        """Whether one inbound frame (of any kind: text, binary, ping, pong) is within the frame rate.

        Over it the frame is dropped, with one error a second at most; a client that keeps sending
        over it for ``client_flood_close_after`` seconds is closed (``CloseReason.FLOODING``)."""
        verdict = self.connection.flood.check()
        if verdict is Verdict.ADMIT:
            return True
        self.node.frames_dropped += 1
        settings = self.node.settings
        if verdict is Verdict.WARN:
            limit = settings.client_frames_per_second
            self.error(errors.RateLimitError(f"more than {limit:g} frames per second: frames are dropped"))
        elif verdict is Verdict.CLOSE and self.connection.is_open:
            log.warning("closing a flooding connection", extra={"connection_id": self.connection.id})
            self.node.flooding_closed += 1
            self.node.spawn(self.node.close_connection(self.connection, errors.CloseReason.FLOODING))
        return False

    def refuse_binary(self) -> None:
        """A binary message: only text is spoken."""
        self.error(errors.UnsupportedDataError("binary frames are not supported; send JSON text"))

    async def handle(self, command: Command) -> Reply:
        """Carry out one command on the node; the reply, if it has one."""
        node, connection = self.node, self.connection
        match command:
            case Subscribe(channel, auth_value, channel_data, _, since):
                done = await node.subscribe(connection, channel, auth_value, channel_data, since)
                return Subscribed(channel, done.members, done.position, done.recovered, done.missed)
            case Unsubscribe(channel):
                await node.unsubscribe(connection, channel)
                return Unsubscribed(channel)
            case Message(channel, data, echo):
                await node.client_message(connection, channel, data, echo)
                return Acknowledged(channel)
            case Presence(channel, auth_value, channel_data):
                if node.policy.type_of(channel) is not ChannelType.PRESENCE:
                    raise errors.ProtocolError(f"{channel} is not a presence channel")
                done = await node.subscribe(connection, channel, auth_value, channel_data, members_again=True)
                return Subscribed(channel, done.members, done.position, as_presence=True)
            case Signin(auth_value, user_data):
                return SignedIn(node.signin(connection, auth_value, user_data))
            case Ping():
                return Pong()
        raise errors.UnknownEventError("unknown request")  # pragma: no cover - parsers return only the above

    def reply(self, reply: Reply, request_id: RequestId) -> None:
        """Queue a reply; after ``subscribed``, the publications the subscription recovered."""
        text = self.dialect.encode_reply(reply, request_id)
        if text is not None:
            self.node.send(self.connection, text)
        if isinstance(reply, Subscribed):
            for publication in reply.publications:
                self.node.hub.send_publication(self.connection, publication)

    def error(self, error: errors.RealtimeError, request_id: RequestId = None, channel: str | None = None) -> None:
        """Queue an error message; the connection stays open."""
        self.count_error(error)
        self.node.send(self.connection, self.dialect.encode_error(error, request_id, channel))

    def count_error(self, error: errors.RealtimeError) -> None:
        """Count an error this client is told of, wherever it is told (an error message, an HTTP answer)."""
        self.node.client_errors[error.name] += 1
        self.node.observers.client_error(self.connection.id, error.code, error.name, error.message)
