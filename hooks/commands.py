"""The ``websocket`` commands of the Shopologic CLI, added through the host's ``register_commands``.

``websocket start`` runs a standalone node: the same application code as the host's ``serve``, with
only this plugin's routes and services (and the process-wide GC tuning, which ``serve`` leaves
alone). A command reports what went wrong as the host's :class:`~shopologic.contracts.CommandError`:
:func:`_user_errors` turns the engine's errors into it, so the host never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from shopologic.config import redact_url
from shopologic.contracts import CommandError, PluginHost
from shopologic.hookspecs import hookimpl
from shopologic.server import add_server_options, run_app
from websocket_realtime_engine import PLUGIN_NAME, client
from websocket_realtime_engine.config import Settings, SettingsError, config_file_path
from websocket_realtime_engine.db.credentials import stored_credentials
from websocket_realtime_engine.web.app import tune_garbage_collector

from .lifecycle import banner_lines
from .state import STATE

Handler = Callable[[PluginHost, argparse.Namespace], Awaitable[int]]


def _user_errors(handler: Handler) -> Handler:
    """The engine's errors a user can act on (no engine answers, a bad setting) as a CommandError."""

    @functools.wraps(handler)
    async def run(platform: PluginHost, args: argparse.Namespace) -> int:
        try:
            return await handler(platform, args)
        except (client.EngineUnreachableError, SettingsError) as exc:
            raise CommandError(str(exc)) from None

    return run


def _settings(platform: PluginHost) -> Settings:
    """The engine settings of this process (CLI flags included), active plugin or not.

    ``platform_loaded`` introduces the platform to the plugin only when the plugin is active; a
    command run while it is not (``websocket status``, ``websocket start --port``) must still see
    the settings and the flags.
    """
    if STATE.platform is not platform:
        STATE.reset(platform)
    return STATE.settings()


def _config_file(platform: PluginHost) -> Path:
    """The TOML file the settings are read from, by the same rule as ``config.load_settings``."""
    return config_file_path(default=platform.settings.var_dir / "realtime.toml")


def _redact(text: str, url: str) -> str:
    """``text`` with the URL's password masked wherever it appears."""
    password = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    return text.replace(password, "***") if password else text


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[Any], platform: PluginHost) -> None:
    """``websocket start | setup-cluster | status | credentials``, whether the plugin is active or not."""
    websocket = subparsers.add_parser("websocket", help="the realtime engine").add_subparsers(
        dest="action", required=True
    )
    start = websocket.add_parser("start", help="run a standalone realtime node")
    add_server_options(start)  # the host's serve flags: one name per setting (REALTIME_HOST, REALTIME_PORT)
    start.set_defaults(handler=_user_errors(cmd_start))
    cluster = websocket.add_parser("setup-cluster", help="check Redis and store the cluster settings")
    cluster.add_argument("--redis-url", required=True, help="redis://host:port/db")
    cluster.set_defaults(handler=_user_errors(cmd_setup_cluster))
    websocket.add_parser("status", help="nodes, connections and channels of the running engine").set_defaults(
        handler=_user_errors(cmd_status)
    )
    websocket.add_parser("credentials", help="print the app id, key, secret and API key").set_defaults(
        handler=_user_errors(cmd_credentials)
    )


async def _ensure_ready(platform: PluginHost) -> None:
    """Activate (which migrates) or bring the migrations to head, saying so in one line."""
    if PLUGIN_NAME not in platform.active:
        print(f"{PLUGIN_NAME} is not active: activating it (runs its migrations)", file=sys.stderr)
        await platform.activate(PLUGIN_NAME)
        return
    await platform.migrate_to_head(lambda line: print(line, file=sys.stderr))


async def _tune_garbage_collector(app: web.Application) -> None:
    """After the node started (``on_startup`` runs after ``cleanup_ctx`` services start)."""
    tune_garbage_collector()


async def cmd_start(platform: PluginHost, args: argparse.Namespace) -> int:
    """Run a standalone node: only this plugin's routes and services, and the process-wide GC tuning."""
    await _ensure_ready(platform)
    settings = _settings(platform)
    app = platform.build_app(only=PLUGIN_NAME)
    if settings.gc_tuning:
        app.on_startup.append(_tune_garbage_collector)
    url = f"http://{settings.host}:{settings.port}"
    banner = [f"Shopologic Realtime listening on {url}", *banner_lines(url)]
    await run_app(app, settings.host, settings.port, banner, access_log=settings.log_level == "debug")
    return 0


async def cmd_setup_cluster(platform: PluginHost, args: argparse.Namespace) -> int:
    """Check that Redis answers, store ``redis_url`` in var/realtime.toml, say what goes in front."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    try:
        connection = redis.Redis.from_url(args.redis_url, socket_connect_timeout=3)
        info = await connection.info("server")
        await connection.aclose()
    except (RedisError, ValueError, OSError) as exc:
        raise CommandError(
            f"Redis at {redact_url(args.redis_url)} does not answer: {_redact(str(exc), args.redis_url)}"
        ) from None
    path = _config_file(platform)
    _store_setting(path, "redis_url", args.redis_url)
    settings = _settings(platform)
    print(f"Redis {info.get('redis_version', '?')} answers at {redact_url(args.redis_url)}; stored redis_url in {path}")
    print("Start each node with its own port and node id:")
    print(f"  python bootstrap_plugins.py websocket start --port {settings.port} --node-id node-1")
    print(f"  python bootstrap_plugins.py websocket start --port {settings.port + 1} --node-id node-2")
    print("and put a load balancer in front that passes WebSocket upgrades (nginx: proxy_http_version 1.1;")
    print('proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade").')
    return 0


def _store_setting(path: Path, name: str, value: str) -> None:
    """Set one key in the TOML config file, keeping the others."""
    current = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    current[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key} = {_toml_value(item)}" for key, item in sorted(current.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


async def cmd_status(platform: PluginHost, args: argparse.Namespace) -> int:
    """Ask the running engine (REST) for its nodes, connections and channels."""
    settings = _settings(platform)
    status = await asyncio.to_thread(client.request, settings, "GET", "/api/v1/status")
    channels = await asyncio.to_thread(client.request, settings, "GET", "/api/v1/channels")
    nodes = await asyncio.to_thread(client.request, settings, "GET", "/api/v1/nodes")
    print(
        f"node {status['node_id']} at {settings.public_url}: {status['connections']} connections, "
        f"{status['channels']} channels, {status['published']} published"
    )
    for name, info in channels["channels"].items():
        print(f"  {name} ({info['type']}): {info['subscription_count']} subscribers")
    print(f"{nodes['count']} live node(s) in the cluster:")
    for line in node_lines(nodes["nodes"], time.time()):
        print(f"  {line}")
    return 0


def node_lines(nodes: dict[str, dict[str, Any]], now: float) -> list[str]:
    """One line per live node (``GET /api/v1/nodes``): its id, connections, uptime, last heartbeat."""
    lines = []
    for node_id, info in nodes.items():
        started, seen = info.get("started_at"), info.get("last_seen")
        up = f"up {now - started:.0f} s" if isinstance(started, int | float) else "up ?"
        beat = f"last seen {max(0.0, now - seen):.1f} s ago" if isinstance(seen, int | float) else "last seen ?"
        lines.append(f"{node_id}: {info.get('connections', '?')} connections, {up}, {beat}")
    return lines


async def cmd_credentials(platform: PluginHost, args: argparse.Namespace) -> int:
    """Print the credentials the engine uses (the environment's, else the stored app's)."""
    stored = await stored_credentials(platform.engine) if PLUGIN_NAME in platform.active else None
    settings = _settings(platform)
    if not (stored or settings.api_key):
        raise CommandError(f"no credentials yet: run `python bootstrap_plugins.py plugin activate {PLUGIN_NAME}`")
    for name in ("app_id", "app_key", "app_secret", "api_key"):
        print(f"REALTIME_{name.upper()}={getattr(settings, name) or (stored or {}).get(name, '')}")
    return 0
