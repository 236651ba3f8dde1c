"""Redis cluster state across nodes: two stores with their own clients and one prefix are one cluster.

The conformance suite checks the semantics with one store; these check what only a shared store
has: several nodes' views, the transitions decided once between them, the key schema, prefix
isolation and failures reported to the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.backends.conftest import TwoNodes, two_nodes
from tests.backends.test_redis_presence import keys
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.registry.cluster_redis import RedisClusterState

Cluster = TwoNodes[RedisClusterState]


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """Two nodes' stores sharing one prefix (whose keys are deleted afterwards)."""
    async with two_nodes(RedisClusterState) as stores:
        yield stores


async def test_two_nodes_see_one_list_and_one_count(cluster: Cluster) -> None:
    cluster.a.opened("node-a", "a1", 1.0, "")
    cluster.b.opened("node-b", "b1", 2.0, "")
    assert await cluster.a.subscribed("a1", "orders") is True
    assert await cluster.b.subscribed("b1", "orders") is False
    for store in (cluster.a, cluster.b):
        page = await store.connections()
        assert [(record.id, record.node_id) for record in page.connections] == [("a1", "node-a"), ("b1", "node-b")]
        assert await store.channels() == {"orders": 2}
    assert await cluster.a.unsubscribed("a1", "orders") is False
    assert await cluster.b.closed("b1") == ["orders"]


async def test_concurrent_subscribes_from_two_nodes_occupy_once(cluster: Cluster) -> None:
    for n in range(30):
        (cluster.a if n % 2 else cluster.b).opened(f"node-{n % 2}", f"c{n}", 1.0, "")
    stores = [cluster.a if n % 2 else cluster.b for n in range(30)]
    occupied = await asyncio.gather(*(stores[n].subscribed(f"c{n}", "orders") for n in range(30)))
    assert occupied.count(True) == 1
    vacated = await asyncio.gather(*(stores[n].closed(f"c{n}") for n in range(30)))
    assert [channels for channels in vacated if channels] == [["orders"]]


async def test_a_dead_nodes_connections_are_removed_in_batches(cluster: Cluster) -> None:
    store = RedisClusterState(cluster.client, cluster.prefix, remove_batch=3)
    for n in range(10):
        store.opened("node-a", f"a{n}", 1.0, "")
        await store.subscribed(f"a{n}", f"channel-{n % 2}")
    cluster.b.opened("node-b", "b1", 1.0, "")
    await cluster.b.subscribed("b1", "channel-0")
    assert await store.remove_node("node-a") == ["channel-1"]  # four scripts; b1 keeps channel-0
    assert await cluster.b.channels() == {"channel-0": 1}
    assert [record.id for record in (await cluster.b.connections()).connections] == ["b1"]
    assert await store.remove_node("node-a") == []


async def test_keys_follow_the_schema_and_go_with_the_connection(cluster: Cluster) -> None:
    cluster.a.opened("node:a", "c:1", 1.0, "10.0.0.1")
    cluster.a.signed_in("c:1", "user:x")
    await cluster.a.subscribed("c:1", "presence:room", "member:y")
    assert await keys(cluster.client, cluster.prefix) == {
        "cluster:connection:c:1",
        "cluster:connections",
        "cluster:node:node:a",
        "cluster:subscribers:presence:room",
        "cluster:user:user:x",
        "cluster:user:member:y",
        "cluster:channels",
    }
    assert await cluster.b.closed("c:1") == ["presence:room"]
    assert await keys(cluster.client, cluster.prefix) == set()


async def test_prefixes_keep_deployments_apart(cluster: Cluster) -> None:
    other = RedisClusterState(cluster.client, cluster.prefix + "other:")
    cluster.a.opened("node-a", "a1", 1.0, "")
    assert await cluster.a.subscribed("a1", "orders") is True
    other.opened("node-a", "a1", 1.0, "")
    assert await other.subscribed("a1", "orders") is True
    assert await other.remove_node("node-a") == ["orders"]
    assert await cluster.b.channels() == {"orders": 1}


async def test_a_redis_that_cannot_be_reached_fails_the_callers() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    store = RedisClusterState(client, "test-unreachable:", timeout=0.5)
    store.opened("node-a", "a1", 1.0, "")  # queued, then dropped and counted
    with pytest.raises(UnavailableError):
        await store.subscribed("a1", "orders")
    with pytest.raises(UnavailableError):
        await store.channels()
    assert store.dropped == 1
    await client.aclose()
