"""The Redis node registry across nodes: several clients on one prefix are one cluster.

The conformance suite checks the semantics with one registry; these check what only a shared one
has: every node's view, a claim by one node of the whole cluster, bounded claims, no keys left over.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import redis.asyncio as redis

from tests.backends.conftest import redis_connection
from websocket_realtime_engine.registry.redis import RedisRegistry


async def keys(client: redis.Redis, prefix: str) -> set[str]:
    """Every key under ``prefix``, without it."""
    return {key.decode()[len(prefix) :] async for key in client.scan_iter(match=f"{prefix}*", count=1000)}


async def test_every_node_lists_every_node() -> None:
    async with redis_connection() as (client_a, prefix), redis_connection() as (client_b, _):
        a, b = RedisRegistry(client_a, prefix), RedisRegistry(client_b, prefix)
        await a.heartbeat("node-a", {"connections": 1}, 5)
        await b.heartbeat("node-b", {"connections": 2}, 5)
        assert await a.nodes() == await b.nodes() == {"node-a": {"connections": 1}, "node-b": {"connections": 2}}
        assert await keys(client_a, prefix) == {"nodes:expiry", "nodes:info"}


async def test_a_dead_node_is_claimed_by_one_node_of_the_cluster() -> None:
    async with AsyncExitStack() as stack:
        connections = [await stack.enter_async_context(redis_connection()) for _ in range(3)]
        prefix = connections[0][1]  # the others' prefixes stay unused (and empty)
        registries = [RedisRegistry(client, prefix) for client, _ in connections for _ in range(3)]
        await registries[0].heartbeat("node-dead", {}, 0.1)
        await registries[1].heartbeat("node-alive", {}, 5)
        await asyncio.sleep(0.25)
        claims = await asyncio.gather(*(registry.claim_dead() for registry in registries))
        assert sorted(claims) == [[]] * 8 + [["node-dead"]]
        assert list(await registries[4].nodes()) == ["node-alive"]


async def test_claims_are_bounded_and_take_the_info_with_them() -> None:
    async with redis_connection() as (client, prefix):
        registry = RedisRegistry(client, prefix, claim_batch=2)
        for n in range(5):
            await registry.heartbeat(f"node-{n}", {"n": n}, 0.05)
        await asyncio.sleep(0.15)
        claims = [await registry.claim_dead() for _ in range(4)]
        assert [len(claim) for claim in claims] == [2, 2, 1, 0]
        assert sorted(sum(claims, [])) == [f"node-{n}" for n in range(5)]
        assert await keys(client, prefix) == set()


async def test_deregister_leaves_no_keys() -> None:
    async with redis_connection() as (client, prefix):
        registry = RedisRegistry(client, prefix)
        await registry.heartbeat("node-a", {"connections": 1}, 5)
        await registry.deregister("node-a")
        assert await keys(client, prefix) == set()
