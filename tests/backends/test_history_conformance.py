"""The history conformance suite: every backend keeps exact, bounded, per-channel streams.

Only the :class:`History` interface is used; times are real (short TTLs and ``asyncio.sleep``), so
a backend with its own clock, such as Redis, passes the same tests.
"""

from __future__ import annotations

import asyncio

from tests.backends.conftest import OpenHistory
from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.publication import Publication, StreamPosition


def publication(number: int, channel: str = "orders") -> Publication:
    """A distinct publication: its data, event, excluded connection and user tell it apart."""
    return Publication(
        channel,
        f"event.{number}",
        b'{"n":%d}' % number,
        exclude=f"connection-{number}" if number % 2 else None,
        user_id=f"user-{number}" if number % 3 else None,
    )


async def append_all(history: History, numbers: range, channel: str = "orders") -> list[Publication]:
    """Append one publication per number, one after the other; the appended publications."""
    return [await history.append(publication(number, channel)) for number in numbers]


async def test_offsets_rise_by_exactly_one_under_concurrent_appends(open_history: OpenHistory) -> None:
    history = await open_history(size=200)
    appended = await asyncio.gather(*(history.append(publication(number)) for number in range(200)))
    assert sorted(published.offset for published in appended) == list(range(1, 201))
    epoch = appended[0].epoch
    assert epoch and {published.epoch for published in appended} == {epoch}
    assert await history.position("orders") == StreamPosition(200, epoch)
    assert await history.since("orders", StreamPosition(0, epoch)) == sorted(appended, key=lambda p: p.offset)


async def test_append_returns_the_publication_at_its_position(open_history: OpenHistory) -> None:
    history = await open_history()
    original = publication(1)
    published = await history.append(original)
    assert published == original.at(StreamPosition(1, published.epoch))
    assert await history.position("orders") == StreamPosition(1, published.epoch)


async def test_since_returns_exactly_the_publications_after_the_position(open_history: OpenHistory) -> None:
    history = await open_history()
    appended = await append_all(history, range(1, 7))
    epoch = appended[0].epoch
    missed = await history.since("orders", StreamPosition(2, epoch))
    assert missed == [publication(number).at(StreamPosition(number, epoch)) for number in range(3, 7)]
    assert missed == appended[2:]
    assert await history.since("orders", StreamPosition(0, epoch)) == appended
    assert await history.since("orders", StreamPosition(5, epoch)) == appended[5:]


async def test_since_the_current_position_is_empty(open_history: OpenHistory) -> None:
    history = await open_history()
    await append_all(history, range(3))
    assert await history.since("orders", await history.position("orders")) == []


async def test_a_fresh_channel_is_at_offset_0_in_the_epoch_its_first_append_keeps(open_history: OpenHistory) -> None:
    history = await open_history()
    start = await history.position("fresh")
    assert start.offset == 0 and start.epoch
    assert await history.since("fresh", start) == []
    published = await history.append(publication(1, "fresh"))
    assert (published.offset, published.epoch) == (1, start.epoch)
    assert await history.since("fresh", start) == [published]


async def test_trimmed_by_size_cannot_be_recovered(open_history: OpenHistory) -> None:
    history = await open_history(size=3)
    appended = await append_all(history, range(1, 6))
    epoch = appended[0].epoch
    assert await history.since("orders", StreamPosition(0, epoch)) is None
    assert await history.since("orders", StreamPosition(1, epoch)) is None
    assert await history.since("orders", StreamPosition(2, epoch)) == appended[2:]
    assert await history.since("orders", StreamPosition(4, epoch)) == appended[4:]


async def test_size_0_keeps_nothing_but_offsets_still_rise(open_history: OpenHistory) -> None:
    history = await open_history(size=0)
    appended = await append_all(history, range(3))
    assert [published.offset for published in appended] == [1, 2, 3]
    epoch = appended[0].epoch
    assert await history.since("orders", StreamPosition(3, epoch)) == []
    assert await history.since("orders", StreamPosition(2, epoch)) is None


async def test_expired_by_age_cannot_be_recovered(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.5)
    first = await history.append(publication(1))
    await asyncio.sleep(0.3)
    second = await history.append(publication(2))  # the stream is in use: only the first expires
    await asyncio.sleep(0.3)
    assert await history.since("orders", StreamPosition(0, first.epoch)) is None
    assert await history.since("orders", StreamPosition(1, first.epoch)) == [second]
    assert await history.since("orders", StreamPosition(2, first.epoch)) == []


async def test_a_position_ahead_of_the_stream_cannot_be_recovered(open_history: OpenHistory) -> None:
    history = await open_history()
    appended = await append_all(history, range(2))
    assert await history.since("orders", StreamPosition(3, appended[0].epoch)) is None


async def test_an_unknown_epoch_cannot_be_recovered(open_history: OpenHistory) -> None:
    history = await open_history()
    appended = await append_all(history, range(2))
    other = "x" + appended[0].epoch
    assert await history.since("orders", StreamPosition(0, other)) is None
    assert await history.since("orders", StreamPosition(2, other)) is None
    assert await history.since("never-used", StreamPosition(0, appended[0].epoch)) is None


async def test_a_lost_stream_starts_a_new_epoch_from_offset_1(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.3)
    appended = await append_all(history, range(2))
    old = StreamPosition(2, appended[0].epoch)
    await asyncio.sleep(0.45)
    assert await history.since("orders", old) is None
    start = await history.position("orders")
    assert start.offset == 0 and start.epoch != old.epoch
    published = await history.append(publication(3))
    assert (published.offset, published.epoch) == (1, start.epoch)
    assert await history.since("orders", old) is None


async def test_a_lost_stream_starts_a_new_epoch_on_append(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.3)
    (first,) = await append_all(history, range(1))
    await asyncio.sleep(0.45)
    published = await history.append(publication(2))
    assert published.offset == 1 and published.epoch != first.epoch


async def test_asking_about_a_stream_keeps_it(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.4)
    (first,) = await append_all(history, range(1))
    for _ in range(2):
        await asyncio.sleep(0.25)
        assert await history.position("orders") == StreamPosition(1, first.epoch)
    for _ in range(2):
        await asyncio.sleep(0.25)
        assert await history.since("orders", StreamPosition(1, first.epoch)) == []
    assert (await history.append(publication(2))).offset == 2


async def test_channels_are_independent(open_history: OpenHistory) -> None:
    history = await open_history(size=3)
    for number in range(4):
        await history.append(publication(number, "a"))
        await history.append(publication(number, "b"))
    await history.append(publication(9, "a"))
    a, b = await history.position("a"), await history.position("b")
    assert (a.offset, b.offset) == (5, 4)
    missed = await history.since("b", StreamPosition(2, b.epoch))
    assert missed == [publication(number, "b").at(StreamPosition(number + 1, b.epoch)) for number in (2, 3)]
    assert await history.since("a", StreamPosition(1, a.epoch)) is None
    assert await history.since("b", StreamPosition(1, b.epoch)) == [
        publication(number, "b").at(StreamPosition(number + 1, b.epoch)) for number in (1, 2, 3)
    ]


# -- recent: the newest kept publications with the position, for GET /api/v1/channels/{name}/history


async def test_recent_returns_the_newest_kept_oldest_first_with_the_position(open_history: OpenHistory) -> None:
    history = await open_history(size=5)
    appended = await append_all(history, range(1, 9))
    epoch = appended[0].epoch
    assert await history.recent("orders", 3) == (StreamPosition(8, epoch), appended[5:])
    assert await history.recent("orders", 5) == (StreamPosition(8, epoch), appended[3:])
    assert await history.recent("orders", 100) == (StreamPosition(8, epoch), appended[3:]), "only what is kept"


async def test_recent_of_a_fresh_channel_is_its_starting_position(open_history: OpenHistory) -> None:
    history = await open_history()
    position, publications = await history.recent("fresh", 10)
    assert position.offset == 0 and position.epoch and publications == []
    assert await history.position("fresh") == position, "the stream it started is the one kept"
    published = await history.append(publication(1, "fresh"))
    assert await history.recent("fresh", 10) == (StreamPosition(1, position.epoch), [published])


async def test_recent_with_size_0_gives_the_position_only(open_history: OpenHistory) -> None:
    history = await open_history(size=0)
    appended = await append_all(history, range(3))
    assert await history.recent("orders", 10) == (StreamPosition(3, appended[0].epoch), [])


async def test_recent_leaves_out_what_expired_by_age(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.5)
    await history.append(publication(1))
    await asyncio.sleep(0.3)
    second = await history.append(publication(2))
    await asyncio.sleep(0.3)
    assert await history.recent("orders", 10) == (StreamPosition(2, second.epoch), [second])


async def test_recent_keeps_the_stream(open_history: OpenHistory) -> None:
    history = await open_history(ttl=0.4)
    (first,) = await append_all(history, range(1))
    for _ in range(3):
        await asyncio.sleep(0.25)
        position, _ = await history.recent("orders", 2)
        assert position == StreamPosition(1, first.epoch)
    assert await history.append(publication(2)) == publication(2).at(StreamPosition(2, first.epoch))


async def test_recent_agrees_with_since(open_history: OpenHistory) -> None:
    history = await open_history()
    await append_all(history, range(1, 4))
    position, publications = await history.recent("orders", 2)
    first = publications[0]
    assert await history.since("orders", StreamPosition(first.offset - 1, first.epoch)) == publications
    assert publications[-1].offset == position.offset


async def test_recent_is_one_consistent_read_under_concurrent_appends(open_history: OpenHistory) -> None:
    history = await open_history(size=50)
    await append_all(history, range(1, 3))
    readings = await asyncio.gather(
        *(history.append(publication(n)) if n % 2 else history.recent("orders", 50) for n in range(40))
    )
    for reading in readings:
        if isinstance(reading, tuple):
            position, publications = reading
            assert [p.offset for p in publications] == list(range(1, position.offset + 1))
