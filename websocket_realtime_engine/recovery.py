"""Catching a new subscription up: the channel's position, and with ``since`` what was missed.

The node keeps a subscriber *pending* (it receives nothing) while this runs, and remembers in
``seen`` the last publication that reached the node on channels with pending subscribers. The broker
already delivers the channel, so anything published from then on is either in what the history
returns or in ``seen``; what was seen past the history read is read again, so nothing falls between
the history and the live stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.publication import Publication, StreamPosition

CATCH_UP_ROUNDS = 3  # history reads while publications keep arriving during a subscribe


@dataclass
class Subscription:
    """A subscription that has just gone live: what the ``subscribed`` reply says, what follows it."""

    position: StreamPosition
    members: dict[str, Any] | None = None
    recovered: bool | None = None
    missed: list[Publication] = field(default_factory=list)


async def catch_up(
    history: History, seen: dict[str, StreamPosition], channel: str, since: StreamPosition | None
) -> Subscription:
    """The channel's position and, with ``since``, exactly what was missed after it (or ``recovered``
    false); then what arrived while reading."""
    if since is None:
        subscription = Subscription(await history.position(channel))
    else:
        missed = await history.since(channel, since)
        if missed is None:
            subscription = Subscription(await history.position(channel), recovered=False)
        else:
            last = missed[-1] if missed else None
            position = StreamPosition(last.offset, last.epoch) if last is not None else since
            subscription = Subscription(position, recovered=True, missed=missed)
    for _ in range(CATCH_UP_ROUNDS):
        latest = seen.get(channel)
        position = subscription.position
        if latest is None or latest.epoch != position.epoch or latest.offset <= position.offset:
            break
        more = await history.since(channel, position)
        if not more:
            break
        subscription.missed.extend(more)
        subscription.position = StreamPosition(more[-1].offset, more[-1].epoch)
    return subscription
