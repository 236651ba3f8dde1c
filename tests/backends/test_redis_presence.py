"""Redis presence across nodes: two stores with their own clients and one prefix are one cluster.

The conformance suite checks the semantics with one store; these check what only a shared store
has: several nodes' views, ownership by node, batches, the key schema and prefix isolation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.backends.conftest import TwoNodes, redis_connection, two_nodes
from websocket_realtime_engine.presence.base import Joined
from websocket_realtime_engine.presence.redis import RedisPresence

ROOM = "presence-room"


Cluster = TwoNodes[RedisPresence]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Two nodes' stores sharing one prefix (whose keys are deleted afterwards)."""
    async with two_nodes(RedisPresence) as stores:
        yield stores


async def keys(client: redis.Redis, prefix: str) -> set[str]:
    """Every key under ``prefix``, without it."""
    return {key.decode()[len(prefix) :] async for key in client.scan_iter(match=f"{prefix}*", count=1000)}


async def test_two_nodes_see_the_same_members(cluster: Cluster) -> None:
    assert await cluster.a.join(ROOM, "a1", "alice", {"name": "Alice"}, "node-a", 10) is Joined.FIRST
    assert await cluster.b.join(ROOM, "b1", "bob", None, "node-b", 10) is Joined.FIRST
    expected = {"alice": {"name": "Alice"}, "bob": None}
    assert await cluster.a.members(ROOM) == expected
    assert await cluster.b.members(ROOM) == expected
    assert await cluster.a.count(ROOM) == await cluster.b.count(ROOM) == 2


async def test_a_user_on_two_nodes_is_one_member_until_the_last_leaves(cluster: Cluster) -> None:
    assert await cluster.a.join(ROOM, "a1", "alice", {"on": "laptop"}, "node-a", 10) is Joined.FIRST
    assert await cluster.b.join(ROOM, "b1", "alice", {"on": "phone"}, "node-b", 10) is Joined.AGAIN
    assert await cluster.b.members(ROOM) == {"alice": {"on": "laptop"}}
    assert await cluster.a.leave(ROOM, "a1") is None
    assert await cluster.a.members(ROOM) == {"alice": {"on": "phone"}}  # the oldest remaining connection's
    assert await cluster.a.count(ROOM) == 1
    assert await cluster.b.leave(ROOM, "b1") == "alice"
    assert await cluster.a.members(ROOM) == {}


async def test_remove_node_keeps_the_other_nodes_members(cluster: Cluster) -> None:
    await cluster.a.join(ROOM, "a1", "alice", {"on": "laptop"}, "node-a", 10)
    await cluster.a.join(ROOM, "a2", "bob", None, "node-a", 10)
    await cluster.b.join(ROOM, "b1", "alice", {"on": "phone"}, "node-b", 10)
    await cluster.b.join(ROOM, "b2", "carol", None, "node-b", 10)
    assert await cluster.b.remove_node("node-a") == [(ROOM, "bob")]
    assert await cluster.a.members(ROOM) == {"alice": {"on": "phone"}, "carol": None}
    assert await cluster.a.leave(ROOM, "a1") is None
    assert sorted(await cluster.a.remove_node("node-b")) == [(ROOM, "alice"), (ROOM, "carol")]
    assert await keys(cluster.client, cluster.prefix) == set()


async def test_concurrent_joins_from_several_nodes_never_exceed_the_limit(cluster: Cluster) -> None:
    stores = [cluster.a, cluster.b] * 3
    joins = (stores[n % 6].join(ROOM, f"c{n}", f"u{n}", None, f"node-{n % 6}", 10) for n in range(60))
    joined = await asyncio.gather(*joins)
    assert joined.count(Joined.FIRST) == 10 and joined.count(Joined.FULL) == 50
    assert await cluster.b.count(ROOM) == 10


async def test_a_connection_joining_from_another_node_moves_to_it(cluster: Cluster) -> None:
    await cluster.a.join(ROOM, "c1", "alice", None, "node-a", 10)
    assert await cluster.b.join(ROOM, "c1", "alice", {"moved": True}, "node-b", 10) is Joined.AGAIN
    assert await cluster.a.remove_node("node-a") == []
    assert await cluster.a.members(ROOM) == {"alice": {"moved": True}}
    assert await cluster.a.remove_node("node-b") == [(ROOM, "alice")]


async def test_remove_node_works_through_many_connections_in_batches(cluster: Cluster) -> None:
    store = RedisPresence(cluster.client, cluster.prefix, remove_batch=3)
    for n in range(10):
        await store.join(f"presence-{n % 2}", f"c{n}", f"u{n // 2}", None, "node-a", 100)
    await store.join("presence-0", "b1", "u0", None, "node-b", 100)
    removed = await store.remove_node("node-a")
    assert sorted(removed) == sorted((f"presence-{n % 2}", f"u{n // 2}") for n in range(10) if n != 0)
    assert await store.members("presence-0") == {"u0": None}


async def test_the_keys_follow_the_schema_and_go_with_the_last_member(cluster: Cluster) -> None:
    await cluster.a.join(ROOM, "a1", "alice", None, "node-a", 10)
    await cluster.a.join("presence-other", "a1", "bob", None, "node-a", 10)
    assert await keys(cluster.client, cluster.prefix) == {
        f"presence:{ROOM}:connections",
        f"presence:{ROOM}:users",
        f"presence:{ROOM}:members",
        "presence:presence-other:connections",
        "presence:presence-other:users",
        "presence:presence-other:members",
        "presence-nodes:node-a",
    }
    assert await cluster.a.leave(ROOM, "a1") == "alice"
    assert await cluster.b.remove_node("node-a") == [("presence-other", "bob")]
    assert await keys(cluster.client, cluster.prefix) == set()


async def test_ids_with_colons_do_not_collide(cluster: Cluster) -> None:
    await cluster.a.join("presence-a", "c:1", "user:members", None, "node:a", 1)
    assert await cluster.a.join("presence-a:users", "c:1", "bob", None, "node:a", 1) is Joined.FIRST
    assert await cluster.a.join("presence-a:members", "c:2", "carol", None, "a", 1) is Joined.FIRST
    assert await cluster.a.members("presence-a") == {"user:members": None}
    assert await cluster.a.remove_node("a") == [("presence-a:members", "carol")]
    assert sorted(await cluster.a.remove_node("node:a")) == [
        ("presence-a", "user:members"),
        ("presence-a:users", "bob"),
    ]


async def test_prefixes_are_isolated() -> None:
    async with redis_connection() as (client, shop_1), redis_connection() as (_, shop_2):
        first, second = RedisPresence(client, shop_1), RedisPresence(client, shop_2)
        assert await first.join(ROOM, "c1", "alice", None, "node-a", 1) is Joined.FIRST
        assert await second.join(ROOM, "c1", "bob", None, "node-a", 1) is Joined.FIRST
        assert await first.members(ROOM) == {"alice": None}
        assert await second.remove_node("node-a") == [(ROOM, "bob")]
        assert await first.members(ROOM) == {"alice": None}
        assert await second.count(ROOM) == 0
