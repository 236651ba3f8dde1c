"""The Shopologic command line: ``python bootstrap_plugins.py …`` or ``shopologic …``.

The host's commands are here; plugins add theirs through the ``register_commands`` hook (every
discovered plugin, active or not), so the host imports no plugin module. Every command exits
non-zero with one clear line on bad input, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

import uvloop
from sqlalchemy.exc import SQLAlchemyError

from shopologic import log
from shopologic.config import ConfigError, HostSettings, redact_url, url_password
from shopologic.contracts import CommandError, PluginError
from shopologic.events import EVENT_HOOKS, InvalidEventError
from shopologic.manifest import ManifestError
from shopologic.platform import Platform, await_all
from shopologic.server import SERVER_OPTIONS, Listen, ServeError, add_server_options, run_app

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
    return 0


async def cmd_plugin_deactivate(platform: Platform, args: argparse.Namespace) -> int:
    changed = await platform.deactivate(args.name)
    print(f"{args.name}: {'deactivated' if changed else 'already inactive'}")
    return 0


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
    """Emit a shop event through the host's hooks, as another plugin would."""
    hook_name = EVENT_HOOKS.get(args.event)
    if hook_name is None:
        raise CommandError(f"unknown event {args.event!r} (known: {', '.join(EVENT_HOOKS)})")
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise CommandError(f"the payload is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(payload, dict):
        raise CommandError('the payload must be a JSON object of the hook\'s arguments, e.g. {"order": {...}}')
    hook = getattr(platform.hook, hook_name)
    await await_all(await asyncio.to_thread(lambda: hook(**payload)))
    print(f"emitted {args.event} to {len(hook.get_hookimpls())} hook implementation(s)")
    return 0


# -- serve -----------------------------------------------------------------------------------------


async def cmd_serve(platform: Platform, args: argparse.Namespace) -> int:
    """Run the platform: host routes and every active plugin's routes and services."""
    listen = Listen.from_answer(platform.hook.server_address(platform=platform), platform.overrides)
    tls = listen.site_options()  # a TLS file that cannot be used stops serve before anything changes
    await platform.migrate_to_head(lambda line: print(line, file=sys.stderr))
    app = platform.build_app()
    banner = [f"Shopologic listening on {listen.url}"]
    for lines in platform.hook.server_banner(url=listen.url, platform=platform):
        banner.extend(lines or [])
    banner.append(f"  health     {listen.url}/health")
    access_log = logging.getLogger("aiohttp.access").isEnabledFor(logging.DEBUG)
    await run_app(app, listen.host, listen.port, banner, access_log=access_log, **tls)
    return 0


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

    serve = sub.add_parser("serve", help="run the platform with every active plugin")
    add_server_options(serve)
    serve.set_defaults(handler=cmd_serve)

    platform.register_commands(sub)
    return parser


async def _run(platform: Platform, handler: Command, args: argparse.Namespace) -> int:
    platform.overrides = {
        name: getattr(args, name, None) for name in SERVER_OPTIONS if getattr(args, name, None) is not None
    }
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
