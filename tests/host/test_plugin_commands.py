"""Plugins' commands reach the CLI through ``register_commands``, and ``serve`` asks ``server_address`` where to listen.

In process, on a fresh platform database: the host imports no plugin module, yet ``websocket start``
and ``websocket credentials`` are there while the plugin is inactive.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from shopologic import cli
from shopologic.cli import build_parser
from shopologic.config import HostSettings
from shopologic.contracts import PluginHost
from shopologic.platform import Platform
from tests.conftest import engine_hook_module
from websocket_realtime_engine import PLUGIN_NAME


@pytest.fixture
async def fresh_platform(scoped_env: dict[str, str]) -> AsyncIterator[Platform]:
    """A platform on a fresh database (nothing active), loaded as the CLI loads it."""
    platform = Platform(HostSettings.from_env())
    try:
        await platform.load()
        yield platform
    finally:
        await platform.close()


def handler_name(args: argparse.Namespace) -> str:
    """The command function a parsed command line runs (through the plugin's error wrapper)."""
    handler = getattr(args.handler, "__wrapped__", args.handler)
    return f"{handler.__module__.rpartition('.')[2]}.{handler.__name__}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["websocket", "start", "--port", "9001", "--node-id", "n1"], "commands.cmd_start"),
        (["websocket", "credentials"], "commands.cmd_credentials"),
        (["websocket", "status"], "commands.cmd_status"),
        (["websocket", "setup-cluster", "--redis-url", "redis://127.0.0.1:6379/0"], "commands.cmd_setup_cluster"),
        (["serve", "--port", "9001"], "cli.cmd_serve"),
    ],
)
async def test_plugin_commands_are_in_the_cli_while_the_plugin_is_inactive(
    fresh_platform: Platform, argv: list[str], expected: str
) -> None:
    assert fresh_platform.active == set()
    args = build_parser(fresh_platform).parse_args(argv)
    assert handler_name(args) == expected
    # collecting the commands registered nothing with the platform's own plugin manager
    assert [name for name, _ in fresh_platform.pm.list_name_plugin()] == ["shopologic.defaults"]
    assert fresh_platform.active == set()


async def test_a_plugin_command_comes_from_the_module_the_host_loaded(fresh_platform: Platform) -> None:
    args = build_parser(fresh_platform).parse_args(["websocket", "credentials"])
    module = getattr(args.handler, "__wrapped__", args.handler).__module__
    assert module == "shopologic_plugins.websocket_realtime_engine.hooks.commands"


async def test_serve_listens_on_the_host_default_without_a_plugin_owning_the_address(fresh_platform: Platform) -> None:
    assert fresh_platform.hook.server_address(platform=fresh_platform) == ("127.0.0.1", 8080)
    fresh_platform.overrides = {"host": "0.0.0.0", "port": 9002}
    assert fresh_platform.hook.server_address(platform=fresh_platform) == ("0.0.0.0", 9002)


async def test_serve_listens_where_the_engine_settings_say_once_it_is_active(
    scoped_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REALTIME_HOST", "127.0.0.2")
    monkeypatch.setenv("REALTIME_PORT", "9003")
    platform = Platform(HostSettings.from_env())
    try:
        await platform.load()
        await platform.activate(PLUGIN_NAME)
        assert platform.hook.server_address(platform=platform) == ("127.0.0.2", 9003)
    finally:
        await platform.close()


async def test_the_platform_is_what_plugins_are_told_it_is(fresh_platform: Platform) -> None:
    assert isinstance(fresh_platform, PluginHost)


async def test_websocket_start_tunes_the_garbage_collector_and_serve_does_not(
    fresh_platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = engine_hook_module("hooks/commands.py")
    served: list[tuple[web.Application, str, int, list[str]]] = []

    async def run_app(app: web.Application, host: str, port: int, banner: Any = (), access_log: bool = False) -> None:
        served.append((app, host, port, list(banner)))  # instead of listening

    monkeypatch.setattr(commands, "run_app", run_app)
    monkeypatch.setattr(cli, "run_app", run_app)
    assert await commands.cmd_start(fresh_platform, argparse.Namespace()) == 0  # activates the plugin first
    assert await cli.cmd_serve(fresh_platform, argparse.Namespace()) == 0
    (start, start_host, start_port, start_banner), (serve, serve_host, serve_port, serve_banner) = served
    assert commands._tune_garbage_collector in start.on_startup
    assert commands._tune_garbage_collector not in serve.on_startup
    assert (start_host, start_port) == (serve_host, serve_port) == ("127.0.0.1", 8080)
    assert start_banner[0] == "Shopologic Realtime listening on http://127.0.0.1:8080"
    assert serve_banner[0] == "Shopologic listening on http://127.0.0.1:8080"
    assert serve_banner[1] == f"  plugins    {PLUGIN_NAME} 0.1.0", "serve names the plugins it loaded"
    assert start_banner[1:] == serve_banner[2:-1], "the engine's lines, in both"
    assert serve_banner[-1] == "  health     http://127.0.0.1:8080/health"
