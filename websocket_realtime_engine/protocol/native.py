"""The native dialect at ``/socket``: JSON text frames, each an object with an ``event`` field.

A pure codec: ``parse`` turns one client text frame into a command
(:mod:`~websocket_realtime_engine.protocol.commands`) or raises :class:`FrameError` carrying the
request's ``id`` and ``channel`` where they could be read; ``encode_reply``,
``encode_publication`` and ``error_frame`` build the JSON text the server sends (the connection's
framing wraps it); ``close_code`` maps the engine's close reasons to this dialect's close codes.
docs/protocol.md shows every frame.

Close codes (the server ends the connection):

======  =========================================================================================
1007    a text frame that is not valid UTF-8 (RFC 6455 fails the connection; aiohttp closes it)
1009    frame larger than ``REALTIME_MAX_FRAME_BYTES`` (WebSocket "message too big")
1006    (no close frame) the peer stopped answering WebSocket pings for ``REALTIME_HEARTBEAT`` seconds
1012    the node is shutting down: reconnect (to another node)
4009    disconnected through the REST API: do not reconnect without the user's action
4100    the node is at ``REALTIME_MAX_CONNECTIONS``: reconnect after a back-off
4101    slow consumer: the write buffer passed ``REALTIME_WRITE_BUFFER_LIMIT``; reconnect and recover
======  =========================================================================================
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache, partial
from typing import Any

import orjson

from websocket_realtime_engine.errors import CloseReason, ProtocolError, RealtimeError, UnknownEventError
from websocket_realtime_engine.protocol import jsonlimits
from websocket_realtime_engine.protocol.channels import check_name
from websocket_realtime_engine.protocol.commands import (
    Acknowledged,
    Command,
    Dialect,
    FrameError,
    Message,
    Ping,
    Pong,
    Presence,
    Reply,
    RequestId,
    SignedIn,
    Signin,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)
from websocket_realtime_engine.publication import Publication, StreamPosition

PROTOCOL_VERSION = 2  # 2: offsets, epochs and recovery
MAX_ID_LENGTH = 64
MAX_EPOCH_LENGTH = 64
MAX_OFFSET = 2**63 - 1

CLOSE_CODES = {
    CloseReason.SHUTDOWN: 1012,
    CloseReason.DISCONNECTED: 4009,
    CloseReason.OVER_CAPACITY: 4100,
    CloseReason.SLOW_CONSUMER: 4101,
    CloseReason.FLOODING: 4102,
}


def close_code(reason: CloseReason) -> int:
    """This dialect's close code for a reason the engine gives."""
    return CLOSE_CODES[reason]


def _optional_string(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(f"{key} must be a string")
    return value


def _required_string(frame: dict[str, Any], key: str) -> str:
    value = _optional_string(frame, key)
    if value is None:
        raise ProtocolError(f"{key} is required")
    return value


def _request_id(frame: dict[str, Any]) -> RequestId:
    value = frame.get("id")
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or (isinstance(value, str) and len(value) > MAX_ID_LENGTH)
    ):
        raise ProtocolError(f"id must be an integer or a string of at most {MAX_ID_LENGTH} characters")
    return value


def _since(value: Any) -> StreamPosition | None:
    """``"since": {"offset": N, "epoch": "..."}``: the last position the client has seen."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ProtocolError('since must be an object: {"offset": N, "epoch": "..."}')
    offset, epoch = value.get("offset"), value.get("epoch")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise ProtocolError("since.offset must be a non-negative integer")
    if not isinstance(epoch, str) or len(epoch) > MAX_EPOCH_LENGTH:
        raise ProtocolError(f"since.epoch must be a string of at most {MAX_EPOCH_LENGTH} characters")
    return StreamPosition(offset, epoch)


CLIENT_EVENTS = frozenset({"subscribe", "unsubscribe", "message", "presence", "signin", "ping"})


def _build(event: str, frame: dict[str, Any], request_id: RequestId) -> Command:
    if event not in CLIENT_EVENTS:
        raise UnknownEventError(f"unknown event {event[:64]!r}")
    if event == "ping":
        return Ping(id=request_id)
    if event == "signin":
        return Signin(
            auth=_required_string(frame, "auth"), user_data=_required_string(frame, "user_data"), id=request_id
        )
    channel = check_name(frame.get("channel")) if "channel" in frame else None
    if channel is None:
        raise ProtocolError("channel is required")
    if event == "subscribe":
        return Subscribe(
            channel,
            _optional_string(frame, "auth"),
            _optional_string(frame, "channel_data"),
            request_id,
            _since(frame.get("since")),
        )
    if event == "unsubscribe":
        return Unsubscribe(channel, request_id)
    if event == "presence":
        return Presence(channel, _optional_string(frame, "auth"), _optional_string(frame, "channel_data"), request_id)
    if "data" not in frame:  # message
        raise ProtocolError("data is required")
    echo = frame.get("echo", False)
    if not isinstance(echo, bool):
        raise ProtocolError("echo must be true or false")
    return Message(channel, frame["data"], echo, request_id)


def parse(text: str | bytes, max_depth: int = jsonlimits.DEFAULT_MAX_DEPTH) -> Command:
    """Parse one client text frame into a command, or raise :class:`FrameError`.

    The frame may nest ``max_depth`` levels at most (its ``data`` one less) and hold no integer
    beyond 64 bits (:mod:`~websocket_realtime_engine.protocol.jsonlimits`).
    """
    try:
        frame = jsonlimits.decode(text, max_depth)
    except RealtimeError as exc:
        raise FrameError(exc) from None
    if not isinstance(frame, dict):
        raise FrameError(ProtocolError("frame must be a JSON object"))
    request_id: RequestId = None
    channel = frame.get("channel") if isinstance(frame.get("channel"), str) else None
    try:
        request_id = _request_id(frame)
        jsonlimits.check(frame, text, max_depth)
        event = frame.get("event")
        if not isinstance(event, str):
            raise ProtocolError("event is required and must be a string")
        return _build(event, frame, request_id)
    except RealtimeError as exc:
        raise FrameError(exc, request_id, channel) from None


# -- server frames ---------------------------------------------------------------------------------


def encode(
    event: str, channel: str | None = None, data: Any = None, request_id: RequestId = None, **extra: Any
) -> bytes:
    """One server frame as JSON bytes; absent fields are left out."""
    frame: dict[str, Any] = {"event": event}
    if channel is not None:
        frame["channel"] = channel
    if request_id is not None:
        frame["id"] = request_id
    if data is not None:
        frame["data"] = data
    frame.update(extra)
    try:
        return orjson.dumps(frame)
    except orjson.JSONEncodeError as exc:  # e.g. nesting deeper than orjson writes (254)
        raise ProtocolError(f"data cannot be sent as JSON: {exc}") from None


def error_frame(error: RealtimeError, request_id: RequestId = None, channel: str | None = None) -> bytes:
    """``{"event":"error","data":{"code","message"}}`` with the request's id and channel."""
    return encode("error", channel, {"code": error.code, "message": error.message}, request_id)


def _position(frame: dict[str, Any], position: StreamPosition) -> None:
    if position.offset or position.epoch:
        frame["offset"] = position.offset
        frame["epoch"] = position.epoch


def encode_reply(reply: Reply, request_id: RequestId = None) -> bytes | None:
    """The frame answering a command, or ``None`` when there is nothing to say."""
    match reply:
        case Subscribed(channel, members, position, recovered, _, as_presence):
            frame: dict[str, Any] = {"event": "presence" if as_presence else "subscribed", "channel": channel}
            if request_id is not None:
                frame["id"] = request_id
            frame["data"] = members if members is not None else {}
            _position(frame, position)
            if recovered is not None:
                frame["recovered"] = recovered
            return orjson.dumps(frame)
        case Unsubscribed(channel):
            return encode("unsubscribed", channel, None, request_id)
        case Acknowledged(channel):
            return encode("ack", channel, None, request_id) if request_id is not None else None
        case SignedIn(member):
            return encode("signed_in", None, member, request_id)
        case Pong():
            return encode("pong", None, None, request_id)
    return None


def encode_publication(publication: Publication) -> bytes:
    """``{"event","channel","data"[,"user_id"][,"offset","epoch"]}``; ``data`` is embedded as it was
    encoded by the publisher, never parsed again."""
    frame: dict[str, Any] = {"event": publication.event, "channel": publication.channel}
    if publication.data != b"null":  # ``data`` is left out when it is null, as in every frame
        frame["data"] = orjson.Fragment(publication.data)
    if publication.user_id is not None:
        frame["user_id"] = publication.user_id
    if publication.offset:
        frame["offset"] = publication.offset
        frame["epoch"] = publication.epoch
    return orjson.dumps(frame)


def connected_frame(connection_id: str, heartbeat: float) -> bytes:
    """The first frame of every connection."""
    return encode(
        "connected", None, {"connection_id": connection_id, "heartbeat": heartbeat, "protocol": PROTOCOL_VERSION}
    )


DIALECT = Dialect(
    name="native",
    parse=parse,
    encode_reply=encode_reply,
    encode_error=error_frame,
    encode_publication=encode_publication,
    connected=connected_frame,
    close_code=close_code,
)


@cache
def dialect(max_json_depth: int = jsonlimits.DEFAULT_MAX_DEPTH) -> Dialect:
    """The native dialect reading frames of at most ``max_json_depth`` levels (``REALTIME_MAX_JSON_DEPTH``);
    :data:`DIALECT` reads the default depth."""
    if max_json_depth == jsonlimits.DEFAULT_MAX_DEPTH:
        return DIALECT
    return replace(DIALECT, parse=partial(parse, max_depth=max_json_depth))
