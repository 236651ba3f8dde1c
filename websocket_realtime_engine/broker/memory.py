"""In-process broker. With this broker you can only run a single node.

Publications go straight to this node's handler, in order, without copying.
"""

from __future__ import annotations

from websocket_realtime_engine.broker.base import DeliveryHandler


class MemoryBroker:
    """Delivers every publication to the one local handler."""

    def __init__(self) -> None:
        self._handler: DeliveryHandler | None = None
        self.channels: set[str] = set()

    async def start(self, handler: DeliveryHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        self.channels.clear()

    async def publish(self, channel: str, payload: bytes, exclude: str | None = None) -> None:
        if self._handler is not None and channel in self.channels:
            self._handler(channel, payload, exclude)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
