"""Channel history in Redis, shared by every node of a cluster; the semantics of :mod:`history.memory`.

Keys (``<prefix>`` is the deployment's, the channel name used as given):

- ``<prefix>history-meta:<channel>`` hash: ``offset`` (the last offset given) and ``epoch`` (the stream's incarnation)
- ``<prefix>history:<channel>`` list: the kept publications, oldest first, each ``<microseconds> <message>``
  (the Redis ``TIME`` it was appended at, a space, then the :mod:`broker.wire` message at its position)

``history-meta:`` and ``history:`` differ before any channel name starts, so no channel can make two
keys collide. Both keys expire ``ttl`` seconds after the last ``append``, ``position`` or ``since``;
the next use of a forgotten channel starts a new stream with a new epoch and offsets from 1, and
deletes any list left from the old one. A publication older than ``ttl`` is never returned: it counts
as a gap, as one trimmed by ``size`` does.

Every method is one Lua script, atomic on the server: an append increments the offset, pushes the
entry, trims the list by size and age and refreshes both expiries in one step (and, for the broker,
publishes the message with them: :meth:`RedisHistory.append_and_publish`); ``since`` and ``recent`` read
the offset, the epoch and the entries they return in one step. Times are Redis's own (``TIME``), so the
nodes' clocks do not matter. A Redis that cannot be reached raises :class:`UnavailableError` within
``timeout`` seconds, whatever the client's retries.

Calls made while another is under way go out with the others of their event-loop iteration as one
pipeline (:class:`CommandBatcher`): a burst of concurrent publishes takes one pooled connection and
one round trip, not a connection each (redis-py's default pool raises once it runs out).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import secrets
from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from websocket_realtime_engine.broker import wire
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.publication import Publication, StreamPosition

T = TypeVar("T")

# What a Redis that is down, restarting or too slow raises (redis-py's errors and asyncio's timeout).
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, TimeoutError, OSError)

# KEYS[1] the meta hash, KEYS[2] the list; ARGV[1] the TTL in milliseconds.
_LIBRARY = """
local meta, stream = KEYS[1], KEYS[2]

-- The live stream's offset and epoch, a new stream (epoch given) when it is unknown or forgotten.
local function open(new_epoch)
  local offset, epoch = unpack(redis.call('HMGET', meta, 'offset', 'epoch'))
  if not epoch then
    offset, epoch = 0, new_epoch
    redis.call('HSET', meta, 'offset', 0, 'epoch', epoch)
    redis.call('DEL', stream)
  end
  redis.call('PEXPIRE', meta, ARGV[1])
  return tonumber(offset), epoch
end

local function now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local function appended_at(entry)
  return tonumber(string.match(entry, '^%d+'))
end
"""

# KEYS[3] (optional) the pub/sub channel to publish to; ARGV[2] a new epoch, ARGV[3] the size,
# ARGV[4] the TTL in microseconds, ARGV[5] the message's tail (broker.wire.encode_tail).
_APPEND = """
local _, epoch = open(ARGV[2])
local offset = redis.call('HINCRBY', meta, 'offset', 1)
local message = '[' .. string.format('%d', offset) .. ',"' .. epoch .. '",' .. ARGV[5]
local size = tonumber(ARGV[3])
if size > 0 then
  local now = now_us()
  redis.call('RPUSH', stream, string.format('%.0f ', now) .. message)
  redis.call('LTRIM', stream, -size, -1)
  local oldest = now - tonumber(ARGV[4])
  local head = redis.call('LINDEX', stream, 0)
  while head and appended_at(head) <= oldest do
    redis.call('LPOP', stream)
    head = redis.call('LINDEX', stream, 0)
  end
  redis.call('PEXPIRE', stream, ARGV[1])
end
if KEYS[3] then
  redis.call('PUBLISH', KEYS[3], message)
end
return {offset, epoch}
"""

# ARGV[2] a new epoch.
_POSITION = """
local offset, epoch = open(ARGV[2])
redis.call('PEXPIRE', stream, ARGV[1])
return {offset, epoch}
"""

# ARGV[2] the asked epoch, ARGV[3] the asked offset, ARGV[4] the TTL in microseconds.
# The entries after the offset, or false when they cannot be told exactly.
_SINCE = """
local top, epoch = unpack(redis.call('HMGET', meta, 'offset', 'epoch'))
if not epoch then
  return false
end
redis.call('PEXPIRE', meta, ARGV[1])
redis.call('PEXPIRE', stream, ARGV[1])
top = tonumber(top)
local asked = tonumber(ARGV[3])
if epoch ~= ARGV[2] or asked > top then
  return false
end
local count = top - asked
if count == 0 then
  return {}
end
local entries = redis.call('LRANGE', stream, -count, -1)
if #entries < count or appended_at(entries[1]) <= now_us() - tonumber(ARGV[4]) then
  return false
end
return entries
"""

# ARGV[2] a new epoch, ARGV[3] the most entries to return, ARGV[4] the TTL in microseconds.
# The position and the newest kept entries (none older than the TTL), oldest first.
_RECENT = """
local offset, epoch = open(ARGV[2])
redis.call('PEXPIRE', stream, ARGV[1])
local limit = tonumber(ARGV[3])
if limit <= 0 then
  return {offset, epoch, {}}
end
local entries = redis.call('LRANGE', stream, -limit, -1)
local oldest = now_us() - tonumber(ARGV[4])
local first = 1
while first <= #entries and appended_at(entries[first]) <= oldest do
  first = first + 1
end
if first > 1 then
  entries = {unpack(entries, first)}
end
return {offset, epoch, entries}
"""


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
            if link.reader is not None:
                await asyncio.gather(link.reader, return_exceptions=True)

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


class RedisHistory:
    """Per-channel streams in Redis, each keeping its last ``size`` publications for ``ttl`` s.

    :param client: the node's client (its one connection pool); ``decode_responses`` must be off.
    :param prefix: the deployment's key prefix.
    :param size: publications kept per channel; ``0`` keeps none (offsets still rise).
    :param ttl: seconds a publication is kept, and a stream without any use is remembered.
    :param timeout: seconds a call may take before it raises :class:`UnavailableError`.
    """

    def __init__(self, client: redis.Redis, prefix: str, size: int, ttl: float, *, timeout: float = 2.0) -> None:
        if size < 0:
            raise ValueError("size must be 0 or more")
        if ttl <= 0:
            raise ValueError("ttl must be more than 0")
        require_bytes(client)
        self.client = client
        self.prefix = prefix
        self.size = size
        self.ttl = ttl
        self.timeout = timeout
        self._ttl_ms = max(1, round(ttl * 1000))
        self._ttl_us = max(1, round(ttl * 1_000_000))
        self.pipeline = PipelinedConnection(client, timeout)
        self._append: AsyncScript = client.register_script(_LIBRARY + _APPEND)
        self._position: AsyncScript = client.register_script(_LIBRARY + _POSITION)
        self._since: AsyncScript = client.register_script(_LIBRARY + _SINCE)
        self._recent: AsyncScript = client.register_script(_LIBRARY + _RECENT)

    async def close(self) -> None:
        """Give the publish path's connection back to the pool."""
        await self.pipeline.close()

    def keys(self, channel: str) -> list[str]:
        """The channel's meta hash and list keys."""
        prefix = self.prefix
        return [f"{prefix}history-meta:{channel}", f"{prefix}history:{channel}"]

    async def append(self, publication: Publication) -> Publication:
        """Add a publication to its channel's stream; the publication at its new position."""
        return publication.at(await self.append_and_publish(publication))

    async def append_and_publish(self, publication: Publication, pubsub_channel: str | None = None) -> StreamPosition:
        """Add a publication to its channel's stream and, in the same script, ``PUBLISH`` its
        :mod:`broker.wire` message (at the position it got) to ``pubsub_channel`` when one is given."""
        keys = self.keys(publication.channel)
        if pubsub_channel is not None:
            keys.append(pubsub_channel)
        args = (self._ttl_ms, secrets.token_hex(4), self.size, self._ttl_us, wire.encode_tail(publication))
        offset, epoch = await self._run(self._append, keys, args)
        return StreamPosition(offset, epoch.decode())

    async def position(self, channel: str) -> StreamPosition:
        """The channel's current position (its last offset, 0 when empty) and epoch."""
        offset, epoch = await self._run(self._position, self.keys(channel), (self._ttl_ms, secrets.token_hex(4)))
        return StreamPosition(offset, epoch.decode())

    async def since(self, channel: str, position: StreamPosition) -> list[Publication] | None:
        """Every publication after ``position``, oldest first, or ``None`` when that cannot be told
        exactly: another epoch, an offset ahead of the stream, or publications after it trimmed
        (by size or age). An empty list means nothing was missed."""
        args = (self._ttl_ms, position.epoch, position.offset, self._ttl_us)
        entries: list[bytes] | None = await self._run(self._since, self.keys(channel), args)
        if entries is None:
            return None
        return [wire.decode(entry, entry.index(b" ") + 1) for entry in entries]

    async def recent(self, channel: str, limit: int) -> tuple[StreamPosition, list[Publication]]:
        """The channel's position and its newest ``limit`` kept publications, oldest first, read in
        one script. Counts as a use of the stream, as :meth:`position` does."""
        args = (self._ttl_ms, secrets.token_hex(4), max(0, limit), self._ttl_us)
        offset, epoch, entries = await self._run(self._recent, self.keys(channel), args)
        publications = [wire.decode(entry, entry.index(b" ") + 1) for entry in entries]
        return StreamPosition(offset, epoch.decode()), publications

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[str | int | bytes]) -> Any:
        """Run a script by its digest, loading it first when Redis does not know it (after a restart)."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return await self.pipeline.call(*command)
        except NoScriptError:
            await self.pipeline.call("SCRIPT", "LOAD", script.script)
            return await self.pipeline.call(*command)
