"""One SSE stream as the engine sees it, and the node's streams: its wire, its transport, its session.

A stream is a connection like a WebSocket: a :class:`Session` with its own framing. Its
:class:`StreamWire` writes native frames as events whose ``id`` holds the stream's position on each
channel (so ``Last-Event-ID`` resumes every channel exactly); each stream has a wire of its own, so
the hub's encoding cache holds one entry per stream, built per delivery for streams only, and the
WebSocket path does no more work. Requests come as control calls proven by the stream's token
(:meth:`StreamSession.call`); :class:`Streams` carries them out here or has the node holding the
stream do it, over the broker (:meth:`~websocket_realtime_engine.membership.Membership.call`).
``web/sse.py`` serves them over HTTP; docs/http-fallback.md is the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import secrets
from dataclasses import dataclass, replace
from typing import Any

import orjson

from websocket_realtime_engine import errors
from websocket_realtime_engine.connection import Closer, Connection, Wire
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol import native, sse
from websocket_realtime_engine.protocol.channels import ChannelType
from websocket_realtime_engine.protocol.commands import (
    Acknowledged,
    Command,
    Presence,
    Reply,
    RequestId,
    Subscribe,
    Subscribed,
    Unsubscribed,
)
from websocket_realtime_engine.publication import Publication, StreamPosition
from websocket_realtime_engine.ratelimit import Verdict
from websocket_realtime_engine.session import Session

log = logging.getLogger("realtime.sse")

CALL_KIND = "stream"  # the kind of the calls other nodes pass on (membership.call_handlers)
# the control calls, each to its native event (docs/http-fallback.md, section 4)
ACTIONS = {"subscribe": "subscribe", "unsubscribe": "unsubscribe", "publish": "message"}
ACTIONS |= {"presence": "presence", "signin": "signin", "ping": "ping"}
CHECK_INTERVAL = 1.0  # seconds between two looks at whether a stream's client is still there
# the HTTP status of each client-facing error's name (others: 400)
STATUS = {"limit_exceeded": 400, "unauthorized": 403, "forbidden": 403, "reserved_channel": 403}
STATUS |= {"rate_limited": 429, "unavailable": 503, "internal_error": 500}


@dataclass(frozen=True)
class Answer:
    """A control call's HTTP answer: its status and JSON body (a reply frame or an error)."""

    status: int
    body: bytes

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Answer:
        return cls(status, orjson.dumps({"error": {"code": code, "message": message}}))

    @classmethod
    def of(cls, error: errors.RealtimeError) -> Answer:
        return cls.error(STATUS.get(error.name, 400), error.name, error.message)


# -- the wire ---------------------------------------------------------------------------------------


class _LastEncoded:
    """The native text of the publication being delivered: streams on one channel encode it once."""

    publication: Publication | None = None
    text = b""


_LAST = _LastEncoded()


def _native(publication: Publication) -> bytes:
    if publication is not _LAST.publication:  # held here, so the identity cannot be reused meanwhile
        _LAST.text = native.encode_publication(publication)
        _LAST.publication = publication
    return _LAST.text


class StreamWire(Wire):
    """One stream's wire: native frames as SSE events whose id holds the stream's channel positions.

    Positions change as publications are encoded for the stream, in the order they are queued, so
    each event's id is the position after it. ``carried`` are the positions of the ``Last-Event-ID``
    the stream was opened with, for channels not subscribed again yet (kept in the ids meanwhile).
    """

    __slots__ = ("keys", "entries", "carried", "_id")

    def __init__(self, carried: dict[str, StreamPosition]) -> None:
        super().__init__("native+sse", native.encode_publication, self.event)
        self.keys: dict[str, str] = {}  # subscribed channel -> its key in the id
        self.entries: dict[str, str] = {}  # key -> entry, in the order channels were subscribed
        self.carried = carried
        self._id: str | None = None

    def publication(self, publication: Publication) -> bytes:
        if publication.offset:
            key = self.keys.get(publication.channel)
            if key is not None:
                self._set(key, StreamPosition(publication.offset, publication.epoch))
        return self.event(_native(publication))

    def event(self, text: bytes) -> bytes:
        """One message of the stream, with the stream's current id."""
        return sse.event(self.identifier(), text)

    def identifier(self) -> str:
        if self._id is None:
            carried = (sse.entry(key, position) for key, position in self.carried.items())
            self._id = sse.event_id([*self.entries.values(), *(item for item in carried if item)])
        return self._id

    def resume_from(self, channel: str) -> StreamPosition | None:
        """Where the ``Last-Event-ID`` left ``channel``, if it holds it."""
        return self.carried.get(sse.channel_key(channel))

    def track(self, reply: Subscribed) -> None:
        """A channel is subscribed: its position is where its reply leaves it (before what it recovered)."""
        if reply.channel in self.keys:  # subscribed again: it is tracked already
            return
        key = self.keys[reply.channel] = sse.channel_key(reply.channel)
        self.carried.pop(key, None)
        first = reply.publications[0] if reply.publications else None
        self._set(key, StreamPosition(first.offset - 1, first.epoch) if first else reply.position)

    def forget(self, channel: str) -> None:
        key = self.keys.pop(channel, None) or sse.channel_key(channel)
        self.entries.pop(key, None)
        self.carried.pop(key, None)
        self._id = None

    def _set(self, key: str, position: StreamPosition) -> None:
        item = sse.entry(key, position)
        if item is None:
            self.entries.pop(key, None)
        else:
            self.entries[key] = item
        self._id = None


class EventStreamTransport(asyncio.Transport):
    """The stream's socket as the hub writes to it: each write one HTTP/1.1 chunk (as it is on HTTP/1.0)."""

    def __init__(self, transport: asyncio.Transport, chunked: bool) -> None:
        super().__init__()
        self.inner = transport
        self.chunked = chunked

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:  # an empty chunk would end the response
            return
        if self.chunked:
            self.inner.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
        else:
            self.inner.write(data)

    def is_closing(self) -> bool:
        return self.inner.is_closing()

    def get_write_buffer_size(self) -> int:
        return self.inner.get_write_buffer_size()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.inner.get_extra_info(name, default)


def stream_closer(transport: EventStreamTransport, wire: StreamWire, ended: asyncio.Event, timeout: float) -> Closer:
    """How the engine ends a stream: a ``close`` event with the native code, then the response ends;
    a peer that has not taken it all within ``timeout`` (a reader that reads nothing) is aborted."""

    async def close(reason: errors.CloseReason) -> None:
        frame = native.encode("close", None, {"code": native.close_code(reason), "reason": reason.name.lower()})
        if not transport.is_closing():
            transport.write(wire.event(frame))
        ended.set()
        asyncio.get_running_loop().call_later(timeout, transport.abort)  # nothing to do once it closed

    return close


# -- the session ------------------------------------------------------------------------------------


class StreamSession(Session):
    """A stream's session: requests come one at a time as control calls, proven by the stream's token.

    On a resumed stream (opened with ``Last-Event-ID``) each subscribe starts from the id's position
    of its channel and says whether it recovered.
    """

    __slots__ = ("wire", "token", "resumed", "ended", "_turn")

    def __init__(self, node: Node, connection: Connection, wire: StreamWire, resumed: bool, ended: asyncio.Event):
        super().__init__(node, connection, native.dialect(node.settings.max_json_depth))
        self.wire = wire
        self.token = secrets.token_urlsafe(24)
        self.resumed = resumed
        self.ended = ended
        self._turn = asyncio.Lock()  # one call at a time, in order, as a WebSocket's frames

    def hello(self) -> None:
        settings = self.node.settings
        data = {"connection_id": self.connection.id, "token": self.token, "heartbeat": settings.heartbeat}
        data |= {"protocol": native.PROTOCOL_VERSION, "transport": "sse"}
        self.node.send(self.connection, native.encode("connected", None, data))

    async def start(self, channels: list[str]) -> None:
        """Subscribe the query's channels, each answered (or refused) on the stream in order."""
        async with self._turn:
            for channel in channels:
                try:
                    reply = await self.handle(Subscribe(channel))
                except errors.RealtimeError as exc:
                    self.error(exc, None, channel)
                    continue
                except Exception:
                    log.exception("internal error subscribing a stream", extra={"connection_id": self.connection.id})
                    self.error(errors.RealtimeError("internal error"), None, channel)
                    continue
                self.reply(reply, None)

    async def keep(self, transport: asyncio.Transport) -> None:
        """Until the engine closes the stream or its client goes: a heartbeat comment now and then."""
        loop = asyncio.get_running_loop()
        heartbeat = self.node.settings.heartbeat
        beat_at = loop.time() + heartbeat
        while not self.ended.is_set() and not transport.is_closing():
            now = loop.time()
            if now >= beat_at:
                if self.connection.is_open:
                    transport.write(sse.HEARTBEAT)
                beat_at = now + heartbeat
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(CHECK_INTERVAL, beat_at - now)):
                    await self.ended.wait()

    async def call(self, token: str, action: str, frame: dict[str, Any]) -> Answer:
        """One control call: the token checked (constant time), the frame rate, then the request."""
        if action not in ACTIONS:  # passed on by a node that knows more calls (a rolling upgrade)
            return Answer.error(404, "not_found", f"no control call {action[:40]!r} on this node")
        if not hmac.compare_digest(token.encode(), self.token.encode()):
            return Answer.error(403, "invalid_token", "this is not the stream's token")
        async with self._turn:
            if not self.connection.is_open:
                return Answer.error(404, "unknown_stream", f"the stream {self.connection.id} has ended")
            refusal = self._over_rate()
            if refusal is not None:
                return refusal
            try:
                command = self.dialect.parse(orjson.dumps({**frame, "event": ACTIONS[action]}))
                reply = await self.handle(command)
            except errors.RealtimeError as exc:
                self.count_error(exc)
                return Answer.of(exc)
            except Exception:
                log.exception("internal error handling a control call", extra={"connection_id": self.connection.id})
                return Answer.of(errors.RealtimeError("internal error"))
            self.reply(reply, command.id)
            return Answer(200, _reply_text(self, reply, command.id))

    def _over_rate(self) -> Answer | None:
        """The frame rate, as :meth:`Session.admit` applies it, answered over HTTP instead of on the stream."""
        verdict = self.connection.flood.check()
        if verdict is Verdict.ADMIT:
            return None
        node = self.node
        node.frames_dropped += 1
        if verdict is Verdict.CLOSE and self.connection.is_open:
            log.warning("closing a flooding stream", extra={"connection_id": self.connection.id})
            node.flooding_closed += 1
            node.spawn(node.close_connection(self.connection, errors.CloseReason.FLOODING))
        error = errors.RateLimitError(f"more than {node.settings.client_frames_per_second:g} calls per second")
        self.count_error(error)
        return Answer.of(error)

    async def handle(self, command: Command) -> Reply:
        if isinstance(command, Presence) and command.channel not in self.connection.channels:
            # a join: resumed from the stream's id as a subscribe is, answered as ``presence``
            if self.node.policy.type_of(command.channel) is not ChannelType.PRESENCE:
                raise errors.ProtocolError(f"{command.channel} is not a presence channel")
            joined = await self.handle(Subscribe(command.channel, command.auth, command.channel_data))
            return replace(joined, as_presence=True) if isinstance(joined, Subscribed) else joined
        if not isinstance(command, Subscribe) or command.channel in self.connection.channels:
            return await super().handle(command)
        since = command.since or self.wire.resume_from(command.channel)
        reply = await super().handle(replace(command, since=since))
        if isinstance(reply, Subscribed) and reply.recovered is None and self.resumed:
            reply = replace(reply, recovered=False)  # resumed, but without a position for it
        return reply

    def reply(self, reply: Reply, request_id: RequestId) -> None:
        if isinstance(reply, Subscribed):
            self.wire.track(reply)
        elif isinstance(reply, Unsubscribed):
            self.wire.forget(reply.channel)
        super().reply(reply, request_id)


def _reply_text(session: StreamSession, reply: Reply, request_id: RequestId) -> bytes:
    """A control call's answer: the reply frame; a ``publish`` without ``id`` gets its ``ack`` too."""
    text = session.dialect.encode_reply(reply, request_id)
    if text is None and isinstance(reply, Acknowledged):
        return native.encode("ack", reply.channel)
    return text or b"{}"


# -- the streams of this node, and calls from other nodes --------------------------------------------


class Streams:
    """The node's open streams by connection id; control calls for them, from here or another node."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sessions: dict[str, StreamSession] = {}

    async def serve(
        self,
        transport: EventStreamTransport,
        channels: list[str],
        carried: dict[str, StreamPosition],
        resumed: bool,
        remote: str,
    ) -> None:
        """One stream's life once its response has started: ``connected``, the query's ``channels``, then
        heartbeats until the engine closes it or its client goes; then it leaves every channel."""
        node = self.node
        wire, ended = StreamWire(carried), asyncio.Event()
        closer = stream_closer(transport, wire, ended, node.settings.close_timeout)
        try:
            connection = node.open_connection(transport, closer, wire, remote)
        except errors.ConnectionRefused as exc:  # full, or shutting down: the client comes back later
            await closer(exc.reason)
            return
        session = self.sessions[connection.id] = StreamSession(node, connection, wire, resumed, ended)
        session.hello()
        try:
            await session.start(channels)
            await session.keep(transport)
        finally:
            del self.sessions[connection.id]
            await node.connection_lost(connection)

    async def call(self, connection_id: str, token: str, action: str, frame: dict[str, Any]) -> Answer:
        """Carry a control call out here, or have the node holding the stream do it."""
        session = self.sessions.get(connection_id)
        if session is not None:
            return await session.call(token, action, frame)
        node = self.node
        try:
            record = await node.cluster.connection(connection_id)
            if record is None or record.node_id == node.settings.node_id:
                return Answer.error(404, "unknown_stream", f"no stream {connection_id[:80]!r} is open")
            arguments = {"connection_id": connection_id, "token": token, "action": action, "frame": frame}
            timeout = node.settings.stream_call_timeout
            result = await node.membership.call(record.node_id, CALL_KIND, arguments, timeout)
        except TimeoutError:
            message = f"the node holding the stream did not answer within {node.settings.stream_call_timeout:g} s"
            return Answer.error(504, "owner_timeout", message)
        except errors.RealtimeError as exc:
            return Answer.of(exc)
        except Exception as exc:  # noqa: BLE001 - the cluster state's store is away
            log.warning("could not find a stream's node: %r", exc)
            return Answer.error(503, "unavailable", "the cluster cannot be reached right now")
        return Answer(result["status"], orjson.dumps(result["body"]))

    async def answer(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Another node's control call for a stream of this node (``membership.call_handlers``)."""
        session = self.sessions.get(arguments["connection_id"])
        if session is None:
            answer = Answer.error(404, "unknown_stream", "the stream has ended")
        else:
            answer = await session.call(arguments["token"], arguments["action"], arguments["frame"])
        return {"status": answer.status, "body": orjson.Fragment(answer.body)}
