"""Secrets: long enough to refuse guessing, kept in files only their owner reads, never in a log line;
and a client that hangs up in the middle of its request is one ``info`` line, not a traceback each.

The whole-run tests are real ``websocket start`` processes on loopback, as an operator runs them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
import redis

from shopologic import log
from shopologic.db import create_engine
from shopologic.defaults import sign_session
from shopologic.server import ClientAborts
from tests.conftest import Client, EngineFactory, free_port, make_settings, positioned
from tests.host import test_cli as cli_tests
from tests.host.test_cli import REDIS_URL, ServerFactory, assert_ok, assert_one_line_error
from websocket_realtime_engine import PLUGIN_NAME, errors
from websocket_realtime_engine.db.credentials import check_secret_lengths, generate

start_server = cli_tests.start_server
Cli = Callable[..., subprocess.CompletedProcess[str]]
# what an operator would give a node: every one must stay out of its logs
SECRETS = {
    "REALTIME_API_KEY": "api-key-4f1d9c0b7e2a4d6b8c0e1f3a5b7d9e1f",
    "REALTIME_APP_SECRET": "app-secret-8e3b1d5f7a9c2e4f6a8b0d2c4e6f8a0b",
    "SHOPOLOGIC_SECRET_KEY": "session-signing-key-2c4e6a8b0d1f3e5a7c9b",
}
REDIS_PASSWORD = "redis-password-7d9f1b3e5a"  # the machine's Redis accepts any password for "default"
APP_KEY = "app-key-0a1b2c3d4e5f6a7b8c9d"  # public (pages hold it): not a secret


# -- lengths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["api_key", "app_secret"])
def test_a_secret_under_20_characters_stops_the_node(name: str) -> None:
    long_enough = {"api_key": "k" * 40, "app_secret": "s" * 40}
    settings = make_settings(allow_short_secrets=False, **{**long_enough, name: "x" * 19})
    with pytest.raises(errors.StartupError) as refused:
        check_secret_lengths(settings)
    variable = f"REALTIME_{name.upper()}"
    assert variable in str(refused.value) and "19 characters" in str(refused.value)
    assert "REALTIME_ALLOW_SHORT_SECRETS" in str(refused.value)


def test_20_to_31_characters_are_a_warning_32_none() -> None:
    settings = make_settings(allow_short_secrets=False, api_key="k" * 20, app_secret="s" * 32)
    (warning,) = check_secret_lengths(settings)
    assert "API key is 20 characters" in warning and "32 or more" in warning
    assert check_secret_lengths(make_settings(api_key="k" * 32, app_secret="s" * 32)) == []


def test_allowing_short_secrets_warns_about_each_one() -> None:
    warnings = check_secret_lengths(make_settings(allow_short_secrets=True, api_key="short", app_secret="s" * 40))
    assert len(warnings) == 1 and "REALTIME_ALLOW_SHORT_SECRETS is on" in warnings[0] and "API key" in warnings[0]


def test_generated_credentials_are_long_enough() -> None:
    for _ in range(20):
        created = generate()
        assert len(created["api_key"]) >= 32 and len(created["app_secret"]) >= 32
        assert check_secret_lengths(make_settings(allow_short_secrets=False, **created)) == []


async def test_a_node_with_a_short_secret_does_not_start(engine_factory: EngineFactory) -> None:
    with pytest.raises(errors.StartupError, match="REALTIME_APP_SECRET"):
        await engine_factory(make_settings(allow_short_secrets=False, api_key="k" * 40, app_secret="too-short"))


def test_websocket_start_with_a_short_api_key_is_one_error_line(cli: Cli) -> None:
    short = {"REALTIME_API_KEY": "short-api-key", "REALTIME_ALLOW_SHORT_SECRETS": "false"}
    assert_ok(cli("plugin", "activate", PLUGIN_NAME, env=short))
    line = assert_one_line_error(cli("websocket", "start", "--port", str(free_port()), env=short), "REALTIME_API_KEY")
    assert "13 characters" in line and "at least 20" in line


async def test_short_secrets_allowed_start_loudly(start_server: ServerFactory, platform_env: dict[str, str]) -> None:
    platform_env.update({"REALTIME_API_KEY": "short-api-key", "REALTIME_APP_SECRET": "s" * 24})
    server = start_server("websocket", "start")
    async with aiohttp.ClientSession() as session, session.get(server.url("/readyz")) as response:
        assert response.status == 200
    assert server.stop() == 0
    warnings = [json.loads(line) for line in server.stderr.splitlines() if '"level": "warning"' in line]
    messages = [warning["msg"] for warning in warnings]
    assert any("REALTIME_ALLOW_SHORT_SECRETS is on" in text and "API key" in text for text in messages), messages
    assert any("app secret is 24 characters" in text for text in messages), messages


# -- files -----------------------------------------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_the_session_key_and_realtime_toml_are_the_owners_only(
    cli: Cli, platform_env: dict[str, str]
) -> None:
    var = Path(platform_env["SHOPOLOGIC_VAR_DIR"])
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    assert mode(var) == 0o700
    assert mode(var / "platform.db") == 0o600  # holds the app secret and the API key
    assert mode(var / "secret_key") == 0o600

    config = Path(platform_env["REALTIME_CONFIG_FILE"])
    config.write_text("heartbeat = 20\n")
    config.chmod(0o644)  # written by hand, readable by everyone: setup-cluster adds a password to it
    url = f"redis://default:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    result = cli("websocket", "setup-cluster", "--redis-url", url)
    assert_ok(result)
    assert mode(config) == 0o600 and REDIS_PASSWORD in config.read_text() and "heartbeat = 20" in config.read_text()
    assert REDIS_PASSWORD not in result.stdout + result.stderr
    assert [path.name for path in config.parent.iterdir() if path.name.endswith(".partial")] == []


async def test_an_sqlite_file_is_created_private_and_an_existing_one_is_left_alone(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'shop.db'}")
    await engine.dispose()
    assert mode(tmp_path / "new") == 0o700 and mode(tmp_path / "new" / "shop.db") == 0o600
    existing = tmp_path / "existing.db"
    existing.touch(mode=0o640)
    existing.chmod(0o640)
    await create_engine(f"sqlite+aiosqlite:///{existing}").dispose()
    assert mode(existing) == 0o640  # the operator's choice


# -- logs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-123_XYZ", "abc.def-123_XYZ"),
        ("authorization=basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("headers {'Host': 'x', 'Authorization': 'Basic c2hvcDpzM2NyM3Q='}", "c2hvcDpzM2NyM3Q="),
        ('{"authorization": "Token 9f8e7d6c5b4a"}', "9f8e7d6c5b4a"),
        ("Cookie: theme=dark; shopologic_session=eyJpZCI6IjEifQ.0a1b2c3d; lang=en", "eyJpZCI6IjEifQ.0a1b2c3d"),
        ("cannot reach redis://default:hunter2-pw@10.0.0.5:6379/0", "hunter2-pw"),
        ("postgresql://shop:p%40ss@db.internal/shop", "p%40ss"),
    ],
)
def test_secrets_are_masked_by_their_shape(text: str, secret: str) -> None:
    record = logging_record(text)
    line = log.StructuredFormatter("json").format(record)
    assert secret not in line and "***" in line
    assert secret not in log.StructuredFormatter("text").format(record)


def test_a_registered_secret_is_masked_also_where_json_escapes_it() -> None:
    log.redact('quote"in-the-secret')
    line = log.StructuredFormatter("json").format(logging_record('value quote"in-the-secret here'))
    assert "in-the-secret" not in line


def logging_record(message: str) -> logging.LogRecord:
    return logging.LogRecord("realtime.test", logging.WARNING, __file__, 1, message, None, None)


async def connect(session: aiohttp.ClientSession, url: str) -> Client:
    client = Client(await session.ws_connect(url))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


async def exercise(server: cli_tests.ServerProcess, cookie: str) -> None:
    """Connect, authenticate with the key and with a session, broadcast, and fail to authenticate."""
    key = {"Authorization": f"Bearer {SECRETS['REALTIME_API_KEY']}"}
    async with aiohttp.ClientSession() as session:
        client = await connect(session, server.url("/socket"))
        body = {"connection_id": client.connection_id, "channel": "private-admin.orders"}
        async with session.post(server.url("/api/v1/authenticate"), json=body, headers=key) as response:
            assert response.status == 200, await response.text()
            auth = (await response.json())["auth"]
        session_headers = {"Cookie": f"shopologic_session={cookie}", "Origin": "https://shop.example"}
        async with session.post(server.url("/api/v1/authenticate"), json=body, headers=session_headers) as response:
            assert response.status == 200, await response.text()  # the host's identify_user read the cookie
            assert (await response.json())["auth"] == auth
        assert (await client.subscribe("private-admin.orders", auth=auth))["event"] == "subscribed"
        broadcast = {"channel": "private-admin.orders", "event": "order.created", "data": {"id": "1"}}
        async with session.post(server.url("/api/v1/broadcast"), json=broadcast, headers=key) as response:
            assert response.status == 200
        assert positioned(await client.expect("order.created"))["data"] == {"id": "1"}
        wrong = {"Authorization": f"Bearer {SECRETS['REALTIME_API_KEY']}x", "Cookie": f"shopologic_session={cookie}x"}
        async with session.get(server.url("/api/v1/status"), headers=wrong) as response:
            assert response.status == 401
        for _ in range(20):  # a header line past aiohttp's limit: refused before any route runs
            async with session.get(server.url("/api/v1/status"), headers={**key, "X-Junk": "j" * 10_000}) as response:
                assert response.status == 400
        await client.ws.close()


def abort_requests(port: int, count: int) -> None:
    """``count`` requests whose client resets the connection in the middle of the body."""
    heads = [
        b"POST /api/v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900\r\n\r\n{",
        b"POST /api/v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 900\r\n\r\nsocket_id=",
        b"POST /api/v1/broadcast HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + SECRETS["REALTIME_API_KEY"].encode()
        + b"\r\nContent-Type: application/json\r\nContent-Length: 900\r\n\r\n{",
    ]
    for number in range(count):
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(heads[number % len(heads)])
            time.sleep(0.005)  # the server is reading the body now
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, (1).to_bytes(4, "little") + bytes(4))  # RST


async def test_a_whole_run_logs_no_secret_and_aborted_requests_are_one_info_line(
    start_server: ServerFactory, platform_env: dict[str, str]
) -> None:
    prefix = f"secrets-test-{os.getpid()}-{free_port()}:"
    platform_env.update(
        {
            **SECRETS,
            "REALTIME_APP_KEY": APP_KEY,
            "REALTIME_APP_ID": "424242",
            "REALTIME_ALLOW_SHORT_SECRETS": "false",
            "REALTIME_REDIS_URL": f"redis://default:{REDIS_PASSWORD}@127.0.0.1:6379/0",
            "REALTIME_REDIS_PREFIX": prefix,
            "REALTIME_LOG_LEVEL": "debug",  # everything a node can say, the access log included
        }
    )
    cookie = sign_session(SECRETS["SHOPOLOGIC_SECRET_KEY"], {"id": "1", "role": "admin"})
    server = start_server("websocket", "start")
    try:
        await exercise(server, cookie)
        await asyncio.to_thread(abort_requests, server.port, 100)
        async with aiohttp.ClientSession() as session:
            client = await connect(session, server.url("/socket"))  # the node is fine
            assert (await client.subscribe("orders"))["event"] == "subscribed"
            await client.ws.close()
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        keys = redis.Redis.from_url(REDIS_URL)
        for key in keys.scan_iter(f"{prefix}*"):
            keys.delete(key)
        keys.close()

    output = server.stdout_path.read_text() + server.stderr
    assert output.count("aiohttp.access") >= 8, output[-3000:]  # the logs did record the requests
    for name, value in {**SECRETS, "Redis password": REDIS_PASSWORD, "session cookie": cookie}.items():
        assert value not in output, f"{name} appears in the logs"
    assert cookie.partition(".")[2] not in output  # not even the cookie's signature

    lines = [json.loads(line) for line in server.stderr.splitlines() if line.startswith("{")]
    aborts = [line for line in lines if line["msg"].startswith("client went away")]
    assert len(aborts) == 1 and aborts[0]["level"] == "info", aborts
    malformed = [line for line in lines if line["msg"].startswith("malformed HTTP requests")]
    assert len(malformed) == 1 and malformed[0]["level"] == "info", malformed
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert "Traceback" not in output


def test_aborts_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    aborts = ClientAborts(interval=10.0, clock=lambda: now[0])
    with caplog.at_level("INFO", logger="shopologic.server"):
        for _ in range(100):
            aborts.record(method="POST", path="/api/v1/authenticate", error="Connection lost")
        now[0] += 10.0
        aborts.record(method="POST", path="/api/v1/authenticate", error="Connection lost")
    records = [record for record in caplog.records if record.name == "shopologic.server"]
    assert [(record.levelname, record.count, record.total) for record in records] == [  # type: ignore[attr-defined]
        ("INFO", 1, 1),
        ("INFO", 100, 101),
    ]
