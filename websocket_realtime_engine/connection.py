"""One client connection as the engine sees it: identity, subscriptions, state and its output buffer.

The web layer owns the socket. The engine writes bytes straight to ``transport`` through
:class:`~websocket_realtime_engine.hub.Hub`, encoded by the connection's :class:`Wire` (its dialect
and framing), and asks ``closer`` to end the connection with a reason the dialect turns into a code.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable, Coroutine
from typing import Any

from websocket_realtime_engine.errors import CloseReason
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.ratelimit import FloodGuard, TokenBucket

PRESENCE_BURST = 10  # presence joins and member-list reads a connection may make at once

Closer = Callable[[CloseReason], Coroutine[Any, Any, None]]


class Wire:
    """How one kind of connection writes: its dialect's publication encoding inside its framing.

    One instance per (dialect, framing) per process: the hub encodes each publication once per
    ``Wire`` present among a channel's subscribers, and compares them by identity. (An SSE stream has
    one of its own, ``web/sse.py``'s ``StreamWire``: its events' ids hold that stream's positions.)
    """

    __slots__ = ("name", "encode_publication", "frame")

    def __init__(self, name: str, encode_publication: Callable[[Publication], bytes], frame: Callable[[bytes], bytes]):
        self.name = name
        self.encode_publication = encode_publication
        self.frame = frame

    def publication(self, publication: Publication) -> bytes:
        """The framed bytes of a publication, as every subscriber of this kind receives it."""
        return self.frame(self.encode_publication(publication))

    def __repr__(self) -> str:
        return f"<Wire {self.name}>"


class State(enum.Enum):
    """A connection's life: open, then closing (nothing more is written or handled), then closed."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


MAX_VOUCHED = 200  # channels signed for a connection by users' sessions that it remembers


class Connection:
    """A connected client. ``out`` is its pending output, written once per loop iteration."""

    __slots__ = (
        "id",
        "transport",
        "closer",
        "wire",
        "out",
        "channels",
        "presence",
        "member_info",
        "user_id",
        "user_info",
        "connected_at",
        "remote",
        "state",
        "message_bucket",
        "flood",
        "presence_bucket",
        "vouched",
        "__weakref__",
    )

    def __init__(
        self,
        connection_id: str,
        transport: asyncio.Transport,
        closer: Closer,
        wire: Wire,
        remote: str = "",
        messages_per_second: float = 10.0,
        frames_per_second: float = 100.0,
        flood_close_after: float = 10.0,
        presence_per_minute: float = 60.0,
    ) -> None:
        self.id = connection_id
        self.transport = transport
        self.closer = closer
        self.wire = wire
        # bytearray, not list: not tracked by the cyclic GC (see shared/bench/README.md)
        self.out: bytearray | None = None
        self.channels: set[str] = set()
        self.presence: dict[str, str] = {}  # presence channel -> user id this connection joined as
        self.member_info: dict[str, dict[str, Any] | None] = {}  # presence channel -> the info it joined with
        self.user_id: str | None = None
        self.user_info: dict[str, Any] | None = None
        self.connected_at = time.time()
        self.remote = remote
        self.state = State.OPEN
        self.message_bucket = TokenBucket(messages_per_second)
        self.flood = FloodGuard(frames_per_second, flood_close_after)  # every inbound frame passes it
        # presence joins and member-list reads: each sends a member list, and a join tells every member
        self.presence_bucket = TokenBucket(presence_per_minute / 60, PRESENCE_BURST)
        # users whose shop sessions got this connection's private channels signed: channel -> user id,
        # a user's once the connection subscribed with it (None until the first: most have none)
        self.vouched: dict[str, tuple[str, bool]] | None = None

    @property
    def is_open(self) -> bool:
        return self.state is State.OPEN

    def is_user(self, user_id: str) -> bool:
        """Whether the connection is this user: signed in as them, a presence member as them, or
        subscribed to a channel their shop session got signed for it (:meth:`vouch`)."""
        if self.user_id == user_id or user_id in self.presence.values():
            return True
        return self.vouched is not None and any(user == user_id and joined for user, joined in self.vouched.values())

    def vouch(self, channel: str, user_id: str, joined: bool = False) -> None:
        """``user_id``'s session got ``channel`` signed for this connection (``joined``: and it
        subscribed with it). Bounded by the channels a connection may have."""
        if self.vouched is None:
            self.vouched = {}
        if channel in self.vouched or len(self.vouched) < MAX_VOUCHED:
            self.vouched[channel] = (user_id, joined or self.vouched.get(channel, ("", False))[1])

    def describe(self, node_id: str) -> dict[str, Any]:
        """What the REST API shows of this connection."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "channels": sorted(self.channels),
            "connected_at": self.connected_at,
            "node": node_id,
        }

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.state.value} user={self.user_id!r} channels={len(self.channels)}>"
