"""The command line, run as users run it: ``python bootstrap_plugins.py …`` in a subprocess.

Every command's happy path, and bad input: a non-zero exit with one line on stderr starting with
``error:``, never a traceback. Servers are real processes on free loopback ports, stopped with SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT, Client, free_port, positioned
from websocket_realtime_engine import PLUGIN_NAME

Cli = Callable[..., subprocess.CompletedProcess[str]]
EMITTER = "order-emitter"
ORDER = (
    '{"order": {"id": 1001, "number": "SO-1001", "status": "paid", "total": "59.80", "customer_id": 7, '
    '"email": "ann@example.com", '
    '"items": [{"product_id": 3, "name": "Mug", "quantity": 2, "price": "29.90"}]}}'
)
REDIS_URL = "redis://127.0.0.1:6379/0"
PUBLIC_ORDER = {
    "id": "1001",
    "number": "SO-1001",
    "status": "paid",
    "total": "59.80",
    "currency": "EUR",
    "item_count": 2,
}


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """The command succeeded; its standard output."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\nstderr: {result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A non-zero exit, one ``error:`` line on stderr containing ``fragments``, no traceback."""
    assert result.returncode != 0, f"expected a failure, got exit 0\nstdout: {result.stdout}"
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# -- servers in their own process -------------------------------------------------------------------


class ServerProcess:
    """``bootstrap_plugins.py ARGS`` serving on ``port``, its output kept in files."""

    def __init__(self, args: list[str], env: dict[str, str], port: int, folder: Path) -> None:
        self.port = port
        self.stdout_path = folder / f"server-{port}.out"
        self.stderr_path = folder / f"server-{port}.err"
        with self.stdout_path.open("w") as stdout, self.stderr_path.open("w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "bootstrap_plugins.py"), *args],
                cwd=ROOT,
                env=env,
                stdout=stdout,
                stderr=stderr,
                text=True,
            )

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_until_accepting(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.stderr}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"nothing accepted connections on port {self.port} within {timeout}s:\n{self.stderr}")

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then its exit code (killed, and the test failed, if it does not stop in time)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the server did not stop within {timeout}s of SIGTERM:\n{self.stderr}")


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def start_server(platform_env: dict[str, str], tmp_path: Path) -> Iterator[ServerFactory]:
    """Start ``bootstrap_plugins.py ARGS --port <free port>``, wait until it accepts; all stopped after."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        port = free_port()
        server = ServerProcess([*args, "--port", str(port)], platform_env, port, tmp_path)
        started.append(server)
        server.wait_until_accepting()
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


async def connect(session: aiohttp.ClientSession, server: ServerProcess) -> Client:
    client = Client(await session.ws_connect(server.url("/socket")))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


def stored_credentials(platform_env: dict[str, str]) -> dict[str, str]:
    database = platform_env["SHOPOLOGIC_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        (row,) = conn.execute("SELECT id, key, secret, api_key, admin_token FROM realtime_apps").fetchall()
    return dict(zip(("app_id", "app_key", "app_secret", "api_key", "admin_token"), row, strict=True))


# -- the platform and its plugins -------------------------------------------------------------------


def test_bare_command_lists_plugins_with_version_and_state(cli: Cli, platform_env: dict[str, str]) -> None:
    lines = assert_ok(cli()).splitlines()
    database = platform_env["SHOPOLOGIC_DATABASE_URL"].replace("sqlite://", "sqlite+aiosqlite://")
    assert lines[0] == f"platform database: {database}"
    assert [line.split("  ")[0] for line in lines[1:]] == [
        "order-emitter 1.0.0 inactive",
        "websocket-realtime-engine 0.1.0 inactive",
    ]
    assert Path(platform_env["SHOPOLOGIC_VAR_DIR"], "platform.db").is_file()


def test_plugin_activate_list_and_deactivate(cli: Cli) -> None:
    assert assert_ok(cli("plugin", "activate", EMITTER)) == f"{EMITTER}: activated\n"
    assert assert_ok(cli("plugin", "activate", EMITTER)) == f"{EMITTER}: already active\n"
    listed = assert_ok(cli("plugin", "list")).splitlines()
    assert [line.split("  ")[0] for line in listed] == [f"{EMITTER} 1.0.0 active", f"{PLUGIN_NAME} 0.1.0 inactive"]
    assert listed[0].endswith("  A test plugin: emits order events through the host, and records the engine's events")
    assert assert_ok(cli("plugin", "deactivate", EMITTER)) == f"{EMITTER}: deactivated\n"
    assert assert_ok(cli("plugin", "list")).splitlines()[0].startswith(f"{EMITTER} 1.0.0 inactive")


@pytest.mark.parametrize("action", ["activate", "deactivate"])
def test_plugin_unknown_name_is_one_line(cli: Cli, action: str) -> None:
    assert_one_line_error(
        cli("plugin", action, "no-such-plugin"),
        "unknown plugin 'no-such-plugin' (known: order-emitter, websocket-realtime-engine)",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["plugin", "activate"], "shopologic plugin activate: the following arguments are required: name"),
        (["serve", "--port", "eighty"], "shopologic serve: argument --port: invalid int value: 'eighty'"),
    ],
)
def test_usage_mistakes_are_one_line(cli: Cli, args: list[str], fragment: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert_one_line_error(result, fragment)


def test_an_unreachable_database_is_one_line(cli: Cli) -> None:
    result = cli("plugin", "list", env={"SHOPOLOGIC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"})
    assert_one_line_error(result, "the platform database is unreachable", "Connect")


def test_an_unsupported_database_is_one_line(cli: Cli) -> None:
    result = cli(env={"SHOPOLOGIC_DATABASE_URL": "mysql://shop@127.0.0.1/shop"})
    assert_one_line_error(result, "SHOPOLOGIC_DATABASE_URL", "'mysql'")


# -- migrations -------------------------------------------------------------------------------------


def test_migrate_status_before_any_active_plugin_is_a_clear_error(cli: Cli) -> None:
    assert_one_line_error(cli("migrate", "status"), "no active plugin has migrations", "plugin activate")


def test_migrate_down_then_up_again(cli: Cli) -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(ROOT / "migrations"))
    head = scripts.get_current_head()
    assert head is not None
    previous = scripts.get_revision(head).down_revision
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    assert assert_ok(cli("migrate", "down")) == f"{PLUGIN_NAME}: downgraded to -1\n"
    assert assert_ok(cli("migrate", "status")) == f"{PLUGIN_NAME}: current {previous}, head {head} (behind)\n"
    assert assert_ok(cli("migrate", "up")) == f"{PLUGIN_NAME}: upgraded to head\n"
    assert assert_ok(cli("migrate", "status")) == f"{PLUGIN_NAME}: current {head}, head {head} (up to date)\n"
    assert_one_line_error(cli("migrate", "up", "nosuchrev"), f"{PLUGIN_NAME}: cannot upgrade to 'nosuchrev'")


# -- emit -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload", "fragments"),
    [
        ("order.created", '{"order": {"id": 1', ["not valid JSON"]),
        ("order.teleported", "{}", ["unknown event 'order.teleported'", "order.created"]),
        (
            "order.created",
            '{"order": {"id": 1, "status": "lost", "total": "5"}}',
            ["invalid order_created event", "'status'"],
        ),
    ],
)
def test_emit_bad_input_is_one_line(cli: Cli, event: str, payload: str, fragments: list[str]) -> None:
    assert_one_line_error(cli("emit", event, payload), *fragments)


# -- websocket start, status, emit against it -------------------------------------------------------


async def test_websocket_start_on_an_unmigrated_database_serves_emit_and_status(
    cli: Cli, start_server: ServerFactory
) -> None:
    server = start_server("websocket", "start")
    engine = {"REALTIME_PORT": str(server.port)}
    async with aiohttp.ClientSession() as session:
        client = await connect(session, server)
        assert (await client.subscribe("orders"))["event"] == "subscribed"

        result = await asyncio.to_thread(cli, "emit", "order.created", ORDER, env=engine)
        assert assert_ok(result) == "emitted order.created to 1 hook implementation(s): realtime outbox row 1\n"
        frame = await client.expect("order.created", timeout=5)
        assert positioned(frame) == {"event": "order.created", "channel": "orders", "data": {"order": PUBLIC_ORDER}}

        status = assert_ok(await asyncio.to_thread(cli, "websocket", "status", env=engine)).splitlines()
        assert status[0].startswith("node ")
        # one order event is published to orders, private-admin.orders and private-customer.7
        counters = "1 connections, 1 channels, 3 published"
        assert status[0].endswith(f" at http://127.0.0.1:{server.port}: {counters}")
        assert status[1:3] == ["  orders (public): 1 subscribers", "1 live node(s) in the cluster:"]
        assert len(status) == 5 and status[3].startswith("  ") and ": 1 connections, up " in status[3]
        assert status[4] == "outbox: 0 waiting, the oldest for 0.0 s (this node drains it)"
        await client.ws.close()

    assert await asyncio.to_thread(server.stop) == 0
    stderr = server.stderr.splitlines()
    assert [line for line in stderr if "activating" in line] == [
        f"{PLUGIN_NAME} is not active: activating it (runs its migrations)"
    ]
    assert f"Shopologic Realtime listening on http://127.0.0.1:{server.port}" in stderr
    assert "Traceback" not in server.stderr


async def test_sigterm_tells_clients_to_reconnect_elsewhere(start_server: ServerFactory) -> None:
    server = start_server("websocket", "start")
    async with aiohttp.ClientSession() as session:
        client = await connect(session, server)
        server.process.send_signal(signal.SIGTERM)
        closing = await client.ws.receive(timeout=3)  # at once, not after aiohttp's shutdown timeout
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1012), "reconnect elsewhere"
    assert await asyncio.to_thread(server.stop) == 0


def test_websocket_status_with_no_engine_is_one_line(cli: Cli) -> None:
    port = free_port()
    result = cli("websocket", "status", env={"REALTIME_PORT": str(port)})
    assert_one_line_error(result, f"no realtime engine answers at http://127.0.0.1:{port}")


def test_websocket_status_asks_the_node_url_names(cli: Cli, start_server: ServerFactory) -> None:
    server = start_server("websocket", "start")
    elsewhere = {"REALTIME_PORT": str(free_port())}  # the settings point at no node: --url wins
    result = cli("websocket", "status", "--url", f"http://127.0.0.1:{server.port}/", env=elsewhere)
    assert assert_ok(result).startswith("node ") and f" at http://127.0.0.1:{server.port}: " in result.stdout
    assert_one_line_error(cli("websocket", "status", "--url", "ftp://x", env=elsewhere), "--url", "not an http")


# -- websocket setup-cluster, credentials -----------------------------------------------------------


def test_websocket_setup_cluster_stores_the_redis_url_where_settings_are_read(
    cli: Cli, platform_env: dict[str, str], tmp_path: Path
) -> None:
    from websocket_realtime_engine.config import load_settings

    config_file = tmp_path / "config" / "realtime.toml"  # not in the var folder
    config_file.parent.mkdir()
    config_file.write_text("heartbeat = 10.0\n")
    env = {"REALTIME_CONFIG_FILE": str(config_file)}
    output = assert_ok(cli("websocket", "setup-cluster", "--redis-url", REDIS_URL, env=env))
    assert output.splitlines()[0].endswith(f"answers at {REDIS_URL}; stored redis_url in {config_file}")
    assert "--node-id node-1" in output and "proxy_set_header Upgrade" in output
    assert tomllib.loads(config_file.read_text()) == {"heartbeat": 10.0, "redis_url": REDIS_URL}
    settings = load_settings(environ={**platform_env, **env})  # what the engine will read
    assert (settings.redis_url, settings.heartbeat) == (REDIS_URL, 10.0)


def test_websocket_setup_cluster_with_no_redis_is_one_line(cli: Cli, platform_env: dict[str, str]) -> None:
    url = "redis://127.0.0.1:1/0"
    result = cli("websocket", "setup-cluster", "--redis-url", url)
    assert_one_line_error(result, f"Redis at {url} does not answer")
    assert not Path(platform_env["REALTIME_CONFIG_FILE"]).exists(), "stored for a Redis that is not there"


def test_websocket_setup_cluster_for_nodes_refuses_sqlite(cli: Cli, platform_env: dict[str, str]) -> None:
    result = cli("websocket", "setup-cluster", "--redis-url", REDIS_URL, "--nodes", "2")
    assert_one_line_error(result, "SQLite", "share one PostgreSQL database", "--allow-sqlite")
    assert not Path(platform_env["REALTIME_CONFIG_FILE"]).exists()
    assert not Path(platform_env["SHOPOLOGIC_VAR_DIR"], "nginx-realtime.conf").exists()


def test_websocket_setup_cluster_writes_nginx_config_and_trusts_it(cli: Cli, platform_env: dict[str, str]) -> None:
    config_file = Path(platform_env["REALTIME_CONFIG_FILE"])
    config_file.parent.mkdir(parents=True)
    config_file.write_text('trusted_proxies = ["10.0.0.5"]\n')
    flags = ["--nodes", "3", "--base-port", "9101", "--listen", "127.0.0.1:9100", "--allow-sqlite"]
    output = assert_ok(cli("websocket", "setup-cluster", "--redis-url", REDIS_URL, *flags))
    stored = tomllib.loads(config_file.read_text())
    assert stored == {"redis_url": REDIS_URL, "trusted_proxies": ["10.0.0.5", "127.0.0.1"]}, "kept, and nginx's"
    written = Path(platform_env["SHOPOLOGIC_VAR_DIR"], "nginx-realtime.conf").resolve()
    text = written.read_text()
    assert "listen 127.0.0.1:9100;" in text and "server 127.0.0.1:9103" in text and "events {" not in text
    for port, number in ((9101, 1), (9102, 2), (9103, 3)):
        assert f"websocket start --port {port} --node-id node-{number}" in output
    assert f"include {written};" in output


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--listen", "127.0.0.1:"], "--listen"),
        (["--listen", "8081"], "port 8081 is also a node's"),
        (["--base-port", "65535"], "past port 65535"),
    ],
)
def test_websocket_setup_cluster_bad_flags_are_one_line(cli: Cli, flags: list[str], fragment: str) -> None:
    result = cli("websocket", "setup-cluster", "--redis-url", "redis://127.0.0.1:1/0", "--nodes", "2", *flags)
    assert_one_line_error(result, fragment)  # before Redis is asked: it does not answer there


def test_websocket_credentials_are_the_stored_ones(cli: Cli, platform_env: dict[str, str]) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    stored = stored_credentials(platform_env)
    printed = assert_ok(cli("websocket", "credentials")).splitlines()
    assert printed == [
        f"REALTIME_{name.upper()}={stored[name]}"
        for name in ("app_id", "app_key", "app_secret", "api_key", "admin_token")
    ]


def test_websocket_credentials_before_activation_is_one_line(cli: Cli) -> None:
    result = cli("websocket", "credentials")
    assert_one_line_error(result, "no credentials yet", f"plugin activate {PLUGIN_NAME}")


# -- serve ------------------------------------------------------------------------------------------


async def test_serve_answers_health_and_websockets(cli: Cli, start_server: ServerFactory) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    server = start_server("serve")
    async with aiohttp.ClientSession() as session:
        async with session.get(server.url("/health")) as response:
            assert response.status == 200
            checks = {"realtime.node": "ok", "realtime.database": "ok", "realtime.broker": "ok"}
            assert await response.json() == {"status": "ok", "platform": "0.1.0", "checks": checks}
        for path in ("/healthz", "/readyz"):  # the engine's own, in the platform's application too
            async with session.get(server.url(path)) as response:
                assert response.status == 200 and (await response.json())["status"] == "ok"
        client = await connect(session, server)
        assert client.connection_id
        assert (await client.subscribe("orders"))["event"] == "subscribed"
        await client.ws.close()
    assert server.stop() == 0
    assert f"  health     http://127.0.0.1:{server.port}/health" in server.stderr.splitlines()


def test_serve_on_a_port_in_use_is_one_line(cli: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port))
    line = assert_one_line_error(result, f"127.0.0.1:{port}")
    assert "database" not in line, "a busy port is not a database problem"
