"""The backends under the conformance suites: one factory per backend and interface.

Every factory is an async context manager that opens a fresh, empty backend and closes it after the
test. Adding a backend to a suite is one line in its list, for example
``pytest.param(redis_history, id="redis", marks=needs_redis)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import pytest

from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.presence.base import PresenceStore
from websocket_realtime_engine.presence.memory import MemoryPresence
from websocket_realtime_engine.registry.base import NodeRegistry
from websocket_realtime_engine.registry.memory import MemoryRegistry

HistoryFactory = Callable[[int, float], AbstractAsyncContextManager[History]]
OpenHistory = Callable[..., Awaitable[History]]


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


HISTORY_BACKENDS = [pytest.param(memory_history, id="memory")]
PRESENCE_BACKENDS = [pytest.param(memory_presence, id="memory")]
REGISTRY_BACKENDS = [pytest.param(memory_registry, id="memory")]


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
