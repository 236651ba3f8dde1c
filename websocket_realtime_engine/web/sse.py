"""The HTTP fallback over HTTP: ``GET /api/v1/stream`` (Server-Sent Events) and its control calls
``POST /api/v1/stream/{id}/{subscribe|unsubscribe|publish|presence|signin|ping}``; thin handlers around
:mod:`~websocket_realtime_engine.web.sse_stream`. docs/http-fallback.md is the wire.

No API key and no cookie: like ``/socket``, for pages of ``REALTIME_ALLOWED_ORIGINS`` (CORS without
credentials); a control call is proven by the stream's token. The routes sit on the application
beside the ``/api/v1`` sub-application, whose middleware (the API key) does not wrap them.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web

from websocket_realtime_engine import errors
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.origins import OriginMatch, parse_patterns
from websocket_realtime_engine.protocol import jsonlimits, sse
from websocket_realtime_engine.protocol.channels import ChannelType, check_name
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.rest import client_address
from websocket_realtime_engine.web.sse_stream import ACTIONS, CALL_KIND, Answer, EventStreamTransport, Streams
from websocket_realtime_engine.web.throttle import THROTTLE_KEY

STREAM_PATH = "/api/v1/stream"
STREAM_HEADERS = {
    hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
    hdrs.CACHE_CONTROL: "no-store",  # the first event carries the stream's token: never kept by a cache
    "X-Accel-Buffering": "no",  # nginx passes each event on at once
}
PREFLIGHT_MAX_AGE = "600"
STREAMS_KEY = web.AppKey("realtime.streams", Streams)


def add_stream_routes(app: web.Application, node: Node) -> None:
    """The stream, its control calls and their preflights on ``app`` (beside the ``/api/v1`` sub-application)."""
    streams = app[STREAMS_KEY] = Streams(node)
    node.membership.call_handlers[CALL_KIND] = streams.answer
    app.router.add_get(STREAM_PATH, stream_handler)
    app.router.add_post(STREAM_PATH + "/{id}/{action}", control_handler)
    app.router.add_route(hdrs.METH_OPTIONS, STREAM_PATH, preflight_handler)
    app.router.add_route(hdrs.METH_OPTIONS, STREAM_PATH + "/{id}/{action}", preflight_handler)


async def stream_handler(request: web.Request) -> web.StreamResponse:
    """``GET /api/v1/stream``: one stream for its whole life."""
    node = request.app[NODE_KEY]
    refusal = _origin_refusal(request) or _throttled(request)
    if refusal is not None:
        return refusal
    last_event_id = (request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "").strip()
    try:
        channels = _query_channels(request, node)
        carried = sse.parse_event_id(last_event_id) if last_event_id else {}
    except errors.RealtimeError as exc:
        return respond(request, Answer.error(400, exc.name, exc.message))
    response = web.StreamResponse(headers=STREAM_HEADERS)
    allow_origin(request, response.headers)
    response.force_close()  # nothing follows a stream on its connection
    await response.prepare(request)
    await response.write(b": stream\n\n")  # the headers go out with it, through aiohttp's own framing
    if request.transport is None or request.transport.is_closing():
        return response
    chunked = response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"
    transport = EventStreamTransport(request.transport, chunked)
    await request.app[STREAMS_KEY].serve(transport, channels, carried, bool(last_event_id), client_address(request))
    return response


async def control_handler(request: web.Request) -> web.Response:
    """``POST /api/v1/stream/{id}/{action}``: one request of a stream's client."""
    refusal = _origin_refusal(request)
    if refusal is not None:
        return refusal
    action = request.match_info["action"]
    if action not in ACTIONS:
        message = f"no control call {action[:40]!r}: {', '.join(ACTIONS)}"
        return respond(request, Answer.error(404, "not_found", message))
    node = request.app[NODE_KEY]
    try:
        frame = await _read_frame(request, node.settings.max_frame_bytes, node.settings.max_json_depth)
    except web.HTTPRequestEntityTooLarge:
        message = f"the body is larger than {node.settings.max_frame_bytes} bytes"
        return respond(request, Answer.error(413, "payload_too_large", message))
    except errors.RealtimeError as exc:
        code = "invalid_json" if isinstance(exc, jsonlimits.InvalidJsonError) else exc.name
        return respond(request, Answer.error(400, code, exc.message))
    token = frame.pop("token", None)
    if not isinstance(token, str):
        return respond(request, Answer.error(403, "invalid_token", "token (from the connected event) is required"))
    answer = await request.app[STREAMS_KEY].call(request.match_info["id"], token, action, frame)
    return respond(request, answer)


async def preflight_handler(request: web.Request) -> web.Response:
    """``OPTIONS`` of a stream route: what a page of an allowed origin may send."""
    refusal = _origin_refusal(request)
    if refusal is not None:
        return refusal
    response = web.Response(status=204)
    allow_origin(request, response.headers)
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, POST"
    response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = "Content-Type, Last-Event-ID"
    response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = PREFLIGHT_MAX_AGE
    return response


def respond(request: web.Request, answer: Answer) -> web.Response:
    """An answer as JSON over HTTP, with the CORS of the request's page."""
    response = web.Response(status=answer.status, body=answer.body, content_type="application/json")
    if answer.status == 429:
        response.headers[hdrs.RETRY_AFTER] = "1"
    allow_origin(request, response.headers)
    return response


def _origin_match(request: web.Request) -> OriginMatch | None:
    origin = request.headers.get(hdrs.ORIGIN)
    return None if origin is None else parse_patterns(request.app[NODE_KEY].settings.allowed_origins).match(origin)


def allow_origin(request: web.Request, headers: Any) -> None:
    """CORS for a page of an allowed origin (``REALTIME_ALLOWED_ORIGINS``); never with credentials."""
    headers[hdrs.VARY] = hdrs.ORIGIN
    match = _origin_match(request)
    if match is not None:
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = "*" if match is OriginMatch.ANY else request.headers[hdrs.ORIGIN]


def _origin_refusal(request: web.Request) -> web.Response | None:
    """403 ``origin_not_allowed`` for a page the socket would refuse too; ``None`` when allowed."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        if request.app[NODE_KEY].settings.allow_missing_origin:
            return None
        message = "an Origin header is required (REALTIME_ALLOW_MISSING_ORIGIN)"
    elif _origin_match(request) is not None:
        return None
    else:
        message = f"the origin {origin[:200]!r} may not use the stream (REALTIME_ALLOWED_ORIGINS)"
    return respond(request, Answer.error(403, "origin_not_allowed", message))


def _throttled(request: web.Request) -> web.Response | None:
    """Behind a trusted proxy, the stream counts by its client's address (429 over its limits)."""
    try:
        request.app[THROTTLE_KEY].check_forwarded(request, client_address(request))
    except web.HTTPTooManyRequests as exc:
        response = web.Response(status=429, text=exc.text, content_type="application/json", headers=exc.headers)
        allow_origin(request, response.headers)
        return response
    return None


def _query_channels(request: web.Request, node: Node) -> list[str]:
    """The query's ``channels``: public ones, each once, no more than a connection may hold."""
    names = list(dict.fromkeys(name for name in request.query.get("channels", "").split(",") if name))
    limit = node.settings.max_channels_per_connection
    if len(names) > limit:
        raise errors.LimitError(f"at most {limit} channels per connection")
    for name in names:
        check_name(name)
        if node.policy.type_of(name) is not ChannelType.PUBLIC:
            message = f"{name} is {node.policy.type_of(name).value}: subscribe to it with a control call, signed"
            raise errors.ProtocolError(message, code=4000)
    return names


async def _read_frame(request: web.Request, limit: int, max_depth: int) -> dict[str, Any]:
    """A control call's body: a JSON object of at most ``limit`` bytes, whatever its ``Content-Type``."""
    if (request.content_length or 0) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length or 0)
    body = bytearray()
    while chunk := await request.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    frame = jsonlimits.loads(bytes(body), max_depth, "the body")
    if not isinstance(frame, dict):
        raise errors.ProtocolError("the body must be a JSON object")
    return frame
