"""The node registry conformance suite: heartbeats expire, and a dead node is claimed once.

Only the :class:`NodeRegistry` interface is used; times are real (short TTLs and ``asyncio.sleep``),
so a backend with its own clock, such as Redis, passes the same tests.
"""

from __future__ import annotations

import asyncio

from websocket_realtime_engine.registry.base import NodeRegistry


async def test_a_heartbeat_is_listed_with_its_info(registry: NodeRegistry) -> None:
    await registry.heartbeat("node-a", {"connections": 3, "started": 1700000000.5}, 5)
    await registry.heartbeat("node-b", {"connections": 0}, 5)
    assert await registry.nodes() == {
        "node-a": {"connections": 3, "started": 1700000000.5},
        "node-b": {"connections": 0},
    }
    await registry.heartbeat("node-a", {"connections": 4}, 5)
    assert (await registry.nodes())["node-a"] == {"connections": 4}
    assert await registry.claim_dead() == []


async def test_a_heartbeat_expires_after_its_ttl(registry: NodeRegistry) -> None:
    await registry.heartbeat("node-a", {"connections": 1}, 0.2)
    await registry.heartbeat("node-b", {"connections": 2}, 5)
    await asyncio.sleep(0.35)
    assert await registry.nodes() == {"node-b": {"connections": 2}}
    assert await registry.claim_dead() == ["node-a"]
    assert await registry.claim_dead() == []
    assert await registry.nodes() == {"node-b": {"connections": 2}}


async def test_a_dead_node_is_claimed_by_one_caller_only(registry: NodeRegistry) -> None:
    await registry.heartbeat("node-a", {}, 0.1)
    await asyncio.sleep(0.25)
    claims = await asyncio.gather(*(registry.claim_dead() for _ in range(10)))
    assert sorted(claims) == [[]] * 9 + [["node-a"]]


async def test_a_renewed_heartbeat_stays(registry: NodeRegistry) -> None:
    for beat in range(4):
        await registry.heartbeat("node-a", {"beat": beat}, 0.3)
        await asyncio.sleep(0.15)
    assert await registry.nodes() == {"node-a": {"beat": 3}}
    assert await registry.claim_dead() == []


async def test_deregister_removes_without_a_death(registry: NodeRegistry) -> None:
    await registry.heartbeat("node-a", {"connections": 1}, 0.2)
    await registry.deregister("node-a")
    assert await registry.nodes() == {}
    await asyncio.sleep(0.35)
    assert await registry.claim_dead() == []
    await registry.deregister("node-unknown")
