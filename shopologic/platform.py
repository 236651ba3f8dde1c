"""The host platform: plugin manager, activation state, migrations and the web application.

``Platform`` discovers manifests, registers the hook modules of active plugins with a
``pluggy.PluginManager("shopologic")`` and checks that every implementation has a spec. A plugin's
modules are loaded under the host's namespace (:mod:`shopologic.loader`), never through ``sys.path``.
Activation state lives in the platform database (:mod:`shopologic.db`).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pluggy
from aiohttp import web
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shopologic import defaults, events, hookspecs, transactions
from shopologic.config import HostSettings
from shopologic.contracts import PLATFORM_KEY, MigrationSource, PluginError
from shopologic.db import PluginState, bump_session_version, create_engine, create_host_tables
from shopologic.loader import load_plugin_module
from shopologic.manifest import Manifest, discover_manifests, unmet_requirements
from shopologic.server import ClientAborts

log = logging.getLogger("shopologic.platform")

__all__ = ["PLATFORM_KEY", "MigrationSource", "Platform", "PluginError", "await_all", "await_me_maybe"]


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` when it is awaitable (async hook implementations), else return it."""
    if inspect.isawaitable(value):
        return await value
    return value


async def await_all(results: list[Any]) -> list[Any]:
    """The results of a (non-firstresult) hook call, each awaited when it is awaitable, in order.

    The first error stops the call, as pluggy stops at a synchronous implementation's error: the
    coroutines after it are closed (never run, and no "never awaited" warning), and the error is raised.
    """
    awaited = []
    for index, result in enumerate(results):
        try:
            awaited.append(await await_me_maybe(result))
        except BaseException:
            for rest in results[index + 1 :]:
                if inspect.iscoroutine(rest):
                    rest.close()
            raise
    return awaited


class Platform:
    """The running host: settings, manifests, plugin manager and database."""

    def __init__(self, settings: HostSettings) -> None:
        self.settings = settings
        self.manifests: dict[str, Manifest] = {m.name: m for m in discover_manifests(settings.plugin_paths)}
        self.pm = self._plugin_manager()
        self.pm.add_hookcall_monitoring(events.validate_hook_call, lambda *args: None)
        self._every_plugin_pm: pluggy.PluginManager | None = None
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.active: set[str] = set()
        # active plugins that could not be loaded: name -> why
        self.broken: dict[str, str] = {}
        # command-line options (``--host``, ``--port``, ``--node-id``) for plugins to honour
        self.overrides: dict[str, Any] = {}

    def _plugin_manager(self) -> pluggy.PluginManager:
        """A plugin manager with the host's hookspecs, every discovered plugin's, and the defaults."""
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        pm.register(defaults, name="shopologic.defaults")
        for manifest in self.manifests.values():
            for relative_path in manifest.hookspecs:
                pm.add_hookspecs(load_plugin_module(manifest, relative_path))
        return pm

    @property
    def hook(self) -> Any:
        """The hook relay other plugins call: ``platform.hook.order_created(order=…)``.

        An async caller must await what the shop-event hooks return (:func:`await_all`), or call
        :meth:`emit`, which does.
        """
        return self.pm.hook

    def transaction(self) -> AbstractAsyncContextManager[transactions.Transaction]:
        """A unit of work: ``async with platform.transaction() as tx:`` writes the order (on
        ``tx.connection``) and the events emitted inside the block in one transaction of the platform
        database; they are published only once it commits (:mod:`shopologic.transactions`)."""
        return transactions.transaction(self.engine)

    async def emit(self, event: str, **payload: Any) -> list[Any]:
        """Emit a shop event through the hooks and await every implementation's result.

        :param event: the event's name (``order.created``) or its hook's (``order_created``).
        :param payload: the hook's arguments (``order=…``, ``previous_status=…``).
        :returns: each implementation's result (the realtime engine's: the id of its outbox row).
        :raises PluginError: for an unknown event; :class:`~shopologic.events.InvalidEventError`
            for a payload that does not validate.
        """
        hook_name = events.EVENT_HOOKS.get(event) or (event if event in events.HOOK_SCHEMAS else None)
        if hook_name is None:
            raise PluginError(f"unknown event {event!r} (known: {', '.join(events.EVENT_HOOKS)})")
        return await await_all(getattr(self.hook, hook_name)(**payload))

    async def revoke_sessions(self, user_id: str) -> list[Any]:
        """End every shop session of a user: their session version goes up, so each cookie signed
        before is refused (``session_revoked``), and the ``sessions_revoked`` hook is called.

        Both happen in one transaction (joining the caller's :meth:`transaction`, if any): the
        engine's outbox row that disconnects the user is written only with the revocation.

        :param user_id: the user's id, as their sessions carry it (``"7"``).
        :returns: each ``sessions_revoked`` implementation's result, awaited (the realtime
            engine's: the outbox row that disconnects the user's connections, cluster-wide).
        :raises ValueError: for an empty or overlong user id.
        """
        async with self.transaction() as tx:
            await bump_session_version(tx.connection, user_id)
            return await await_all(self.hook.sessions_revoked(user_id=user_id))

    # -- state -------------------------------------------------------------------------------------

    async def load(self) -> None:
        """Create the host's tables, record every discovered plugin, register the active ones."""
        await create_host_tables(self.engine)
        async with self.engine.begin() as conn:
            rows = {row.name: row for row in (await conn.execute(select(PluginState))).all()}
            for manifest in self.manifests.values():
                if manifest.name not in rows:
                    await conn.execute(
                        insert(PluginState).values(name=manifest.name, version=manifest.version, active=False)
                    )
                elif rows[manifest.name].version != manifest.version:
                    await conn.execute(
                        update(PluginState).where(PluginState.name == manifest.name).values(version=manifest.version)
                    )
        self.active = {name for name, row in rows.items() if row.active and name in self.manifests}
        for name in sorted(self.active):
            try:
                problems = unmet_requirements(self.manifests[name], self.active)  # e.g. a package was downgraded
                if problems:
                    raise PluginError(f"{name} requires {', '.join(problems)}")
                self._register(self.manifests[name])
                self.check_pending()
            except PluginError as exc:
                # One broken plugin must not stop the platform, nor `plugin deactivate` of itself.
                self._unregister(name)
                self.broken[name] = str(exc)
                log.error("active plugin %s cannot be loaded and is skipped: %s", name, exc)
        await await_all(self.pm.hook.platform_loaded(platform=self))

    async def close(self) -> None:
        """Release the database engine."""
        await self.engine.dispose()

    def plugins(self) -> list[tuple[Manifest, bool]]:
        """Every discovered plugin with whether it is active, by name."""
        return [(self.manifests[name], name in self.active) for name in sorted(self.manifests)]

    def manifest(self, name: str) -> Manifest:
        """The manifest of a discovered plugin, or a PluginError naming the known ones."""
        try:
            return self.manifests[name]
        except KeyError:
            known = ", ".join(sorted(self.manifests)) or "none"
            raise PluginError(f"unknown plugin {name!r} (known: {known})") from None

    # -- activation --------------------------------------------------------------------------------

    async def activate(self, name: str) -> bool:
        """Activate a plugin: check its ``requires``, register its hooks, run its migrations, call
        ``plugin_activated``.

        Idempotent: activating an active plugin changes nothing and returns ``False``.

        :raises PluginError: naming each requirement the process does not meet, before anything is
            imported, registered or migrated.
        """
        manifest = self.manifest(name)
        if name in self.active:
            return False
        problems = unmet_requirements(manifest, self.active)
        if problems:
            raise PluginError(f"cannot activate {name}: it requires {', '.join(problems)}")
        try:
            self._register(manifest)
            self.check_pending()
            await await_all(self._only(name).platform_loaded(platform=self))
            for source in self._migration_sources([name]):
                await self.run_migrations(source, "upgrade", "head")
            await await_all(self._only(name).plugin_activated(plugin_name=name, platform=self))
        except BaseException:
            self._unregister(name)  # a failed activation leaves no hooks behind
            raise
        await self._set_active(name, True)
        return True

    async def deactivate(self, name: str) -> bool:
        """Deactivate a plugin (its tables stay). Idempotent: returns ``False`` if it was inactive."""
        self.manifest(name)
        if name not in self.active:
            return False
        await await_all(self._only(name).plugin_deactivated(plugin_name=name, platform=self))
        self._unregister(name)
        self.broken.pop(name, None)
        await self._set_active(name, False)
        return True

    def _unregister(self, name: str) -> None:
        for plugin in [p for n, p in self.pm.list_name_plugin() if n.startswith(f"{name}:")]:
            self.pm.unregister(plugin)

    async def _set_active(self, name: str, active: bool) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(update(PluginState).where(PluginState.name == name).values(active=active))
        (self.active.add if active else self.active.discard)(name)

    def _register(self, manifest: Manifest, pm: pluggy.PluginManager | None = None) -> None:
        """Register a plugin's hook modules (as ``<plugin>:<path>``) with ``pm``, the host's by default."""
        pm = pm or self.pm
        for relative_path in manifest.hooks:
            plugin_name = f"{manifest.name}:{relative_path}"
            if pm.get_plugin(plugin_name) is None:
                try:
                    pm.register(load_plugin_module(manifest, relative_path), name=plugin_name)
                except pluggy.PluginValidationError as exc:
                    raise PluginError(f"{manifest.path}: hook module {relative_path!r} is invalid: {exc}") from None

    def check_pending(self) -> None:
        """``pm.check_pending()``, with an implementation of an unknown hook as a PluginError."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginError(str(exc)) from None

    def _only(self, name: str) -> Any:
        """A hook relay that reaches only the given plugin's implementations."""
        others = [p for n, p in self.pm.list_name_plugin() if not (n or "").startswith(f"{name}:")]

        class Relay:
            def __getattr__(_self, hook_name: str) -> Any:
                return self.pm.subset_hook_caller(hook_name, remove_plugins=others)

        return Relay()

    # -- command line ------------------------------------------------------------------------------

    def register_commands(self, subparsers: argparse._SubParsersAction[Any]) -> None:
        """Let every discovered plugin, active or not, add its commands (``register_commands``).

        The call goes through a plugin manager of its own that holds every plugin's hook modules, so
        registering an inactive plugin's hooks for its commands activates nothing. A plugin whose
        modules cannot be loaded offers no commands (and is logged).
        """
        if self._every_plugin_pm is None:
            self._every_plugin_pm = self._plugin_manager()
            for manifest in self.manifests.values():
                try:
                    self._register(manifest, self._every_plugin_pm)
                except PluginError as exc:
                    log.warning("plugin %s offers no commands: %s", manifest.name, exc)
        self._every_plugin_pm.hook.register_commands(subparsers=subparsers, platform=self)

    # -- migrations --------------------------------------------------------------------------------

    def _migration_sources(self, names: Iterable[str]) -> list[MigrationSource]:
        sources = []
        for name in names:
            location = self.manifests[name].migrations
            if location is None:
                continue
            for source in self._only(name).plugin_migrations(script_location=location, platform=self):
                if source is not None:
                    sources.append(source)
        return sources

    def migration_sources(self) -> list[MigrationSource]:
        """The migration sources of every active plugin."""
        return self._migration_sources(sorted(self.active))

    async def migrate_to_head(self, announce: Callable[[str], None]) -> None:
        """Upgrade every active plugin whose database is behind its migrations, announcing each first,
        and tell it (:meth:`migrated`)."""
        for source in self.migration_sources():
            current, head = await self.migration_status(source)
            if current != head:
                announce(f"{source.plugin}: database at {current or 'none'}, migrating to {head}")
                await self.run_migrations(source, "upgrade", "head")
                await self.migrated(source.plugin)

    async def migrated(self, name: str) -> None:
        """Tell a plugin that its migrations were upgraded: its ``plugin_migrated`` hook, awaited
        (only that plugin's implementations are called)."""
        await await_all(self._only(name).plugin_migrated(plugin_name=name, platform=self))

    def alembic_config(self, source: MigrationSource) -> Any:
        """An alembic ``Config`` for one plugin's migrations on the platform database."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(source.script_location))
        config.attributes["database_url"] = self.settings.database_url
        config.attributes["version_table"] = source.version_table
        config.attributes["table_prefix"] = source.table_prefix
        return config

    async def run_migrations(self, source: MigrationSource, direction: str, revision: str) -> None:
        """Run ``alembic upgrade``/``downgrade`` for one plugin, in a thread (env.py runs its own loop)."""
        from alembic import command
        from alembic.util import CommandError

        action = {"upgrade": command.upgrade, "downgrade": command.downgrade}[direction]
        try:
            await asyncio.to_thread(action, self.alembic_config(source), revision)
        except CommandError as exc:  # a revision that does not exist, a branch problem: the user's input
            raise PluginError(f"{source.plugin}: cannot {direction} to {revision!r}: {exc}") from None

    async def migration_status(self, source: MigrationSource) -> tuple[str | None, str | None]:
        """``(current revision in the database, head revision of the scripts)``."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.alembic_config(source)).get_current_head()
        async with self.engine.connect() as conn:
            current = await conn.run_sync(
                lambda sync: MigrationContext.configure(
                    sync, opts={"version_table": source.version_table}
                ).get_current_revision()
            )
        return current, head

    # -- web ---------------------------------------------------------------------------------------

    def build_app(self, only: str | None = None) -> web.Application:
        """The one aiohttp application: host routes, then each active plugin's routes and services.

        :param only: serve just this plugin (a standalone node), not the whole platform.
        """
        app = web.Application(client_max_size=1 << 20, middlewares=[ClientAborts().middleware()])
        app[PLATFORM_KEY] = self
        hook = self._only(only) if only else self.pm.hook
        if only is None:
            defaults.add_host_routes(app)
        hook.register_routes(app=app, platform=self)
        for services in hook.background_services(app=app, platform=self):
            app.cleanup_ctx.extend(services or [])
        return app
