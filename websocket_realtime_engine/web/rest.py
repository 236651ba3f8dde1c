"""REST API v1: thin handlers that parse, call one node method and serialise.

Errors are ``{"error": {"code", "message"}}`` with the HTTP status (see openapi.yaml). Every route
but ``/api/v1/openapi.yaml`` and the authenticate routes needs ``Authorization: Bearer <api key>``;
the authenticate routes also take a shop session (the host says who the user is).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from marshmallow import Schema, ValidationError

from websocket_realtime_engine import errors
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.protocol.channels import ChannelType, check_name
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.schemas import BroadcastSchema

log = logging.getLogger("realtime.rest")
OPENAPI = Path(__file__).with_name("openapi.yaml")
PUBLIC_PATHS = frozenset({"/api/v1/openapi.yaml"})
SESSION_PATHS = frozenset({"/api/v1/authenticate", "/api/v1/authenticate/user"})
MAX_CURSOR = 64  # characters of the connection list's ``after`` (connection ids are about 20)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# built once per application: constructing a marshmallow schema per request cost ~40 us of ~150
BROADCAST_SCHEMA_KEY = web.AppKey("realtime.broadcast_schema", BroadcastSchema)


class ApiError(Exception):
    """An HTTP error with a machine code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status, dumps=_dumps)


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


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API sub-application's middleware: check the API key, turn every error into the JSON error form."""
    try:
        if request.path not in PUBLIC_PATHS and request.path not in SESSION_PATHS and not has_api_key(request):
            raise ApiError(401, "unauthorized", "missing or wrong API key (Authorization: Bearer <key>)")
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except errors.UnavailableError as exc:
        return error_response(503, "unavailable", exc.message)
    except (errors.ProtocolError, errors.ChannelError) as exc:
        return error_response(400, "invalid_request", exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason)


async def read_json(request: web.Request) -> Any:
    """The body as JSON, refused with 413 past ``REALTIME_REST_MAX_BODY_BYTES``."""
    limit = node_of(request).settings.rest_max_body_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"the body is larger than {limit} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None


def load_body(schema: Schema, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    try:
        loaded: dict[str, Any] = schema.load(value)
        return loaded
    except ValidationError as exc:
        field, messages = next(iter(exc.normalized_messages().items()))
        message = messages[0] if isinstance(messages, list) else messages
        raise ApiError(400, "invalid_request", f"{field}: {message}") from None


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
    """``GET /api/v1/status``: this node's counters."""
    return ok(node_of(request).status())


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
