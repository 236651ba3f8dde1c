"""Cluster state in Redis, shared by every node of a cluster; the semantics of :mod:`registry.cluster_memory`.

Keys (``<prefix>`` is the deployment's; connection, channel, user and node ids are used as given):

- ``<prefix>cluster:connection:<id>`` hash: ``node``, ``at`` (connected at, epoch seconds),
  ``remote``, ``user`` (signed in) and one ``channel:<name>`` field per subscription, whose value
  is the presence user id it joined as (empty on other channels)
- ``<prefix>cluster:connections`` sorted set (every score 0, so ordered by id): every open connection id
- ``<prefix>cluster:node:<node>`` set: the connection ids the node owns
- ``<prefix>cluster:subscribers:<channel>`` sorted set (score 0): the channel's subscribed connection ids
- ``<prefix>cluster:user:<user>`` set: the connection ids signed in as, or a presence member as, the user
- ``<prefix>cluster:channels`` hash: occupied channel → its subscriber count, cluster-wide

No two kinds of key can collide whatever the ids hold (``connection:`` and ``connections`` differ
at their eleventh character). A connection's keys go when it closes; sets and counts go with their
last member.

Every change is one Lua script, atomic on the server: the channel's count and the transition it
makes (occupied at 1, vacated at 0) are decided in the same step, once for the cluster. A node's
changes are queued in call order and sent, those of one event-loop iteration together, as one
pipeline at a time, so a connection's ``opened`` always reaches Redis before its subscriptions.
The scripts build keys they learn while running, so this store needs one Redis server (or a
primary with replicas), not Redis Cluster. ``remove_node`` works in batches of ``remove_batch``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.redis_calls import redis_call, reply_text, require_bytes
from websocket_realtime_engine.registry.cluster import ConnectionPage, ConnectionRecord

log = logging.getLogger("realtime.cluster")

# Helpers shared by the scripts. ARGV[1] is always the prefix, ARGV[2] a connection or node id.
_LIBRARY = """
local prefix = ARGV[1]
local counts = prefix .. 'cluster:channels'
local everyone = prefix .. 'cluster:connections'

local function key(kind, id)
  return prefix .. 'cluster:' .. kind .. ':' .. id
end

local function is_channel(field)
  return string.sub(field, 1, 8) == 'channel:'
end

-- whether the connection is still the user: signed in as them, or a member as them somewhere
local function holds(connection_key, user_id)
  local fields = redis.call('HGETALL', connection_key)
  for i = 1, #fields, 2 do
    if (fields[i] == 'user' or is_channel(fields[i])) and fields[i + 1] == user_id then return true end
  end
  return false
end

local function release_user(connection_id, user_id)
  if user_id and user_id ~= '' and not holds(key('connection', connection_id), user_id) then
    redis.call('SREM', key('user', user_id), connection_id)
  end
end

-- one subscriber fewer: whether the channel is vacated
local function decrement(connection_id, channel)
  redis.call('ZREM', key('subscribers', channel), connection_id)
  if redis.call('HINCRBY', counts, channel, -1) <= 0 then
    redis.call('HDEL', counts, channel)
    return true
  end
  return false
end

-- forget a connection: the channels it vacated
local function close(connection_id)
  local connection = key('connection', connection_id)
  local fields = redis.call('HGETALL', connection)
  local vacated = {}
  for i = 1, #fields, 2 do
    local field, value = fields[i], fields[i + 1]
    if field == 'node' then
      redis.call('SREM', key('node', value), connection_id)
    elseif field == 'user' or (is_channel(field) and value ~= '') then
      redis.call('SREM', key('user', value), connection_id)
    end
    if is_channel(field) and decrement(connection_id, string.sub(field, 9)) then
      table.insert(vacated, string.sub(field, 9))
    end
  end
  redis.call('DEL', connection)
  redis.call('ZREM', everyone, connection_id)
  return vacated
end
"""

# ARGV: prefix, connection id, node id, connected at, remote
_OPENED = """
local connection_id = ARGV[2]
redis.call('HSET', key('connection', connection_id), 'node', ARGV[3], 'at', ARGV[4], 'remote', ARGV[5])
redis.call('ZADD', everyone, 0, connection_id)
redis.call('SADD', key('node', ARGV[3]), connection_id)
"""

# ARGV: prefix, connection id, user id
_SIGNED_IN = """
local connection_id, user_id = ARGV[2], ARGV[3]
local connection = key('connection', connection_id)
if redis.call('EXISTS', connection) == 0 then return end
local before = redis.call('HGET', connection, 'user')
redis.call('HSET', connection, 'user', user_id)
redis.call('SADD', key('user', user_id), connection_id)
if before and before ~= user_id then release_user(connection_id, before) end
"""

# ARGV: prefix, connection id, channel, member id or '' → 1 when the channel is occupied by it
_SUBSCRIBED = """
local connection_id, channel, member = ARGV[2], ARGV[3], ARGV[4]
local connection = key('connection', connection_id)
if redis.call('EXISTS', connection) == 0 then return 0 end
local field = 'channel:' .. channel
local before = redis.call('HGET', connection, field)
redis.call('HSET', connection, field, member)
if member ~= '' then redis.call('SADD', key('user', member), connection_id) end
if before then
  if before ~= member then release_user(connection_id, before) end
  return 0
end
redis.call('ZADD', key('subscribers', channel), 0, connection_id)
if redis.call('HINCRBY', counts, channel, 1) == 1 then return 1 end
return 0
"""

# ARGV: prefix, connection id, channel → 1 when the channel is vacated by it
_UNSUBSCRIBED = """
local connection_id, channel = ARGV[2], ARGV[3]
local connection = key('connection', connection_id)
local field = 'channel:' .. channel
local member = redis.call('HGET', connection, field)
if not member then return 0 end
redis.call('HDEL', connection, field)
release_user(connection_id, member)
if decrement(connection_id, channel) then return 1 end
return 0
"""

# ARGV: prefix, connection id → the channels it vacated
_CLOSED = """
return close(ARGV[2])
"""

# ARGV: prefix, node id, batch size → {connections the node still owns, {channels vacated}}
_REMOVE_NODE = """
local node = key('node', ARGV[2])
local vacated = {}
for _, connection_id in ipairs(redis.call('SPOP', node, tonumber(ARGV[3]))) do
  for _, channel in ipairs(close(connection_id)) do table.insert(vacated, channel) end
end
return {redis.call('SCARD', node), vacated}
"""

# a queued command: its arguments, the script it runs (to load it again after a Redis restart), its caller
Call = tuple[tuple[Any, ...], "AsyncScript | None", "asyncio.Future[Any] | None"]


def _record(connection_id: str, fields: Mapping[Any, Any]) -> ConnectionRecord | None:
    """A connection's record from its hash (``None`` for a hash that is gone)."""
    if b"node" not in fields:
        return None
    user = fields.get(b"user")
    channels = {
        reply_text(field)[8:]: reply_text(value) or None
        for field, value in fields.items()
        if field.startswith(b"channel:")
    }
    return ConnectionRecord(
        connection_id,
        reply_text(fields[b"node"]),
        float(fields.get(b"at", b"0")),
        reply_text(fields.get(b"remote", b"")),
        None if user is None else reply_text(user),
        channels,
    )


class RedisClusterState:
    """Every node's connections and subscriptions in Redis, shared through ``client`` and ``prefix``.

    :param client: the node's client (its connection pool is shared with the other backends).
    :param prefix: the start of every key, so several deployments share one Redis.
    :param timeout: seconds a call may take before it raises :class:`UnavailableError`.
    :param remove_batch: how many connections one script of :meth:`remove_node` removes at most.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, timeout: float = 2.0, remove_batch: int = 200) -> None:
        require_bytes(client)
        self._client = client
        self._prefix = prefix
        self._timeout = timeout
        self._remove_batch = remove_batch
        self._everyone = f"{prefix}cluster:connections"
        self._counts = f"{prefix}cluster:channels"
        self._queue: list[Call] = []
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0  # changes that could not be recorded (Redis away)
        self._opened = client.register_script(_LIBRARY + _OPENED)
        self._signed_in = client.register_script(_LIBRARY + _SIGNED_IN)
        self._subscribed = client.register_script(_LIBRARY + _SUBSCRIBED)
        self._unsubscribed = client.register_script(_LIBRARY + _UNSUBSCRIBED)
        self._closed = client.register_script(_LIBRARY + _CLOSED)
        self._remove_node = client.register_script(_LIBRARY + _REMOVE_NODE)

    # -- changes -----------------------------------------------------------------------------------

    def opened(self, node_id: str, connection_id: str, connected_at: float, remote: str) -> None:
        """Record a new connection owned by ``node_id``; sent with the next batch, before later calls."""
        self._enqueue(self._opened, (connection_id, node_id, repr(connected_at), remote), None)

    def signed_in(self, connection_id: str, user_id: str) -> None:
        """Record the connection's signed-in user; sent with the next batch, before later calls."""
        self._enqueue(self._signed_in, (connection_id, user_id), None)

    async def subscribed(self, connection_id: str, channel: str, member_id: str | None = None) -> bool:
        """Record a subscription; ``True`` when it is the channel's first subscriber in the cluster."""
        return bool(await self._run(self._subscribed, connection_id, channel, member_id or ""))

    async def unsubscribed(self, connection_id: str, channel: str) -> bool:
        """Forget a subscription; ``True`` when it was the channel's last in the cluster."""
        return bool(await self._run(self._unsubscribed, connection_id, channel))

    async def closed(self, connection_id: str) -> list[str]:
        """Forget a connection and its subscriptions; the channels it was the last subscriber of."""
        return [reply_text(channel) for channel in await self._run(self._closed, connection_id)]

    async def remove_node(self, node_id: str) -> list[str]:
        """Forget every connection ``node_id`` owns, a batch per script; the channels vacated by it."""
        vacated: list[str] = []
        remaining = 1
        while remaining:
            remaining, channels = await self._run(self._remove_node, node_id, self._remove_batch)
            vacated.extend(reply_text(channel) for channel in channels)
        return vacated

    # -- reads (queued too: they see every change this node made before) ---------------------------

    async def connection(self, connection_id: str) -> ConnectionRecord | None:
        """One open connection, on any node, or ``None``."""
        return _record(connection_id, await self._command("HGETALL", self._key("connection", connection_id)))

    async def connections(
        self, channel: str | None = None, user_id: str | None = None, limit: int = 1000, after: str | None = None
    ) -> ConnectionPage:
        """Open connections (subscribed to ``channel``, being ``user_id``): the first ``limit`` by id
        above ``after``, and how many match in all. Without ``user_id`` a page costs one range read
        of a sorted set, whatever the number of connections; a user's few connections are read whole."""
        if user_id is not None:
            return await self._user_connections(user_id, channel, limit, after)
        ids_key = self._key("subscribers", channel) if channel is not None else self._everyone
        low = b"-" if after is None else b"(" + after.encode()
        ids, count = await asyncio.gather(
            self._command("ZRANGE", ids_key, low, b"+", "BYLEX", "LIMIT", 0, limit + 1),
            self._command("ZCARD", ids_key),
        )
        page = [reply_text(member) for member in ids[:limit]]
        found = await self._records(page)
        # a connection closed between the two reads is neither listed nor counted
        return ConnectionPage(found, int(count) - (len(page) - len(found)), page[-1] if len(ids) > limit else None)

    async def _user_connections(
        self, user_id: str, channel: str | None, limit: int, after: str | None
    ) -> ConnectionPage:
        ids = sorted(reply_text(member) for member in await self._command("SMEMBERS", self._key("user", user_id)))
        found = [record for record in await self._records(ids) if channel is None or channel in record.channels]
        start = 0 if after is None else bisect.bisect_right([record.id for record in found], after)
        page = found[start : start + limit]
        more = start + limit < len(found)
        return ConnectionPage(page, len(found), page[-1].id if more and page else None)

    async def _records(self, ids: Sequence[str]) -> list[ConnectionRecord]:
        """The records of those connections still open, in the order given."""
        hashes = await asyncio.gather(*(self._command("HGETALL", self._key("connection", i)) for i in ids))
        records = (_record(connection_id, fields) for connection_id, fields in zip(ids, hashes, strict=True))
        return [record for record in records if record is not None]

    async def channels(self) -> dict[str, int]:
        """Every occupied channel: its name to its subscriber count, cluster-wide."""
        counts = await self._command("HGETALL", self._counts)
        return {reply_text(channel): int(count) for channel, count in counts.items()}

    async def count(self, channel: str) -> int:
        """How many subscriptions the channel has, cluster-wide."""
        return int(await self._command("HGET", self._counts, channel) or 0)

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}cluster:{kind}:{name}"

    # -- the ordered pipeline ----------------------------------------------------------------------

    async def _run(self, script: AsyncScript, *args: Any) -> Any:
        """Run a script after every earlier call of this node; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue(script, args, future)
        return await future

    async def _command(self, *command: Any) -> Any:
        """Send a command after every earlier call of this node; its reply."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((command, None, future))
        self._start_sending()
        return await future

    def _enqueue(self, script: AsyncScript, args: tuple[Any, ...], future: asyncio.Future[Any] | None) -> None:
        self._queue.append((("EVALSHA", script.sha, 0, self._prefix, *args), script, future))
        self._start_sending()

    def _start_sending(self) -> None:
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send(), name="realtime-cluster-state")

    async def _send(self) -> None:
        """Send the queue, one pipeline at a time, until it is empty."""
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    replies = await redis_call(self._execute(batch), self._timeout)
                except Exception as exc:  # noqa: BLE001 - every caller of the batch is told, none hangs
                    failure = exc if isinstance(exc, UnavailableError) else UnavailableError(f"Redis failed: {exc!r}")
                    for _, _, future in batch:
                        self._settle(future, exception=failure)
                    continue
                for (_, _, future), reply in zip(batch, replies, strict=True):
                    if isinstance(reply, Exception):
                        self._settle(future, exception=reply)
                    else:
                        self._settle(future, reply)
        finally:
            self._sender = None

    async def _execute(self, batch: Sequence[Call]) -> list[Any]:
        """Run the batch in one pipeline; scripts Redis did not know (after a restart) are loaded and
        run again, in order."""
        replies = await self._pipeline(batch)
        missing = [index for index, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            for script in {batch[index][1] for index in missing}:
                if script is not None:
                    await self._client.script_load(script.script)
            again = await self._pipeline([batch[index] for index in missing])
            for index, reply in zip(missing, again, strict=True):
                replies[index] = reply
        return replies

    async def _pipeline(self, batch: Sequence[Call]) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command, _, _ in batch:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    def _settle(
        self, future: asyncio.Future[Any] | None, result: Any = None, exception: Exception | None = None
    ) -> None:
        """Give a caller its reply; a change nobody waits for is logged when it failed."""
        if future is None:
            if exception is not None:
                self.dropped += 1
                log.warning("a cluster state change was not recorded: %s", exception)
            return
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
