"""What clients ask for and what the server answers, whatever the dialect.

A dialect's codec (``native.py``, later ``pusher.py``) parses its text frames into the commands
below and encodes the replies; the session (:mod:`websocket_realtime_engine.session`) carries the
commands out. Nothing here knows a wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websocket_realtime_engine.errors import CloseReason, RealtimeError
from websocket_realtime_engine.publication import Publication, StreamPosition

RequestId = int | str | None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Join a channel; ``since`` asks for the publications missed after that position."""

    channel: str
    auth: str | None = None
    channel_data: str | None = None
    id: RequestId = None
    since: StreamPosition | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Message:
    """A client publishing ``data`` to a channel it is subscribed to."""

    channel: str
    data: Any
    echo: bool = False
    id: RequestId = None


@dataclass(frozen=True, slots=True)
class Presence:
    """Join a presence channel and be answered with its members."""

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


Command = Subscribe | Unsubscribe | Message | Presence | Signin | Ping


# -- replies ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A subscription is live.

    :param members: the presence channel's members (``{"members": [...], "count": n}``), else ``None``.
    :param position: the channel's position when the subscription went live.
    :param recovered: for a ``since`` subscribe, whether ``publications`` are exactly what was
        missed (``False``: some are lost, reload the state); ``None`` without ``since``.
    :param publications: what was missed, oldest first, to send right after the reply.
    :param as_presence: answer as the native ``presence`` request does.
    """

    channel: str
    members: dict[str, Any] | None
    position: StreamPosition
    recovered: bool | None = None
    publications: list[Publication] = field(default_factory=list)
    as_presence: bool = False


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    channel: str


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """A client message was published."""

    channel: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    member: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pong:
    pass


Reply = Subscribed | Unsubscribed | Acknowledged | SignedIn | Pong | None


# -- errors and dialects ---------------------------------------------------------------------------


class FrameError(RealtimeError):
    """A request could not be parsed; wraps the client-facing error with what was read of it."""

    def __init__(self, error: RealtimeError, request_id: RequestId = None, channel: str | None = None) -> None:
        super().__init__(error.message, code=error.code)
        self.name = error.name
        self.request_id = request_id
        self.channel = channel


@dataclass(frozen=True)
class Dialect:
    """A wire protocol's codec, as the session uses it: pure functions, no I/O.

    :param parse: one client text message to a command; raises :class:`FrameError`.
    :param encode_reply: a reply and the request's id to text, or ``None`` for no reply.
    :param encode_error: an error, the request's id and channel to text.
    :param encode_publication: a publication to text (the hub calls it once per publication).
    :param connected: the first message of a connection, from its id and the heartbeat.
    :param close_code: the close code for a reason the engine gives.
    """

    name: str
    parse: Callable[[str | bytes], Command]
    encode_reply: Callable[[Reply, RequestId], bytes | None]
    encode_error: Callable[[RealtimeError, RequestId, str | None], bytes]
    encode_publication: Callable[[Publication], bytes]
    connected: Callable[[str, float], bytes]
    close_code: Callable[[CloseReason], int]
