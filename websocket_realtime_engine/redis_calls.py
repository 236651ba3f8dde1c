"""Calling Redis, shared by the Redis backends: errors as :class:`UnavailableError`, reply helpers,
and the pipelined connection of the publish path.

- :func:`redis_call` bounds a command by a timeout and turns an unreachable Redis into
  :class:`UnavailableError` (the REST API's 503, a client's error 4503).
- :func:`require_bytes` refuses a client that decodes replies: messages are bytes, and the data must
  stay untouched; :func:`reply_text` and :func:`reply_pairs` read replies either way.
- :class:`PipelinedConnection` carries every command of the node's publish path on one connection,
  written at once, the replies read in order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection

from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.tasks import cancel_and_wait

T = TypeVar("T")

# What a Redis that is down, restarting or too slow raises (redis-py's errors and asyncio's timeout).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, TimeoutError, OSError)


def require_bytes(client: redis.Redis) -> None:
    """Refuse a client that decodes responses: messages are bytes, and the data must stay untouched."""
    if client.get_connection_kwargs().get("decode_responses"):
        raise ValueError("the Redis backends need a client built with decode_responses=False")


def reply_text(value: bytes | str) -> str:
    """A reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def reply_pairs(flat: list[Any]) -> Iterator[tuple[Any, Any]]:
    """``[a, b, c, d]`` as ``(a, b), (c, d)``: how a script returns pairs."""
    items = iter(flat)
    return zip(items, items, strict=True)


async def redis_call(command: Awaitable[T], timeout: float) -> T:
    """Await a Redis command for at most ``timeout`` seconds.

    :raises UnavailableError: when Redis cannot be reached or does not answer in time.
    """
    try:
        async with asyncio.timeout(timeout):
            return await command
    except UNREACHABLE as exc:
        reason = str(exc) or f"no answer within {timeout} s"
        raise UnavailableError(f"Redis cannot be reached: {reason}") from exc


class _Link:
    """One connection of a :class:`PipelinedConnection` and the replies it owes, oldest first."""

    __slots__ = ("alive", "connection", "pending", "reader")

    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.alive = True
        self.reader: asyncio.Task[None] | None = None


class PipelinedConnection:
    """Every command of the node's publish path on one pooled connection, written at once, the
    replies read in order by one reader (Redis answers a connection's commands in the order sent).

    Concurrent calls need no extra loop iteration and no connection each: what the node's handlers
    issue in one iteration reaches Redis together, Redis runs it in one pass and writes the
    ``PUBLISH`` messages of those scripts to every node's subscription connection together, so a
    node reads a burst in one iteration and writes it to each subscriber in one ``write`` (see
    docs/benchmarks.md, "Cluster"). Each command stays what it is: a script is still atomic.

    A call that gets no reply within ``timeout`` takes the connection down, failing every call
    still waiting on it (Redis is not answering); the next call opens a new one. A call cancelled
    for another reason leaves its reply to be read and dropped.
    """

    def __init__(self, client: redis.Redis, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self._link: _Link | None = None
        self._opening = asyncio.Lock()

    async def call(self, *command: Any) -> Any:
        """The command's reply.

        :raises UnavailableError: when Redis cannot be reached or does not answer within ``timeout``.
        :raises redis.ResponseError: the command's error reply.
        """
        link: _Link | None = None
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                link = self._link or await self._open()
                future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                if not link.alive:  # lost while this call waited for the lock
                    raise redis.ConnectionError("the connection to Redis was lost")
                link.pending.append(future)
                await link.connection.send_packed_command(link.connection.pack_command(*command), check_health=False)
                return await future
        except UNREACHABLE as exc:
            if deadline.expired() and link is not None:
                self._fail(link, exc)  # Redis is not answering this connection
            reason = str(exc) or f"no answer within {self.timeout} s"
            raise UnavailableError(f"Redis cannot be reached: {reason}") from exc

    async def close(self) -> None:
        """Give the connection back to the pool; calls still waiting fail."""
        link, self._link = self._link, None
        if link is not None:
            self._fail(link, redis.ConnectionError("closed"))
            await cancel_and_wait(link.reader)

    async def _open(self) -> _Link:
        async with self._opening:
            if self._link is None or not self._link.alive:
                link = _Link(await self.client.connection_pool.get_connection())
                link.reader = asyncio.get_running_loop().create_task(self._read(link), name="realtime-redis-pipeline")
                self._link = link
            return self._link

    async def _read(self, link: _Link) -> None:
        connection = link.connection
        try:
            while link.alive:
                try:
                    reply: Any = await connection.read_response(timeout=math.inf)
                except redis.ResponseError as exc:  # the command's own error: the connection is fine
                    reply = exc
                if not link.pending:
                    raise redis.ConnectionError("Redis sent a reply nobody asked for")
                future = link.pending.popleft()
                if future.done():  # its caller gave up waiting
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except Exception as exc:
            self._fail(link, exc)
        finally:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            with contextlib.suppress(Exception):
                await self.client.connection_pool.release(connection)

    def _fail(self, link: _Link, error: Exception) -> None:
        """Take a link down: every call waiting on it fails with ``error``, the next call opens another."""
        link.alive = False
        if self._link is link:
            self._link = None
        pending, link.pending = link.pending, collections.deque()
        for future in pending:
            if not future.done():
                future.set_exception(redis.ConnectionError(str(error) or repr(error)))
        if link.reader is not None and link.reader is not asyncio.current_task():
            link.reader.cancel()
