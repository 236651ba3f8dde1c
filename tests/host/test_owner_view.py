"""What an owner sees is true: ``serve`` names the plugins it loaded and only URLs it serves, a plugin
activated while a server runs says that it must restart, and ``migrate up`` brings the app's
credentials back.

Servers are real processes (``tests/host/test_cli.py``'s ``start_server``) on free loopback ports;
every URL a banner prints is asked over HTTP or WebSocket.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shopologic.config import HostSettings
from shopologic.hookspecs import hookimpl
from shopologic.platform import Platform
from shopologic.server import running_record, running_servers, serves, unserved_urls
from tests.conftest import TEST_PLUGINS
from tests.host.test_cli import (
    EMITTER,
    Cli,
    ServerFactory,
    ServerProcess,
    assert_ok,
    assert_one_line_error,
    start_server,
    stored_credentials,
)
from websocket_realtime_engine import PLUGIN_NAME
from websocket_realtime_engine.db import credentials

__all__ = ["start_server"]  # the fixture, shared with test_cli.py

URL = re.compile(r"\b(?:https?|wss?)://[^\s()<>,;]+")  # as shopologic.server reads them
PROBE_HOOKS = """
from aiohttp import web

from shopologic.hookspecs import hookimpl


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


@hookimpl
def register_routes(app, platform):
    app.router.add_get("/probe/hello", hello)


@hookimpl
def server_banner(url, platform):
    return [f"  hello      {url}/probe/hello", f"  missing    {url}/probe/missing"]
"""
GOOD_HOOKS = "from shopologic.hookspecs import hookimpl\n"
BROKEN_HOOKS = "from shopologic.hookspecs import hookimpl\n\n\n@hookimpl\ndef no_such_hook():\n    pass\n"


def printed_banner(server: ServerProcess, last: str, timeout: float = 10.0) -> list[str]:
    """The banner, from its "listening on" line to the line starting with ``last``, once printed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = server.stderr.splitlines()
        first = next((i for i, line in enumerate(lines) if " listening on " in line), None)
        end = next((i for i, line in enumerate(lines) if line.startswith(last)), None)
        if first is not None and end is not None:
            return lines[first : end + 1]
        time.sleep(0.05)
    pytest.fail(f"no banner ending with {last!r} within {timeout}s:\n{server.stderr}")


async def assert_every_url_answers(lines: list[str]) -> list[str]:
    """Each URL in ``lines`` answers: a WebSocket URL says ``connected``, an HTTP one is not a 404."""
    urls = [url for line in lines for url in URL.findall(line)]
    assert urls, f"no URL in {lines}"
    async with aiohttp.ClientSession() as session:
        for url in urls:
            if url.startswith("ws"):
                async with session.ws_connect(url) as ws:
                    assert (await ws.receive_json(timeout=3))["event"] == "connected", url
            else:
                async with session.get(url) as response:
                    assert response.status != 404, f"{url} is printed but not served"
    return urls


def add_plugin(folder: Path, name: str, hooks: str) -> Path:
    """A plugin in ``folder/<name>`` with one hook file; the path of that file."""
    plugin = folder / name.replace("-", "_")
    (plugin / "hooks").mkdir(parents=True)
    (plugin / "hooks" / "__init__.py").write_text("")
    manifest = {"name": name, "version": "1.0.0", "description": "a test plugin", "hooks": ["hooks/probe.py"]}
    (plugin / "plugin.json").write_text(json.dumps(manifest))
    path = plugin / "hooks" / "probe.py"
    path.write_text(hooks)
    return path


# -- serve's banner ---------------------------------------------------------------------------------


async def test_serve_with_the_engine_lists_it_and_every_url_it_prints_answers(
    cli: Cli, start_server: ServerFactory
) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    server = start_server("serve")
    base = f"http://127.0.0.1:{server.port}"
    banner = printed_banner(server, "  health ")
    assert banner[:2] == [f"Shopologic listening on {base}", f"  plugins    {PLUGIN_NAME} 0.1.0"]
    assert await assert_every_url_answers(banner[1:]) == [
        f"ws://127.0.0.1:{server.port}/socket",
        f"{base}/api/v1/",
        f"{base}/api/v1/openapi.yaml",
        f"{base}/readyz",
        f"{base}/healthz",
        f"{base}/metrics",
        f"{base}/admin",
        f"{base}/debug",
        f"{base}/realtime.js",
        f"{base}/api/v1/stream",
        f"{base}/health",
    ]
    assert server.stop() == 0


async def test_serve_without_the_engine_prints_none_of_its_urls(cli: Cli, start_server: ServerFactory) -> None:
    assert_ok(cli("plugin", "activate", EMITTER))
    server = start_server("serve")
    base = f"http://127.0.0.1:{server.port}"
    banner = printed_banner(server, "  health ")
    assert banner == [f"Shopologic listening on {base}", f"  plugins    {EMITTER} 1.0.0", f"  health     {base}/health"]
    assert await assert_every_url_answers(banner[1:]) == [f"{base}/health"]
    async with aiohttp.ClientSession() as session, session.get(f"{base}/socket") as response:
        assert response.status == 404, "the engine's endpoint is not served: rightly not printed"
    assert server.stop() == 0


async def test_serve_names_skipped_plugins_and_leaves_out_a_line_for_a_route_it_does_not_serve(
    cli: Cli, start_server: ServerFactory, platform_env: dict[str, str], tmp_path: Path
) -> None:
    more = tmp_path / "more-plugins"
    platform_env["SHOPOLOGIC_PLUGIN_PATH"] = f"{TEST_PLUGINS}{os.pathsep}{more}"
    add_plugin(more, "banner-probe", PROBE_HOOKS)
    broken = add_plugin(more, "broken-probe", GOOD_HOOKS)
    assert_ok(cli("plugin", "activate", "banner-probe"))
    assert_ok(cli("plugin", "activate", "broken-probe"))
    broken.write_text(BROKEN_HOOKS)  # it breaks after activation: still active, no longer loadable

    server = start_server("serve")
    base = f"http://127.0.0.1:{server.port}"
    banner = printed_banner(server, "  health ")
    assert banner[:2] == [f"Shopologic listening on {base}", "  plugins    banner-probe 1.0.0"]
    assert banner[2].startswith("  skipped    broken-probe 1.0.0: active but cannot be loaded: ")
    assert "no_such_hook" in banner[2]
    assert banner[3:] == [f"  hello      {base}/probe/hello", f"  health     {base}/health"]
    assert await assert_every_url_answers(banner[1:]) == [f"{base}/probe/hello", f"{base}/health"]
    assert any("which this server does not serve" in line for line in server.stderr.splitlines())
    assert server.stop() == 0


def test_serves_knows_routes_sub_applications_and_route_variables() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    api = web.Application()
    api.router.add_get("/status", handler)
    api.router.add_get("/channels/{name}", handler)
    app = web.Application()
    app.router.add_get("/socket", handler)
    app.add_subapp("/api/v1", api)
    for path in ("/socket", "/api/v1", "/api/v1/", "/api/v1/status", "/api/v1/channels/orders"):
        assert serves(app, path), path
    for path in ("/", "/sockets", "/api/v2/status", "/api/v1/nope", "/api/v1/channels/a/b"):
        assert not serves(app, path), path
    base = "https://shop.example:8443"
    line = f"  x  wss://shop.example:8443/socket {base}/api/v1/status (docs: {base}/missing) https://elsewhere/x"
    assert unserved_urls(app, base, line) == [f"{base}/missing"], "only this server's URLs are checked"


# -- a server that runs: plugins change at its next start ------------------------------------------


def test_activating_a_plugin_while_serve_runs_says_to_restart_it(
    cli: Cli, start_server: ServerFactory, platform_env: dict[str, str]
) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    server = start_server("serve")
    printed_banner(server, "  health ")
    pid = server.process.pid
    activated = cli("plugin", "activate", EMITTER)
    assert assert_ok(activated) == f"{EMITTER}: activated\n"
    assert activated.stderr.splitlines() == [f"serve (pid {pid}) is running: restart it to load {EMITTER}"]
    assert cli("plugin", "activate", EMITTER).stderr == "", "nothing changed: nothing to restart"
    deactivated = cli("plugin", "deactivate", EMITTER)
    assert assert_ok(deactivated) == f"{EMITTER}: deactivated\n"
    assert deactivated.stderr.splitlines() == [f"serve (pid {pid}) is running: restart it to unload {EMITTER}"]

    assert server.stop() == 0
    after = cli("plugin", "activate", EMITTER)
    assert assert_ok(after) == f"{EMITTER}: activated\n" and after.stderr == ""
    assert list(Path(platform_env["SHOPOLOGIC_VAR_DIR"], "run").iterdir()) == []


def test_a_killed_websocket_start_claims_nothing(
    cli: Cli, start_server: ServerFactory, platform_env: dict[str, str]
) -> None:
    server = start_server("websocket", "start")
    printed_banner(server, "  API key ")
    pid = server.process.pid
    activated = cli("plugin", "activate", EMITTER)
    assert f"websocket start (pid {pid}) is running: restart it to load {EMITTER}" in activated.stderr.splitlines()

    server.process.kill()  # no cleanup: its record stays behind, unlocked
    server.process.wait()
    record = Path(platform_env["SHOPOLOGIC_VAR_DIR"], "run", f"server-{pid}.json")
    assert record.is_file()
    deactivated = cli("plugin", "deactivate", EMITTER)
    assert assert_ok(deactivated) == f"{EMITTER}: deactivated\n"
    assert "is running" not in deactivated.stderr
    assert not record.exists(), "the stale record is removed"


def test_a_running_record_is_held_only_inside_its_block(tmp_path: Path) -> None:
    assert running_servers(tmp_path) == []
    with running_record(tmp_path, "serve", "http://127.0.0.1:1"):
        (server,) = running_servers(tmp_path)
        assert (server.pid, server.command, server.url) == (os.getpid(), "serve", "http://127.0.0.1:1")
    assert running_servers(tmp_path) == []
    assert list((tmp_path / "run").iterdir()) == []


# -- credentials come back through migrate up and plugin activate -----------------------------------


def credential_lines(stored: dict[str, str]) -> list[str]:
    names = ("app_id", "app_key", "app_secret", "api_key", "admin_token")
    return [f"REALTIME_{name.upper()}={stored[name]}" for name in names]


def test_migrate_up_keeps_stored_credentials_and_recreates_lost_ones(cli: Cli, platform_env: dict[str, str]) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    first = stored_credentials(platform_env)
    kept = cli("migrate", "up")
    assert assert_ok(kept) == f"{PLUGIN_NAME}: upgraded to head\n"
    assert f"{PLUGIN_NAME}: kept app {first['app_id']}; " in kept.stderr
    assert stored_credentials(platform_env) == first, "stored credentials are not regenerated"

    assert_ok(cli("migrate", "down", "base"))  # drops the realtime tables, the credentials with them
    assert_one_line_error(cli("websocket", "credentials"), "the engine's tables are missing", "migrate up")
    up = cli("migrate", "up")
    assert_ok(up)
    second = stored_credentials(platform_env)
    assert f"{PLUGIN_NAME}: created app {second['app_id']}; " in up.stderr and "websocket credentials" in up.stderr
    assert second["api_key"] != first["api_key"]
    assert assert_ok(cli("websocket", "credentials")).splitlines() == credential_lines(second)


async def test_plugin_activate_recreates_credentials_lost_by_migrate_down_base(
    scoped_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    platform = Platform(HostSettings.from_env())
    try:
        await platform.load()
        await platform.activate(PLUGIN_NAME)
        first = await credentials.stored_credentials(platform.engine)
        (source,) = platform.migration_sources()
        await platform.run_migrations(source, "downgrade", "base")
        await platform.deactivate(PLUGIN_NAME)
        capsys.readouterr()
        assert await platform.activate(PLUGIN_NAME) is True
        stored = await credentials.stored_credentials(platform.engine)
        assert stored is not None and first is not None and stored["api_key"] != first["api_key"]
        assert f"{PLUGIN_NAME}: created app {stored['app_id']}; " in capsys.readouterr().err
    finally:
        await platform.close()


class MigratedProbe:
    """Records the ``plugin_migrated`` calls it receives."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    @hookimpl
    def plugin_migrated(self, plugin_name: str, platform: Any) -> None:
        self.calls.append(plugin_name)


async def test_serve_migrations_tell_only_the_plugin_migrated(
    scoped_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    platform = Platform(HostSettings.from_env())
    engine_probe, emitter_probe = MigratedProbe(), MigratedProbe()
    try:
        await platform.load()
        await platform.activate(PLUGIN_NAME)
        await platform.activate(EMITTER)
        (source,) = platform.migration_sources()
        await platform.run_migrations(source, "downgrade", "base")
        platform.pm.register(engine_probe, name=f"{PLUGIN_NAME}:probe")
        platform.pm.register(emitter_probe, name=f"{EMITTER}:probe")
        capsys.readouterr()
        announced: list[str] = []
        await platform.migrate_to_head(announced.append)  # what serve and websocket start do first
        assert len(announced) == 1 and announced[0].startswith(f"{PLUGIN_NAME}: database at none, migrating to ")
        assert (engine_probe.calls, emitter_probe.calls) == ([PLUGIN_NAME], [])
        stored = await credentials.stored_credentials(platform.engine)
        assert stored is not None
        assert f"{PLUGIN_NAME}: created app {stored['app_id']}; " in capsys.readouterr().err
        await platform.migrate_to_head(announced.append)  # at head: nothing to migrate, nobody told
        assert len(announced) == 1 and engine_probe.calls == [PLUGIN_NAME]
    finally:
        for probe in (engine_probe, emitter_probe):
            if platform.pm.is_registered(probe):
                platform.pm.unregister(probe)
        await platform.close()
