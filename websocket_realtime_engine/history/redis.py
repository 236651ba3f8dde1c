"""Channel history in Redis, shared by every node of a cluster; the semantics of :mod:`history.memory`.

Keys (``<prefix>`` is the deployment's, the channel name used as given):

- ``<prefix>history-meta:<channel>`` hash: ``offset`` (the last offset given) and ``epoch`` (the stream's incarnation)
- ``<prefix>history:<channel>`` list: the kept publications, oldest first, each ``<microseconds> <message>``
- ``<prefix>once:<key>`` string ``1``: a publication made once (the outbox's), set in the script that
  appended it and expiring ``REALTIME_IDEMPOTENCY_TTL`` seconds later
  (the Redis ``TIME`` it was appended at, a space, then the :mod:`wire` message at its position)

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

Every script goes out on the node's pipelined connection (:class:`~redis_calls.PipelinedConnection`):
a burst of concurrent publishes is written at once on one connection, not a connection each.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from websocket_realtime_engine import wire
from websocket_realtime_engine.publication import Publication, StreamPosition
from websocket_realtime_engine.redis_calls import PipelinedConnection, require_bytes

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
# ARGV[4] the TTL in microseconds, ARGV[5] the message's tail (wire.encode_tail).
# KEYS[4] (optional) a once-key, ARGV[6] its TTL in milliseconds: when it is set, nothing is done
# and false is returned; else it is set, in the same atomic step as the publish.
_APPEND = """
if KEYS[4] and not redis.call('SET', KEYS[4], '1', 'NX', 'PX', ARGV[6]) then
  return false
end
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
        :mod:`wire` message (at the position it got) to ``pubsub_channel`` when one is given."""
        keys = self.keys(publication.channel)
        if pubsub_channel is not None:
            keys.append(pubsub_channel)
        args = (self._ttl_ms, secrets.token_hex(4), self.size, self._ttl_us, wire.encode_tail(publication))
        offset, epoch = await self._run(self._append, keys, args)
        return StreamPosition(offset, epoch.decode())

    async def append_and_publish_once(
        self, publication: Publication, pubsub_channel: str, key: str, ttl: float
    ) -> StreamPosition | None:
        """:meth:`append_and_publish`, unless the once-key ``<prefix>once:<key>`` is set: then
        ``None``. The key is set (for ``ttl`` s) in the same script as the append and the publish."""
        keys = [*self.keys(publication.channel), pubsub_channel, f"{self.prefix}once:{key}"]
        args = (
            self._ttl_ms,
            secrets.token_hex(4),
            self.size,
            self._ttl_us,
            wire.encode_tail(publication),
            max(1, round(ttl * 1000)),
        )
        reply = await self._run(self._append, keys, args)
        if reply is None:
            return None
        offset, epoch = reply
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
