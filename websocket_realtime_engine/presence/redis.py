"""Presence in Redis, shared by every node of a cluster; the semantics of :mod:`presence.memory`.

Keys (``<prefix>`` is the deployment's; channel, user, connection and node ids are used as given):

- ``<prefix>presence:<channel>:connections`` hash: connection id → JSON ``[user id, node id, user info JSON]``
- ``<prefix>presence:<channel>:users`` hash: user id → JSON list of the user's connection ids, oldest first
- ``<prefix>presence:<channel>:members`` hash: user id → user info JSON of the user's oldest connection
- ``<prefix>presence-nodes:<node>`` set: JSON ``[channel, connection id]`` of each connection the node owns

The three suffixes are no suffix of one another and node keys start ``presence-``, not ``presence:``,
so no channel, user or node id (``:`` included) can make two keys collide. A channel's hashes go
with its last member (Redis drops empty keys), a node's set with its last connection.

Every change is one Lua script, atomic on the server: ``join`` checks the limit and joins in one
step, so concurrent joins from several nodes never exceed it. The scripts build keys they learn
while running (a connection's node, a node's channels), so this store needs one Redis server (or a
primary with replicas), not Redis Cluster. ``remove_node`` runs a script per batch of
``remove_batch`` connections, so a dead node with many connections never blocks Redis for long.
"""

from __future__ import annotations

import orjson
import redis.asyncio as redis

from websocket_realtime_engine.presence.base import Joined, UserInfo
from websocket_realtime_engine.redis_calls import reply_pairs, reply_text

# Helpers shared by the scripts. ARGV[1] is always the prefix.
_LIBRARY = """
local prefix = ARGV[1]

local function channel_key(channel, part)
  return prefix .. 'presence:' .. channel .. ':' .. part
end

local function node_key(node_id)
  return prefix .. 'presence-nodes:' .. node_id
end

local function holding(channel, connection_id)
  return cjson.encode({channel, connection_id})
end

local function index_of(list, item)
  for i, value in ipairs(list) do
    if value == item then return i end
  end
  return nil
end

-- Remove one connection: the user id when it was the user's last connection on the channel, else false.
local function remove(channel, connection_id)
  local connections = channel_key(channel, 'connections')
  local raw = redis.call('HGET', connections, connection_id)
  if not raw then return false end
  local record = cjson.decode(raw)
  local user_id = record[1]
  local users = channel_key(channel, 'users')
  local held = cjson.decode(redis.call('HGET', users, user_id) or '[]')
  local at = index_of(held, connection_id)
  if at then table.remove(held, at) end
  redis.call('HDEL', connections, connection_id)
  redis.call('SREM', node_key(record[2]), holding(channel, connection_id))
  if #held == 0 then
    redis.call('HDEL', users, user_id)
    redis.call('HDEL', channel_key(channel, 'members'), user_id)
    return user_id
  end
  redis.call('HSET', users, user_id, cjson.encode(held))
  if at == 1 then
    local first = cjson.decode(redis.call('HGET', connections, held[1]))
    redis.call('HSET', channel_key(channel, 'members'), user_id, first[3])
  end
  return false
end
"""

# ARGV: prefix, channel, connection id, user id, user info JSON, node id, limit → first / again / full
_JOIN = """
local channel, connection_id, user_id, info, node_id = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local limit = tonumber(ARGV[7])
local connections = channel_key(channel, 'connections')
local users = channel_key(channel, 'users')
local members = channel_key(channel, 'members')
local raw = redis.call('HGET', connections, connection_id)
if raw and cjson.decode(raw)[1] ~= user_id then
  -- a connection holds one membership per channel: joining as another user replaces it
  remove(channel, connection_id)
  raw = false
end
local held_raw = redis.call('HGET', users, user_id)
if not held_raw and redis.call('HLEN', users) >= limit then return 'full' end
local record = cjson.encode({user_id, node_id, info})
if raw then
  -- this connection already holds the user's membership: take the new node and info
  local owner = cjson.decode(raw)[2]
  if owner ~= node_id then
    redis.call('SREM', node_key(owner), holding(channel, connection_id))
    redis.call('SADD', node_key(node_id), holding(channel, connection_id))
  end
  redis.call('HSET', connections, connection_id, record)
  if cjson.decode(held_raw)[1] == connection_id then redis.call('HSET', members, user_id, info) end
  return 'again'
end
redis.call('HSET', connections, connection_id, record)
redis.call('SADD', node_key(node_id), holding(channel, connection_id))
if held_raw then
  local held = cjson.decode(held_raw)
  table.insert(held, connection_id)
  redis.call('HSET', users, user_id, cjson.encode(held))
  return 'again'
end
redis.call('HSET', users, user_id, cjson.encode({connection_id}))
redis.call('HSET', members, user_id, info)
return 'first'
"""

# ARGV: prefix, channel, connection id → the user id when it was the user's last connection, else nil
_LEAVE = """
return remove(ARGV[2], ARGV[3])
"""

# ARGV: prefix, node id, batch size → {connections the node still owns, {channel, user id, ...}}
_REMOVE_NODE = """
local node_id = ARGV[2]
local node = node_key(node_id)
local left = {}
for _, entry in ipairs(redis.call('SPOP', node, tonumber(ARGV[3]))) do
  local channel, connection_id = unpack(cjson.decode(entry))
  local raw = redis.call('HGET', channel_key(channel, 'connections'), connection_id)
  if raw and cjson.decode(raw)[2] == node_id then
    local user_id = remove(channel, connection_id)
    if user_id then
      table.insert(left, channel)
      table.insert(left, user_id)
    end
  end
end
return {redis.call('SCARD', node), left}
"""


class RedisPresence:
    """Members of presence channels in Redis, shared by every node using ``client`` and ``prefix``.

    :param client: the node's client (its connection pool is shared with the other backends).
    :param prefix: the start of every key, so several deployments share one Redis.
    :param remove_batch: how many connections one script of :meth:`remove_node` removes at most.
    """

    def __init__(self, client: redis.Redis, prefix: str, remove_batch: int = 200) -> None:
        self._client = client
        self._prefix = prefix
        self._remove_batch = remove_batch
        self._join = client.register_script(_LIBRARY + _JOIN)
        self._leave = client.register_script(_LIBRARY + _LEAVE)
        self._remove_node = client.register_script(_LIBRARY + _REMOVE_NODE)

    async def join(
        self, channel: str, connection_id: str, user_id: str, user_info: UserInfo, node_id: str, limit: int
    ) -> Joined:
        """Add a connection as ``user_id`` in one atomic step (check of the limit included), cluster-wide.

        A connection holds one membership per channel: joining again as another user replaces it.
        """
        info = orjson.dumps(user_info)
        result = await self._join(args=[self._prefix, channel, connection_id, user_id, info, node_id, limit])
        return Joined(reply_text(result))

    async def leave(self, channel: str, connection_id: str) -> str | None:
        """Remove a connection; the user id when it was that user's last connection on the channel
        on any node, else ``None``."""
        user_id = await self._leave(args=[self._prefix, channel, connection_id])
        return None if user_id is None else reply_text(user_id)

    async def remove_node(self, node_id: str) -> list[tuple[str, str]]:
        """Remove every connection ``node_id`` owns; the ``(channel, user_id)`` of users who left
        by it (those with no connection left on the channel on any node), for ``member_removed``.

        Each batch of connections is removed atomically; a user's last connection is reported once.
        """
        left: list[tuple[str, str]] = []
        remaining = 1
        while remaining:
            remaining, removed = await self._remove_node(args=[self._prefix, node_id, self._remove_batch])
            left.extend((reply_text(channel), reply_text(user_id)) for channel, user_id in reply_pairs(removed))
        return left

    async def members(self, channel: str) -> dict[str, UserInfo]:
        """Every member of the channel: user id to user info (the oldest remaining connection's)."""
        members = await self._client.hgetall(self._channel_key(channel, "members"))
        return {reply_text(user_id): orjson.loads(info) for user_id, info in members.items()}

    async def count(self, channel: str) -> int:
        """How many users (not connections) are on the channel, on every node."""
        return await self._client.hlen(self._channel_key(channel, "users"))

    def _channel_key(self, channel: str, part: str) -> str:
        """The key of one of a channel's hashes (the module docstring lists them)."""
        return f"{self._prefix}presence:{channel}:{part}"
