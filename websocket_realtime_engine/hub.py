"""Local fan-out: which local connections are on which channel, and the coalesced writes.

A publication arrives as one prebuilt WebSocket frame; ``deliver`` appends those same bytes to each
subscriber's pending buffer, and ``flush`` (once per event-loop iteration) writes each buffer with
one ``transport.write``. Nothing is awaited per subscriber, and a subscriber whose unsent backlog
stays above ``write_buffer_limit`` is handed to ``on_slow_consumer`` instead of growing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websocket_realtime_engine.connection import Connection


class Hub:
    """Local subscriptions and the write path."""

    def __init__(self, write_buffer_limit: int, on_slow_consumer: Callable[[Connection], None]) -> None:
        self.channels: dict[str, dict[Connection, None]] = {}
        self.write_buffer_limit = write_buffer_limit
        self.on_slow_consumer = on_slow_consumer
        self._dirty: list[Connection] = []
        self._flush_scheduled = False

    def attach(self, connection: Connection, channel: str) -> bool:
        """Add a subscriber; ``True`` when it is the channel's first on this node."""
        subscribers = self.channels.get(channel)
        if subscribers is None:
            self.channels[channel] = {connection: None}
            return True
        subscribers[connection] = None
        return False

    def detach(self, connection: Connection, channel: str) -> bool:
        """Remove a subscriber; ``True`` when the channel has none left on this node."""
        subscribers = self.channels.get(channel)
        if subscribers is None or connection not in subscribers:
            return False
        del subscribers[connection]
        if subscribers:
            return False
        del self.channels[channel]
        return True

    def count(self, channel: str) -> int:
        """Local subscribers of a channel."""
        return len(self.channels.get(channel, ()))

    def deliver(self, channel: str, frame: bytes, excluded: Connection | None = None) -> int:
        """Queue one prebuilt frame for every local subscriber of ``channel`` but ``excluded``."""
        subscribers = self.channels.get(channel)
        if not subscribers:
            return 0
        dirty = self._dirty
        delivered = 0
        for connection in subscribers:
            if connection is excluded:
                continue
            buffer = connection.out
            if buffer is None:
                connection.out = bytearray(frame)
                dirty.append(connection)
            else:
                buffer += frame
            delivered += 1
        self._schedule()
        return delivered

    def send(self, connection: Connection, frame: bytes) -> None:
        """Queue one frame for one connection, behind what is already queued for it."""
        if connection.closing:
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
            if buffer is None or connection.closing or transport.is_closing():
                continue
            if transport.get_write_buffer_size() > limit:
                self.on_slow_consumer(connection)
                continue
            # The transport may keep a reference to the buffer, so it is handed over, never reused.
            transport.write(buffer)
