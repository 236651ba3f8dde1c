"""The one factory that chooses the backends (broker, history, presence, registry) from the settings.

Today every backend is the in-process (memory) one: one node. The Redis backends join here, chosen
by ``REALTIME_REDIS_URL``, with no other change to the engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from websocket_realtime_engine.broker.base import Broker
from websocket_realtime_engine.broker.memory import MemoryBroker
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.presence.base import PresenceStore
from websocket_realtime_engine.presence.memory import MemoryPresence
from websocket_realtime_engine.registry.base import NodeRegistry
from websocket_realtime_engine.registry.memory import MemoryRegistry

log = logging.getLogger("realtime.backends")


@dataclass(frozen=True)
class Backends:
    """What a node shares with the other nodes of its cluster."""

    broker: Broker
    history: History
    presence: PresenceStore
    registry: NodeRegistry
    kind: str


def build_backends(settings: Settings) -> Backends:
    """The backends the settings ask for."""
    if settings.redis_url:
        log.warning(
            "REALTIME_REDIS_URL is set, but this version runs on the embedded backends only: "
            "run one node (cluster mode is not built yet)"
        )
    history = MemoryHistory(settings.history_size, settings.history_ttl)
    return Backends(MemoryBroker(history), history, MemoryPresence(), MemoryRegistry(), "memory")
