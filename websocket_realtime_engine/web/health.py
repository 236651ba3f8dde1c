"""Liveness and readiness of a node, for load balancers and orchestrators.

- ``GET /healthz``: the process answers HTTP (200 ``{"status": "ok"}``); nothing else is checked,
  so a node whose Redis is away is not restarted for it.
- ``GET /readyz``: the node can serve: it accepts connections (not shutting down), its database
  answers a ``select 1`` and its broker delivers (the memory broker always does; the Redis broker
  once its subscription connection is up). 200 when every check is ``ok``, else 503 with each
  check's reason: ``{"status": "unavailable", "checks": {"database": "ok", "broker": "disconnected: …"}}``.

Both are routes of the node's application, outside the REST API (no API key, no API middleware),
and each check takes at most :data:`CHECK_TIMEOUT` seconds. The host's ``/health`` gathers the same
checks through the ``health_checks`` hook (:func:`readiness`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from websocket_realtime_engine.node import Node
from websocket_realtime_engine.web.keys import NODE_KEY

OK = "ok"
CHECK_TIMEOUT = 2.0  # seconds; a load balancer's probe typically gives up after 5
MAX_REASON = 200  # characters of an error kept in a reason: enough to act on, not a traceback
DATABASE_KEY = web.AppKey("realtime.database", AsyncEngine)


def _reason(prefix: str, exc: BaseException) -> str:
    """``prefix: ExceptionName: its first line``, short."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no answer"
    return f"{prefix}: {type(exc).__name__}: {detail}"[:MAX_REASON]


async def database_check(db_engine: AsyncEngine, timeout: float = CHECK_TIMEOUT) -> str:
    """``ok`` when the database answers ``select 1`` within ``timeout`` seconds, else why not."""
    try:
        async with asyncio.timeout(timeout), db_engine.connect() as connection:
            await connection.execute(text("select 1"))
    except TimeoutError:
        return f"unreachable: no answer within {timeout:g} s"
    except Exception as exc:  # noqa: BLE001 - any failure is a reason, never a 500
        return _reason("unreachable", exc)
    return OK


def broker_check(node: Node) -> str:
    """``ok`` when the broker delivers; a broker with a ``state`` other than ``connected`` does not."""
    stats: dict[str, Any] | None = node.backends.stats().get("broker")
    if stats is None or stats.get("state", "connected") == "connected":
        return OK  # the memory broker reports no state: it is always ready
    return f"{stats['state']}: the broker's subscription connection to Redis is down; reconnecting"


async def readiness(node: Node, db_engine: AsyncEngine | None) -> dict[str, str]:
    """Each check's result (``ok`` or why not): ``node``, ``database`` (when there is one), ``broker``."""
    checks = {"node": OK if node.accepting else "shutting down"}
    if db_engine is not None:
        checks["database"] = await database_check(db_engine)
    checks["broker"] = broker_check(node)
    return checks


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the node is alive."""
    return _json({"status": OK})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when the node can serve, 503 with the failing checks' reasons."""
    checks = await readiness(request.app[NODE_KEY], request.app.get(DATABASE_KEY))
    ready = all(result == OK for result in checks.values())
    return _json({"status": OK if ready else "unavailable", "checks": checks}, 200 if ready else 503)


def add_health_routes(app: web.Application, db_engine: AsyncEngine | None) -> None:
    """``/healthz`` and ``/readyz`` on the node's application (``NODE_KEY`` must be set)."""
    if db_engine is not None:
        app[DATABASE_KEY] = db_engine
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
