"""The platform's hook specifications (pluggy project ``shopologic``).

Every spec documents when it is called, each parameter and what it returns; ``tests`` fail when one
does not. Order and product payloads are validated against :mod:`shopologic.events` before any
implementation sees them, so implementations receive clean, typed dictionaries.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pluggy
from aiohttp import web

from shopologic.contracts import MigrationSource, PluginHost

PROJECT_NAME = "shopologic"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- lifecycle -------------------------------------------------------------------------------------


@hookspec
def plugin_activated(plugin_name: str, platform: PluginHost) -> None:
    """Called once when a plugin is activated, after its migrations have run.

    Only the plugin being activated receives the call.

    :param plugin_name: the manifest name of the plugin being activated.
    :param platform: the host platform (settings, database, plugin manager).
    :returns: nothing; may return an awaitable, which the host awaits.
    """


@hookspec
def plugin_deactivated(plugin_name: str, platform: PluginHost) -> None:
    """Called once when a plugin is deactivated. Only that plugin receives the call.

    :param plugin_name: the manifest name of the plugin being deactivated.
    :param platform: the host platform.
    :returns: nothing; may return an awaitable, which the host awaits.
    """


@hookspec
def platform_loaded(platform: PluginHost) -> None:
    """Called in every process once the platform has loaded its active plugins, before any command
    runs or any request is served.

    :param platform: the host platform (settings, database, hook relay, CLI overrides).
    :returns: nothing; may return an awaitable, which the host awaits.
    """


@hookspec
def plugin_migrations(script_location: Path, platform: PluginHost) -> MigrationSource | None:
    """Ask a plugin which tables its alembic migrations own. Called only for a plugin whose manifest
    names a ``migrations`` folder, and only that plugin receives the call.

    :param script_location: the plugin's alembic folder, as its manifest's ``migrations`` names it
        (resolved); the source returned must use it.
    :param platform: the host platform.
    :returns: a :class:`~shopologic.contracts.MigrationSource` (plugin name, ``script_location``,
        version table, table prefix), or ``None`` when the plugin has no tables.
    """


@hookspec
def plugin_migrated(plugin_name: str, platform: PluginHost) -> None:
    """Called after an active plugin's migrations were upgraded by ``migrate up`` (even when they
    were at that revision already), or brought to head by ``serve`` or a plugin's server command
    (:meth:`~shopologic.contracts.PluginHost.migrate_to_head`); not at activation, where
    :func:`plugin_activated` is called instead. Only that plugin receives the call: it may recreate
    rows its tables lost (after ``migrate down base``, the realtime engine's app credentials).

    :param plugin_name: the manifest name of the plugin whose migrations ran.
    :param platform: the host platform.
    :returns: nothing; may return an awaitable, which the host awaits.
    """


# -- order events ----------------------------------------------------------------------------------
#
# Shop events. An implementation may do its work at once (and return ``None`` or a result), or
# return an awaitable. **An async caller must await every result** that is awaitable: call
# ``await platform.emit("order.created", order=…)``, which does, or ``await_all(platform.hook.…)``.
# Code that runs no event loop (a worker thread, a script) gets finished results. Inside
# ``async with platform.transaction():`` implementations write in that transaction
# (:mod:`shopologic.transactions`): await the results inside the block.


@hookspec
def order_created(order: dict[str, Any]) -> Any:
    """An order was placed.

    :param order: the order, validated by :class:`shopologic.events.OrderSchema`.
    :returns: a result (the realtime engine's: the outbox row it wrote), or an awaitable the async caller
        must await (the engine's, when called from async code).
    """


@hookspec
def order_updated(order: dict[str, Any], changes: list[str]) -> Any:
    """An order's details changed (items, totals, addresses), not its status.

    :param order: the order after the change (:class:`shopologic.events.OrderSchema`).
    :param changes: the names of the fields that changed.
    :returns: a result, or an awaitable the async caller must await.
    """


@hookspec
def order_status_changed(order: dict[str, Any], previous_status: str) -> Any:
    """An order moved from one status to another (``pending → paid → shipped → delivered``).

    :param order: the order with its new ``status``.
    :param previous_status: the status it had before.
    :returns: a result, or an awaitable the async caller must await.
    """


@hookspec
def order_cancelled(order: dict[str, Any], reason: str) -> Any:
    """An order was cancelled (its status is ``cancelled``).

    :param order: the cancelled order.
    :param reason: why, in words the shop owner may read; may be empty.
    :returns: a result, or an awaitable the async caller must await.
    """


# -- product events --------------------------------------------------------------------------------


@hookspec
def product_created(product: dict[str, Any]) -> Any:
    """A product was added to the catalogue.

    :param product: the product, validated by :class:`shopologic.events.ProductSchema`.
    :returns: a result, or an awaitable the async caller must await.
    """


@hookspec
def product_updated(product: dict[str, Any], changes: list[str]) -> Any:
    """A product's details changed (name, description), not its stock or price.

    :param product: the product after the change.
    :param changes: the names of the fields that changed.
    :returns: a result, or an awaitable the async caller must await.
    """


@hookspec
def product_stock_changed(product: dict[str, Any], previous_stock: int) -> Any:
    """A product's stock level changed.

    :param product: the product with its new ``stock``.
    :param previous_stock: the stock before the change.
    :returns: a result, or an awaitable the async caller must await.
    """


@hookspec
def product_price_changed(product: dict[str, Any], previous_price: str) -> Any:
    """A product's price changed.

    :param product: the product with its new ``price`` (a decimal string).
    :param previous_price: the price before the change, as a decimal string.
    :returns: a result, or an awaitable the async caller must await.
    """


# -- web application -------------------------------------------------------------------------------


@hookspec
def register_routes(app: web.Application, platform: PluginHost) -> None:
    """Add a plugin's routes to the platform's aiohttp application, before it starts.

    :param app: the one application that serves the platform.
    :param platform: the host platform.
    :returns: nothing.
    """


@hookspec
def background_services(app: web.Application, platform: PluginHost) -> list[Any] | None:
    """Name the background services a plugin runs while the application runs.

    :param app: the application the services run beside.
    :param platform: the host platform.
    :returns: a list of aiohttp ``cleanup_ctx`` callables (async generators taking the app: the
        code before ``yield`` starts the service, the code after stops it), or ``None``.
    """


@hookspec
def health_checks(platform: PluginHost) -> dict[str, str] | None:
    """Report whether a plugin can serve, for the host's ``GET /health``. Called on each request to
    ``/health``, for every active plugin; an async implementation is awaited (at most 5 s).

    The host answers 200 when every check of every plugin is ``"ok"``, else 503 with all of them; a
    plugin that raises or does not answer in time fails as ``"failed: ..."``. Keep checks cheap (a
    ``select 1``, a connection's state): load balancers call ``/health`` every few seconds.

    :param platform: the host platform (its database engine, settings and hook relay).
    :returns: check name → ``"ok"`` or the reason it failed (``{"realtime.broker": "disconnected: ..."}``;
        prefix names with the plugin's, as they share one answer), an awaitable of such a
        dictionary, or ``None`` when the plugin has nothing to check.
    """


# -- command line -----------------------------------------------------------------------------------


@hookspec
def register_commands(subparsers: argparse._SubParsersAction[Any], platform: PluginHost) -> None:
    """Add a plugin's commands to the command line, as pytest plugins add options. Called once per
    run of the CLI, before its arguments are parsed, for every discovered plugin, active or not (a
    command may activate its plugin, or work without it: ``websocket start`` on a fresh database).

    A command is a sub-parser with ``set_defaults(handler=…)``: an ``async def handler(platform,
    args) -> int`` returning the exit code. A handler reports what the user got wrong by raising
    :class:`~shopologic.contracts.CommandError`; the CLI prints it as one ``error:`` line.

    :param subparsers: the top-level ``add_subparsers()`` of the CLI; ``subparsers.add_parser(name,
        help=…)`` adds a command.
    :param platform: the host platform, not loaded yet: its database is read when the command runs.
    :returns: nothing.
    """


@hookspec(firstresult=True)
def server_address(platform: PluginHost) -> tuple[str, int] | tuple[str, int, str, str] | None:
    """Tell where ``serve`` listens, and whether it serves TLS. Stops at the first non-None result.

    Called by ``serve`` before it migrates or listens. The host's default answers the
    ``--host``/``--port`` flags, else ``127.0.0.1:8080``; it is registered first, so a plugin that
    owns the address settings (the realtime engine: ``REALTIME_HOST``, ``REALTIME_PORT``,
    ``REALTIME_TLS_CERT``, ``REALTIME_TLS_KEY``) answers instead. An answer that names no
    certificate serves TLS with the ``--tls-cert``/``--tls-key`` flags when they are given.

    :param platform: the host platform (its ``overrides`` hold the ``--host``, ``--port``,
        ``--tls-cert`` and ``--tls-key`` flags as ``host``, ``port``, ``tls_cert``, ``tls_key``).
    :returns: ``(host, port)`` for plain HTTP; ``(host, port, certificate, key)``, the paths of a PEM
        certificate (chain) and its unencrypted key, for ``https://`` and ``wss://`` on that port;
        or ``None`` to let the next implementation answer.
    """


@hookspec
def server_banner(url: str, platform: PluginHost) -> list[str] | None:
    """Name what a plugin serves, for ``serve`` to print once it listens.

    :param url: the base URL the platform listens on, e.g. ``http://127.0.0.1:8080`` (``https://``
        with TLS).
    :param platform: the host platform.
    :returns: lines to print under the host's "listening" line (indented two spaces), or ``None``.
    """


# -- who may see what ------------------------------------------------------------------------------


@hookspec(firstresult=True)
def identify_user(request: web.Request) -> Any:
    """Tell who the user making a web request is (a shop session). Stops at the first non-None result.

    May return an awaitable, which the engine awaits (pluggy does not: an awaitable is an answer, so
    an async implementation is the last one asked). The host's default reads the signed cookie
    ``shopologic_session`` and checks its expiry and, in the platform database, its user's session
    version (:meth:`~shopologic.contracts.PluginHost.revoke_sessions`).

    :param request: the aiohttp request.
    :returns: ``{"id": str, "role": "customer" | "admin", "info": {...}}``, ``None`` when there is no
        (valid) session, or an awaitable of either.
    :raises ~shopologic.contracts.SessionExpiredError: the session is validly signed but expired.
    :raises ~shopologic.contracts.SessionRevokedError: the session is validly signed but revoked.
    """


@hookspec
def sessions_revoked(user_id: str) -> Any:
    """Called by ``await platform.revoke_sessions(user_id)`` once the user's session version went
    up, inside the same transaction of the platform database: end what the user's sessions opened
    (the realtime engine disconnects their connections, cluster-wide, through its outbox).

    An async caller must await the results (``shopologic.platform.await_all``); ``revoke_sessions`` does.

    :param user_id: the user whose sessions were revoked.
    :returns: nothing, or an awaitable the caller awaits (the engine's: its outbox row).
    """


@hookspec(firstresult=True)
def authorize_channel(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool | None:
    """May this user join this private or presence channel? Stops at the first non-None result.

    Must be a plain function. The platform's default allows admins everywhere and customers on
    their own ``private-customer.{id}`` channel; it is registered first, so pluggy calls it last and
    any plugin's answer wins.

    :param user: the user from :func:`identify_user`, or ``None`` for an anonymous request.
    :param channel: the channel name.
    :param connection_id: the WebSocket connection asking.
    :returns: ``True`` to allow, ``False`` to refuse, ``None`` to let the next implementation decide.
    """
