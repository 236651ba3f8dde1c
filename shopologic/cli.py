"""The Shopologic command line: ``python bootstrap_plugins.py …`` or ``shopologic …``.

The host's commands are here; plugins add theirs through the ``register_commands`` hook (every
discovered plugin, active or not), so the host imports no plugin module. Every command exits
non-zero with one clear line on bad input, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import uvloop
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from shopologic import log
from shopologic.config import ConfigError, HostSettings, redact_url, url_password
from shopologic.contracts import CommandError, PluginError
from shopologic.db import MAX_USER_ID
from shopologic.defaults import SESSION_COOKIE, session_cookie
from shopologic.events import EVENT_HOOKS, InvalidEventError
from shopologic.manifest import ManifestError
from shopologic.platform import Platform
from shopologic.server import (
    SERVER_OPTIONS,
    Listen,
    ServeError,
    add_server_options,
    run_app,
    running_servers,
    unserved_urls,
)

Command = Callable[[Platform, argparse.Namespace], Coroutine[Any, Any, int]]
USER_ERRORS = (CommandError, PluginError, ManifestError, ConfigError, InvalidEventError, ServeError)


class ArgumentParser(argparse.ArgumentParser):
    """Usage mistakes are one line too (``error: <command>: <problem>``), not argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


# -- platform and plugins --------------------------------------------------------------------------


async def cmd_init(platform: Platform, args: argparse.Namespace) -> int:
    """Initialise: the database and its host tables, then every plugin with its state."""
    print(f"platform database: {redact_url(platform.settings.database_url)}")
    return await cmd_plugin_list(platform, args)


async def cmd_plugin_list(platform: Platform, args: argparse.Namespace) -> int:
    plugins = platform.plugins()
    if not plugins:
        print("no plugins found")
    for manifest, active in plugins:
        state = "active" if active else "inactive"
        if manifest.name in platform.broken:
            state = "active but broken (plugin deactivate it, or fix it; see the log)"
        print(f"{manifest.name} {manifest.version} {state}  {manifest.description}")
    return 0


async def cmd_plugin_activate(platform: Platform, args: argparse.Namespace) -> int:
    changed = await platform.activate(args.name)
    print(f"{args.name}: {'activated' if changed else 'already active'}")
    if changed:
        _restart_notice(platform, f"load {args.name}")
    return 0


async def cmd_plugin_deactivate(platform: Platform, args: argparse.Namespace) -> int:
    changed = await platform.deactivate(args.name)
    print(f"{args.name}: {'deactivated' if changed else 'already inactive'}")
    if changed:
        _restart_notice(platform, f"unload {args.name}")
    return 0


def _restart_notice(platform: Platform, change: str) -> None:
    """A running server loaded its plugins when it started: say which must restart for ``change``."""
    for server in running_servers(platform.settings.var_dir):
        print(f"{server.command} (pid {server.pid}) is running: restart it to {change}", file=sys.stderr)


# -- migrations ------------------------------------------------------------------------------------


def _sources(platform: Platform) -> list[Any]:
    sources = platform.migration_sources()
    if not sources:
        raise CommandError("no active plugin has migrations: activate one first (plugin activate NAME)")
    return sources


async def cmd_migrate_up(platform: Platform, args: argparse.Namespace) -> int:
    for source in _sources(platform):
        await platform.run_migrations(source, "upgrade", args.revision)
        print(f"{source.plugin}: upgraded to {args.revision}")
        await platform.migrated(source.plugin)
    return 0


async def cmd_migrate_down(platform: Platform, args: argparse.Namespace) -> int:
    for source in _sources(platform):
        await platform.run_migrations(source, "downgrade", args.revision)
        print(f"{source.plugin}: downgraded to {args.revision}")
    return 0


async def cmd_migrate_status(platform: Platform, args: argparse.Namespace) -> int:
    for source in _sources(platform):
        current, head = await platform.migration_status(source)
        state = "up to date" if current == head else "behind"
        print(f"{source.plugin}: current {current or 'none'}, head {head} ({state})")
    return 0


# -- events ----------------------------------------------------------------------------------------


async def cmd_emit(platform: Platform, args: argparse.Namespace) -> int:
    """Emit a shop event through the host's hooks, as another plugin would (``platform.emit``), and
    say what each implementation did (the realtime engine: the outbox row it wrote)."""
    if args.event not in EVENT_HOOKS:
        raise CommandError(f"unknown event {args.event!r} (known: {', '.join(EVENT_HOOKS)})")
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise CommandError(f"the payload is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(payload, dict):
        raise CommandError('the payload must be a JSON object of the hook\'s arguments, e.g. {"order": {...}}')
    results = await platform.emit(args.event, **payload)  # pluggy leaves out the None results
    count = len(getattr(platform.hook, EVENT_HOOKS[args.event]).get_hookimpls())
    done = ", ".join(str(result) for result in results)
    print(f"emitted {args.event} to {count} hook implementation(s)" + (f": {done}" if done else ""))
    return 0


# -- shop sessions ---------------------------------------------------------------------------------


async def cmd_session(platform: Platform, args: argparse.Namespace) -> int:
    """Print a shop session cookie of a user for local testing, or revoke every session of a user
    (``platform.revoke_sessions``: refused from then on, their connections closed cluster-wide)."""
    if not args.user or len(args.user) > MAX_USER_ID:
        raise CommandError(f"--user: a user id is 1 to {MAX_USER_ID} characters")
    if args.revoke:
        if args.role is not None or args.ttl is not None:
            raise CommandError("session --revoke takes no --role or --ttl")
        done = ", ".join(str(result) for result in await platform.revoke_sessions(args.user))
        print(f"revoked every session of user {args.user}" + (f" ({done})" if done else ""))
        return 0
    role = args.role or "customer"
    ttl = args.ttl or platform.settings.session_ttl
    print(await session_cookie(platform, {"id": args.user, "role": role}, ttl))
    until = datetime.now(UTC) + timedelta(seconds=ttl)
    print(
        f"a {role} session of user {args.user}, valid until {until:%Y-%m-%d %H:%M:%S} UTC: send it as the cookie "
        f"{SESSION_COOKIE} (Cookie: {SESSION_COOKIE}=<the value above>) to POST /api/v1/authenticate",
        file=sys.stderr,
    )
    return 0


def _seconds(text: str) -> int:
    """``--ttl``: whole seconds, at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number of seconds, at least 1, not {text!r}")
    return int(text)


# -- serve -----------------------------------------------------------------------------------------


async def cmd_serve(platform: Platform, args: argparse.Namespace) -> int:
    """Run the platform: host routes and every active plugin's routes and services."""
    listen = Listen.from_answer(platform.hook.server_address(platform=platform), platform.overrides)
    tls = listen.site_options()  # a TLS file that cannot be used stops serve before anything changes
    await platform.migrate_to_head(lambda line: print(line, file=sys.stderr))
    app = platform.build_app()
    access_log = logging.getLogger("aiohttp.access").isEnabledFor(logging.DEBUG)
    await run_app(app, listen.host, listen.port, serve_banner(platform, app, listen.url), access_log=access_log, **tls)
    return 0


def serve_banner(platform: Platform, app: web.Application, url: str) -> list[str]:
    """What ``serve`` prints once it listens: the plugins it loaded and the active ones it skipped,
    then what it serves (the plugins' ``server_banner`` lines and the host's ``/health``), each line
    checked against ``app``'s routes: a line naming a URL that is not served is logged, not printed."""
    endpoints = [line for lines in platform.hook.server_banner(url=url, platform=platform) for line in lines or []]
    endpoints.append(f"  health     {url}/health")
    return [f"Shopologic listening on {url}", *_plugin_lines(platform), *_served(app, url, endpoints)]


def _plugin_lines(platform: Platform) -> list[str]:
    """The active plugins ``serve`` loaded, with their versions, and each active one it skipped, and why."""
    loaded = [f"{m.name} {m.version}" for m, active in platform.plugins() if active and m.name not in platform.broken]
    lines = [f"  plugins    {', '.join(loaded) or 'none active (plugin activate NAME)'}"]
    for name, why in sorted(platform.broken.items()):
        lines.append(f"  skipped    {name} {platform.manifests[name].version}: active but cannot be loaded: {why}")
    return lines


def _served(app: web.Application, url: str, lines: list[str]) -> list[str]:
    """The lines whose URLs under ``url`` ``app`` serves; the others are logged and left out."""
    served = []
    for line in lines:
        unserved = unserved_urls(app, url, line)
        if unserved:
            logging.getLogger("shopologic.cli").warning(
                "a server_banner line names %s, which this server does not serve: not printed", unserved[0]
            )
        else:
            served.append(line)
    return served


# -- parser ----------------------------------------------------------------------------------------


def build_parser(platform: Platform) -> argparse.ArgumentParser:
    """The host's commands, then every discovered plugin's (``register_commands``)."""
    parser = ArgumentParser(prog="shopologic", description="The Shopologic platform and its plugins.")
    parser.set_defaults(handler=cmd_init)
    sub = parser.add_subparsers(dest="command")

    plugin = sub.add_parser("plugin", help="list, activate or deactivate plugins").add_subparsers(
        dest="action", required=True
    )
    plugin.add_parser("list", help="every plugin with its version and state").set_defaults(handler=cmd_plugin_list)
    for action, handler in (("activate", cmd_plugin_activate), ("deactivate", cmd_plugin_deactivate)):
        command = plugin.add_parser(action, help=f"{action} a plugin by name")
        command.add_argument("name")
        command.set_defaults(handler=handler)

    migrate = sub.add_parser("migrate", help="run the active plugins' migrations").add_subparsers(
        dest="action", required=True
    )
    up = migrate.add_parser("up", help="upgrade (to head by default)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=cmd_migrate_up)
    down = migrate.add_parser("down", help="downgrade (one step by default; 'base' for all)")
    down.add_argument("revision", nargs="?", default="-1")
    down.set_defaults(handler=cmd_migrate_down)
    migrate.add_parser("status", help="current and head revisions").set_defaults(handler=cmd_migrate_status)

    emit = sub.add_parser("emit", help="emit a shop event through the hooks, e.g. order.created")
    emit.add_argument("event", help=", ".join(EVENT_HOOKS))
    emit.add_argument("payload", help="the hook arguments as JSON, e.g. '{\"order\": {...}}'")
    emit.set_defaults(handler=cmd_emit)

    session = sub.add_parser("session", help="print a shop session cookie for testing, or revoke a user's sessions")
    session.add_argument("--user", required=True, help="the user's id, e.g. 7")
    session.add_argument("--role", choices=("customer", "admin"), help="the session's role (default customer)")
    session.add_argument("--ttl", type=_seconds, help="seconds it lasts (default SHOPOLOGIC_SESSION_TTL)")
    session.add_argument("--revoke", action="store_true", help="end every session of the user instead")
    session.set_defaults(handler=cmd_session)

    serve = sub.add_parser("serve", help="run the platform with every active plugin")
    add_server_options(serve)
    serve.add_argument(
        "--demo", action="store_true", help="demo mode: plugins may run demo content (the engine: a pretend shop)"
    )
    serve.set_defaults(handler=cmd_serve)

    platform.register_commands(sub)
    return parser


async def _run(platform: Platform, handler: Command, args: argparse.Namespace) -> int:
    platform.overrides = {
        name: getattr(args, name, None) for name in SERVER_OPTIONS if getattr(args, name, None) is not None
    }
    if getattr(args, "demo", False):  # `serve --demo` only: no other command has the flag
        platform.overrides["demo"] = True
    try:
        await platform.load()
        return await handler(platform, args)
    finally:
        await platform.close()


def _parse_and_run(argv: list[str] | None) -> int:
    settings = HostSettings.from_env()
    log.redact(settings.secret_key, url_password(settings.database_url))
    platform = Platform(settings)
    args = build_parser(platform).parse_args(argv)
    return uvloop.run(_run(platform, args.handler, args))


def main(argv: list[str] | None = None) -> int:
    """Parse, run one command, turn every known failure into one line and a non-zero exit."""
    log.configure(os.environ.get("REALTIME_LOG_LEVEL", "info"), os.environ.get("REALTIME_LOG_FORMAT", "json"))
    try:
        return _parse_and_run(argv)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (SQLAlchemyError, OSError) as exc:
        print(
            f"error: the platform database is unreachable or refused the operation: {_first_line(exc)}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the trace only when asked for
        if os.environ.get("REALTIME_LOG_LEVEL", "").lower() == "debug":
            raise
        print(
            f"error: unexpected {type(exc).__name__}: {exc} (REALTIME_LOG_LEVEL=debug shows the trace)", file=sys.stderr
        )
        return 1


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
