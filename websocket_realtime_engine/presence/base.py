"""The presence interface. Members are users; a user with several connections counts once."""

from __future__ import annotations

from typing import Any, Protocol


class PresenceStore(Protocol):
    """Members of presence channels, keyed by user id, each held by one or more connections."""

    async def join(self, channel: str, connection_id: str, user_id: str, user_info: dict[str, Any] | None) -> bool:
        """Add a connection as ``user_id``; ``True`` when it is that user's first on the channel."""

    async def leave(self, channel: str, connection_id: str) -> str | None:
        """Remove a connection; the user id when it was that user's last connection, else ``None``."""

    async def members(self, channel: str) -> dict[str, dict[str, Any] | None]:
        """Every member of the channel: user id to user info."""

    async def is_member(self, channel: str, user_id: str) -> bool:
        """Whether ``user_id`` is on the channel."""

    async def count(self, channel: str) -> int:
        """How many users (not connections) are on the channel."""
