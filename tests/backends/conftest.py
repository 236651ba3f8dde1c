"""The backends under the conformance suites: one factory per backend and interface.

Every factory is an async context manager that opens a fresh, empty backend and closes it after the
test. Adding a backend to a suite is one line in its list, for example
``pytest.param(redis_history, id="redis", marks=needs_redis)``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import pytest
import redis.asyncio as redis

from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.presence.base import PresenceStore
from websocket_realtime_engine.presence.memory import MemoryPresence
from websocket_realtime_engine.presence.redis import RedisPresence
from websocket_realtime_engine.registry.base import NodeRegistry
from websocket_realtime_engine.registry.cluster import ClusterState
from websocket_realtime_engine.registry.cluster_memory import MemoryClusterState
from websocket_realtime_engine.registry.cluster_redis import RedisClusterState
from websocket_realtime_engine.registry.memory import MemoryRegistry
from websocket_realtime_engine.registry.redis import RedisRegistry

Store = TypeVar("Store")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

HistoryFactory = Callable[[int, float], AbstractAsyncContextManager[History]]
OpenHistory = Callable[..., Awaitable[History]]


@asynccontextmanager
async def redis_connection() -> AsyncIterator[tuple[redis.Redis, str]]:
    """A client of the test Redis and a key prefix of this test's own; its keys are deleted afterwards.

    Tests that stop or restart Redis start their own ``redis-server``; these share the machine's.
    """
    client = redis.Redis.from_url(REDIS_URL)
    prefix = f"test-{secrets.token_hex(6)}:"
    try:
        await client.ping()
    except (redis.ConnectionError, OSError) as exc:
        await client.aclose()
        pytest.fail(f"Redis at {REDIS_URL} does not answer ({exc}); `make services` starts it")
    try:
        yield client, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@dataclass
class TwoNodes(Generic[Store]):
    """Two nodes' stores of one kind on one prefix, each with its own client (``client``: the first's)."""

    a: Store
    b: Store
    client: redis.Redis
    prefix: str


@asynccontextmanager
async def two_nodes(make: Callable[[redis.Redis, str], Store]) -> AsyncIterator[TwoNodes[Store]]:
    """Two stores made by ``make`` sharing the first connection's prefix (whose keys are deleted afterwards)."""
    async with redis_connection() as (client_a, prefix), redis_connection() as (client_b, _):
        yield TwoNodes(make(client_a, prefix), make(client_b, prefix), client_a, prefix)


@asynccontextmanager
async def memory_history(size: int, ttl: float) -> AsyncIterator[History]:
    """A :class:`MemoryHistory` keeping ``size`` publications for ``ttl`` seconds."""
    yield MemoryHistory(size, ttl)


@asynccontextmanager
async def memory_presence() -> AsyncIterator[PresenceStore]:
    """An empty :class:`MemoryPresence`."""
    yield MemoryPresence()


@asynccontextmanager
async def memory_registry() -> AsyncIterator[NodeRegistry]:
    """An empty :class:`MemoryRegistry`."""
    yield MemoryRegistry()


@asynccontextmanager
async def redis_presence() -> AsyncIterator[PresenceStore]:
    """A :class:`RedisPresence` on a prefix of its own (so empty), on the test Redis."""
    async with redis_connection() as (client, prefix):
        yield RedisPresence(client, prefix)


@asynccontextmanager
async def redis_registry() -> AsyncIterator[NodeRegistry]:
    """A :class:`RedisRegistry` on a prefix of its own (so empty), on the test Redis."""
    async with redis_connection() as (client, prefix):
        yield RedisRegistry(client, prefix)


@asynccontextmanager
async def redis_history(size: int, ttl: float) -> AsyncIterator[History]:
    """A :class:`RedisHistory` on the test Redis, under a prefix of its own."""
    async with redis_connection() as (client, prefix):
        yield RedisHistory(client, prefix, size, ttl)


@asynccontextmanager
async def memory_cluster_state() -> AsyncIterator[ClusterState]:
    """An empty :class:`MemoryClusterState`."""
    yield MemoryClusterState()


@asynccontextmanager
async def redis_cluster_state() -> AsyncIterator[ClusterState]:
    """A :class:`RedisClusterState` on a prefix of its own (so empty), on the test Redis."""
    async with redis_connection() as (client, prefix):
        yield RedisClusterState(client, prefix)


HISTORY_BACKENDS = [pytest.param(memory_history, id="memory"), pytest.param(redis_history, id="redis")]
PRESENCE_BACKENDS = [pytest.param(memory_presence, id="memory"), pytest.param(redis_presence, id="redis")]
REGISTRY_BACKENDS = [pytest.param(memory_registry, id="memory"), pytest.param(redis_registry, id="redis")]
CLUSTER_STATE_BACKENDS = [
    pytest.param(memory_cluster_state, id="memory"),
    pytest.param(redis_cluster_state, id="redis"),
]


@pytest.fixture(params=HISTORY_BACKENDS)
async def open_history(request: pytest.FixtureRequest) -> AsyncIterator[OpenHistory]:
    """Open a history of each backend with the test's size and TTL; all are closed after the test."""
    factory: HistoryFactory = request.param
    async with AsyncExitStack() as stack:

        async def open_(size: int = 100, ttl: float = 60.0) -> History:
            return await stack.enter_async_context(factory(size, ttl))

        yield open_


@pytest.fixture(params=PRESENCE_BACKENDS)
async def presence(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    """An empty presence store of each backend."""
    async with request.param() as store:
        yield store


@pytest.fixture(params=REGISTRY_BACKENDS)
async def registry(request: pytest.FixtureRequest) -> AsyncIterator[NodeRegistry]:
    """An empty node registry of each backend."""
    async with request.param() as store:
        yield store


@pytest.fixture(params=CLUSTER_STATE_BACKENDS)
async def cluster_state(request: pytest.FixtureRequest) -> AsyncIterator[ClusterState]:
    """An empty cluster state of each backend."""
    async with request.param() as store:
        yield store
