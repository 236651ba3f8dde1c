"""The history interface: per channel, a bounded stream of publications with an epoch and offsets.

Every channel has a stream, created on first use with a new random epoch. Each appended
publication gets the next offset (1, 2, 3... with no gaps, assigned atomically). A stream keeps at
most ``size`` publications, each for at most ``ttl`` seconds; a stream nobody has published to or
asked about for ``ttl`` seconds is forgotten, and the next use starts a new one with a new epoch.
"""

from __future__ import annotations

from typing import Protocol

from websocket_realtime_engine.publication import Publication, StreamPosition


class History(Protocol):
    """Bounded per-channel streams; ``tests/backends`` holds the conformance suite."""

    async def append(self, publication: Publication) -> Publication:
        """Add a publication to its channel's stream; the publication at its new position."""

    async def position(self, channel: str) -> StreamPosition:
        """The channel's current position (its last offset, 0 when empty) and epoch."""

    async def since(self, channel: str, position: StreamPosition) -> list[Publication] | None:
        """Every publication after ``position``, oldest first, or ``None`` when that cannot be told
        exactly: another epoch, an offset ahead of the stream, or publications after it trimmed
        (by size or age). An empty list means nothing was missed."""

    async def recent(self, channel: str, limit: int) -> tuple[StreamPosition, list[Publication]]:
        """The channel's position and its newest ``limit`` kept publications, oldest first, read in
        one step (the position is that of the last publication returned, when there is one).
        Counts as a use of the stream, as :meth:`position` does."""
