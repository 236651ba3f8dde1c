"""The native dialect at ``/socket``: JSON text frames, each an object with an ``event`` field.

``parse`` turns one client text frame into a request object or raises a
:class:`~websocket_realtime_engine.errors.RealtimeError` carrying the request's ``id`` and
``channel`` where they could be read. ``encode`` and ``websocket_text_frame`` build what the
server sends. docs/protocol.md shows every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from websocket_realtime_engine.errors import ProtocolError, RealtimeError, UnknownEventError
from websocket_realtime_engine.protocol.channels import check_name

MAX_ID_LENGTH = 64
RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    channel: str
    auth: str | None = None
    channel_data: str | None = None
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Message:
    channel: str
    data: Any
    echo: bool = False
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Presence:
    channel: str
    auth: str | None = None
    channel_data: str | None = None
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Signin:
    auth: str
    user_data: str
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Ping:
    id: RequestId = None


Request = Subscribe | Unsubscribe | Message | Presence | Signin | Ping


class FrameError(RealtimeError):
    """A request could not be parsed; wraps the client-facing error with what was read of it."""

    def __init__(self, error: RealtimeError, request_id: RequestId = None, channel: str | None = None) -> None:
        super().__init__(error.message, code=error.code)
        self.name = error.name
        self.request_id = request_id
        self.channel = channel


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


CLIENT_EVENTS = frozenset({"subscribe", "unsubscribe", "message", "presence", "signin", "ping"})


def _build(event: str, frame: dict[str, Any], request_id: RequestId) -> Request:
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
        return Subscribe(channel, _optional_string(frame, "auth"), _optional_string(frame, "channel_data"), request_id)
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


def parse(text: str | bytes) -> Request:
    """Parse one client text frame into a request, or raise :class:`FrameError`."""
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(ProtocolError("frame is not valid JSON")) from None
    if not isinstance(frame, dict):
        raise FrameError(ProtocolError("frame must be a JSON object"))
    request_id: RequestId = None
    channel = frame.get("channel") if isinstance(frame.get("channel"), str) else None
    try:
        request_id = _request_id(frame)
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


def websocket_text_frame(payload: bytes) -> bytes:
    """An unmasked, final WebSocket text frame (RFC 6455 §5.2) around ``payload``.

    Built once per publication and written as it is to every subscriber's transport; aiohttp has
    no public API for a prebuilt frame.
    """
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 65536:
        return bytes((0x81, 126)) + length.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + length.to_bytes(8, "big") + payload
