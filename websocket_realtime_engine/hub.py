"""Local fan-out: which local connections are on which channel, and the coalesced writes.

``deliver`` encodes a publication once per :class:`~websocket_realtime_engine.connection.Wire`
(dialect and framing) present among the channel's subscribers, lazily, and appends those same
bytes to each subscriber's pending buffer; ``flush`` (once per event-loop iteration) writes each
buffer with one ``transport.write``. Nothing is awaited per subscriber, and a subscriber whose
unsent backlog stays above ``write_buffer_limit`` is handed to ``on_slow_consumer`` instead of growing.

A subscriber is *pending* while its subscription is being set up (the broker subscribing, missed
publications being read): it counts as a subscriber but receives nothing until :meth:`Hub.go_live`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websocket_realtime_engine.connection import Connection, State, Wire
from websocket_realtime_engine.publication import Publication

Subscribers = dict[Connection, None]


class Hub:
    """Local subscriptions and the write path."""

    def __init__(self, write_buffer_limit: int, on_slow_consumer: Callable[[Connection], None]) -> None:
        self.channels: dict[str, Subscribers] = {}  # live subscribers
        self.pending: dict[str, Subscribers] = {}  # subscriptions being set up
        self.write_buffer_limit = write_buffer_limit
        self.on_slow_consumer = on_slow_consumer
        self._dirty: list[Connection] = []
        self._flush_scheduled = False

    # -- subscriptions -----------------------------------------------------------------------------

    def attach(self, connection: Connection, channel: str) -> bool:
        """Add a pending subscriber; ``True`` when it is the channel's first on this node."""
        first = channel not in self.channels and channel not in self.pending
        self.pending.setdefault(channel, {})[connection] = None
        return first

    def go_live(self, connection: Connection, channel: str) -> None:
        """A pending subscriber starts receiving the channel's publications."""
        pending = self.pending.get(channel)
        if pending is None or connection not in pending:
            return
        _remove(self.pending, channel, connection)
        self.channels.setdefault(channel, {})[connection] = None

    def detach(self, connection: Connection, channel: str) -> bool:
        """Remove a subscriber (live or pending); ``True`` when the channel has none left on this node."""
        removed = _remove(self.channels, channel, connection) or _remove(self.pending, channel, connection)
        return removed and channel not in self.channels and channel not in self.pending

    def count(self, channel: str) -> int:
        """Local subscribers of a channel."""
        return len(self.channels.get(channel, ())) + len(self.pending.get(channel, ()))

    def names(self) -> set[str]:
        """Every channel with a local subscriber."""
        return self.channels.keys() | self.pending.keys()

    # -- the write path ----------------------------------------------------------------------------

    def deliver(self, publication: Publication, excluded: Connection | None = None) -> int:
        """Queue a publication for every live subscriber of its channel but ``excluded``."""
        subscribers = self.channels.get(publication.channel)
        if not subscribers:
            return 0
        dirty = self._dirty
        frames: dict[Wire, bytes] = {}
        current: Wire | None = None
        frame = b""
        delivered = 0
        for connection in subscribers:
            if connection is excluded:
                continue
            wire = connection.wire
            if wire is not current:  # one encoding per wire, made when first needed
                cached = frames.get(wire)
                if cached is None:
                    cached = frames[wire] = wire.publication(publication)
                current, frame = wire, cached
            buffer = connection.out
            if buffer is None:
                connection.out = bytearray(frame)
                dirty.append(connection)
            else:
                buffer += frame
            delivered += 1
        self._schedule()
        return delivered

    def send(self, connection: Connection, text: bytes) -> None:
        """Queue one message (the dialect's text) for one connection, framed as the connection frames."""
        self._queue(connection, connection.wire.frame(text))

    def send_publication(self, connection: Connection, publication: Publication) -> None:
        """Queue one publication for one connection (recovery), behind what is already queued."""
        self._queue(connection, connection.wire.publication(publication))

    def _queue(self, connection: Connection, frame: bytes) -> None:
        if connection.state is not State.OPEN:
            return
        buffer = connection.out
        if buffer is None:
            connection.out = bytearray(frame)
            self._dirty.append(connection)
        else:
            buffer += frame
        self._schedule()

    def _schedule(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write every pending buffer with one ``write`` each; hand over slow consumers.

        A subscriber is slow when, at the next flush, more than ``write_buffer_limit`` bytes of
        what was written before are still unsent: a burst is fine, a backlog that stays is not.
        """
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, []
        limit = self.write_buffer_limit
        for connection in dirty:
            buffer, connection.out = connection.out, None
            transport = connection.transport
            if buffer is None or connection.state is not State.OPEN or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > limit:
                self.on_slow_consumer(connection)
                continue
            # The transport may keep a reference to the buffer, so it is handed over, never reused.
            transport.write(buffer)


def _remove(table: dict[str, Subscribers], channel: str, connection: Connection) -> bool:
    subscribers = table.get(channel)
    if subscribers is None or connection not in subscribers:
        return False
    del subscribers[connection]
    if not subscribers:
        del table[channel]
    return True
