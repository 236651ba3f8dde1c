"""In-process broker. With this broker you can only run a single node.

A publication is appended to the history and handed to this node's handler in one step (nothing
is awaited in between), so offsets and delivery order agree.
"""

from __future__ import annotations

from websocket_realtime_engine.broker.base import DeliveryHandler
from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.publication import Publication, StreamPosition

NO_POSITION = StreamPosition(0, "")


class MemoryBroker:
    """Delivers every publication to the one local handler."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._handler: DeliveryHandler | None = None
        self.channels: set[str] = set()

    async def start(self, handler: DeliveryHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        self.channels.clear()

    async def publish(self, publication: Publication, history: bool = True) -> StreamPosition:
        position = NO_POSITION
        if history:
            # The memory history never suspends: append and delivery happen in one step.
            publication = await self.history.append(publication)
            position = StreamPosition(publication.offset, publication.epoch)
        if self._handler is not None and publication.channel in self.channels:
            self._handler(publication)
        return position

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
