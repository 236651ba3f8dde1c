"""The node registry interface: heartbeats with a time to live.

A node calls :meth:`NodeRegistry.heartbeat` every few seconds with a TTL a few times longer; a node
that stops calling (it crashed) is no longer listed once its TTL has passed, and exactly one caller
of :meth:`NodeRegistry.claim_dead` gets it, to clean up after it (its presence members).
"""

from __future__ import annotations

from typing import Any, Protocol

NodeInfo = dict[str, Any]


class NodeRegistry(Protocol):
    """Live nodes and their load; ``tests/backends`` holds the conformance suite."""

    async def heartbeat(self, node_id: str, info: NodeInfo, ttl: float) -> None:
        """Say that ``node_id`` is alive for ``ttl`` more seconds, with its current ``info``
        (connections, load, started, last seen...)."""

    async def nodes(self) -> dict[str, NodeInfo]:
        """Every live node (heartbeat within its TTL): node id to its last info."""

    async def deregister(self, node_id: str) -> None:
        """A node leaving cleanly: no longer listed, and never reported dead."""

    async def claim_dead(self) -> list[str]:
        """Nodes whose heartbeat expired without a goodbye; each is returned to one caller only."""
