"""In-process broker. With this broker you can only run a single node.

A publication is appended to the history and handed to this node's handler in one step (nothing
is awaited in between), so offsets and delivery order agree.
"""

from __future__ import annotations

import time

from websocket_realtime_engine.broker.base import DeliveryHandler
from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.publication import Publication, StreamPosition

NO_POSITION = StreamPosition(0, "")
ONCE_PRUNE_AT = 10_000  # once-keys kept before the expired ones are dropped


class MemoryBroker:
    """Delivers every publication to the one local handler."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._handler: DeliveryHandler | None = None
        self.channels: set[str] = set()
        self._once: dict[str, float] = {}  # key -> when it expires (monotonic seconds)

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

    async def publish_once(self, publication: Publication, key: str, ttl: float) -> StreamPosition | None:
        now = time.monotonic()
        if self._once.get(key, 0.0) > now:
            return None
        if len(self._once) >= ONCE_PRUNE_AT:
            self._once = {known: until for known, until in self._once.items() if until > now}
        self._once[key] = now + ttl
        return await self.publish(publication)

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
