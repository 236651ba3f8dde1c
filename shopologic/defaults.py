"""The platform's own behaviour, registered through the same hooks plugins use.

Registered first, so pluggy calls these implementations last: any plugin's answer wins.

A shop session is the cookie ``shopologic_session``: ``base64url(JSON session) "." hex HMAC-SHA256``
signed with ``SHOPOLOGIC_SECRET_KEY``. The session is the user (``{"id", "role", "info"?}``) with its
issue time ``iat`` and expiry ``exp`` (Unix seconds, ``SHOPOLOGIC_SESSION_TTL`` apart) and the user's
session version ``ver`` when it was signed. The shop's login (outside this project) sets it with
:func:`session_cookie` (or :func:`sign_session`, given the version); the host reads it back in
:func:`identify_user`, which refuses it once expired (:class:`SessionExpiredError`) or once the user's
sessions were revoked (``platform.revoke_sessions``: the user's version went above ``ver``,
:class:`SessionRevokedError`). A cookie that is malformed or badly signed is no session at all.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import inspect
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from shopologic import __version__
from shopologic.config import DEFAULT_SESSION_TTL
from shopologic.contracts import PLATFORM_KEY, PluginHost, SessionExpiredError, SessionRevokedError
from shopologic.db import session_version
from shopologic.hookspecs import hookimpl

SESSION_COOKIE = "shopologic_session"
MAX_SESSION_COOKIE = 4096
SESSION_CLAIMS = ("iat", "exp", "ver")  # what a session carries besides its user
DEFAULT_ADDRESS = ("127.0.0.1", 8080)
HEALTH_CHECK_TIMEOUT = 5.0  # seconds one plugin's health_checks may take before it counts as failed


def sign_session(
    secret: str,
    user: dict[str, Any],
    ttl: int = DEFAULT_SESSION_TTL,
    version: int = 0,
    issued_at: float | None = None,
) -> str:
    """The cookie value for a shop session of ``user`` (``{"id", "role", "info"?}``).

    :param ttl: seconds the session lasts (``SHOPOLOGIC_SESSION_TTL``; at least 1).
    :param version: the user's session version now (:func:`shopologic.db.session_version`); a
        session signed with a version below the user's current one is revoked.
    :param issued_at: the Unix time it is signed at; now by default.
    """
    if ttl < 1:
        raise ValueError(f"a session lasts at least 1 second, not {ttl}")
    iat = int(time.time() if issued_at is None else issued_at)
    session = {**user, "iat": iat, "exp": iat + ttl, "ver": version}
    body = base64.urlsafe_b64encode(json.dumps(session, separators=(",", ":")).encode()).decode().rstrip("=")
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{signature}"


async def session_cookie(platform: PluginHost, user: dict[str, Any], ttl: int | None = None) -> str:
    """A new session of ``user`` for the shop's login to set as ``shopologic_session``: signed with
    the platform's secret, lasting ``ttl`` seconds (``SHOPOLOGIC_SESSION_TTL`` by default), at the
    user's current session version."""
    version = await session_version(platform.engine, str(user["id"]))
    return sign_session(platform.settings.secret_key, user, ttl or platform.settings.session_ttl, version)


def read_session(secret: bytes, value: str, now: float | None = None) -> dict[str, Any] | None:
    """The session in a cookie (its user with ``iat``, ``exp`` and ``ver``), unless it has expired.

    :returns: ``None`` when the cookie is missing, malformed or badly signed.
    :raises SessionExpiredError: it is validly signed but past its ``exp``, or has none (signed
        before sessions expired).
    """
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
    if "exp" not in user:
        raise SessionExpiredError("the shop session has no expiry (it is from an older version): sign in again")
    if not all(type(user.get(claim)) is int for claim in SESSION_CLAIMS):
        return None
    if (time.time() if now is None else now) >= user["exp"]:
        raise SessionExpiredError("the shop session has expired: sign in again")
    return user


@hookimpl
async def identify_user(request: web.Request) -> dict[str, Any] | None:
    """The user of the request's shop session cookie, if it is validly signed, not expired and not
    revoked (its version is at least its user's, read from the platform database)."""
    # config_dict: the request may be a plugin's sub-application's (``/api/v1``), which has no PLATFORM_KEY
    platform = request.config_dict[PLATFORM_KEY]
    session = read_session(platform.settings.secret_key.encode(), request.cookies.get(SESSION_COOKIE, ""))
    if session is None:
        return None
    if session["ver"] < await session_version(platform.engine, session["id"]):
        raise SessionRevokedError("the shop session was revoked: sign in again")
    return {name: value for name, value in session.items() if name not in SESSION_CLAIMS}


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
