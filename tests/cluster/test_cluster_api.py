"""The cluster's REST answers on two real nodes (CLI processes on PostgreSQL and Redis): live nodes,
idempotent broadcasts, history and readiness, the same whichever node answers.

The fixtures are those of :mod:`tests.cluster.test_two_nodes` (heartbeats every 0.3 s).
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from typing import Any

import aiohttp

from tests.cluster import test_two_nodes as two_nodes
from tests.conftest import ROOT, positioned
from tests.host.test_cli import ServerProcess, connect

# the fixtures, under the names the tests ask for
cluster_env = two_nodes.cluster_env
cluster = two_nodes.cluster
session = two_nodes.session
Cluster = two_nodes.Cluster
HEADERS = two_nodes.HEADERS


async def get(client_session: aiohttp.ClientSession, node: ServerProcess, path: str) -> tuple[int, Any]:
    async with client_session.get(node.url(path), headers=HEADERS) as response:
        return response.status, await response.json()


async def post(client_session: aiohttp.ClientSession, node: ServerProcess, path: str, body: Any) -> tuple[int, Any]:
    async with client_session.post(node.url(path), json=body, headers=HEADERS) as response:
        return response.status, await response.json()


async def live_nodes(client_session: aiohttp.ClientSession, node: ServerProcess) -> dict[str, Any]:
    status, body = await get(client_session, node, "/api/v1/nodes")
    assert status == 200, body
    assert body["count"] == len(body["nodes"])
    return body["nodes"]  # type: ignore[no-any-return]


async def test_every_node_lists_the_live_nodes_and_forgets_a_killed_one(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_b = await connect(session, node_b)
    deadline = time.monotonic() + 3
    while (await live_nodes(session, node_a)).get("node-b", {}).get("connections") != 1:
        assert time.monotonic() < deadline, "no heartbeat counted the connection"
        await asyncio.sleep(0.1)
    for asked in (node_a, node_b):
        nodes = await live_nodes(session, asked)
        assert sorted(nodes) == ["node-a", "node-b"]
        assert nodes["node-b"]["connections"] == 1 and nodes["node-a"]["connections"] == 0
        assert all(info["started_at"] <= info["last_seen"] for info in nodes.values())
    assert on_b.connection_id
    node_b.process.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while sorted(await live_nodes(session, node_a)) != ["node-a"]:
        assert time.monotonic() < deadline, "a killed node is listed after its heartbeat expired"
        await asyncio.sleep(0.1)


async def test_websocket_status_prints_the_nodes(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    node_a = cluster.start("node-a")
    cluster.start("node-b")
    env = {**cluster.env, "REALTIME_ENGINE_URL": node_a.url("")}
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(ROOT / "bootstrap_plugins.py"), "websocket", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "2 live node(s) in the cluster:" in lines
    assert any(line.startswith("  node-a: 0 connections, up ") for line in lines), lines
    assert any(line.startswith("  node-b: 0 connections, up ") for line in lines), lines


async def test_a_retry_sent_to_the_other_node_is_not_published_again(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_a = await connect(session, node_a)
    await on_a.subscribe("orders")
    body = {"channel": "orders", "event": "order.paid", "data": {"id": 1}, "idempotency_key": "order-1-paid"}
    first = await post(session, node_b, "/api/v1/broadcast", body)
    retry = await post(session, node_a, "/api/v1/broadcast", body)
    published = {"published": {"channels": ["orders"], "event": "order.paid"}}
    assert first == (200, {**published, "duplicate": False})
    assert retry == (200, {**published, "duplicate": True})
    assert positioned(await on_a.expect("order.paid"))["data"] == {"id": 1}
    await on_a.nothing(0.5)


async def test_the_history_is_the_same_whichever_node_answers(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    for number in range(1, 5):
        await two_nodes.broadcast(session, node_a if number % 2 else node_b, "orders", {"n": number})
    answers = [await get(session, node, "/api/v1/channels/orders/history?limit=3") for node in (node_a, node_b)]
    assert answers[0] == answers[1]
    status, body = answers[0]
    assert status == 200 and body["offset"] == 4
    assert [(p["offset"], p["data"]["n"]) for p in body["publications"]] == [(2, 2), (3, 3), (4, 4)]


async def test_a_cluster_node_is_ready_with_its_database_and_broker(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a = cluster.start("node-a")
    async with session.get(node_a.url("/readyz")) as response:  # no API key
        assert response.status == 200
        assert await response.json() == {"status": "ok", "checks": {"node": "ok", "database": "ok", "broker": "ok"}}
    async with session.get(node_a.url("/healthz")) as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
