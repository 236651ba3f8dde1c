"""In-process cluster state. With this store you can only run a single node.

The connections live in this process: only this node's are listed, and they are lost when it
stops. No method awaits anything, so on one event loop every call is atomic: a channel is occupied
and vacated once, as the Redis store decides it for a cluster.
"""

from __future__ import annotations

import bisect

from websocket_realtime_engine.registry.cluster import ConnectionPage, ConnectionRecord


class MemoryClusterState:
    """connection id → its record; channel → its subscribers; node → the connections it owns."""

    def __init__(self) -> None:
        self._connections: dict[str, ConnectionRecord] = {}
        self._subscribers: dict[str, set[str]] = {}
        self._by_node: dict[str, set[str]] = {}

    def opened(self, node_id: str, connection_id: str, connected_at: float, remote: str) -> None:
        """Record a new connection owned by ``node_id``."""
        self._connections[connection_id] = ConnectionRecord(connection_id, node_id, connected_at, remote)
        self._by_node.setdefault(node_id, set()).add(connection_id)

    def signed_in(self, connection_id: str, user_id: str) -> None:
        """Record the connection's signed-in user."""
        record = self._connections.get(connection_id)
        if record is not None:
            record.user_id = user_id

    async def subscribed(self, connection_id: str, channel: str, member_id: str | None = None) -> bool:
        """Record a subscription; ``True`` when it is the channel's first subscriber (occupied)."""
        record = self._connections.get(connection_id)
        if record is None:
            return False
        record.channels[channel] = member_id
        subscribers = self._subscribers.setdefault(channel, set())
        subscribers.add(connection_id)
        return len(subscribers) == 1

    async def unsubscribed(self, connection_id: str, channel: str) -> bool:
        """Forget a subscription; ``True`` when it was the channel's last (vacated)."""
        record = self._connections.get(connection_id)
        if record is None or channel not in record.channels:
            return False
        del record.channels[channel]
        subscribers = self._subscribers[channel]
        subscribers.discard(connection_id)
        if subscribers:
            return False
        del self._subscribers[channel]
        return True

    async def closed(self, connection_id: str) -> list[str]:
        """Forget a connection and its subscriptions; the channels it was the last subscriber of."""
        record = self._connections.get(connection_id)
        if record is None:
            return []
        vacated = [channel for channel in list(record.channels) if await self.unsubscribed(connection_id, channel)]
        del self._connections[connection_id]
        owned = self._by_node[record.node_id]
        owned.discard(connection_id)
        if not owned:
            del self._by_node[record.node_id]
        return vacated

    async def remove_node(self, node_id: str) -> list[str]:
        """Forget every connection ``node_id`` owns; the channels vacated by it."""
        vacated: list[str] = []
        for connection_id in list(self._by_node.get(node_id, ())):
            vacated.extend(await self.closed(connection_id))
        return vacated

    async def connection(self, connection_id: str) -> ConnectionRecord | None:
        """One open connection, or ``None``."""
        return self._connections.get(connection_id)

    async def connections(
        self, channel: str | None = None, user_id: str | None = None, limit: int = 1000, after: str | None = None
    ) -> ConnectionPage:
        """Open connections (subscribed to ``channel``, being ``user_id``): the first ``limit`` by id
        above ``after``, and how many match in all (sorted on each call: one node's connections)."""
        ids = self._subscribers.get(channel, set()) if channel is not None else self._connections.keys()
        records = (self._connections[connection_id] for connection_id in sorted(ids))
        selected = [record for record in records if user_id is None or record.is_user(user_id)]
        start = 0 if after is None else bisect.bisect_right([record.id for record in selected], after)
        page = selected[start : start + limit]
        more = start + limit < len(selected)
        return ConnectionPage(page, len(selected), page[-1].id if more and page else None)

    async def channels(self) -> dict[str, int]:
        """Every occupied channel: its name to its subscriber count."""
        return {channel: len(subscribers) for channel, subscribers in self._subscribers.items()}

    async def count(self, channel: str) -> int:
        """How many subscriptions the channel has."""
        return len(self._subscribers.get(channel, ()))
