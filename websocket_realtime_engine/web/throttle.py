"""Connection throttling at the transport: every TCP connection is counted from its accept, so a
socket that never sends a request counts like any other, and is dropped when it does not send one.

aiohttp has no hook at accept and no timeout on reading a request's head, so this sits one level
below it: :meth:`ConnectionThrottle.wrap` wraps the server's protocol factory, and each accepted
connection is a :class:`GatedConnection` in front of aiohttp's own protocol. Whoever runs the
server applies the wrapper: the host does it for the wrappers its application lists
(``shopologic.server.wrap_connections``, called by the plugin's ``register_routes``); a server
that does not leaves the engine unthrottled and working.

At accept, in this order (HTTP errors in the REST API's form, ``{"error": {"code", "message"}}``):

- ``REALTIME_MAX_HTTP_CONNECTIONS`` connections of the node that are not WebSockets (waiting for
  their request, sending it, served over HTTP): more are answered 503 ``over_capacity``;
- per client address (loopback, trusted proxies and ``REALTIME_THROTTLE_EXEMPT`` excepted):
  ``REALTIME_MAX_CONNECTIONS_PER_ADDRESS`` open at once (429 ``too_many_connections``) and
  ``REALTIME_CONNECTION_RATE_PER_ADDRESS`` new ones a second, in bursts of as many as it may hold
  (429 ``connection_rate_limited``), each with ``Retry-After``. A WebSocket through a trusted
  proxy is counted by the forwarded client's address instead, at its handshake
  (:meth:`ConnectionThrottle.check_forwarded`): 429 before the upgrade.

Then a connection has ``REALTIME_HANDSHAKE_TIMEOUT`` seconds to complete its request, head (the
WebSocket handshake) and body, and as long after each HTTP response to send the next: else 408
``request_timeout`` and closed (idle after a response: closed, nothing to answer). A handler may
take its time once the whole request is in; a WebSocket is left to the heartbeat. ``GET
/api/v1/status`` shows the counts (:meth:`ConnectionThrottle.stats`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.web.addresses import AddressRecord, AddressTable, Verdict, address_key, retry_after

log = logging.getLogger("realtime.throttle")

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# seconds a refused or timed-out client is given to read its answer before the socket is aborted
LINGER = 1.0
# seconds between two log lines about refused connections
LOG_INTERVAL = 10.0
REASONS = {408: "Request Timeout", 429: "Too Many Requests", 503: "Service Unavailable"}
LATE = 1.0  # seconds a timeout timer may run late before the node counts as busy (not the client slow)
GRACE = 1.0  # seconds more a request gets when its timeout came while the node was busy


@dataclass(frozen=True)
class Refusal:
    """An HTTP error answered instead of serving a connection."""

    status: int
    code: str
    message: str
    retry_after: int = 0  # seconds; 0: no Retry-After header

    def body(self) -> bytes:
        return orjson.dumps({"error": {"code": self.code, "message": self.message}})

    def raw(self) -> bytes:
        """The whole HTTP/1.1 answer, written straight to a transport aiohttp has not answered on."""
        body = self.body()
        head = [
            f"HTTP/1.1 {self.status} {REASONS[self.status]}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            *([f"Retry-After: {self.retry_after}"] if self.retry_after else []),
            "Connection: close",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def exception(self) -> web.HTTPException:
        """The same answer for a request aiohttp is handling, to raise."""
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after else {}
        kind = web.HTTPTooManyRequests if self.status == 429 else web.HTTPServiceUnavailable
        return kind(text=self.body().decode(), content_type="application/json", headers=headers)


class State(enum.Enum):
    """Where a connection is in its life, as far as the timeout is concerned."""

    WAITING = "waiting"  # for its request's head (from accept, or since its last response): timed
    BUSY = "busy"  # a handler is serving a request
    WEBSOCKET = "websocket"  # upgraded, or an SSE stream: long-lived, its heartbeat watches it
    CLOSING = "closing"  # refused or timed out: its answer is written, what it sends is ignored


class ConnectionThrottle:
    """The node's connection limits and counters; see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self.timeout = settings.handshake_timeout
        self.keepalive = settings.keepalive_timeout
        self.max_http = settings.max_http_connections
        self.loopback_limited = settings.throttle_loopback
        self.trusted_proxies = frozenset(settings.trusted_proxies)
        self.exempt = frozenset(settings.throttle_exempt)
        self.addresses = AddressTable(
            settings.max_connections_per_address,
            settings.connection_rate_per_address,
            float(settings.max_connections_per_address),
        )
        self.open = self.http = 0
        self.refused = {"http_connections": 0, "address_connections": 0, "connection_rate": 0}
        self.timed_out = self.idle_closed = 0
        self.connections: dict[Any, GatedConnection] = {}  # by transport, for requests to find theirs
        self._unlogged = 0
        self._logged_at = -math.inf
        self.middleware = self._middleware()

    # -- the transport ------------------------------------------------------------------------------

    def wrap(self, factory: ProtocolFactory) -> ProtocolFactory:
        """A protocol factory whose connections pass this throttle before ``factory``'s protocol."""
        return lambda: GatedConnection(self, factory)

    def admit(self, connection: GatedConnection, host: str) -> Refusal | None:
        """Count a new connection from ``host``, or say why it is refused."""
        if self.http >= self.max_http:
            wait = retry_after(self.timeout)
            message = f"this node holds {self.max_http} connections that are not WebSockets; retry after {wait} s"
            return self._refuse(Refusal(503, "over_capacity", message, wait), "http_connections", host)
        if host not in self.trusted_proxies:  # counted by the forwarded address, at the handshake
            outcome = self._admit_address(host)
            if isinstance(outcome, Refusal):
                return outcome
            connection.record = outcome
        self.open += 1
        self.http += 1
        self.connections[connection.transport] = connection
        return None

    def release(self, connection: GatedConnection) -> None:
        """An admitted connection ended."""
        self.connections.pop(connection.transport, None)
        self.open -= 1
        if connection.state is not State.WEBSOCKET:
            self.http -= 1
        for record in (connection.record, connection.forwarded):
            if record is not None:
                self.addresses.release(record)

    def count_timeout(self, idle: bool) -> None:
        """A connection waited too long for a request: idle after a response, or in the middle of one."""
        if idle:
            self.idle_closed += 1
        else:
            self.timed_out += 1

    # -- requests -----------------------------------------------------------------------------------

    def check_forwarded(self, request: web.Request, address: str) -> None:
        """At the WebSocket handshake of a connection from a trusted proxy: count it by the forwarded
        client's ``address`` (:func:`~websocket_realtime_engine.web.rest.client_address`) until it
        ends.

        :raises web.HTTPTooManyRequests: the 429 to answer before the upgrade.
        """
        connection = self.connections.get(request.transport)
        if connection is None or connection.forwarded is not None or request.remote not in self.trusted_proxies:
            return
        outcome = self._admit_address(address)
        if isinstance(outcome, Refusal):
            raise outcome.exception()
        connection.forwarded = outcome

    async def response_started(self, request: web.Request, response: web.StreamResponse) -> None:
        """The application's ``on_response_prepare``: a 101 makes the connection a WebSocket, an event
        stream (SSE, ``web/sse.py``) makes it count as one: no longer an HTTP connection."""
        connection = self.connections.get(request.transport)
        if connection is None:
            return
        connection.responded = True
        upgraded = response.status == 101 and isinstance(response, web.WebSocketResponse)
        streaming = response.status == 200 and response.content_type == "text/event-stream"
        if (upgraded or streaming) and connection.state is not State.WEBSOCKET:
            connection.state = State.WEBSOCKET
            self.http -= 1

    def _middleware(self) -> Middleware:
        @web.middleware
        async def connection_timeouts(request: web.Request, handler: Handler) -> web.StreamResponse:
            """The request's head is complete: no timeout while it is served; the next one is timed."""
            connection = self.connections.get(request.transport)
            if connection is None:
                return await handler(request)
            connection.serving(request)
            try:
                return await handler(request)
            finally:
                connection.served()

        return connection_timeouts

    # -- counting -----------------------------------------------------------------------------------

    def _admit_address(self, host: str) -> AddressRecord | Refusal | None:
        key = None if host in self.exempt else address_key(host, self.loopback_limited)
        if key is None:
            return None
        outcome = self.addresses.admit(key)
        if not isinstance(outcome, tuple):
            return outcome
        verdict, seconds = outcome
        limits = self.addresses
        if verdict is Verdict.TOO_MANY:
            wait = retry_after(self.timeout)
            message = f"{key} holds {limits.most_open} connections already; close one, or retry after {wait} s"
            return self._refuse(Refusal(429, "too_many_connections", message, wait), "address_connections", key)
        wait = retry_after(seconds)
        message = f"more than {limits.rate:g} new connections a second from {key}; retry after {wait} s"
        return self._refuse(Refusal(429, "connection_rate_limited", message, wait), "connection_rate", key)

    def _refuse(self, refusal: Refusal, counter: str, address: str) -> Refusal:
        """Count a refusal; log it with the others at most once per :data:`LOG_INTERVAL` seconds."""
        self.refused[counter] += 1
        self._unlogged += 1
        now = asyncio.get_running_loop().time()
        if now - self._logged_at >= LOG_INTERVAL:
            log.warning(
                "connections refused (logged at most once per %g s): %s",
                LOG_INTERVAL,
                refusal.message,
                extra={"refused": self._unlogged, "address": address, "code": refusal.code},
            )
            self._unlogged, self._logged_at = 0, now
        return refusal

    def stats(self) -> dict[str, Any]:
        """The counters ``GET /api/v1/status`` shows as ``throttle``."""
        return {
            "connections": self.open,
            "http_connections": self.http,
            "addresses": len(self.addresses),
            "refused": dict(self.refused),
            "timed_out": self.timed_out,
            "idle_closed": self.idle_closed,
        }


THROTTLE_KEY = web.AppKey("realtime.throttle", ConnectionThrottle)


class GatedConnection(asyncio.Protocol):
    """One accepted connection: admitted (then aiohttp's protocol is made and fed) or refused, and
    timed while it waits for a request."""

    __slots__ = (
        "throttle",
        "factory",
        "inner",
        "transport",
        "state",
        "record",
        "forwarded",
        "deadline",
        "timer",
        "received",
        "served_before",
        "request",
        "responded",
    )

    def __init__(self, throttle: ConnectionThrottle, factory: ProtocolFactory) -> None:
        self.throttle, self.factory = throttle, factory
        self.inner: Any = None  # aiohttp's protocol, once admitted
        self.transport: Any = None
        self.state = State.WAITING
        self.record: AddressRecord | None = None  # the peer's address, counted at accept
        self.forwarded: AddressRecord | None = None  # behind a trusted proxy, the client's
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.received = self.served_before = False
        self.request: web.Request | None = None  # the one its handler serves (BUSY)
        self.responded = False  # that request's response has started

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else ""
        refusal = self.throttle.admit(self, host)
        if refusal is not None:
            self._answer_and_close(refusal)
            return
        self._wait_for_request()
        self.inner = self.factory()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is State.CLOSING:
            return  # read and dropped: closing with unread data would reset the answer away
        if state is State.WAITING and not self.received:
            self.received = True
            if self.served_before:  # a new request on a kept-alive connection: timed from its first byte
                self._time_request(self.throttle.timeout)
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.state is State.CLOSING or self.inner is None:
            return None  # the peer read its answer and went: close
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.inner is None:  # refused: never counted
            return
        self.throttle.release(self)
        self.state = State.CLOSING
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # -- the request timeout ------------------------------------------------------------------------

    def serving(self, request: web.Request) -> None:
        """A handler took ``request``: its head is complete; its body, if any, is still timed."""
        if self.state is State.WAITING:
            self.state = State.BUSY
            self.request, self.responded = request, False

    def served(self) -> None:
        """The handler finished: the next request is timed from now."""
        if self.state is State.BUSY:
            self.request = None
            self.served_before = True
            self._wait_for_request()

    def _wait_for_request(self) -> None:
        self.state = State.WAITING
        self.received = False
        # the first request must come within the timeout; after a response, the connection may idle
        self._time_request(self.throttle.keepalive if self.served_before else self.throttle.timeout)

    def _time_request(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        if self.timer is not None and deadline < self.deadline:  # sooner than the timer: set it again
            self.timer.cancel()
            self.timer = None
        self.deadline = deadline
        if self.timer is None:  # else the pending timer moves itself on to the new deadline
            self.timer = loop.call_at(self.deadline, self._expire)

    def _expire(self) -> None:
        self.timer = None
        state = self.state
        if state is State.BUSY:
            if self.request is None or self.request.content.is_eof():
                return  # the whole request is in: its handler may take its time
        elif state is not State.WAITING:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now < self.deadline:
            self.timer = loop.call_at(self.deadline, self._expire)
            return
        if state is State.WAITING and (self._head_waiting() or now - self.deadline > LATE):
            # a complete request waits for its handler, or this timer ran late: the node was busy,
            # not the client slow; the client gets the time the busy node took from it
            self.deadline = now + GRACE
            self.timer = loop.call_at(self.deadline, self._expire)
            return
        idle = state is State.WAITING and self.served_before and not self.received
        self.throttle.count_timeout(idle)
        if idle:  # a kept-alive HTTP connection nobody uses: nothing to answer
            self._close()
            return
        refusal = Refusal(408, "request_timeout", f"no complete request within {self.throttle.timeout:g} s")
        if state is State.WAITING:
            self._answer_and_close(refusal)
            return
        if not self.responded:  # a body that does not come: its handler is waiting for it
            self.transport.write(refusal.raw())
        self._close()  # (the handler ends with the connection; what it writes now is dropped)

    def _head_waiting(self) -> bool:
        """Whether aiohttp has parsed a complete request head that no handler has taken yet."""
        return bool(getattr(self.inner, "_messages", None))  # RequestHandler's queue of parsed requests

    def _close(self) -> None:
        self.state = State.CLOSING
        self.transport.close()

    def _answer_and_close(self, refusal: Refusal) -> None:
        """Write ``refusal`` and close, giving the peer :data:`LINGER` seconds to read it."""
        self.state = State.CLOSING
        transport = self.transport
        transport.write(refusal.raw())
        if not transport.can_write_eof():  # TLS: close_notify follows the answer
            transport.close()
            return
        transport.write_eof()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(LINGER, transport.abort)
