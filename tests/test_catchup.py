"""The gap filler alone, on the memory history: what a broker outage missed is delivered once, in order."""

from __future__ import annotations

from websocket_realtime_engine.catchup import GapFiller
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.publication import Publication, StreamPosition


def tick(number: int) -> Publication:
    return Publication("orders", "tick", b"%d" % number)


async def test_what_the_history_got_while_away_is_delivered_once_and_in_order() -> None:
    history = MemoryHistory(100, 60.0)
    delivered: list[Publication] = []
    gaps = GapFiller(history, delivered.append, lambda: ["orders"])
    seen = [await history.append(tick(n)) for n in range(1, 3)]
    for publication in seen:
        assert gaps.admit(publication)
        delivered.append(publication)
    missed = [await history.append(tick(n)) for n in range(3, 6)]  # the node was not subscribed
    await gaps.fill()
    late = await history.append(tick(6))
    assert gaps.admit(late), "after the catch-up, live delivery goes on"
    delivered.append(late)
    assert [p.offset for p in delivered] == [1, 2, 3, 4, 5, 6]
    assert delivered[2:5] == missed and gaps.filled == 3


async def test_live_publications_during_the_catch_up_are_held_and_not_repeated() -> None:
    history = MemoryHistory(100, 60.0)
    delivered: list[Publication] = []
    gaps = GapFiller(history, delivered.append, lambda: ["orders"])
    first = await history.append(tick(1))
    gaps.live("orders", StreamPosition(first.offset, first.epoch))
    missed = await history.append(tick(2))
    live = await history.append(tick(3))
    gaps.held["orders"] = []  # as fill() does before it reads the history
    assert not gaps.admit(live), "held while the channel is caught up"
    gaps._release("orders", [missed, live])  # the history read also returned the live one
    assert [p.offset for p in delivered] == [2, 3]


async def test_a_lost_stream_is_delivered_from_the_new_ones_start() -> None:
    delivered: list[Publication] = []
    old = MemoryHistory(100, 60.0)
    first = await old.append(tick(1))
    new = MemoryHistory(100, 60.0)  # Redis came back empty: another epoch
    gaps = GapFiller(new, delivered.append, lambda: ["orders"])
    assert gaps.admit(first)
    restarted = await new.append(tick(2))
    await gaps.fill()
    assert delivered == [restarted] and restarted.epoch != first.epoch


async def test_channels_without_local_subscribers_are_left_alone() -> None:
    history = MemoryHistory(100, 60.0)
    delivered: list[Publication] = []
    gaps = GapFiller(history, delivered.append, lambda: [])
    gaps.live("orders", await history.position("orders"))
    await history.append(tick(1))
    await gaps.fill()
    assert delivered == []
    gaps.forget("orders")
    assert gaps.last == {}
