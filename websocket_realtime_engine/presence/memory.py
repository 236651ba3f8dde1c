"""In-process presence. With this store you can only run a single node.

The members live in this process: they are not shared with other nodes and are lost when it stops.
No method awaits anything, so on one event loop every call is atomic (a join's check of the limit
included) with no lock.
"""

from __future__ import annotations

from websocket_realtime_engine.presence.base import Joined, UserInfo


class _Holding:
    """How one connection holds its membership of one channel."""

    __slots__ = ("user_id", "node_id")

    def __init__(self, user_id: str, node_id: str) -> None:
        self.user_id = user_id
        self.node_id = node_id


class MemoryPresence:
    """channel → user id → that user's connections (in join order) with their user info."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, dict[str, UserInfo]]] = {}
        self._by_connection: dict[tuple[str, str], _Holding] = {}  # (channel, connection id) → holding
        self._by_node: dict[str, set[tuple[str, str]]] = {}  # node id → its (channel, connection id)

    async def join(
        self, channel: str, connection_id: str, user_id: str, user_info: UserInfo, node_id: str, limit: int
    ) -> Joined:
        """Add a connection as ``user_id`` in one atomic step (check of the limit included).

        A connection holds one membership per channel: joining again as another user replaces it.
        """
        key = (channel, connection_id)
        holding = self._by_connection.get(key)
        if holding is not None and holding.user_id != user_id:
            self._remove(key)
        users = self._users.get(channel) or {}
        connections = users.get(user_id)
        if connections is not None:
            self._hold(key, user_id, node_id)
            connections[connection_id] = user_info
            return Joined.AGAIN
        if len(users) >= limit:
            return Joined.FULL
        self._hold(key, user_id, node_id)
        self._users.setdefault(channel, users)[user_id] = {connection_id: user_info}
        return Joined.FIRST

    async def leave(self, channel: str, connection_id: str) -> str | None:
        """Remove a connection; the user id when it was that user's last connection, else ``None``."""
        return self._remove((channel, connection_id))

    async def remove_node(self, node_id: str) -> list[tuple[str, str]]:
        """Remove every connection ``node_id`` owns; the ``(channel, user_id)`` of users who left
        by it (those with no connection left on the channel), for ``member_removed``."""
        left: list[tuple[str, str]] = []
        for key in list(self._by_node.get(node_id, ())):
            user_id = self._remove(key)
            if user_id is not None:
                left.append((key[0], user_id))
        return left

    async def members(self, channel: str) -> dict[str, UserInfo]:
        """Every member of the channel: user id to user info (the first connection's)."""
        users = self._users.get(channel, {})
        return {user_id: next(iter(connections.values())) for user_id, connections in users.items()}

    async def count(self, channel: str) -> int:
        """How many users (not connections) are on the channel."""
        return len(self._users.get(channel, ()))

    def _hold(self, key: tuple[str, str], user_id: str, node_id: str) -> None:
        """Record that the connection ``key`` holds ``user_id``'s membership, owned by ``node_id``."""
        holding = self._by_connection.get(key)
        if holding is not None:
            if holding.node_id == node_id:
                return
            self._release(key, holding.node_id)
        self._by_connection[key] = _Holding(user_id, node_id)
        self._by_node.setdefault(node_id, set()).add(key)

    def _remove(self, key: tuple[str, str]) -> str | None:
        """Remove the connection ``key``; its user id when it was that user's last connection."""
        holding = self._by_connection.pop(key, None)
        if holding is None:
            return None
        self._release(key, holding.node_id)
        channel, connection_id = key
        users = self._users[channel]
        connections = users[holding.user_id]
        del connections[connection_id]
        if connections:
            return None
        del users[holding.user_id]
        if not users:
            del self._users[channel]
        return holding.user_id

    def _release(self, key: tuple[str, str], node_id: str) -> None:
        """Forget that ``node_id`` owns the connection ``key``."""
        keys = self._by_node[node_id]
        keys.discard(key)
        if not keys:
            del self._by_node[node_id]
