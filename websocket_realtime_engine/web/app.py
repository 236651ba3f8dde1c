"""Wiring the engine into an aiohttp application: routes, middleware and the node's lifecycle.

The same code serves the whole platform (``serve``) and a standalone node (``websocket start``):
the host calls :func:`add_routes` from its ``register_routes`` hook and runs :func:`engine_service`
as a background service.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine import errors, runtime
from websocket_realtime_engine.admission import policy_from
from websocket_realtime_engine.backends import build_backends
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.db.credentials import check_secret_lengths, resolve_credentials
from websocket_realtime_engine.db.recorder import DatabaseRecorder
from websocket_realtime_engine.db.retention import Retention
from websocket_realtime_engine.dispatch import EventHandler
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.outbox import OutboxDrainer
from websocket_realtime_engine.web import admin, authenticate, cors, pages, rest, sse
from websocket_realtime_engine.web.health import add_health_routes
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.metrics import add_metrics_route
from websocket_realtime_engine.web.schemas import BroadcastSchema
from websocket_realtime_engine.web.socket import socket_handler
from websocket_realtime_engine.web.throttle import THROTTLE_KEY, ConnectionThrottle

__all__ = [
    "NODE_KEY",
    "THROTTLE_KEY",
    "add_routes",
    "build_node",
    "create_app",
    "engine_service",
    "tune_garbage_collector",
]

log = logging.getLogger("realtime.app")
# the routes pages may call from script (REALTIME_CORS_ORIGINS); the API-key routes never answer CORS
CORS_ROUTES = {path: frozenset({"POST"}) for path in rest.SESSION_PATHS}
CLIENT_SCRIPT = Path(__file__).parent / "static" / "realtime.js"
CLIENT_SCRIPT_HEADERS = {"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "public, max-age=300"}


def build_node(settings: Settings, db_engine: AsyncEngine | None, event_handler: EventHandler | None) -> Node:
    """A node on the backends the settings choose, recording to ``db_engine`` when given."""
    recorder = None
    if db_engine is not None:
        policy = policy_from(settings)
        recorder = DatabaseRecorder(
            db_engine,
            settings.node_id,
            settings.db_batch_size,
            settings.db_flush_interval,
            settings.db_backlog_limit,
            lambda name: policy.type_of(name).value,
            settings.db_retry_max_delay,
            settings.db_backlog_max_bytes,
            store_private_payloads=settings.store_private_payloads,
        )
    return Node(settings, build_backends(settings), recorder, event_handler)


def add_routes(
    app: web.Application, node: Node, access: authenticate.HostAccess, db_engine: AsyncEngine | None = None
) -> None:
    """The WebSocket endpoint, ``/healthz`` and ``/readyz`` (checking ``db_engine`` when given) and
    ``/metrics`` on ``app``, the browser client ``/realtime.js``, and REST API v1 as its ``/api/v1`` sub-application.

    The API's middleware (API key, JSON errors) belongs to the sub-application, so it never wraps
    the host's routes, another plugin's, or the health routes. The connection throttle's
    (:mod:`~websocket_realtime_engine.web.throttle`) does wrap them: it times every connection of
    the node; it acts only when whoever serves ``app`` applies ``app[THROTTLE_KEY].wrap``.
    """
    app[NODE_KEY] = node
    throttle = app[THROTTLE_KEY] = ConnectionThrottle(node.settings)
    app.middlewares.append(throttle.middleware)
    app.on_response_prepare.append(throttle.response_started)
    app.on_shutdown.append(_close_clients)
    app.router.add_get("/socket", socket_handler)
    sse.add_stream_routes(app, node)  # /api/v1/stream: the HTTP fallback (no API key, the socket's origins)
    app.router.add_get("/realtime.js", client_script)
    pages.add_static_routes(app)
    add_health_routes(app, db_engine)
    admin.add_admin_routes(app)  # /admin, /admin/login, /admin/logout
    api = api_app(node, access)
    # the admin stats' figures of the web layer (feeds.py)
    node.feeds.sources["api_errors"] = lambda: rest.api_errors(api)
    node.feeds.sources["connections_refused"] = lambda: throttle.stats()["refused"]
    add_metrics_route(app, node, api, throttle)
    app.add_subapp("/api/v1", api)


def api_app(node: Node, access: authenticate.HostAccess) -> web.Application:
    """REST API v1, mounted at ``/api/v1``."""
    settings = node.settings
    # CORS outermost: its headers go on the API's JSON errors too (the authenticate routes only)
    middlewares = [cors.cors_middleware(CORS_ROUTES), rest.api_middleware]
    api = web.Application(client_max_size=settings.rest_max_body_bytes, middlewares=middlewares)
    api[NODE_KEY] = node
    api[rest.BROADCAST_SCHEMA_KEY] = BroadcastSchema(settings.max_broadcast_channels, settings.max_event_name_length)
    api[authenticate.HOST_ACCESS_KEY] = access
    api[authenticate.BUCKETS_KEY] = {}
    router = api.router
    router.add_post("/broadcast", rest.broadcast)
    router.add_get("/channels", rest.list_channels)
    router.add_get("/channels/{name}", rest.channel_info)
    router.add_get("/channels/{name}/members", rest.channel_members)
    router.add_get("/channels/{name}/history", rest.channel_history)
    router.add_get("/connections", rest.list_connections)
    router.add_post("/connections/{id}/disconnect", rest.disconnect_connection)
    router.add_post("/users/{id}/disconnect", rest.disconnect_user)
    router.add_post("/authenticate", authenticate.authenticate)
    router.add_post("/authenticate/user", authenticate.authenticate_user)
    router.add_get("/status", rest.status)
    router.add_get("/nodes", rest.list_nodes)
    router.add_get("/openapi.yaml", rest.openapi)
    return api


async def client_script(request: web.Request) -> web.FileResponse:
    """``GET /realtime.js``: the browser client (docs/javascript-client.md), a plain file. Cached
    briefly, then revalidated (``ETag``/``Last-Modified``): a page picks up a new engine's client
    within minutes."""
    return web.FileResponse(CLIENT_SCRIPT, headers=CLIENT_SCRIPT_HEADERS)


async def _close_clients(app: web.Application) -> None:
    """Graceful shutdown, step one: close every client ("reconnect elsewhere", 1012 natively) before
    aiohttp waits for the handlers to finish."""
    await app[NODE_KEY].close_all()


def tune_garbage_collector() -> None:
    """Move what start-up allocated out of the collector's sight and collect less often.

    Process-wide, so it is applied by the standalone node (``websocket start``) only, when
    ``REALTIME_GC_TUNING`` is on; an engine embedded in the platform leaves the host's GC alone.

    At thousands of connections a full collection walks every connection's objects (65-470 ms
    measured with ../shared/bench/gc_probe.py); nothing on the delivery path allocates GC-tracked
    objects, so collecting less often costs little memory.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def engine_service(node: Node, db_engine: AsyncEngine | None) -> Callable[[web.Application], AsyncIterator[None]]:
    """The node's lifecycle as an aiohttp ``cleanup_ctx``: credentials, start; then graceful stop."""

    async def service(app: web.Application) -> AsyncIterator[None]:
        if db_engine is not None:
            node.settings = await resolve_credentials(db_engine, node.settings)
        if not node.settings.api_key or not node.settings.app_secret:
            raise errors.StartupError(
                "no app credentials: activate the plugin or set REALTIME_APP_* and REALTIME_API_KEY"
            )
        for warning in check_secret_lengths(node.settings):  # too short: a StartupError
            log.warning(warning)
        await node.start()
        runtime.set_local_node(node)
        drainer = OutboxDrainer(node, db_engine) if db_engine is not None else None
        if drainer is not None:
            node.status_sections["outbox"] = drainer.stats
            await drainer.start()
        retention = _retention(node.settings, db_engine)
        if retention is not None:
            node.status_sections["retention"] = retention.stats
            await retention.start()
        try:
            yield
        finally:
            if retention is not None:
                await retention.stop()
            if drainer is not None:
                await drainer.stop()
            runtime.set_local_node(None)
            await node.stop()

    return service


def _retention(settings: Settings, db_engine: AsyncEngine | None) -> Retention | None:
    """This node run's pruner of the durable record (REALTIME_RETENTION*), when it records one."""
    if db_engine is None:
        return None
    interval, batch = settings.retention_interval, settings.retention_batch
    return Retention(db_engine, settings.node_id, settings.retention, interval, batch)


def create_app(
    settings: Settings,
    db_engine: AsyncEngine | None = None,
    event_handler: EventHandler | None = None,
    access: authenticate.HostAccess | None = None,
    **app_options: Any,
) -> web.Application:
    """A standalone application with only the engine (tests and embedding)."""
    app = web.Application(client_max_size=settings.rest_max_body_bytes, **app_options)
    node = build_node(settings, db_engine, event_handler)
    add_routes(app, node, access or authenticate.HostAccess(), db_engine)
    app.cleanup_ctx.append(engine_service(node, db_engine))
    return app
