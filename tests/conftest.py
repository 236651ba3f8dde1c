"""Shared fixtures: real engine servers on loopback, real WebSocket clients, platform environments."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from shopologic.loader import load_plugin_module
from shopologic.manifest import load_manifest
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.web.app import NODE_KEY, create_app
from websocket_realtime_engine.web.authenticate import HostAccess

ROOT = Path(__file__).resolve().parent.parent
TEST_PLUGINS = ROOT / "tests" / "plugins"
CREDENTIALS = {"app_id": "123456", "app_key": "test-key", "app_secret": "test-secret-value", "api_key": "test-api-key"}
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def engine_hook_module(relative_path: str) -> ModuleType:
    """A file of the engine plugin's folder (``hooks/commerce.py``), loaded as the host loads it.

    The same module object the host registers (``shopologic_plugins.websocket_realtime_engine.…``),
    so a test that patches its state patches what the platform's hooks see.
    """
    return load_plugin_module(load_manifest(ROOT / "plugin.json"), relative_path)


async def eventually(condition: Callable[[], Any], timeout: float = 3.0, message: str = "") -> None:
    """Wait until ``condition()`` holds (awaited when it returns an awaitable), checking every 20 ms;
    fail the test with ``message`` after ``timeout`` seconds: the engine does some work after its reply."""
    deadline = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            pytest.fail(message or f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)


def make_settings(**overrides: Any) -> Settings:
    """Settings for a test node: the test credentials (short ones: allowed), anything overridden."""
    return replace(Settings(node_id="test-node", gc_tuning=False, allow_short_secrets=True, **CREDENTIALS), **overrides)


def positioned(frame: dict[str, Any]) -> dict[str, Any]:
    """``frame`` without its stream position, which it must have (an offset and an epoch)."""
    rest = dict(frame)
    offset, epoch = rest.pop("offset", None), rest.pop("epoch", None)
    assert isinstance(offset, int) and offset >= 0, f"no offset in {frame}"
    assert isinstance(epoch, str) and epoch, f"no epoch in {frame}"
    return rest


class Client:
    """A real WebSocket client (aiohttp) speaking the native protocol, with a receive timeout."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.connection_id = ""

    async def send(self, frame: Any) -> None:
        # the standard library's encoder: it nests deeper than orjson, for tests of such input
        await self.ws.send_str(frame if isinstance(frame, str) else json.dumps(frame, separators=(",", ":")))

    async def recv(self, timeout: float = 3.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        assert message.type is aiohttp.WSMsgType.TEXT, f"expected a text frame, got {message.type}: {message.data!r}"
        return orjson.loads(message.data)  # type: ignore[no-any-return]

    async def request(self, frame: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Send a frame and return the next frame received."""
        await self.send(frame)
        return await self.recv(timeout)

    async def expect(self, event: str, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame, which must be ``event``."""
        frame = await self.recv(timeout)
        assert frame["event"] == event, frame
        return frame

    async def nothing(self, wait: float = 0.3) -> None:
        """Assert that no frame arrives within ``wait`` seconds."""
        with pytest.raises(TimeoutError):
            frame = await self.recv(wait)
            pytest.fail(f"unexpected frame {frame}")

    async def subscribe(self, channel: str, **extra: Any) -> dict[str, Any]:
        return await self.request({"event": "subscribe", "channel": channel, **extra})

    def auth(self, channel: str, channel_data: str | None = None, secret: str = CREDENTIALS["app_secret"]) -> str:
        return auth.make_auth(
            CREDENTIALS["app_key"], secret, auth.channel_string(self.connection_id, channel, channel_data)
        )


@dataclass
class Engine:
    """A running engine on loopback."""

    server: TestServer
    session: aiohttp.ClientSession
    clients: list[Client] = field(default_factory=list)

    @property
    def node(self) -> Node:
        return self.server.app[NODE_KEY]

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}

    async def connect(self) -> Client:
        ws = await self.session.ws_connect(self.url("/socket"))
        client = Client(ws)
        hello = await client.expect("connected")
        client.connection_id = hello["data"]["connection_id"]
        self.clients.append(client)
        return client

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = kwargs.pop("headers", self.api_headers)
        async with self.session.request(method, self.url(path), headers=headers, **kwargs) as response:
            return response.status, await response.json()


EngineFactory = Callable[..., Any]


@pytest.fixture
async def engine_factory() -> AsyncIterator[EngineFactory]:
    """Start engines with given settings (and host access); all stopped at the end."""
    started: list[Engine] = []

    async def start(
        settings: Settings | None = None,
        access: HostAccess | None = None,
        event_handler: Callable[[str, dict[str, Any]], None] | None = None,
        db_engine: Any = None,
    ) -> Engine:
        app = create_app(settings or make_settings(), db_engine=db_engine, access=access, event_handler=event_handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        engine = Engine(server, aiohttp.ClientSession())
        started.append(engine)
        return engine

    yield start
    for engine in started:
        for client in engine.clients:
            await client.ws.close()
        await engine.session.close()
        await engine.server.close()


@pytest.fixture
async def engine(engine_factory: EngineFactory) -> Engine:
    """One engine with the default test settings."""
    return await engine_factory()  # type: ignore[no-any-return]


# -- the platform, as the CLI sees it --------------------------------------------------------------


@pytest.fixture
def platform_env(tmp_path: Path) -> dict[str, str]:
    """An environment for a fresh platform: its own var folder and SQLite file, the test plugins."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REALTIME_", "SHOPOLOGIC_"))}
    env.update(
        {
            "SHOPOLOGIC_VAR_DIR": str(tmp_path / "var"),
            "SHOPOLOGIC_DATABASE_URL": f"sqlite:///{tmp_path / 'var' / 'platform.db'}",
            "SHOPOLOGIC_PLUGIN_PATH": str(TEST_PLUGINS),
            "REALTIME_CONFIG_FILE": str(tmp_path / "var" / "realtime.toml"),
            "REALTIME_LOG_LEVEL": "warning",
            "REALTIME_ALLOW_SHORT_SECRETS": "true",  # the test CREDENTIALS are shorter than 20 characters
        }
    )
    return env


@pytest.fixture
def cli(platform_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``python bootstrap_plugins.py ARGS`` in the fixture's environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "bootstrap_plugins.py"), *args],
            cwd=ROOT,
            env={**platform_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def scoped_env(platform_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """``os.environ`` set to the platform environment for in-process platform tests."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(platform_env)
    try:
        yield platform_env
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- raw sockets and PostgreSQL schemas ------------------------------------------------------------


async def raw_websocket(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare TCP client that has sent the WebSocket handshake for /socket (it reads only when told)."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return reader, writer


def masked_text_frame(payload: bytes) -> bytes:
    """A client text frame (masked with a zero key, as RFC 6455 allows) of up to 65535 bytes."""
    if len(payload) < 126:
        return bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload
    return bytes((0x81, 0x80 | 126)) + len(payload).to_bytes(2, "big") + b"\0\0\0\0" + payload


@pytest.fixture
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema in the test PostgreSQL holding the realtime tables; dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from websocket_realtime_engine.db import models

    schema = f"t_{free_port()}_{os.getpid()}"
    url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://")
    admin = create_async_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f"create schema {schema}"))
    except OSError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} does not answer ({exc}); `make services` starts it")
    scoped = create_async_engine(url, connect_args={"server_settings": {"search_path": schema}})
    async with scoped.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    await scoped.dispose()
    yield schema
    async with admin.begin() as conn:
        await conn.execute(text(f"drop schema {schema} cascade"))
    await admin.dispose()


# -- Redis ------------------------------------------------------------------------------------------

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@asynccontextmanager
async def own_redis_prefix(label: str) -> AsyncIterator[str]:
    """A key prefix of a test's own in the shared test Redis (``test-<label>-<random>:``); its keys
    are deleted afterwards."""
    import redis.asyncio as redis

    prefix = f"test-{label}-{secrets.token_hex(4)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# -- the platform with the engine, in this process --------------------------------------------------


@asynccontextmanager
async def served(**settings: str) -> AsyncIterator[tuple[Any, TestServer]]:
    """The platform with the engine active, its application on a loopback server; ``settings`` go
    into the environment first (``scoped_env`` puts it back afterwards)."""
    from shopologic.config import HostSettings
    from shopologic.platform import Platform
    from websocket_realtime_engine import PLUGIN_NAME

    os.environ.update(settings)
    platform = Platform(HostSettings.from_env())
    await platform.load()
    await platform.activate(PLUGIN_NAME)
    server = TestServer(platform.build_app(only=PLUGIN_NAME), host="127.0.0.1")
    await server.start_server()
    try:
        yield platform, server
    finally:
        await server.close()
        await platform.close()
