"""Admin access: the token, the login form, the signed cookie, and :func:`is_admin` for the admin pages.

The admin token (``REALTIME_ADMIN_TOKEN``) is a credential of the app: generated at activation unless
given, stored with the others, shown by ``websocket credentials``. It opens the admin pages two ways:

- **A login**: ``GET /admin/login`` is a plain HTML form (no script); ``POST /admin/login`` takes the
  token (form field ``token``), compares it in constant time and sets the cookie ``realtime_admin``:
  signed (HMAC-SHA256 with a key derived from the token, so a new token ends every login),
  ``HttpOnly``, ``SameSite=Strict``, ``Path=/``, expiring after ``REALTIME_ADMIN_SESSION_TTL`` seconds
  (``Max-Age`` and ``Expires``), ``Secure`` when served over TLS. Then it redirects to ``next`` (a local
  path only) or ``/admin``. A wrong token gets the form again with 401; attempts are limited per
  client address (429 beyond). ``POST /admin/logout`` clears the cookie.
- **A Bearer header**: ``Authorization: Bearer <admin token>``, for scripts.

:func:`is_admin` says whether a request has either; :func:`login_redirect` is what an admin page
answers without: ``/admin`` (the dashboard) and ``/debug`` (the debug console) are served to admins
only. The cookie also signs channels at ``POST /api/v1/authenticate`` (any private or presence
channel, the engine's own ``private-realtime.*`` included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from urllib.parse import urlencode

from aiohttp import web

from websocket_realtime_engine.web import pages
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.rest import RequestLimits, client_address

log = logging.getLogger("realtime.admin")

ADMIN_COOKIE = "realtime_admin"
COOKIE_VERSION = "v1"
MAX_COOKIE_LENGTH = 200  # a signed cookie is about 100 characters
MAX_TOKEN_LENGTH = 256  # characters of the form's token field that are compared at all
MAX_NEXT_LENGTH = 512
LOGIN_ATTEMPTS_PER_SECOND = 1.0  # per client address, bursts of two
ADMIN_HOME = "/admin"
DEBUG_CONSOLE = "/debug"
LOGIN_PATH = "/admin/login"
LOGIN_LIMITS_KEY = web.AppKey("realtime.admin_login_limits", RequestLimits)

STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}"
    "input,button{font:inherit;padding:.4rem;margin:.3rem 0}input[type=password]{width:100%;box-sizing:border-box}"
    ".error{color:#a00}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
HEADERS = {
    # no script at all; the one style block by its hash; forms post here only; never framed
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; form-action 'self'; frame-ancestors 'none';"
        " base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- the cookie ------------------------------------------------------------------------------------


def _cookie_key(token: str) -> bytes:
    """The cookie's signing key: derived from the token, so that a new token ends every login."""
    return hmac.new(token.encode(), b"realtime_admin cookie", hashlib.sha256).digest()


def sign_cookie(token: str, expires: int, nonce: str) -> str:
    """``v1.<expires>.<nonce>.<signature>``: the signature covers the rest."""
    payload = f"{COOKIE_VERSION}.{expires}.{nonce}"
    signature = hmac.new(_cookie_key(token), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}.{signature}"


def valid_cookie(token: str, value: str, now: float) -> bool:
    """Whether ``value`` is a cookie signed with ``token`` that has not expired; constant-time."""
    if not token or len(value) > MAX_COOKIE_LENGTH:
        return False
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != COOKIE_VERSION or not (parts[1].isascii() and parts[1].isdigit()):
        return False
    expected = sign_cookie(token, int(parts[1]), parts[2])
    # aiohttp keeps undecodable bytes as surrogates: encode them back, never raise
    signed = hmac.compare_digest(expected.encode(), value.encode("utf-8", "surrogateescape"))
    return signed and int(parts[1]) > now


def _same_token(given: str, token: str) -> bool:
    return bool(token) and hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _right_token(given: object, token: str) -> bool:
    """Whether the login form's field is the token (surrounding blanks aside); constant-time."""
    return isinstance(given, str) and len(given) <= MAX_TOKEN_LENGTH and _same_token(given.strip(), token)


def is_admin(request: web.Request) -> bool:
    """Whether the request is an admin's: ``Authorization: Bearer <admin token>``, or a valid
    ``realtime_admin`` cookie. Without an admin token (a node given none, without a database) nobody is."""
    token = request.config_dict[NODE_KEY].settings.admin_token
    if not token:
        return False
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _same_token(given.strip(), token):
        return True
    cookie = request.cookies.get(ADMIN_COOKIE)
    return cookie is not None and valid_cookie(token, cookie, time.time())


def login_redirect(request: web.Request) -> web.Response:
    """What an admin page answers a request that is not an admin's: to the login, and back after it."""
    return _see_other(f"{LOGIN_PATH}?{urlencode({'next': _local_path(request.path_qs)})}")


def _served_over_tls(request: web.Request) -> bool:
    """TLS here, or at a trusted proxy (``REALTIME_TRUSTED_PROXIES``) that says so (``X-Forwarded-Proto``)."""
    if request.secure:
        return True
    trusted = request.config_dict[NODE_KEY].settings.trusted_proxies
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return (request.remote or "") in trusted and forwarded == "https"


def _local_path(value: object) -> str:
    """``value`` when it is a path on this site (``/…``, not ``//host`` nor ``/\\host``), else ``/admin``."""
    if (
        isinstance(value, str)
        and 0 < len(value) <= MAX_NEXT_LENGTH
        and value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and all(32 < ord(character) < 127 and character != "\\" for character in value)
    ):
        return value
    return ADMIN_HOME


# -- the handlers ----------------------------------------------------------------------------------


async def login_form(request: web.Request) -> web.Response:
    """``GET /admin/login``: the form (an admin already: straight on to ``next``)."""
    target = _local_path(request.query.get("next"))
    if is_admin(request):
        return _see_other(target)
    return _form(target)


async def login(request: web.Request) -> web.Response:
    """``POST /admin/login``: the token in, the cookie out; a wrong one gets the form again (401)."""
    address = client_address(request)
    if not request.config_dict[LOGIN_LIMITS_KEY].take(("login", address), LOGIN_ATTEMPTS_PER_SECOND):
        error = "Too many attempts from your address: wait a second and try again."
        return _form(_local_path(request.query.get("next")), error, 429, {"Retry-After": "1"})
    try:
        form = await request.post()
    except (UnicodeDecodeError, LookupError, ValueError):
        return _form(ADMIN_HOME, "The form could not be read.", 400)
    target = _local_path(form.get("next"))
    given = form.get("token")
    settings = request.config_dict[NODE_KEY].settings
    if not _right_token(given, settings.admin_token):
        log.warning("admin login refused", extra={"remote": address})
        return _form(target, "Wrong admin token.", 401)
    ttl = int(settings.admin_session_ttl)
    expires = int(time.time()) + ttl
    response = _see_other(target)
    response.set_cookie(
        ADMIN_COOKIE,
        sign_cookie(settings.admin_token, expires, secrets.token_hex(8)),
        max_age=ttl,
        expires=formatdate(expires, usegmt=True),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=_served_over_tls(request),
    )
    log.info("admin logged in", extra={"remote": address})
    return response


async def logout(request: web.Request) -> web.Response:
    """``POST /admin/logout``: the cookie cleared, back to the login."""
    response = _see_other(LOGIN_PATH)
    response.del_cookie(ADMIN_COOKIE, path="/", secure=_served_over_tls(request), httponly=True, samesite="Strict")
    return response


def admin_only(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The page ``static/pages/<name>`` for admins; everyone else goes to the login, and back after it."""
    serve = pages.page(name)

    async def handler(request: web.Request) -> web.StreamResponse:
        if not is_admin(request):
            return login_redirect(request)
        return await serve(request)

    return handler


def add_admin_routes(app: web.Application) -> None:
    """``/admin``, ``/admin/login`` (GET, POST) and ``/admin/logout`` (POST) on ``app``."""
    app[LOGIN_LIMITS_KEY] = RequestLimits(LOGIN_ATTEMPTS_PER_SECOND)
    app.router.add_get(ADMIN_HOME, admin_only("admin.html"))  # the dashboard
    app.router.add_get(DEBUG_CONSOLE, admin_only("debug.html"))
    app.router.add_get(LOGIN_PATH, login_form)
    app.router.add_post(LOGIN_PATH, login)
    app.router.add_post("/admin/logout", logout)


# -- HTML ------------------------------------------------------------------------------------------


def _form(target: str, error: str = "", status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    shown = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        f"<h1>Shopologic Realtime admin</h1>{shown}"
        f'<form method="post" action="{LOGIN_PATH}">'
        '<label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
        f'<input type="hidden" name="next" value="{html.escape(target)}">'
        '<button type="submit">Sign in</button></form>'
        "<p>Print the token with <code>python bootstrap_plugins.py websocket credentials</code>"
        " (<code>REALTIME_ADMIN_TOKEN</code>).</p>"
    )
    return _page("Sign in: Shopologic Realtime admin", body, status, headers)


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )
    return web.Response(text=text, status=status, content_type="text/html", headers={**HEADERS, **(headers or {})})


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
