"""The broker interface every backend implements; ``tests/backends`` holds its conformance suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from websocket_realtime_engine.publication import Publication, StreamPosition

DeliveryHandler = Callable[[Publication], None]


class Broker(Protocol):
    """Fans publications out to every node with subscribers on the channel."""

    async def start(self, handler: DeliveryHandler) -> None:
        """Begin delivering publications of subscribed channels to ``handler``, in publish order per channel."""

    async def stop(self) -> None:
        """Stop delivering and release connections."""

    async def publish(self, publication: Publication, history: bool = True) -> StreamPosition:
        """Send one publication to every node subscribed to its channel; raise when it cannot.

        With ``history`` the publication is appended to the channel's stream in the same atomic
        step, and delivered carrying the offset and epoch it got there, which are returned.
        Without it (presence changes) it is delivered with offset 0 and ``StreamPosition(0, "")``
        is returned.
        """

    async def publish_once(self, publication: Publication, key: str, ttl: float) -> StreamPosition | None:
        """:meth:`publish` with history, unless ``key`` was published with within ``ttl`` seconds:
        then nothing is published and ``None`` is returned. The check and the publish are one
        atomic step (on Redis, one script), so a publisher killed between them leaves either both
        done or neither: the outbox drainer's exactly-once publishing rests on it."""

    async def subscribe(self, channel: str) -> None:
        """This node now has local subscribers on ``channel``; returns once deliveries flow."""

    async def unsubscribe(self, channel: str) -> None:
        """This node has no local subscribers on ``channel`` any more."""
