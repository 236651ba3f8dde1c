"""One client connection as the engine sees it: identity, subscriptions and its output buffer.

The web layer owns the WebSocket; the engine writes prebuilt frames straight to ``transport``
through :class:`~websocket_realtime_engine.hub.Hub`, and asks ``closer`` to end the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from websocket_realtime_engine.ratelimit import TokenBucket

Closer = Callable[[int, str], Coroutine[Any, Any, None]]


class Connection:
    """A connected client. ``out`` is its pending output, written once per loop iteration."""

    __slots__ = (
        "id",
        "transport",
        "closer",
        "out",
        "channels",
        "presence",
        "user_id",
        "user_info",
        "connected_at",
        "remote",
        "closing",
        "message_bucket",
        "frame_bucket",
        "__weakref__",
    )

    def __init__(
        self,
        connection_id: str,
        transport: asyncio.Transport,
        closer: Closer,
        remote: str = "",
        messages_per_second: float = 10.0,
        frames_per_second: float = 100.0,
    ) -> None:
        self.id = connection_id
        self.transport = transport
        self.closer = closer
        # bytearray, not list: not tracked by the cyclic GC (see shared/bench/README.md)
        self.out: bytearray | None = None
        self.channels: set[str] = set()
        self.presence: dict[str, str] = {}  # presence channel -> user id this connection joined as
        self.user_id: str | None = None
        self.user_info: dict[str, Any] | None = None
        self.connected_at = time.time()
        self.remote = remote
        self.closing = False
        self.message_bucket = TokenBucket(messages_per_second)
        self.frame_bucket = TokenBucket(frames_per_second, frames_per_second * 2)

    def is_user(self, user_id: str) -> bool:
        """Whether the connection is this user: signed in as them, or a presence member as them."""
        return self.user_id == user_id or user_id in self.presence.values()

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
        return f"<Connection {self.id} user={self.user_id!r} channels={len(self.channels)}>"
