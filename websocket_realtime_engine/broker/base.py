"""The broker interface every backend implements, and the conformance suite tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

# handler(channel, JSON payload of the publication frame, connection id to leave out or None)
DeliveryHandler = Callable[[str, bytes, str | None], None]


class Broker(Protocol):
    """Fans publications out to every node with subscribers on the channel."""

    async def start(self, handler: DeliveryHandler) -> None:
        """Begin delivering publications of subscribed channels to ``handler``."""

    async def stop(self) -> None:
        """Stop delivering and release connections."""

    async def publish(self, channel: str, payload: bytes, exclude: str | None = None) -> None:
        """Send one publication to every node subscribed to ``channel``; raise when it cannot."""

    async def subscribe(self, channel: str) -> None:
        """This node now has local subscribers on ``channel``."""

    async def unsubscribe(self, channel: str) -> None:
        """This node has no local subscribers on ``channel`` any more."""
