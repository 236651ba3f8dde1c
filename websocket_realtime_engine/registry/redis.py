"""Node registry in Redis, shared by every node of a cluster; the semantics of :mod:`registry.memory`.

Keys (``<prefix>`` is the deployment's):

- ``<prefix>nodes:expiry`` sorted set: node id → when its heartbeat expires (ms, the Redis server's clock)
- ``<prefix>nodes:info`` hash: node id → its last info, JSON

Expiry times come from ``TIME`` inside the scripts, so the nodes' clocks do not matter. A node that
deregisters leaves both at once; a dead one stays until a caller of :meth:`RedisRegistry.claim_dead`
claims it (removing both), however long that takes, so that its presence members are still removed
after the whole cluster was down. A claim takes at most ``claim_batch`` nodes (the rest go to the
next call), so its script stays short and the dead nodes' info is cleaned up in bounded steps.
"""

from __future__ import annotations

import orjson
import redis.asyncio as redis

from websocket_realtime_engine.redis_calls import reply_pairs, reply_text
from websocket_realtime_engine.registry.base import NodeInfo

# The Redis server's time in whole milliseconds (so that it prints in full in a score range).
_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""

# KEYS: expiry, info; ARGV: node id, info JSON, ttl in seconds
_HEARTBEAT = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]) * 1000, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""
)

# KEYS: expiry, info → {node id, info JSON, ...} of live nodes
_NODES = (
    _NOW
    + """
local live = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')
if #live == 0 then return {} end
local infos = redis.call('HMGET', KEYS[2], unpack(live))
local result = {}
for i, node_id in ipairs(live) do
  if infos[i] then
    table.insert(result, node_id)
    table.insert(result, infos[i])
  end
end
return result
"""
)

# KEYS: expiry, info; ARGV: most nodes to claim → the node ids claimed, removed by this call
_CLAIM_DEAD = (
    _NOW
    + """
local dead = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
if #dead == 0 then return {} end
redis.call('ZREM', KEYS[1], unpack(dead))
redis.call('HDEL', KEYS[2], unpack(dead))
return dead
"""
)


class RedisRegistry:
    """Live nodes and their load in Redis, shared by every node using ``client`` and ``prefix``.

    :param client: the node's client (its connection pool is shared with the other backends).
    :param prefix: the start of every key, so several deployments share one Redis.
    :param claim_batch: how many dead nodes one :meth:`claim_dead` returns at most.
    """

    def __init__(self, client: redis.Redis, prefix: str, claim_batch: int = 100) -> None:
        self._client = client
        self._keys = [f"{prefix}nodes:expiry", f"{prefix}nodes:info"]
        self._claim_batch = claim_batch
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._nodes = client.register_script(_NODES)
        self._claim_dead = client.register_script(_CLAIM_DEAD)

    async def heartbeat(self, node_id: str, info: NodeInfo, ttl: float) -> None:
        """Say that ``node_id`` is alive for ``ttl`` more seconds (by the Redis server's clock), with
        its current ``info`` (connections, load, started, last seen...)."""
        await self._heartbeat(keys=self._keys, args=[node_id, orjson.dumps(info), ttl])

    async def nodes(self) -> dict[str, NodeInfo]:
        """Every live node (heartbeat within its TTL): node id to its last info."""
        flat = await self._nodes(keys=self._keys)
        return {reply_text(node_id): orjson.loads(info) for node_id, info in reply_pairs(flat)}

    async def deregister(self, node_id: str) -> None:
        """A node leaving cleanly: no longer listed, and never reported dead."""
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys[0], node_id)
            pipe.hdel(self._keys[1], node_id)
            await pipe.execute()

    async def claim_dead(self) -> list[str]:
        """Nodes whose heartbeat expired without a goodbye, at most ``claim_batch`` per call; each is
        returned to one caller only, cluster-wide (the claim and removal are one script)."""
        dead = await self._claim_dead(keys=self._keys, args=[self._claim_batch])
        return [reply_text(node_id) for node_id in dead]
