"""What browsers may do from other pages: open the socket (an origin allow-list) and call the
authenticate endpoints from script (CORS).

A browser names the page behind every WebSocket handshake and every cross-origin request in the
``Origin`` header; the patterns are :mod:`websocket_realtime_engine.origins`'.

- **The socket.** :func:`check_socket_origin` refuses a handshake from a page that matches none of
  ``REALTIME_ALLOWED_ORIGINS`` (default ``*``) with 403 and a JSON error, before the upgrade. A
  handshake without ``Origin`` is not a browser's (a server, an app, a script): allowed unless
  ``REALTIME_ALLOW_MISSING_ORIGIN`` is off.
- **CORS.** :func:`cors_middleware` answers CORS only on the routes it is given (the authenticate
  endpoints), for pages matching ``REALTIME_CORS_ORIGINS`` (default none: CORS off): a preflight
  gets 204 and the ``Access-Control-*`` headers, a request gets ``Access-Control-Allow-Origin``;
  credentials (the shop session cookie) only for an exact origin. Every other route of the
  application, the API-key routes, never answers CORS and refuses preflights with 403: an API key
  in a browser is a leak. ``Authorization`` is never an allowed request header, for the same reason.
  The SSE stream and its control calls (:mod:`~websocket_realtime_engine.web.sse`) answer their own
  CORS and preflights, by ``REALTIME_ALLOWED_ORIGINS`` like ``/socket``, never with credentials.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

import orjson
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from websocket_realtime_engine.origins import OriginMatch, parse_patterns
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.rest import limits_of

# request headers a page may send on a CORS route; never Authorization (the API key)
ALLOWED_HEADERS = frozenset({"content-type", "x-requested-with"})
PREFLIGHT_MAX_AGE = "600"  # seconds a browser may cache a preflight's answer
API_KEY_ROUTE = (
    "this route takes no cross-origin requests: it needs the API key, which belongs on servers, not in pages"
)


def _refusal(status: int, code: str, message: str) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}}).decode()
    return web.Response(status=status, text=body, content_type="application/json")


def check_socket_origin(request: web.Request) -> None:
    """Refuse a WebSocket handshake from a page whose origin is not allowed.

    :raises web.HTTPForbidden: 403 with ``{"error": {"code": "origin_not_allowed", "message"}}``.
    """
    settings = request.app[NODE_KEY].settings
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        if settings.allow_missing_origin:
            return
        message = "an Origin header is required to open the socket (REALTIME_ALLOW_MISSING_ORIGIN)"
    elif parse_patterns(settings.allowed_origins).match(origin) is not None:
        return
    else:
        message = f"the origin {origin[:200]!r} may not open the socket (REALTIME_ALLOWED_ORIGINS)"
    refusal = web.HTTPForbidden(text=_refusal(403, "origin_not_allowed", message).text, content_type="application/json")
    refusal.force_close()  # as every refusal before the upgrade: Connection: close
    raise refusal


def cors_middleware(routes: Mapping[str, frozenset[str]]) -> Middleware:
    """CORS for ``routes`` (path → the methods pages may use there); none anywhere else.

    The application's node gives the origins (``REALTIME_CORS_ORIGINS``).
    """

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        preflight = request.method == hdrs.METH_OPTIONS and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        methods = routes.get(request.path)
        if methods is None:
            if preflight:
                return _refuse_preflight(request, API_KEY_ROUTE)
            return await handler(request)
        match = None
        if origin is not None:
            match = parse_patterns(request.app[NODE_KEY].settings.cors_origins).match(origin)
        if preflight:
            return _preflight(request, origin, match, methods)
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # an answer raised rather than returned: it gets the headers too
            _allow(exc.headers, origin, match)
            raise
        _allow(response.headers, origin, match)
        return response

    return cors


def _preflight(
    request: web.Request, origin: str | None, match: OriginMatch | None, methods: frozenset[str]
) -> web.Response:
    """The answer to ``OPTIONS`` with ``Access-Control-Request-Method``: 204 with the CORS headers, or
    403 saying what is not allowed."""
    method = request.headers[hdrs.ACCESS_CONTROL_REQUEST_METHOD].strip().upper()
    wanted = {name.strip().lower() for name in request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "").split(",")}
    refused_headers = sorted(wanted - ALLOWED_HEADERS - {""})
    if match is None:
        problem = f"the origin {(origin or '')[:200]!r} may not call this route from a page (REALTIME_CORS_ORIGINS)"
    elif method not in methods:
        problem = f"method {method[:20]} is not allowed here (allowed: {', '.join(sorted(methods))})"
    elif refused_headers:
        problem = (
            f"request headers not allowed: {', '.join(refused_headers)[:200]} (only Content-Type, X-Requested-With)"
        )
    else:
        response = web.Response(status=204)
        _allow(response.headers, origin, match)
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = ", ".join(sorted(methods))
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = "Content-Type, X-Requested-With"
        response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
        return response
    return _refuse_preflight(request, problem)


def _refuse_preflight(request: web.Request, problem: str) -> web.Response:
    """403 ``cors_refused``, counted with the API's errors (``api_errors`` of ``GET /api/v1/status``)."""
    limits_of(request).errors["cors_refused"] += 1
    refusal = _refusal(403, "cors_refused", problem)
    refusal.headers[hdrs.VARY] = hdrs.ORIGIN
    return refusal


def _allow(headers: MutableMapping[str, str], origin: str | None, match: OriginMatch | None) -> None:
    """The CORS headers of an answer to a page of ``origin`` (none when it is not allowed)."""
    headers[hdrs.VARY] = hdrs.ORIGIN
    if origin is None or match is None:
        return
    if match is OriginMatch.ANY:
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*"  # and no credentials: browsers refuse them with *
        return
    headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
    if match is OriginMatch.EXACT:  # a wildcard could cover a subdomain someone else controls
        headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
