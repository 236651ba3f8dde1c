"""Connection throttling, attacked as an attacker would: a flood of connections from one address, one
address holding every slot, idle and slow sockets, a handshake that never completes. Each attack gets
its clear error, and a well-behaved subscriber on the same node receives every publication, in
order, throughout.

The nodes are real servers on loopback, served the way ``serve`` serves them (the host's
:func:`~shopologic.server.listen` through the application's connection wrappers). Attackers connect
from other loopback addresses (127.0.0.2, …), which count as addresses of their own with
``REALTIME_THROTTLE_LOOPBACK``; with the defaults loopback is not limited per address, which the
last test checks on a node started through the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shopologic.server import listen, wrap_connections
from tests.conftest import CREDENTIALS, Client, make_settings, masked_text_frame
from tests.host.test_cli import ServerFactory, start_server, stored_credentials  # noqa: F401  (start_server: a fixture)
from websocket_realtime_engine.config import SettingsError, load_settings
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.web import addresses
from websocket_realtime_engine.web.addresses import AddressTable, Verdict, address_key
from websocket_realtime_engine.web.app import NODE_KEY, THROTTLE_KEY, create_app

UPGRADE = (
    "GET /socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


@dataclass
class GatedEngine:
    """A node served with its connection throttle, and clients from any loopback address."""

    app: web.Application
    runner: web.AppRunner
    server: asyncio.Server
    sessions: dict[str, aiohttp.ClientSession] = field(default_factory=dict)

    @property
    def node(self) -> Node:
        return self.app[NODE_KEY]

    @property
    def port(self) -> int:
        return int(self.server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def session(self, source: str) -> aiohttp.ClientSession:
        """HTTP from ``source`` (a loopback address), one TCP connection per request."""
        if source not in self.sessions:
            connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True, limit=0)
            self.sessions[source] = aiohttp.ClientSession(connector=connector)
        return self.sessions[source]

    async def connect(self, source: str = "127.0.0.1", headers: dict[str, str] | None = None) -> Client:
        """A WebSocket client from ``source``, past its ``connected`` frame."""
        client = Client(await self.session(source).ws_connect(self.url("/socket"), headers=headers))
        client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
        return client

    async def status(self) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}
        async with self.session("127.0.0.1").get(self.url("/api/v1/status"), headers=headers) as response:
            assert response.status == 200
            answer: dict[str, Any] = await response.json()
            return answer


@pytest.fixture
async def gated() -> AsyncIterator[Callable[..., Any]]:
    """Start nodes with their throttle (loopback limited per address, unless overridden); all stopped."""
    started: list[GatedEngine] = []

    async def start(routes: tuple[web.RouteDef, ...] = (), **overrides: Any) -> GatedEngine:
        app = create_app(make_settings(**{"throttle_loopback": True, **overrides}))
        app.router.add_routes(routes)  # as another plugin's
        wrap_connections(app, app[THROTTLE_KEY].wrap)  # as the plugin's register_routes does
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1)
        await runner.setup()
        engine = GatedEngine(app, runner, await listen(runner, "127.0.0.1", 0))
        started.append(engine)
        return engine

    yield start
    for engine in started:
        for session in engine.sessions.values():
            await session.close()
        engine.server.close()
        await engine.runner.cleanup()


class Witness:
    """A well-behaved subscriber from 127.0.0.1: a publication every 20 ms while the attack goes on,
    each of which it must receive, in order."""

    def __init__(self, engine: GatedEngine) -> None:
        self.engine = engine
        self.received: list[int] = []
        self.published = 0

    async def __aenter__(self) -> Witness:
        self.client = await self.engine.connect()
        assert (await self.client.subscribe("ticker"))["event"] == "subscribed"
        self._reader = asyncio.create_task(self._read())
        self._publisher = asyncio.create_task(self._publish())
        return self

    async def _publish(self) -> None:
        while True:
            await self.engine.node.publish(["ticker"], "tick", {"n": self.published})
            self.published += 1
            await asyncio.sleep(0.02)

    async def _read(self) -> None:
        while True:
            frame = await self.client.recv(timeout=10)
            assert frame["event"] == "tick", frame
            self.received.append(frame["data"]["n"])

    async def __aexit__(self, *exc_info: object) -> None:
        while self.published < 10 and not self._publisher.done():  # a short attack: a few more after it
            await asyncio.sleep(0.02)
        self._publisher.cancel()
        await asyncio.gather(self._publisher, return_exceptions=True)
        deadline = time.monotonic() + 3
        while len(self.received) < self.published and time.monotonic() < deadline and not self._reader.done():
            await asyncio.sleep(0.02)
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        if exc_info[0] is None:
            assert self.received == list(range(self.published)), "every publication, in order"


async def refused(engine: GatedEngine, source: str, headers: dict[str, str] | None = None) -> tuple[int, dict, Any]:
    """A WebSocket handshake from ``source`` that must be refused: its status, JSON error and headers
    (read through a plain GET: the answer comes before any upgrade)."""
    with pytest.raises(aiohttp.WSServerHandshakeError) as refusal:
        await engine.connect(source, headers)
    status = refusal.value.status
    async with engine.session(source).get(engine.url("/socket"), headers=headers) as response:
        assert response.status == status and response.content_type == "application/json"
        return status, await response.json(), response.headers


async def raw_connection(source: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def answer_of(reader: asyncio.StreamReader, within: float) -> tuple[int, dict[str, str], bytes]:
    """Everything the server sends until it closes: status, headers, body."""
    data = await asyncio.wait_for(reader.read(), within)
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


# -- a flood of connections from one address -----------------------------------------------------------


async def test_a_flood_of_connections_gets_429_with_retry_after_then_is_let_in_again(gated: Any) -> None:
    engine = await gated(max_connections_per_address=10, connection_rate_per_address=5.0)
    async with Witness(engine):
        attempts = await asyncio.gather(*(engine.connect("127.0.0.2") for _ in range(40)), return_exceptions=True)
        admitted = [a for a in attempts if isinstance(a, Client)]
        refusals = [a for a in attempts if isinstance(a, aiohttp.WSServerHandshakeError)]
        assert len(admitted) == 10 and len(refusals) == 30, attempts
        assert {r.status for r in refusals} == {429}
        assert all(int(r.headers["Retry-After"]) >= 1 for r in refusals if r.headers)
        for client in admitted:
            await client.ws.close()
        await asyncio.sleep(0.1)  # the server has seen them go: only the rate holds the address back now
        status, error, headers = await refused(engine, "127.0.0.2")
        assert status == 429 and error["error"]["code"] == "connection_rate_limited", error
        assert "new connections a second from 127.0.0.2" in error["error"]["message"]
        assert headers["Retry-After"] == "1"
        assert (await engine.connect("127.0.0.3")).connection_id, "another address is not held back"
        await asyncio.sleep(int(headers["Retry-After"]))
        again = await engine.connect("127.0.0.2")
        assert (await again.request({"event": "ping"}))["event"] == "pong", "let in again after Retry-After"
    counters = (await engine.status())["throttle"]
    # the flood found the address's 10 slots taken; once they were given back, its bucket was empty
    assert counters["refused"] == {"http_connections": 0, "address_connections": 30, "connection_rate": 2}


# -- one address holding every slot ----------------------------------------------------------------------


async def test_connections_per_address_are_capped_and_other_addresses_still_connect(gated: Any) -> None:
    engine = await gated(
        max_connections_per_address=5, connection_rate_per_address=100.0, trusted_proxies=("127.0.0.4",)
    )
    async with Witness(engine):
        held = [await engine.connect("127.0.0.2") for _ in range(5)]
        status, error, headers = await refused(engine, "127.0.0.2")
        assert status == 429 and error["error"]["code"] == "too_many_connections", error
        assert error["error"]["message"].startswith("127.0.0.2 holds 5 connections already")
        assert int(headers["Retry-After"]) >= 1
        others = [await engine.connect("127.0.0.3") for _ in range(5)]
        assert all(not client.ws.closed for client in held + others)
        await held[0].ws.close()
        await asyncio.sleep(0.1)
        returning = await engine.connect("127.0.0.2")  # a slot it gave back
        assert (await returning.request({"event": "ping"}))["event"] == "pong"
    assert len(engine.node.connections) == 11


async def test_behind_a_trusted_proxy_each_forwarded_client_counts_for_itself(gated: Any) -> None:
    engine = await gated(
        max_connections_per_address=5, connection_rate_per_address=100.0, trusted_proxies=("127.0.0.4",)
    )
    alice, bob = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "203.0.113.9, 198.51.100.8"}
    async with Witness(engine):
        alices = [await engine.connect("127.0.0.4", alice) for _ in range(5)]
        status, error, headers = await refused(engine, "127.0.0.4", alice)
        assert status == 429 and error["error"]["code"] == "too_many_connections", error
        assert "198.51.100.7 holds 5 connections" in error["error"]["message"] and headers["Retry-After"]
        bobs = [await engine.connect("127.0.0.4", bob) for _ in range(5)]  # the proxy's 11th and more
        assert all(not client.ws.closed for client in alices + bobs)
        await alices[0].ws.close()
        await asyncio.sleep(0.1)
        assert (await engine.connect("127.0.0.4", alice)).connection_id
    counters = (await engine.status())["throttle"]
    assert counters["refused"]["address_connections"] == 2  # the refused handshake and its GET


async def test_loopback_is_not_limited_per_address_by_default(gated: Any) -> None:
    engine = await gated(throttle_loopback=False, max_connections_per_address=2, connection_rate_per_address=1.0)
    clients = await asyncio.gather(*(engine.connect("127.0.0.2") for _ in range(20)))
    assert len({client.connection_id for client in clients}) == 20
    assert (await engine.status())["throttle"]["addresses"] == 0, "no loopback address is even tracked"


async def test_exempt_addresses_are_not_limited_per_address(gated: Any) -> None:
    engine = await gated(max_connections_per_address=2, throttle_exempt=("127.0.0.2",))
    shop_servers = await asyncio.gather(*(engine.connect("127.0.0.2") for _ in range(6)))
    assert len({client.connection_id for client in shop_servers}) == 6
    others = [await engine.connect("127.0.0.3") for _ in range(2)]
    status, error, _ = await refused(engine, "127.0.0.3")
    assert status == 429 and error["error"]["code"] == "too_many_connections" and len(others) == 2


# -- idle and slow connections ----------------------------------------------------------------------------


async def test_300_idle_sockets_are_dropped_after_the_timeout_and_block_nobody(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0, max_connections_per_address=1000, connection_rate_per_address=1e4)
    async with Witness(engine):
        opened = time.monotonic()
        idle = [await raw_connection("127.0.0.2", engine.port) for _ in range(300)]
        for _, writer in idle[200:]:
            writer.write(b"GET /socket HT")  # half a request line, and then nothing
        began = time.monotonic()
        newcomer = await engine.connect("127.0.0.3")
        assert time.monotonic() - began < 0.5, "a new client connects at once"
        assert (await newcomer.subscribe("orders"))["event"] == "subscribed"
        assert (await engine.status())["throttle"]["http_connections"] >= 300, "they count, idle as they are"
        answers = await asyncio.gather(*(answer_of(reader, within=4.0) for reader, _ in idle))
        assert time.monotonic() - opened >= 0.9, "not before the timeout"
        for status, headers, body in answers:
            assert status == 408 and headers["Content-Type"] == "application/json"
            error = {"code": "request_timeout", "message": "no complete request within 1 s"}
            assert json.loads(body) == {"error": error}
        for _, writer in idle:
            writer.close()
    counters = (await engine.status())["throttle"]
    assert counters["timed_out"] == 300 and counters["http_connections"] <= 1  # the status request itself
    assert not newcomer.ws.closed


async def test_a_slow_request_is_timed_from_its_start_not_from_its_last_byte(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0)
    async with Witness(engine):
        reader, writer = await raw_connection("127.0.0.2", engine.port)
        started = time.monotonic()

        async def trickle() -> None:
            with contextlib.suppress(ConnectionError):
                for byte in UPGRADE.encode():  # one byte every 50 ms: never done within the second
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        status, _, body = await answer_of(reader, within=3.0)
        trickling.cancel()
        assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
        assert 0.9 <= time.monotonic() - started < 2.0
        writer.close()


async def slow_echo(request: web.Request) -> web.Response:
    """Another plugin's route that takes longer than the timeout to answer."""
    body = await request.read()
    await asyncio.sleep(1.5)
    return web.Response(body=body)


async def test_a_body_that_does_not_come_is_timed_out_too(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0, routes=(web.post("/slow-echo", slow_echo),))
    async with Witness(engine):
        reader, writer = await raw_connection("127.0.0.2", engine.port)
        started = time.monotonic()
        writer.write(
            b"POST /api/v1/authenticate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"connection_id": "1.2", '  # and the rest never comes
        )
        status, _, body = await answer_of(reader, within=3.0)
        assert status == 408 and json.loads(body)["error"]["code"] == "request_timeout"
        assert 0.9 <= time.monotonic() - started < 2.0
        writer.close()
        async with engine.session("127.0.0.3").post(engine.url("/slow-echo"), data=b"x" * 100_000) as response:
            assert response.status == 200 and len(await response.read()) == 100_000, "the whole request came"


async def test_an_idle_kept_alive_http_connection_is_closed_after_the_timeout(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0, keepalive_timeout=1.0)
    async with Witness(engine):
        reader, writer = await raw_connection("127.0.0.2", engine.port)
        for _ in range(3):  # requests within the timeout of each other are served on the one connection
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200 OK")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert json.loads(await reader.readexactly(length)) == {"status": "ok"}
            await asyncio.sleep(0.5)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 3) == b"", "closed, with nothing to say: it asked nothing"
        assert 0.3 <= time.monotonic() - started < 1.5
        writer.close()
    counters = (await engine.status())["throttle"]
    assert counters["idle_closed"] == 1 and counters["timed_out"] == 0


async def test_a_request_that_came_in_time_is_served_though_the_node_was_busy_past_its_timeout(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0)
    reader, writer = await raw_connection("127.0.0.2", engine.port)
    for blocked in (0.0, 1.6):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        time.sleep(blocked)  # the node's event loop (this test's too) is busy past the request's deadline
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
    writer.close()
    assert (await engine.status())["throttle"]["timed_out"] == 0


# -- a handshake that never completes ----------------------------------------------------------------------


async def test_a_websocket_handshake_that_never_completes_gets_408(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0, max_connections_per_address=3)
    async with Witness(engine):
        stuck = [await raw_connection("127.0.0.2", engine.port) for _ in range(3)]
        for _, writer in stuck:
            writer.write(UPGRADE.encode())  # every header, but never the empty line that ends them
        status, error, _ = await refused(engine, "127.0.0.2")
        assert status == 429 and error["error"]["code"] == "too_many_connections", "they hold the address's slots"
        for reader, writer in stuck:
            status, headers, body = await answer_of(reader, within=3.0)
            assert status == 408 and "Retry-After" not in headers
            assert json.loads(body)["error"]["code"] == "request_timeout"
            writer.close()
        await asyncio.sleep(0.1)
        client = await engine.connect("127.0.0.2")  # and give them back
        assert (await client.request({"event": "ping"}))["event"] == "pong"


async def test_a_completed_handshake_is_not_timed_out(gated: Any) -> None:
    engine = await gated(handshake_timeout=0.5)
    reader, writer = await raw_connection("127.0.0.2", engine.port)
    writer.write(UPGRADE.encode() + b"\r\n")
    assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"HTTP/1.1 101")
    await asyncio.sleep(1.2)  # past the timeout: a WebSocket is the heartbeat's business
    writer.write(masked_text_frame(b'{"event":"ping","id":1}'))
    data = b""
    while b'"pong"' not in data:
        data += await asyncio.wait_for(reader.read(4096), 2)
    writer.close()
    assert (await engine.status())["throttle"]["timed_out"] == 0


# -- the pieces ----------------------------------------------------------------------------------------------


def test_addresses_are_counted_by_ipv4_address_and_ipv6_slash_64() -> None:
    assert address_key("203.0.113.9", loopback_limited=False) == "203.0.113.9"
    assert address_key("::ffff:203.0.113.9", loopback_limited=False) == "203.0.113.9"
    assert address_key("2001:db8:1:2:aaaa::1", loopback_limited=False) == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:2:bbbb::7", loopback_limited=False) == "2001:db8:1:2::/64"
    assert address_key("127.0.0.2", loopback_limited=False) is None
    assert address_key("::1", loopback_limited=False) is None
    assert address_key("127.0.0.2", loopback_limited=True) == "127.0.0.2"
    assert address_key("", loopback_limited=True) is None, "a Unix socket: the machine itself"
    assert address_key("not-an-address" * 10, loopback_limited=False) == ("not-an-address" * 10)[:64]


def test_the_address_table_forgets_quiet_addresses() -> None:
    now = [0.0]
    table = AddressTable(most_open=2, rate=1.0, burst=2.0, clock=lambda: now[0])
    records = [table.admit(f"198.51.100.{n}") for n in range(200)]
    assert len(table) == 200
    for record in records[:150]:
        assert not isinstance(record, tuple)
        table.release(record)
    now[0] = addresses.SWEEP_INTERVAL + 1  # past the sweep, and the buckets are full again
    table.admit("203.0.113.1")
    assert len(table) == 51, "those still open, and the newcomer"
    assert table.admit("198.51.100.199") != (Verdict.TOO_MANY, 0.0)
    assert table.admit("198.51.100.199") == (Verdict.TOO_MANY, 0.0), "two open at most"


def test_the_quiet_addresses_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(addresses, "MAX_QUIET_ADDRESSES", 100)
    table = AddressTable(most_open=1, rate=1.0, burst=1.0, clock=lambda: 0.0)
    for n in range(1000):
        record = table.admit(f"10.0.{n // 256}.{n % 256}")
        assert not isinstance(record, tuple)
        table.release(record)
    assert len(table) <= 101


@pytest.mark.parametrize(
    "name", ["HANDSHAKE_TIMEOUT", "MAX_HTTP_CONNECTIONS", "MAX_CONNECTIONS_PER_ADDRESS", "CONNECTION_RATE_PER_ADDRESS"]
)
def test_throttle_settings_must_be_positive(name: str) -> None:
    with pytest.raises(SettingsError, match=f"REALTIME_{name}: must be greater than 0"):
        load_settings(environ={f"REALTIME_{name}": "0"}, config_file=None)


async def test_the_node_caps_the_connections_that_are_not_websockets(gated: Any) -> None:
    engine = await gated(handshake_timeout=1.0, max_http_connections=3, max_connections_per_address=100)
    async with Witness(engine):  # a WebSocket: not among them
        idle = [await raw_connection(f"127.0.0.{n}", engine.port) for n in (2, 3, 4)]
        await asyncio.sleep(0.05)
        status, error, headers = await refused(engine, "127.0.0.5")
        assert status == 503 and error["error"]["code"] == "over_capacity", error
        assert "holds 3 connections that are not WebSockets" in error["error"]["message"]
        assert headers["Retry-After"] == "1"
        for reader, writer in idle:
            assert (await answer_of(reader, within=3.0))[0] == 408
            writer.close()
        await asyncio.sleep(0.1)
        assert (await engine.connect("127.0.0.5")).connection_id, "room again once they are dropped"
    assert (await engine.status())["throttle"]["refused"]["http_connections"] == 2


# -- with the defaults, through the CLI -----------------------------------------------------------------------

LOOPBACK_CONNECTIONS = 10_000
IN_FLIGHT = 200


async def open_websocket(port: int) -> asyncio.StreamWriter:
    """A raw WebSocket on 127.0.0.1, past its 101 and its ``connected`` frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(UPGRADE.encode() + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    first = await reader.readexactly(2)
    length = first[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    assert b'"connected"' in await reader.readexactly(length)
    return writer


async def test_with_the_defaults_10000_loopback_connections_with_200_in_flight_all_get_in(
    start_server: ServerFactory,  # noqa: F811
    platform_env: dict[str, str],
) -> None:
    server = start_server("websocket", "start")
    gate = asyncio.Semaphore(IN_FLIGHT)
    writers: list[asyncio.StreamWriter] = []

    async def one() -> None:
        async with gate:
            writers.append(await open_websocket(server.port))

    started = time.monotonic()
    results = await asyncio.gather(*(one() for _ in range(LOOPBACK_CONNECTIONS)), return_exceptions=True)
    elapsed = time.monotonic() - started
    failures = [result for result in results if isinstance(result, BaseException)]
    try:
        assert failures == [] and len(writers) == LOOPBACK_CONNECTIONS, failures[:3]
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {stored_credentials(platform_env)['api_key']}"}
            async with session.get(server.url("/api/v1/status"), headers=headers) as response:
                status = await response.json()
        assert status["connections"] == LOOPBACK_CONNECTIONS
        throttle = status["throttle"]
        assert throttle["connections"] >= LOOPBACK_CONNECTIONS, "counted at accept: the gate is wired"
        assert throttle["refused"] == {"http_connections": 0, "address_connections": 0, "connection_rate": 0}
        print(f"{LOOPBACK_CONNECTIONS} connections, {IN_FLIGHT} in flight: {elapsed:.1f} s")
    finally:
        for writer in writers:
            writer.transport.abort()
