"""The presence interface. Members are users; a user with several connections counts once.

Every connection's membership is owned by the node it is on, so that when a node dies without a
goodbye its members can be removed by another (:meth:`PresenceStore.remove_node`).
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

UserInfo = dict[str, Any] | None


class Joined(enum.Enum):
    """What :meth:`PresenceStore.join` did."""

    FIRST = "first"  # the user's first connection on the channel: tell the subscribers
    AGAIN = "again"  # the user was already a member through another connection
    FULL = "full"  # the channel has ``limit`` members and the user is not one: nothing changed


class PresenceStore(Protocol):
    """Members of presence channels, keyed by user id, each held by one or more connections."""

    async def join(
        self, channel: str, connection_id: str, user_id: str, user_info: UserInfo, node_id: str, limit: int
    ) -> Joined:
        """Add a connection as ``user_id`` in one atomic step (check of the limit included)."""

    async def leave(self, channel: str, connection_id: str) -> str | None:
        """Remove a connection; the user id when it was that user's last connection, else ``None``."""

    async def remove_node(self, node_id: str) -> list[tuple[str, str]]:
        """Remove every connection ``node_id`` owns; the ``(channel, user_id)`` of users who left
        by it (those with no connection left on the channel), for ``member_removed``."""

    async def members(self, channel: str) -> dict[str, UserInfo]:
        """Every member of the channel: user id to user info (the first connection's)."""

    async def count(self, channel: str) -> int:
        """How many users (not connections) are on the channel."""
