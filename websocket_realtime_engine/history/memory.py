"""In-process history. With this store you can only run a single node.

The streams live in this process: they are lost when it stops (the next use of a channel then
starts a new epoch, so clients are told they cannot recover), and they are not shared with any
other node. Memory is bounded by ``size`` publications per channel, for the channels used within
the last ``ttl`` seconds.

No method awaits anything, so on one event loop every call is atomic: offsets rise by exactly one
per append with no lock.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable
from itertools import islice

from websocket_realtime_engine.publication import Publication, StreamPosition

# The stream dictionary is swept of forgotten streams at least once per ``ttl`` and whenever it has
# doubled since the last sweep (never below this size), so sweeping costs O(1) amortised per call.
_MIN_SWEEP_SIZE = 1024


class _Stream:
    """One incarnation of a channel's stream."""

    __slots__ = ("epoch", "offset", "entries", "expires_at")

    def __init__(self, epoch: str, size: int) -> None:
        self.epoch = epoch
        self.offset = 0
        # (expires_at, publication), oldest first; their offsets are consecutive and end at ``offset``
        self.entries: deque[tuple[float, Publication]] = deque(maxlen=size)
        self.expires_at = 0.0  # forgotten once the clock reaches this without a use


class MemoryHistory:
    """Per-channel streams in a dictionary, each keeping its last ``size`` publications for ``ttl`` s.

    :param size: publications kept per channel; ``0`` keeps none (offsets still rise).
    :param ttl: seconds a publication is kept, and a stream without any use is remembered.
    :param clock: monotonic seconds; a test may pass its own.
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        if ttl <= 0:
            raise ValueError("ttl must be more than 0")
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._streams: dict[str, _Stream] = {}
        self._next_sweep = clock() + ttl
        self._sweep_size = _MIN_SWEEP_SIZE

    async def append(self, publication: Publication) -> Publication:
        """Add a publication to its channel's stream; the publication at its new position."""
        now = self._clock()
        stream = self._open(publication.channel, now)
        stream.offset += 1
        published = publication.at(StreamPosition(stream.offset, stream.epoch))
        if self._size:
            entries = stream.entries
            while entries and entries[0][0] <= now:
                entries.popleft()
            entries.append((stream.expires_at, published))
        return published

    async def position(self, channel: str) -> StreamPosition:
        """The channel's current position (its last offset, 0 when empty) and epoch."""
        stream = self._open(channel, self._clock())
        return StreamPosition(stream.offset, stream.epoch)

    async def since(self, channel: str, position: StreamPosition) -> list[Publication] | None:
        """Every publication after ``position``, oldest first, or ``None`` when that cannot be told
        exactly: another epoch, an offset ahead of the stream, or publications after it trimmed
        (by size or age). An empty list means nothing was missed."""
        now = self._clock()
        stream = self._streams.get(channel)
        if stream is None or stream.expires_at <= now:
            # an unknown or forgotten stream: no position can be in the one that will start
            return None
        stream.expires_at = now + self._ttl
        if position.epoch != stream.epoch or position.offset > stream.offset:
            return None
        if position.offset == stream.offset:
            return []
        entries = stream.entries
        while entries and entries[0][0] <= now:
            entries.popleft()
        oldest = stream.offset - len(entries) + 1
        if oldest > position.offset + 1:
            return None
        return [published for _, published in islice(entries, position.offset + 1 - oldest, None)]

    async def recent(self, channel: str, limit: int) -> tuple[StreamPosition, list[Publication]]:
        """The channel's position and its newest ``limit`` kept publications, oldest first, read in
        one step. Counts as a use of the stream, as :meth:`position` does."""
        now = self._clock()
        stream = self._open(channel, now)
        entries = stream.entries
        while entries and entries[0][0] <= now:
            entries.popleft()
        first = max(0, len(entries) - max(0, limit))
        return StreamPosition(stream.offset, stream.epoch), [published for _, published in islice(entries, first, None)]

    def _open(self, channel: str, now: float) -> _Stream:
        """The channel's live stream, started anew when it is unknown or forgotten, marked as used."""
        if now >= self._next_sweep:
            self._sweep(now)
        stream = self._streams.get(channel)
        if stream is None or stream.expires_at <= now:
            if len(self._streams) >= self._sweep_size:
                self._sweep(now)
            stream = self._streams[channel] = _Stream(secrets.token_hex(4), self._size)
        stream.expires_at = now + self._ttl
        return stream

    def _sweep(self, now: float) -> None:
        """Forget every stream unused for ``ttl``."""
        forgotten = [channel for channel, stream in self._streams.items() if stream.expires_at <= now]
        for channel in forgotten:
            del self._streams[channel]
        self._next_sweep = now + self._ttl
        self._sweep_size = max(_MIN_SWEEP_SIZE, 2 * len(self._streams))
