"""The platform's own behaviour, registered through the same hooks plugins use.

Registered first, so pluggy calls these implementations last: any plugin's answer wins.

A shop session is the cookie ``shopologic_session``: ``base64url(JSON user) "." hex HMAC-SHA256``
signed with ``SHOPOLOGIC_SECRET_KEY``. The shop's login (outside this project) sets it with
:func:`sign_session`; the host reads it back in :func:`identify_user`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import inspect
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from shopologic import __version__
from shopologic.contracts import PLATFORM_KEY, PluginHost
from shopologic.hookspecs import hookimpl

SESSION_COOKIE = "shopologic_session"
MAX_SESSION_COOKIE = 4096
DEFAULT_ADDRESS = ("127.0.0.1", 8080)
HEALTH_CHECK_TIMEOUT = 5.0  # seconds one plugin's health_checks may take before it counts as failed


def _platform_secret(request: web.Request) -> bytes:
    # config_dict: the request may be a plugin's sub-application's (``/api/v1``), which has no PLATFORM_KEY
    return request.config_dict[PLATFORM_KEY].settings.secret_key.encode()


def sign_session(secret: str, user: dict[str, Any]) -> str:
    """The cookie value for a shop session of ``user`` (``{"id", "role", "info"?}``)."""
    body = base64.urlsafe_b64encode(json.dumps(user, separators=(",", ":")).encode()).decode().rstrip("=")
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


def read_session(secret: bytes, value: str) -> dict[str, Any] | None:
    """The user in a session cookie, or ``None`` when it is missing, malformed or badly signed."""
    if not secret or not value or len(value) > MAX_SESSION_COOKIE or "." not in value:
        return None
    body, _, signature = value.rpartition(".")
    # cookies may carry any bytes (kept as surrogates): compare bytes, never raise
    body_bytes = body.encode("utf-8", "surrogateescape")
    expected = hmac.new(secret, body_bytes, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape")):
        return None
    try:
        user = json.loads(base64.urlsafe_b64decode(body_bytes + b"=" * (-len(body_bytes) % 4)))
    except ValueError:
        return None
    if (
        not isinstance(user, dict)
        or not isinstance(user.get("id"), str)
        or user.get("role") not in ("customer", "admin")
    ):
        return None
    return user


@hookimpl
def identify_user(request: web.Request) -> dict[str, Any] | None:
    """The user of the request's shop session cookie, if it is validly signed."""
    return read_session(_platform_secret(request), request.cookies.get(SESSION_COOKIE, ""))


@hookimpl
def authorize_channel(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool | None:
    """Admins may join any channel; a customer only their own ``private-customer.{id}``."""
    if user is None:
        return False
    if user.get("role") == "admin":
        return True
    return channel == f"private-customer.{user['id']}"


@hookimpl
def server_address(platform: PluginHost) -> tuple[str, int]:
    """The ``--host``/``--port`` flags, else 127.0.0.1:8080 (when no plugin owns the address)."""
    host = platform.overrides.get("host") or DEFAULT_ADDRESS[0]
    port = platform.overrides.get("port") or DEFAULT_ADDRESS[1]
    return str(host), int(port)


async def _plugin_checks(plugin: str, call: Callable[[], Any]) -> dict[str, str]:
    """One plugin's ``health_checks`` answer; a failure or a timeout is a failed check named after it."""
    try:
        result = call()
        if inspect.isawaitable(result):
            async with asyncio.timeout(HEALTH_CHECK_TIMEOUT):
                result = await result
    except TimeoutError:
        return {plugin: f"failed: no answer within {HEALTH_CHECK_TIMEOUT:g} s"}
    except Exception as exc:  # noqa: BLE001 - a broken plugin fails its check, not the host's route
        return {plugin: f"failed: {type(exc).__name__}: {exc}"[:200]}
    return {str(name): str(value) for name, value in (result or {}).items()}


async def collect_health(platform: PluginHost) -> dict[str, str]:
    """Every active plugin's health checks, asked concurrently, one implementation at a time so
    that a failing plugin is named (its hook module's plugin name)."""
    implementations = platform.hook.health_checks.get_hookimpls()
    calls = [
        _plugin_checks((impl.plugin_name or "").partition(":")[0], functools.partial(impl.function, platform=platform))
        for impl in implementations
    ]
    answers = await asyncio.gather(*calls)
    return {name: result for answer in answers for name, result in answer.items()}


async def health(request: web.Request) -> web.Response:
    """``GET /health``: the platform answers, with its plugins' checks (``health_checks``); 503 when
    one of them is not ``ok``."""
    checks = await collect_health(request.app[PLATFORM_KEY])
    healthy = all(result == "ok" for result in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "platform": __version__, "checks": checks}
    return web.json_response(body, status=200 if healthy else 503)


def add_host_routes(app: web.Application) -> None:
    """The host's own routes in the platform application."""
    app.router.add_get("/health", health)
