"""In-process node registry. With this registry you can only run a single node.

The heartbeats live in this process: only nodes in it are listed, and they are lost when it stops.
No method awaits anything, so on one event loop every call is atomic and a dead node is claimed by
one caller only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from websocket_realtime_engine.registry.base import NodeInfo


class MemoryRegistry:
    """node id → (when its heartbeat expires, its last info).

    :param clock: monotonic seconds; a test may pass its own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heartbeats: dict[str, tuple[float, NodeInfo]] = {}

    async def heartbeat(self, node_id: str, info: NodeInfo, ttl: float) -> None:
        """Say that ``node_id`` is alive for ``ttl`` more seconds, with its current ``info``
        (connections, load, started, last seen...)."""
        # a copy, as a shared store would keep: later changes to the caller's dict are not heartbeats
        self._heartbeats[node_id] = (self._clock() + ttl, dict(info))

    async def nodes(self) -> dict[str, NodeInfo]:
        """Every live node (heartbeat within its TTL): node id to its last info."""
        now = self._clock()
        return {node_id: dict(info) for node_id, (expires_at, info) in self._heartbeats.items() if expires_at > now}

    async def deregister(self, node_id: str) -> None:
        """A node leaving cleanly: no longer listed, and never reported dead."""
        self._heartbeats.pop(node_id, None)

    async def claim_dead(self) -> list[str]:
        """Nodes whose heartbeat expired without a goodbye; each is returned to one caller only."""
        now = self._clock()
        dead = [node_id for node_id, (expires_at, _) in self._heartbeats.items() if expires_at <= now]
        for node_id in dead:
            del self._heartbeats[node_id]
        return dead
