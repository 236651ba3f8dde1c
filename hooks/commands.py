"""The ``websocket`` commands of the Shopologic CLI, added through the host's ``register_commands``.

``websocket start`` runs a standalone node: the same application code as the host's ``serve``, with
only this plugin's routes and services (and the process-wide GC tuning, which ``serve`` leaves
alone). A command reports what went wrong as the host's :class:`~shopologic.contracts.CommandError`:
:func:`_user_errors` turns the engine's errors into it, so the host never imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from shopologic.config import redact_url, write_private_file
from shopologic.contracts import CommandError, PluginHost
from shopologic.hookspecs import hookimpl
from shopologic.server import Listen, ServeError, add_server_options, run_app, tls_context
from websocket_realtime_engine import PLUGIN_NAME, client
from websocket_realtime_engine.config import CREDENTIAL_FIELDS, Settings, SettingsError, config_file_path
from websocket_realtime_engine.db.credentials import has_app_table, stored_credentials
from websocket_realtime_engine.db.retention import check_user_id, customer_channel, erase_history, erase_user
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.web.app import tune_garbage_collector

from . import nginx
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
    """``websocket start | setup-cluster | status | credentials | erase-user``, whether the plugin is active or not."""
    websocket = subparsers.add_parser("websocket", help="the realtime engine").add_subparsers(
        dest="action", required=True
    )
    start = websocket.add_parser("start", help="run a standalone realtime node")
    add_server_options(start)  # the host's serve flags: one name per setting (REALTIME_HOST, REALTIME_PORT)
    start.set_defaults(handler=_user_errors(cmd_start))
    cluster = websocket.add_parser(
        "setup-cluster", help="check Redis, store the cluster settings, write nginx's configuration for N nodes"
    )
    _add_cluster_options(cluster)
    cluster.set_defaults(handler=_user_errors(cmd_setup_cluster))
    status = websocket.add_parser("status", help="nodes, connections and channels of the running engine")
    status.add_argument(
        "--url", help="the node to ask, e.g. https://node-2.example:8443 (default: REALTIME_ENGINE_URL, else this host)"
    )
    status.set_defaults(handler=_user_errors(cmd_status))
    websocket.add_parser("credentials", help="print the app id, key, secret, API key and admin token").set_defaults(
        handler=_user_errors(cmd_credentials)
    )
    erase = websocket.add_parser("erase-user", help="remove one customer's records (messages, connections, …)")
    erase.add_argument("user_id", metavar="ID", help="the customer's id, as in their orders' customer_id")
    erase.set_defaults(handler=_user_errors(cmd_erase_user))


def _add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """``setup-cluster``'s flags: without ``--nodes`` it only checks Redis and stores its URL."""
    parser.add_argument("--redis-url", required=True, help="redis://host:port/db")
    parser.add_argument("--nodes", type=_positive, help="write nginx's configuration for this many nodes")
    parser.add_argument("--base-port", type=_positive, default=8081, help="the first node's port (default 8081)")
    parser.add_argument("--listen", help="where nginx listens: HOST:PORT or PORT (default 80; 443 with --tls-cert)")
    parser.add_argument("--nginx-config", type=Path, help="where to write it (default var/nginx-realtime.conf)")
    parser.add_argument("--standalone", action="store_true", help="a whole nginx.conf, for nginx -c FILE")
    parser.add_argument("--allow-sqlite", action="store_true", help="go on although the database is SQLite")
    # nginx's certificate, not the nodes': other names than serve's --tls-cert/--tls-key (platform.overrides)
    parser.add_argument(
        "--tls-cert",
        dest="nginx_tls_cert",
        metavar="FILE",
        help="nginx serves https:// and wss:// with this certificate chain (PEM)",
    )
    parser.add_argument("--tls-key", dest="nginx_tls_key", metavar="FILE", help="the certificate's key (PEM)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return int(text)


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
    settings = _settings(platform)
    listen = Listen(settings.host, settings.port, settings.tls_cert, settings.tls_key)
    tls = listen.site_options()  # a TLS file that cannot be used stops the node before it activates anything
    await _ensure_ready(platform)
    app = platform.build_app(only=PLUGIN_NAME)
    if settings.gc_tuning:
        app.on_startup.append(_tune_garbage_collector)
    banner = [f"Shopologic Realtime listening on {listen.url}", *banner_lines(listen.url)]
    await run_app(app, listen.host, listen.port, banner, access_log=settings.log_level == "debug", **tls)
    return 0


async def cmd_setup_cluster(platform: PluginHost, args: argparse.Namespace) -> int:
    """Check Redis, store the cluster settings in var/realtime.toml and, with ``--nodes``, write nginx's
    configuration for the nodes and print how to start them and nginx."""
    settings = _settings(platform)
    if not args.nodes and (args.nginx_tls_cert or args.nginx_tls_key):
        raise CommandError("--tls-cert and --tls-key are for the nginx configuration: give --nodes N too")
    plan = _proxy_plan(args, settings) if args.nodes else None  # bad flags fail before Redis is asked
    version = await _redis_version(args.redis_url)
    _check_database(platform, refuse=plan is not None and not args.allow_sqlite)
    path = _config_file(platform)
    if plan is None:
        _store_settings(path, {"redis_url": args.redis_url})
        print(f"Redis {version} answers at {redact_url(args.redis_url)}; stored redis_url in {path}")
        _print_start_commands(settings.port, 2)
        print("and put a load balancer in front that passes WebSocket upgrades (nginx: proxy_http_version 1.1;")
        print('proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade").')
        return 0
    # nginx connects to the nodes from the address it reaches them on
    proxies = sorted({*_addresses(_stored(path).get("trusted_proxies", [])), plan.node_host})
    _store_settings(path, {"redis_url": args.redis_url, "trusted_proxies": proxies})
    print(f"Redis {version} answers at {redact_url(args.redis_url)}")
    print(f"stored redis_url and trusted_proxies = {proxies} (nginx's address) in {path}")
    _write_nginx_config(platform, args, plan)
    return 0


async def _redis_version(url: str) -> str:
    """The version of the Redis at ``url``; a CommandError, password masked, when it does not answer."""
    import redis.asyncio as redis
    from redis.exceptions import RedisError

    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=3)
        info = await connection.info("server")
        await connection.aclose()
    except (RedisError, ValueError, OSError) as exc:
        raise CommandError(f"Redis at {redact_url(url)} does not answer: {_redact(str(exc), url)}") from None
    return str(info.get("redis_version", "?"))


def _check_database(platform: PluginHost, refuse: bool) -> None:
    """The nodes of a cluster share one PostgreSQL database: refuse SQLite (or warn, when not refusing)."""
    url = platform.settings.database_url
    if not url.startswith("sqlite"):
        return
    problem = (
        f"the platform database is SQLite ({url}): the nodes of a cluster share one PostgreSQL database; "
        "set SHOPOLOGIC_DATABASE_URL=postgresql://..."
    )
    if refuse:
        raise CommandError(f"{problem} (or pass --allow-sqlite for nodes on this machine only)")
    print(f"warning: {problem}", file=sys.stderr)


def _proxy_plan(args: argparse.Namespace, settings: Settings) -> nginx.ProxyPlan:
    """What nginx's configuration is made of, from the flags and the node settings; or a CommandError."""
    certificate, key = _nginx_tls(args)
    listen = (args.listen or ("443" if certificate else "80")).strip()
    try:
        _, listen_port = nginx.parse_listen(listen)
    except nginx.ListenError as exc:
        raise CommandError(str(exc)) from None
    ports = tuple(range(args.base_port, args.base_port + args.nodes))
    if ports[-1] > 65535:
        raise CommandError(f"--base-port {args.base_port} with --nodes {args.nodes} goes past port 65535")
    if listen_port in ports:
        raise CommandError(f"--listen {listen}: port {listen_port} is also a node's ({ports[0]}-{ports[-1]})")
    return nginx.ProxyPlan(
        listen=listen,
        node_ports=ports,
        heartbeat=settings.heartbeat,
        max_body_bytes=settings.rest_max_body_bytes,
        node_host=_node_host(settings.host),
        certificate=certificate,
        key=key,
        node_tls=settings.tls,
    )


def _nginx_tls(args: argparse.Namespace) -> tuple[str, str]:
    """``--tls-cert`` and ``--tls-key`` as absolute paths (nginx reads a relative one from its own
    prefix), checked as a node checks its own: present, readable, PEM, the key the certificate's."""
    if not (args.nginx_tls_cert or args.nginx_tls_key):
        return "", ""
    if not (args.nginx_tls_cert and args.nginx_tls_key):
        raise CommandError("--tls-cert and --tls-key go together: give the certificate and its key, or neither")
    paths = (args.nginx_tls_cert, args.nginx_tls_key)
    certificate, key = (str(Path(path).expanduser().resolve()) for path in paths)
    try:
        tls_context(certificate, key)
    except ServeError as exc:
        raise CommandError(str(exc)) from None
    return certificate, key


def _node_host(host: str) -> str:
    """Where nginx reaches a node listening on REALTIME_HOST (on all addresses: over loopback)."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "localhost") else host


def _write_nginx_config(platform: PluginHost, args: argparse.Namespace, plan: nginx.ProxyPlan) -> None:
    """Write the configuration, then say how to start the nodes and nginx."""
    target = (args.nginx_config or platform.settings.var_dir / "nginx-realtime.conf").resolve()
    if args.standalone:
        runtime = (platform.settings.var_dir / "nginx").resolve()
        runtime.mkdir(parents=True, exist_ok=True)
        text = nginx.render_standalone(plan, runtime)
    else:
        text = nginx.render_included(plan)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    count = len(plan.node_ports)
    tls = ", TLS" if plan.certificate else ""
    print(f"wrote nginx's configuration for {count} nodes (least connections, on {plan.listen}{tls}) to {target}")
    _print_start_commands(plan.node_ports[0], count)
    if args.standalone:
        print(f"and nginx:\n  nginx -c {target}")
    else:
        print(f"and nginx, with `include {target};` in its http block:\n  nginx -t && nginx -s reload")


def _print_start_commands(base_port: int, count: int) -> None:
    print("Start each node with its own port and node id:")
    for number in range(1, count + 1):
        port = base_port + number - 1
        print(f"  python bootstrap_plugins.py websocket start --port {port} --node-id node-{number}")


def _stored(path: Path) -> dict[str, Any]:
    """The TOML config file's settings (none when it does not exist)."""
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _addresses(value: Any) -> list[str]:
    """A stored list setting, written as a TOML list or as one comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    return [str(item).strip() for item in items if str(item).strip()]


def _store_settings(path: Path, values: dict[str, Any]) -> None:
    """Set keys in the TOML config file, keeping the others; the file is its owner's only (0600)."""
    current = {**_stored(path), **values}
    lines = [f"{key} = {_toml_value(item)}" for key, item in sorted(current.items())]
    write_private_file(path, "\n".join(lines) + "\n")  # 0600: redis_url may hold a password


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


async def cmd_status(platform: PluginHost, args: argparse.Namespace) -> int:
    """Ask the running engine (REST) for its nodes, connections and channels (``--url``: which node)."""
    settings = _settings(platform)
    if args.url:
        if not args.url.startswith(("http://", "https://")):
            raise SettingsError(f"--url: {args.url!r} is not an http:// or https:// URL")
        settings = dataclasses.replace(settings, engine_url=args.url.rstrip("/"))
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
    outbox = status.get("outbox")
    if outbox:
        drains = "this node drains it" if outbox["draining"] else "another node drains it"
        print(f"outbox: {outbox['depth']} waiting, the oldest for {outbox['oldest_age']:.1f} s ({drains})")
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
    """Print the credentials the engine uses (the environment's, else the stored app's), the admin token too."""
    stored = None
    if PLUGIN_NAME in platform.active:
        if not await has_app_table(platform.engine):
            raise CommandError("the engine's tables are missing: run `python bootstrap_plugins.py migrate up`")
        stored = await stored_credentials(platform.engine)
    settings = _settings(platform)
    if not (stored or settings.api_key):
        raise CommandError(f"no credentials yet: run `python bootstrap_plugins.py plugin activate {PLUGIN_NAME}`")
    for name in CREDENTIAL_FIELDS:  # the admin token last: the admin pages' login (/admin/login)
        print(f"REALTIME_{name.upper()}={getattr(settings, name) or (stored or {}).get(name, '')}")
    return 0


async def cmd_erase_user(platform: PluginHost, args: argparse.Namespace) -> int:
    """Remove one customer's records: their channel's messages, their connections, presence and
    outbox rows and, with Redis, their channel's history; print what was removed, by table."""
    try:
        check_user_id(args.user_id)
    except ValueError as exc:
        raise CommandError(f"erase-user: {exc}") from None
    settings = _settings(platform)
    channel = customer_channel(args.user_id)
    try:
        removed = await erase_user(platform.engine, args.user_id)
    except SQLAlchemyError as exc:  # the tables missing (never activated), the database away
        problem = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise CommandError(f"could not erase the records of user {args.user_id!r}: {problem}") from None
    print(f"removed the records of user {args.user_id!r} (channel {channel}):")
    for table, count in removed.items():
        print(f"  {table}: {count}")
    if settings.redis_url:
        try:
            keys = await erase_history(settings.redis_url, settings.redis_prefix, channel, settings.redis_timeout)
        except UnavailableError as exc:
            problem = _redact(str(exc), settings.redis_url)
            raise CommandError(
                f"the database records are removed, not the Redis history of {channel}: {problem}"
            ) from None
        print(f"  Redis history keys: {keys}")
    return 0
