"""Activation, migrations, routes, the background engine service, and where ``serve`` listens."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from shopologic import log
from shopologic.config import url_password
from shopologic.contracts import (
    MigrationSource,
    PluginError,
    PluginHost,
    SessionEndedError,
    SessionExpiredError,
    SessionRevokedError,
)
from shopologic.hookspecs import hookimpl
from shopologic.server import wrap_connections
from websocket_realtime_engine import PLUGIN_NAME, errors, runtime
from websocket_realtime_engine.db.credentials import ensure_default_app, has_app_table, stored_credentials
from websocket_realtime_engine.db.models import TABLE_PREFIX
from websocket_realtime_engine.db.outbox import DISCONNECT_USER
from websocket_realtime_engine.web import app as engine_app
from websocket_realtime_engine.web.admin import ADMIN_COOKIE
from websocket_realtime_engine.web.authenticate import HostAccess, User
from websocket_realtime_engine.web.health import readiness

from .outbox import write_outbox
from .state import STATE

VERSION_TABLE = "realtime_alembic_version"


@hookimpl
async def platform_loaded(platform: PluginHost) -> None:
    """Remember the platform and the stored credentials (none before the first migration)."""
    try:
        credentials = await stored_credentials(platform.engine)
    except SQLAlchemyError:  # the tables do not exist yet
        credentials = None
    _redact(credentials)
    STATE.reset(platform, credentials)


def _redact(credentials: dict[str, str] | None) -> None:
    """Keep the app's secret, API key and admin token out of every log line, from the moment they are known."""
    if credentials:
        log.redact(credentials["app_secret"], credentials["api_key"], credentials.get("admin_token", ""))


@hookimpl
def plugin_migrations(script_location: Path, platform: PluginHost) -> MigrationSource:
    """The manifest's migrations folder, with the engine's version table and table prefix."""
    return MigrationSource(PLUGIN_NAME, script_location, VERSION_TABLE, TABLE_PREFIX)


@hookimpl
async def plugin_activated(plugin_name: str, platform: PluginHost) -> None:
    """Create the default app's credentials (unless the environment gives them) and say where they are."""
    await _ensure_credentials(platform)


@hookimpl
async def plugin_migrated(plugin_name: str, platform: PluginHost) -> None:
    """After ``migrate up`` (or ``serve``'s migrations): the default app's credentials again, when the
    migrations reached its table (after ``migrate down base`` they are new; else they are kept)."""
    if await has_app_table(platform.engine):
        await _ensure_credentials(platform)


async def _ensure_credentials(platform: PluginHost) -> None:
    """The default app's credentials, created unless stored (the environment's win), and where they are."""
    credentials, created = await ensure_default_app(platform.engine, STATE.settings())
    _redact(credentials)
    STATE.reset(platform, credentials)
    verb = "created" if created else "kept"
    print(
        f"{PLUGIN_NAME}: {verb} app {credentials['app_id']}; its key, secret and API key are in the "
        f"realtime_apps table: show them with `python bootstrap_plugins.py websocket credentials`",
        file=sys.stderr,
    )


@hookimpl
def plugin_deactivated(plugin_name: str, platform: PluginHost) -> None:
    print(f"{PLUGIN_NAME}: deactivated; its tables and credentials are kept", file=sys.stderr)


def _event_handler(platform: PluginHost) -> Any:
    """Engine events to the ``realtime_*`` hooks (in the dispatcher's worker thread).

    An async implementation's coroutine runs on the engine's event loop; the worker waits for it
    (a minute at most), so events stay in order and the loop is never blocked.
    """
    hook = platform.hook

    def handle(name: str, payload: dict[str, Any]) -> None:
        for result in getattr(hook, f"realtime_{name}")(**payload):
            if inspect.iscoroutine(result):
                local = runtime.local_node()
                if local is None:  # the engine stopped meanwhile
                    result.close()
                    continue
                asyncio.run_coroutine_threadsafe(result, local[1]).result(timeout=60)

    return handle


def _identify(platform: PluginHost) -> Any:
    """The host's ``identify_user``, awaited when it answers an awaitable; the host's ended sessions
    become the engine's (which imports no host module), for the 401 ``session_expired``/``session_revoked``."""

    async def identify(request: web.Request) -> User | None:
        try:
            user = platform.hook.identify_user(request=request)
            return await user if inspect.isawaitable(user) else user
        except SessionExpiredError as exc:
            raise errors.SessionExpiredError(str(exc)) from None
        except SessionRevokedError as exc:
            raise errors.SessionRevokedError(str(exc)) from None
        except SessionEndedError as exc:  # a plugin's own reason
            raise errors.SessionEndedError(str(exc)) from None

    return identify


@hookimpl
def sessions_revoked(user_id: str) -> Any:
    """Disconnect the user's connections on every node, through the outbox (so only if the
    revocation commits): its row, or the coroutine of it that the caller awaits."""
    return write_outbox(DISCONNECT_USER, {"user_id": user_id}, customer_id=user_id)


@hookimpl
def register_routes(app: web.Application, platform: PluginHost) -> None:
    """The engine's WebSocket endpoint and REST API, with the host deciding who may join what."""
    settings = STATE.settings()
    log.redact(settings.api_key, settings.app_secret, settings.admin_token, url_password(settings.redis_url))
    log.redact_cookie(ADMIN_COOKIE)  # the admin pages' session, wherever a line quotes a Cookie header
    node = engine_app.build_node(settings, platform.engine, _event_handler(platform))
    access = HostAccess(
        identify=_identify(platform),
        authorize=lambda user, channel, connection_id: platform.hook.authorize_channel(
            user=user, channel=channel, connection_id=connection_id
        ),
    )
    engine_app.add_routes(app, node, access, platform.engine)
    # counted and timed from the TCP accept: the connection limits (REALTIME_MAX_CONNECTIONS_PER_ADDRESS, …)
    wrap_connections(app, app[engine_app.THROTTLE_KEY].wrap)


@hookimpl
def background_services(app: web.Application, platform: PluginHost) -> list[Any]:
    """The node itself: started with the application, stopped gracefully with it; a node that
    cannot start says why in one line (a :class:`PluginError`)."""
    service = engine_app.engine_service(app[engine_app.NODE_KEY], platform.engine)

    async def node_service(app: web.Application) -> AsyncIterator[None]:
        running = service(app)
        try:
            await anext(running)
        except errors.StartupError as exc:
            raise PluginError(str(exc)) from None
        try:
            yield
        finally:
            with contextlib.suppress(StopAsyncIteration):
                await anext(running)

    return [node_service]


@hookimpl
async def health_checks(platform: PluginHost) -> dict[str, str]:
    """The node's readiness (``/readyz``: accepting, database, broker) as ``realtime.*`` checks."""
    local = runtime.local_node()
    if local is None:
        return {"realtime.node": "not running"}
    checks = await readiness(local[0], platform.engine)
    return {f"realtime.{name}": result for name, result in checks.items()}


def banner_lines(url: str) -> list[str]:
    """What the engine serves under ``url`` (``http://`` or ``https://host:port``), for the "listening"
    banner: its WebSocket endpoint is ``ws://`` or ``wss://`` accordingly."""
    websocket_url = "ws" + url.removeprefix("http")
    return [
        f"  WebSocket  {websocket_url}/socket",
        f"  REST API   {url}/api/v1/ (OpenAPI: {url}/api/v1/openapi.yaml)",
        f"  readiness  {url}/readyz (liveness: {url}/healthz)",
        f"  metrics    {url}/metrics (Prometheus)",
        f"  admin      {url}/admin (debug console: {url}/debug; the token: websocket credentials)",
        f"  client     {url}/realtime.js (HTTP fallback: {url}/api/v1/stream)",
        "  API key    python bootstrap_plugins.py websocket credentials",
    ]


@hookimpl
def server_address(platform: PluginHost) -> tuple[str, int] | tuple[str, int, str, str]:
    """``REALTIME_HOST``/``REALTIME_PORT``, with ``REALTIME_TLS_CERT``/``REALTIME_TLS_KEY`` when set
    (the ``--host``, ``--port``, ``--tls-cert`` and ``--tls-key`` flags win): one name per setting."""
    settings = STATE.settings()
    if settings.tls:
        return settings.host, settings.port, settings.tls_cert, settings.tls_key
    return settings.host, settings.port


@hookimpl
def server_banner(url: str, platform: PluginHost) -> list[str]:
    """The engine's WebSocket endpoint, REST API and where its API key is shown."""
    return banner_lines(url)
