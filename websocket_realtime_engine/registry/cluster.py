"""The cluster state interface: every node's connections and subscriptions, in one shared store.

The REST API answers the connection list, the channel list and subscriber counts from it, on any
node, without asking the others; the owner of a connection is found here so that a disconnect
requested on one node reaches the node that holds the socket. It decides, once for the cluster,
when a channel gets its first subscriber (occupied) and loses its last (vacated).

Every connection is owned by the node it is on, so that when a node dies without a goodbye the
survivor that claims it (:meth:`NodeRegistry.claim_dead`) removes what it owned
(:meth:`ClusterState.remove_node`).

Cost: :meth:`ClusterState.opened` and :meth:`ClusterState.signed_in` return at once (recorded in
call order, before any later call of the same node); every other change is one call to the store.
Nothing here is on the publish or delivery path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class ConnectionRecord:
    """One connection as the cluster knows it.

    ``user_id`` is the signed-in user; ``channels`` maps each channel to the user id the
    connection is a presence member as there (``None`` on other channels).
    """

    id: str
    node_id: str
    connected_at: float
    remote: str = ""
    user_id: str | None = None
    channels: dict[str, str | None] = field(default_factory=dict)

    def is_user(self, user_id: str) -> bool:
        """Whether the connection is this user: signed in as them, or a presence member as them."""
        return self.user_id == user_id or user_id in self.channels.values()

    def describe(self) -> dict[str, Any]:
        """What the REST API shows of this connection (as :meth:`Connection.describe`)."""
        return {
            "id": self.id,
            "user_id": self.user_id,
            "channels": sorted(self.channels),
            "connected_at": self.connected_at,
            "node": self.node_id,
        }


@dataclass
class ConnectionPage:
    """Some connections matching a query (the first ``limit`` by id after a cursor), how many match
    in all, and the cursor of the next page (``None`` on the last)."""

    connections: list[ConnectionRecord]
    count: int
    next: str | None = None


class ClusterState(Protocol):
    """Connections, their subscriptions and channel counts of every node; ``tests/backends`` holds
    the conformance suite."""

    def opened(self, node_id: str, connection_id: str, connected_at: float, remote: str) -> None:
        """Record a new connection owned by ``node_id``; returns at once (recorded before any later call)."""

    def signed_in(self, connection_id: str, user_id: str) -> None:
        """Record the connection's signed-in user; returns at once (recorded before any later call)."""

    async def subscribed(self, connection_id: str, channel: str, member_id: str | None = None) -> bool:
        """Record a subscription (``member_id``: the presence user it joined as); ``True`` when it is
        the channel's first subscriber in the cluster (the channel is occupied). Nothing is recorded
        for a connection that is not open (never opened, or closed)."""

    async def unsubscribed(self, connection_id: str, channel: str) -> bool:
        """Forget a subscription; ``True`` when it was the channel's last in the cluster (vacated)."""

    async def closed(self, connection_id: str) -> list[str]:
        """Forget a connection and its subscriptions; the channels it was the last subscriber of."""

    async def remove_node(self, node_id: str) -> list[str]:
        """Forget every connection ``node_id`` owns; the channels vacated by it."""

    async def connection(self, connection_id: str) -> ConnectionRecord | None:
        """One open connection, on any node, or ``None``."""

    async def connections(
        self, channel: str | None = None, user_id: str | None = None, limit: int = 1000, after: str | None = None
    ) -> ConnectionPage:
        """Open connections (subscribed to ``channel``, being ``user_id``): the first ``limit`` by id
        (compared as strings) above ``after``; ``count`` counts every match, whatever ``after``."""

    async def channels(self) -> dict[str, int]:
        """Every occupied channel: its name to its subscriber count, cluster-wide."""

    async def count(self, channel: str) -> int:
        """How many subscriptions the channel has, cluster-wide."""
