"""Filling the gap a broker outage leaves: what was published while this node was not subscribed.

Pub/sub delivers at most once: between Redis coming back and the broker's resubscription, a
publication made on another node (or on this one) reaches the history but not this node. The
:class:`GapFiller` remembers the last position delivered on each channel with local subscribers;
when the broker says it is connected again, it reads each channel's history after that position and
delivers what is missing, in order, holding live publications of the channel back meanwhile so that
nothing is delivered twice or out of order. When the stream was lost with Redis's data, the new
stream's publications are delivered from its start: clients see the new epoch, and a client that
resubscribes with its old position gets ``recovered: false`` and reloads its state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.publication import Publication, StreamPosition

log = logging.getLogger("realtime.catchup")


class Positioned(Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def epoch(self) -> str: ...


class GapFiller:
    """Last positions per channel, and the catch-up after an outage."""

    def __init__(
        self, history: History, deliver: Callable[[Publication], None], channels: Callable[[], Iterable[str]]
    ) -> None:
        self.history = history
        self.deliver = deliver
        self.channels = channels
        self.last: dict[str, Positioned] = {}  # a Publication or a StreamPosition: no copy per delivery
        self.held: dict[str, list[Publication]] = {}  # channels being caught up: their live publications
        self.filled = 0

    def admit(self, publication: Publication) -> bool:
        """Called for every delivery: ``False`` when it is held back until the channel is caught up."""
        channel = publication.channel
        if self.held and channel in self.held:
            self.held[channel].append(publication)
            return False
        if publication.offset:
            self.last[channel] = publication
        return True

    def live(self, channel: str, position: StreamPosition) -> None:
        """A subscriber went live at ``position``: the channel's start, if nothing is known yet."""
        if channel not in self.last and (position.offset or position.epoch):
            self.last[channel] = position

    def forget(self, channel: str) -> None:
        """The channel has no local subscriber any more."""
        self.last.pop(channel, None)

    async def fill(self) -> None:
        """Deliver, channel by channel, what the history has after the last position delivered."""
        names = [name for name in self.channels() if name in self.last]
        for name in names:
            self.held.setdefault(name, [])
        for name in names:
            try:
                await self._fill(name)
            except Exception as exc:  # noqa: BLE001 - the broker is away again: clients recover by offset
                log.warning("catching up %s after an outage failed: %r", name, exc)
                self._release(name, None)

    async def _fill(self, channel: str) -> None:
        last = self.last.get(channel)
        missed = None
        if last is not None:
            missed = await self.history.since(channel, StreamPosition(last.offset, last.epoch))
        if missed is None:  # the stream was lost (Redis lost its data): what the new one has, from its start
            current = await self.history.position(channel)
            if last is None or current.epoch != last.epoch:
                missed = await self.history.since(channel, StreamPosition(0, current.epoch))
            log.warning("the stream of %s was lost: delivering the new one's; clients see its epoch", channel)
        self._release(channel, missed)

    def _release(self, channel: str, missed: list[Publication] | None) -> None:
        """Deliver what was missed, then what was held, skipping what was delivered already."""
        held = self.held.pop(channel, [])
        filled = self._deliver_after_last(channel, missed or [])
        self.filled += filled
        self._deliver_after_last(channel, held)
        if filled:
            log.info(
                "delivered publications missed during a broker outage", extra={"channel": channel, "count": filled}
            )

    def _deliver_after_last(self, channel: str, publications: list[Publication]) -> int:
        delivered = 0
        for publication in publications:
            last = self.last.get(channel)
            same_stream = last is not None and publication.epoch == last.epoch
            if publication.offset and same_stream and publication.offset <= last.offset:  # type: ignore[union-attr]
                continue  # delivered already
            self.deliver(publication)
            delivered += 1
            if publication.offset:
                self.last[channel] = publication
        return delivered
