"""The broker conformance suite: every backend delivers, in order, with the positions it assigns.

Only the :class:`Broker` interface is used (and the history each broker is built with, to check
that a publish and its history append are one step), so a Redis broker passes the same tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from tests.backends.conftest import redis_connection
from websocket_realtime_engine.broker.base import Broker
from websocket_realtime_engine.broker.memory import MemoryBroker
from websocket_realtime_engine.broker.redis import RedisBroker
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.publication import Publication, StreamPosition

BrokerFactory = Callable[[], AbstractAsyncContextManager[Broker]]


@asynccontextmanager
async def memory_broker() -> AsyncIterator[Broker]:
    """A :class:`MemoryBroker` on its own memory history."""
    yield MemoryBroker(MemoryHistory(100, 60.0))


@asynccontextmanager
async def redis_broker() -> AsyncIterator[Broker]:
    """A :class:`RedisBroker` on its own Redis history, under a prefix of its own."""
    async with redis_connection() as (client, prefix):
        broker = RedisBroker(client, prefix, RedisHistory(client, prefix, 100, 60.0))
        try:
            yield broker
        finally:
            await broker.stop()  # its reader ends before the client closes, even when a test failed


BROKER_BACKENDS = [pytest.param(memory_broker, id="memory"), pytest.param(redis_broker, id="redis")]


class Received:
    """The delivery handler: keeps what it is given; ``wait`` for a count."""

    def __init__(self) -> None:
        self.publications: list[Publication] = []

    def __call__(self, publication: Publication) -> None:
        self.publications.append(publication)

    async def wait(self, count: int, timeout: float = 2.0) -> list[Publication]:
        async with asyncio.timeout(timeout):
            while len(self.publications) < count:
                await asyncio.sleep(0.005)
        return self.publications


@pytest.fixture(params=BROKER_BACKENDS)
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broker, Received]]:
    """A started broker of each backend and what its handler received; stopped after the test."""
    factory: BrokerFactory = request.param
    async with factory() as started:
        received = Received()
        await started.start(received)
        yield started, received
        await started.stop()


def publication(number: int, channel: str = "orders") -> Publication:
    return Publication(channel, "tick", b'{"n":%d}' % number)


async def test_a_subscribed_channel_is_delivered_in_order_with_the_positions_returned(
    broker: tuple[Broker, Received],
) -> None:
    backend, received = broker
    await backend.subscribe("orders")
    positions = [await backend.publish(publication(number)) for number in range(5)]
    assert [position.offset for position in positions] == [1, 2, 3, 4, 5]
    assert len({position.epoch for position in positions}) == 1
    delivered = await received.wait(5)
    assert [p.data for p in delivered] == [b'{"n":%d}' % n for n in range(5)]
    assert [StreamPosition(p.offset, p.epoch) for p in delivered] == positions


async def test_concurrent_publishes_get_distinct_offsets_delivered_in_offset_order(
    broker: tuple[Broker, Received],
) -> None:
    backend, received = broker
    await backend.subscribe("orders")
    positions = await asyncio.gather(*(backend.publish(publication(number)) for number in range(50)))
    assert sorted(position.offset for position in positions) == list(range(1, 51))
    delivered = await received.wait(50)
    assert [p.offset for p in delivered] == list(range(1, 51))


async def test_only_subscribed_channels_are_delivered(broker: tuple[Broker, Received]) -> None:
    backend, received = broker
    await backend.subscribe("orders")
    assert (await backend.publish(publication(1, "products"))).offset == 1, "kept in the history all the same"
    await backend.publish(publication(2, "orders"))
    await backend.unsubscribe("orders")
    await backend.publish(publication(3, "orders"))
    await asyncio.sleep(0.1)
    assert [(p.channel, p.data) for p in received.publications] == [("orders", b'{"n":2}')]


async def test_a_publication_outside_the_history_has_no_position(broker: tuple[Broker, Received]) -> None:
    backend, received = broker
    await backend.subscribe("presence-room")
    added = Publication("presence-room", "member_added", b'{"user_id":"ada"}', exclude="1.2")
    assert await backend.publish(added, history=False) == StreamPosition(0, "")
    (delivered,) = await received.wait(1)
    assert delivered == added
    assert (await backend.publish(publication(1, "presence-room"))).offset == 1, "it took no offset"


async def test_what_a_publication_carries_crosses_the_broker(broker: tuple[Broker, Received]) -> None:
    backend, received = broker
    await backend.subscribe("private-chat")
    sent = Publication("private-chat", "message", b'{"t":"hi"}', exclude="11.22", user_id="ada")
    position = await backend.publish(sent)
    (delivered,) = await received.wait(1)
    assert delivered == sent.at(position)


async def test_a_stopped_broker_delivers_nothing(broker: tuple[Broker, Received]) -> None:
    backend, received = broker
    await backend.subscribe("orders")
    await backend.stop()
    with contextlib.suppress(Exception):  # a stopped broker may also refuse to publish
        await backend.publish(publication(1))
    await asyncio.sleep(0.1)
    assert received.publications == []


async def test_a_publication_made_once_is_not_made_again_under_its_key(broker: tuple[Broker, Received]) -> None:
    backend, received = broker
    await backend.subscribe("orders")
    first = await backend.publish_once(publication(1), "outbox:7:0:orders", 5.0)
    assert first is not None and first.offset == 1
    assert await backend.publish_once(publication(1), "outbox:7:0:orders", 5.0) is None
    other = await backend.publish_once(publication(2), "outbox:8:0:orders", 5.0)
    assert other is not None and other.offset == 2, "another key publishes; the refused one took no offset"
    delivered = await received.wait(2)
    await asyncio.sleep(0.1)
    assert [p.data for p in received.publications] == [b'{"n":1}', b'{"n":2}'] == [p.data for p in delivered]


async def test_a_once_key_expires_after_its_ttl(broker: tuple[Broker, Received]) -> None:
    backend, _ = broker
    assert await backend.publish_once(publication(1), "k", 0.05) is not None
    await asyncio.sleep(0.1)
    assert await backend.publish_once(publication(1), "k", 0.05) is not None
