"""The idempotency conformance suite: a key is claimed once within its TTL, by exactly one caller.

Only the :class:`IdempotencyStore` interface is used; times are real (short TTLs and
``asyncio.sleep``), so Redis, with its own clock, passes the same tests as memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as redis

from tests.backends.conftest import redis_connection
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.idempotency.base import IdempotencyStore
from websocket_realtime_engine.idempotency.memory import MemoryIdempotency
from websocket_realtime_engine.idempotency.redis import RedisIdempotency


@asynccontextmanager
async def memory_idempotency() -> AsyncIterator[IdempotencyStore]:
    """An empty :class:`MemoryIdempotency`."""
    yield MemoryIdempotency()


@asynccontextmanager
async def redis_idempotency() -> AsyncIterator[IdempotencyStore]:
    """A :class:`RedisIdempotency` on a prefix of its own (so empty), on the test Redis."""
    async with redis_connection() as (client, prefix):
        yield RedisIdempotency(client, prefix)


IDEMPOTENCY_BACKENDS = [pytest.param(memory_idempotency, id="memory"), pytest.param(redis_idempotency, id="redis")]


@pytest.fixture(params=IDEMPOTENCY_BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[IdempotencyStore]:
    """An empty idempotency store of each backend."""
    async with request.param() as opened:
        yield opened


async def test_the_first_claim_wins_and_a_retry_loses(store: IdempotencyStore) -> None:
    assert await store.claim("order-1-paid", 60) is True
    assert await store.claim("order-1-paid", 60) is False
    assert await store.claim("order-2-paid", 60) is True, "keys are independent"


async def test_of_concurrent_claims_exactly_one_wins(store: IdempotencyStore) -> None:
    claims = await asyncio.gather(*(store.claim("same", 60) for _ in range(50)))
    assert claims.count(True) == 1


async def test_a_key_can_be_claimed_again_after_its_ttl(store: IdempotencyStore) -> None:
    assert await store.claim("short", 0.3)
    assert not await store.claim("short", 0.3)
    await asyncio.sleep(0.45)
    assert await store.claim("short", 0.3)


async def test_a_released_key_can_be_claimed_again(store: IdempotencyStore) -> None:
    assert await store.claim("failed-publish", 60)
    await store.release("failed-publish")
    assert await store.claim("failed-publish", 60)
    await store.release("never-claimed")  # not an error


async def test_keys_are_opaque_text(store: IdempotencyStore) -> None:
    odd = ["with space", "ünïcode-ключ", "a:b*c?[d]", "x" * 128]
    assert [await store.claim(key, 60) for key in odd] == [True] * len(odd)
    assert [await store.claim(key, 60) for key in odd] == [False] * len(odd)


async def test_an_unreachable_redis_raises_unavailable() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        with pytest.raises(UnavailableError):
            await RedisIdempotency(client, "test:", timeout=0.5).claim("key", 60)
    finally:
        await client.aclose()


async def test_two_stores_on_one_prefix_share_the_keys() -> None:
    """Two nodes of a cluster: a retry sent to the other node is recognised."""
    async with redis_connection() as (client, prefix):
        first, second = RedisIdempotency(client, prefix), RedisIdempotency(client, prefix)
        assert await first.claim("k", 60) and not await second.claim("k", 60)
        other = RedisIdempotency(client, prefix + "other:")
        assert await other.claim("k", 60), "another deployment's prefix is another namespace"
