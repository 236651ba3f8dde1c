"""REST API v1: thin handlers that parse, call one node method and serialise.

Errors are ``{"error": {"code", "message"}}`` with the HTTP status (see openapi.yaml), whatever
went wrong (a bug too: 500 ``internal_error``, logged). Every route but ``/api/v1/openapi.yaml`` and
the authenticate routes needs ``Authorization: Bearer <api key>``; the authenticate routes also take
a shop session (the host says who the user is). Requests with the API key are limited to
``REALTIME_REST_REQUESTS_PER_SECOND`` per node (429 with ``Retry-After`` beyond); bodies to
``REALTIME_REST_MAX_BODY_BYTES`` (413) and ``REALTIME_MAX_JSON_DEPTH`` levels, with no integer
beyond 64 bits (400).
"""

from __future__ import annotations

import hmac
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from marshmallow import Schema, ValidationError

from websocket_realtime_engine import errors
from websocket_realtime_engine.feeds import RESERVED_PREFIX, is_reserved
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol import jsonlimits
from websocket_realtime_engine.protocol.channels import ChannelType, check_name
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.ratelimit import TokenBucket
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.schemas import BroadcastSchema
from websocket_realtime_engine.web.throttle import THROTTLE_KEY

log = logging.getLogger("realtime.rest")
OPENAPI = Path(__file__).with_name("openapi.yaml")
PUBLIC_PATHS = frozenset({"/api/v1/openapi.yaml"})
SESSION_PATHS = frozenset({"/api/v1/authenticate", "/api/v1/authenticate/user"})
MAX_CURSOR = 64  # characters of the connection list's ``after`` (connection ids are about 20)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# built once per application: constructing a marshmallow schema per request cost ~40 us of ~150
BROADCAST_SCHEMA_KEY = web.AppKey("realtime.broadcast_schema", BroadcastSchema)
# the API application's rate-limit state: a dict holding its RequestLimits (see limits_of)
BUCKETS_KEY = web.AppKey("realtime.api_rate_limits", dict)
MAX_TRACKED_CALLERS = 10_000


class ApiError(Exception):
    """An HTTP error with a machine code and a message; ``retry_after`` (seconds) for a 429."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after


def error_response(status: int, code: str, message: str, retry_after: float | None = None) -> web.Response:
    headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, dumps=_dumps, headers=headers)


class RequestLimits:
    """One API application's request rates and the errors it answered (``GET /api/v1/status``).

    The API key has one bucket; other callers (the authenticate routes' session callers, by user or
    by address) have one each, created on first use. Past :data:`MAX_TRACKED_CALLERS` the oldest is
    forgotten: that only ever gives a caller a full bucket again, never a refusal.
    """

    def __init__(self, api_key_rate: float) -> None:
        self.api_key_rate = api_key_rate
        self.api_key = TokenBucket(api_key_rate, api_key_rate * 2)
        self.callers: dict[Hashable, TokenBucket] = {}
        self.errors: Counter[str] = Counter()

    def take(self, caller: Hashable, rate: float) -> bool:
        """Whether one more request of ``caller`` fits its bucket (``rate`` a second, bursts of twice that)."""
        bucket = self.callers.get(caller)
        if bucket is None:
            if len(self.callers) >= MAX_TRACKED_CALLERS:
                del self.callers[next(iter(self.callers))]
            bucket = self.callers[caller] = TokenBucket(rate, rate * 2)
        return bucket.take()


def limits_of(request: web.Request) -> RequestLimits:
    """The request's API application's :class:`RequestLimits` (made on its first request)."""
    state: dict[type, RequestLimits] = request.app[BUCKETS_KEY]
    limits = state.get(RequestLimits)
    if limits is None:
        limits = state[RequestLimits] = RequestLimits(node_of(request).settings.rest_requests_per_second)
    return limits


def api_errors(api: web.Application) -> dict[str, int]:
    """The errors the API application ``api`` answered since start, by code (the admin feeds' figures)."""
    limits = api[BUCKETS_KEY].get(RequestLimits)
    return dict(limits.errors) if limits is not None else {}


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def ok(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status, dumps=_dumps)


def node_of(request: web.Request) -> Node:
    return request.app[NODE_KEY]


def client_address(request: web.Request) -> str:
    """The client's address: behind a trusted proxy (``REALTIME_TRUSTED_PROXIES``), the rightmost
    ``X-Forwarded-For`` hop that is not itself a trusted proxy; otherwise the peer address."""
    remote = request.remote or ""
    trusted = node_of(request).settings.trusted_proxies
    if remote not in trusted:
        return remote
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return remote


def has_api_key(request: web.Request) -> bool:
    """Whether the request carries ``Authorization: Bearer <api key>``; constant-time."""
    expected = node_of(request).settings.api_key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # aiohttp keeps undecodable header bytes as surrogates: encode them back, never raise
    given = token.strip().encode("utf-8", "surrogateescape")
    return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(given, expected.encode())


def _admit(request: web.Request) -> None:
    """The API key (unless the route needs none or takes a session) and its request rate."""
    if request.path in PUBLIC_PATHS:
        return
    if has_api_key(request):
        limits = limits_of(request)
        if not limits.api_key.take():
            rate = limits.api_key_rate
            message = f"more than {rate:g} requests per second with this API key"
            raise ApiError(429, "rate_limited", message, retry_after=1 / rate)
    elif request.path not in SESSION_PATHS:
        raise ApiError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)")


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API sub-application's middleware: check the API key and its rate, turn every error into
    the JSON error form (and count it, by code, for ``GET /api/v1/status``)."""
    try:
        _admit(request)
        return await handler(request)
    except ApiError as exc:
        return _refuse(request, exc.status, exc.code, exc.message, exc.retry_after)
    except errors.UnavailableError as exc:
        return _refuse(request, 503, "unavailable", exc.message)
    except jsonlimits.InvalidJsonError as exc:
        return _refuse(request, 400, "invalid_json", exc.message)
    except errors.LimitError as exc:
        return _refuse(request, 400, "limit_exceeded", exc.message)
    except (errors.ProtocolError, errors.ChannelError) as exc:
        return _refuse(request, 400, "invalid_request", exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        return _refuse(request, exc.status, code, exc.reason)
    except OSError:  # the client went away (a reset while reading the body): nobody to answer
        raise
    except Exception:
        log.exception("internal error answering %s %s", request.method, request.path)
        return _refuse(request, 500, "internal_error", "internal error")


def _refuse(
    request: web.Request, status: int, code: str, message: str, retry_after: float | None = None
) -> web.Response:
    limits_of(request).errors[code] += 1
    return error_response(status, code, message, retry_after)


async def read_json(request: web.Request) -> Any:
    """The body as JSON, refused with 413 past ``REALTIME_REST_MAX_BODY_BYTES`` and with 400 when it is
    not JSON (``invalid_json``: syntax, not UTF-8), nests deeper than ``REALTIME_MAX_JSON_DEPTH``
    (``limit_exceeded``) or has an integer beyond 64 bits (``invalid_request``)."""
    settings = node_of(request).settings
    limit = settings.rest_max_body_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    return jsonlimits.loads(bytes(body), settings.max_json_depth, "the body")


def load_body(schema: Schema, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    try:
        loaded: dict[str, Any] = schema.load(value)
        return loaded
    except ValidationError as exc:
        raise ApiError(400, "invalid_request", _first_message(exc.normalized_messages())) from None


def _first_message(messages: Any, path: str = "") -> str:
    """marshmallow's first message with the path of its field: ``channels.0: Not a valid string.``"""
    if isinstance(messages, dict) and messages:
        key, inner = next(iter(messages.items()))
        return _first_message(inner, f"{path}.{key}" if path else str(key))
    if isinstance(messages, list) and messages:
        return _first_message(messages[0], path)
    return f"{path}: {messages}" if path else str(messages)


def _channel(request: web.Request) -> str:
    try:
        return check_name(request.match_info["name"])
    except errors.ChannelError as exc:
        raise ApiError(400, "invalid_channel", exc.message) from None


# -- handlers --------------------------------------------------------------------------------------


async def broadcast(request: web.Request) -> web.Response:
    """``POST /api/v1/broadcast``"""
    node = node_of(request)
    body = load_body(request.app[BROADCAST_SCHEMA_KEY], await read_json(request))
    channels = list(dict.fromkeys(body.get("channels") or [body["channel"]]))  # each channel once
    reserved = [channel for channel in channels if is_reserved(channel)]
    if reserved:
        message = f"{reserved[0]}: channels named {RESERVED_PREFIX}* are the engine's own; only it publishes there"
        raise ApiError(403, "reserved_channel", message)
    key = body["idempotency_key"]
    event, data, exclude = body["event"], body["data"], body["excluded_connection"]
    positions = await node.publish(channels, event, data, exclude, idempotency_key=key)
    answer: dict[str, Any] = {"published": {"channels": channels, "event": body["event"]}}
    if key is not None:
        answer["duplicate"] = not positions  # a retry: answered as the first, published once
    return ok(answer)


async def list_channels(request: web.Request) -> web.Response:
    """``GET /api/v1/channels?prefix=&type=``"""
    node = node_of(request)
    prefix = request.query.get("prefix", "")
    wanted = request.query.get("type")
    if wanted is not None and wanted not in {t.value for t in ChannelType}:
        raise ApiError(400, "invalid_request", "type must be public, private or presence")
    kind = None if wanted is None else ChannelType(wanted)
    return ok({"channels": await node.channel_list(prefix, kind)})


async def channel_info(request: web.Request) -> web.Response:
    """``GET /api/v1/channels/{name}``"""
    node = node_of(request)
    name = _channel(request)
    info = await node.channel_info(name)
    if info["type"] == ChannelType.PRESENCE.value:
        info["user_count"] = (await node.members(name))["count"]
    return ok(info)


async def channel_members(request: web.Request) -> web.Response:
    """``GET /api/v1/channels/{name}/members``"""
    node = node_of(request)
    name = _channel(request)
    if node.policy.type_of(name) is not ChannelType.PRESENCE:
        raise ApiError(400, "not_presence", f"{name} is not a presence channel")
    return ok(await node.members(name))


async def list_connections(request: web.Request) -> web.Response:
    """``GET /api/v1/connections?channel=&user_id=&limit=&after=``"""
    node = node_of(request)
    try:
        limit = int(request.query.get("limit", "1000"))
    except ValueError:
        raise ApiError(400, "invalid_request", "limit must be an integer") from None
    if not 1 <= limit <= 10_000:
        raise ApiError(400, "invalid_request", "limit must be between 1 and 10000")
    after = request.query.get("after")
    if after is not None and not 1 <= len(after) <= MAX_CURSOR:
        raise ApiError(400, "invalid_request", f"after must be a connection id (1 to {MAX_CURSOR} characters)")
    channel, user_id = request.query.get("channel"), request.query.get("user_id")
    return ok(await node.connection_list(channel, user_id, limit, after))


async def disconnect_connection(request: web.Request) -> web.Response:
    """``POST /api/v1/connections/{id}/disconnect``: on whichever node holds it."""
    connection_id = request.match_info["id"]
    if not await node_of(request).disconnect(connection_id):
        raise ApiError(404, "not_found", f"no connection {connection_id} on any node")
    return ok({"disconnected": [connection_id]})


async def disconnect_user(request: web.Request) -> web.Response:
    """``POST /api/v1/users/{id}/disconnect``: on every node."""
    count = await node_of(request).disconnect_user(request.match_info["id"])
    return ok({"user_id": request.match_info["id"], "disconnected": count})


async def status(request: web.Request) -> web.Response:
    """``GET /api/v1/status``: this node's counters, and the errors its API answered, by code."""
    answer = node_of(request).status()
    answer["api_errors"] = dict(limits_of(request).errors)
    throttle = request.config_dict.get(THROTTLE_KEY)  # the connection throttle: refused, timed out
    if throttle is not None:
        answer["throttle"] = throttle.stats()
    return ok(answer)


async def openapi(request: web.Request) -> web.FileResponse:
    """``GET /api/v1/openapi.yaml``: the contract of this API."""
    return web.FileResponse(OPENAPI, headers={"Content-Type": "application/yaml"})


# -- cluster: nodes and history --------------------------------------------------------------------

HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MOST = 100, 1000


def _query_int(request: web.Request, name: str, default: int, lowest: int, highest: int) -> int:
    """An integer query parameter within bounds, else 400."""
    try:
        value = int(request.query.get(name, str(default)))
    except ValueError:
        raise ApiError(400, "invalid_request", f"{name} must be an integer") from None
    if not lowest <= value <= highest:
        raise ApiError(400, "invalid_request", f"{name} must be between {lowest} and {highest}")
    return value


def _kept(publication: Publication) -> dict[str, Any]:
    """A kept publication as a frame shows it: ``data`` embedded as it was encoded, left out when null."""
    shown: dict[str, Any] = {"event": publication.event}
    if publication.data != b"null":
        shown["data"] = orjson.Fragment(publication.data)
    if publication.user_id is not None:
        shown["user_id"] = publication.user_id
    shown["offset"], shown["epoch"] = publication.offset, publication.epoch
    return shown


async def channel_history(request: web.Request) -> web.Response:
    """``GET /api/v1/channels/{name}/history?limit=``: the newest kept publications, oldest first."""
    name = _channel(request)
    limit = _query_int(request, "limit", HISTORY_LIMIT_DEFAULT, 1, HISTORY_LIMIT_MOST)
    position, publications = await node_of(request).history.recent(name, limit)
    kept = [_kept(publication) for publication in publications]
    return ok({"channel": name, "offset": position.offset, "epoch": position.epoch, "publications": kept})


async def list_nodes(request: web.Request) -> web.Response:
    """``GET /api/v1/nodes``: the live nodes of the cluster (the node registry's heartbeats; the
    answering node's own figures are current)."""
    try:
        nodes = await node_of(request).membership.nodes()
    except errors.UnavailableError:
        raise
    except Exception as exc:  # a registry that raises its store's own errors (Redis down): still a 503
        log.warning("the node registry cannot be read: %r", exc)
        raise errors.UnavailableError(f"the node registry cannot be reached: {exc}") from exc
    return ok({"nodes": dict(sorted(nodes.items())), "count": len(nodes)})
