"""In-process presence. With this store you can only run a single node."""

from __future__ import annotations

from typing import Any


class MemoryPresence:
    """channel → user id → (connections, user info)."""

    def __init__(self) -> None:
        self._users: dict[str, dict[str, tuple[set[str], dict[str, Any] | None]]] = {}
        self._by_connection: dict[tuple[str, str], str] = {}

    async def join(self, channel: str, connection_id: str, user_id: str, user_info: dict[str, Any] | None) -> bool:
        users = self._users.setdefault(channel, {})
        entry = users.get(user_id)
        self._by_connection[(channel, connection_id)] = user_id
        if entry is None:
            users[user_id] = ({connection_id}, user_info)
            return True
        entry[0].add(connection_id)
        return False

    async def leave(self, channel: str, connection_id: str) -> str | None:
        user_id = self._by_connection.pop((channel, connection_id), None)
        users = self._users.get(channel)
        if user_id is None or users is None:
            return None
        connections, _ = users[user_id]
        connections.discard(connection_id)
        if connections:
            return None
        del users[user_id]
        if not users:
            del self._users[channel]
        return user_id

    async def members(self, channel: str) -> dict[str, dict[str, Any] | None]:
        return {user_id: info for user_id, (_, info) in self._users.get(channel, {}).items()}

    async def is_member(self, channel: str, user_id: str) -> bool:
        return user_id in self._users.get(channel, {})

    async def count(self, channel: str) -> int:
        return len(self._users.get(channel, ()))
