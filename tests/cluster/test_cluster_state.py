"""Cluster-wide answers and actions on two real nodes: lists from Redis, disconnects routed to the
owner, occupied/vacated decided once. The fixtures are those of :mod:`tests.cluster.test_two_nodes`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster import test_two_nodes as two_nodes
from tests.cluster.test_two_nodes import HEADERS, Cluster, join
from tests.conftest import ROOT, Client
from tests.host.test_cli import ServerProcess, connect

# the two-node fixtures, by name
cluster, cluster_env, session = two_nodes.cluster, two_nodes.cluster_env, two_nodes.session
EMITTER = "order-emitter"
EVENTS_FILE = "ORDER_EMITTER_EVENTS_FILE"  # tests/plugins/order_emitter/hooks/record.py


async def api(session: aiohttp.ClientSession, method: str, node: ServerProcess, path: str) -> tuple[int, Any]:
    async with session.request(method, node.url(f"/api/v1{path}"), headers=HEADERS) as response:
        return response.status, await response.json()


async def connection_ids(session: aiohttp.ClientSession, node: ServerProcess, query: str = "") -> list[str]:
    status, body = await api(session, "GET", node, f"/connections{query}")
    assert status == 200, body
    assert body["count"] == len(body["connections"])
    return sorted(connection["id"] for connection in body["connections"])


async def closed_with(client: Client, timeout: float = 5.0) -> int:
    """The close code the client receives next (whatever came before it)."""
    deadline = time.monotonic() + timeout
    while True:
        message = await asyncio.wait_for(client.ws.receive(), max(0.1, deadline - time.monotonic()))
        if message.type is aiohttp.WSMsgType.CLOSE:
            return int(message.data)


async def test_any_node_lists_every_connection_and_forgets_a_killed_nodes(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_a = await connect(session, node_a)
    on_b = [await connect(session, node_b) for _ in range(2)]
    await on_a.subscribe("orders")
    await on_b[0].subscribe("orders")
    await on_b[1].subscribe("products")
    everyone = sorted([on_a.connection_id, *(client.connection_id for client in on_b)])
    for node in (node_a, node_b):
        assert await connection_ids(session, node) == everyone
        on_orders = sorted([on_a.connection_id, on_b[0].connection_id])
        assert await connection_ids(session, node, "?channel=orders") == on_orders
    status, body = await api(session, "GET", node_a, "/connections")
    nodes = {connection["id"]: connection["node"] for connection in body["connections"]}
    assert nodes[on_b[1].connection_id] == "node-b" and nodes[on_a.connection_id] == "node-a"
    status, body = await api(session, "GET", node_a, "/channels")
    assert body["channels"] == {
        "orders": {"type": "public", "subscription_count": 2},
        "products": {"type": "public", "subscription_count": 1},
    }
    node_b.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    while await connection_ids(session, node_a) != [on_a.connection_id]:
        assert time.monotonic() - killed < 10, "a killed node's connections are listed after 10 s"
        await asyncio.sleep(0.2)
    status, body = await api(session, "GET", node_a, "/channels")
    assert body["channels"] == {"orders": {"type": "public", "subscription_count": 1}}
    status, body = await api(session, "GET", node_a, "/channels/products")
    assert body["subscription_count"] == 0 and body["occupied"] is False


async def test_disconnects_asked_of_one_node_close_connections_on_the_other(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_b = await connect(session, node_b)
    status, body = await api(session, "POST", node_a, f"/connections/{on_b.connection_id}/disconnect")
    assert status == 200 and body == {"disconnected": [on_b.connection_id]}
    assert await closed_with(on_b) == 4009
    status, body = await api(session, "POST", node_a, "/connections/1.1/disconnect")
    assert status == 404 and body["error"]["code"] == "not_found"
    # a user's connections, signed in or presence members, on both nodes
    ada = [await connect(session, node) for node in (node_a, node_b, node_b)]
    for client in ada:
        await join(client, "presence-room", "ada")
    bob = await connect(session, node_b)
    await join(bob, "presence-room", "bob")
    assert len(await connection_ids(session, node_a, "?user_id=ada")) == 3
    status, body = await api(session, "POST", node_a, "/users/ada/disconnect")
    assert status == 200 and body == {"user_id": "ada", "disconnected": 3}
    assert [await closed_with(client) for client in ada] == [4009, 4009, 4009]
    # bob's connection goes on: it answers a ping, and hears that ada left (in either order: the
    # member_removed comes once the cluster has seen ada's last connection go)
    await bob.send({"event": "ping"})
    frames = [await bob.recv(), await bob.recv()]
    assert sorted(frame["event"] for frame in frames) == ["member_removed", "pong"], frames
    assert next(frame for frame in frames if frame["event"] == "member_removed")["data"] == {"user_id": "ada"}


@pytest.fixture
def events_file(cluster: Cluster, tmp_path: Path) -> Path:
    """The order-emitter test plugin activated too, writing the engine events it gets to a file
    that every node of the cluster appends to."""
    activate = subprocess.run(
        [sys.executable, str(ROOT / "bootstrap_plugins.py"), "plugin", "activate", EMITTER],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert activate.returncode == 0, activate.stderr
    path = tmp_path / "events.jsonl"
    cluster.env[EVENTS_FILE] = str(path)
    return path


def channel_events(path: Path, channel: str) -> list[str]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [name for name, payload in lines if name.startswith("channel_") and payload["channel"] == channel]


async def wait_for_events(path: Path, channel: str, count: int, timeout: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(events := channel_events(path, channel)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return events


async def test_occupied_and_vacated_fire_once_for_two_nodes(
    cluster: Cluster, events_file: Path, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    clients = [await connect(session, node) for node in (node_a, node_b, node_a, node_b)]
    for client in clients:
        await client.subscribe("orders")
    assert await wait_for_events(events_file, "orders", 1) == ["channel_occupied"]
    for client in clients:
        await client.request({"event": "unsubscribe", "channel": "orders"})
    assert await wait_for_events(events_file, "orders", 2) == ["channel_occupied", "channel_vacated"]
    await clients[1].subscribe("orders")  # occupied again, on the other node this time
    await clients[1].ws.close()
    events = await wait_for_events(events_file, "orders", 4)
    await asyncio.sleep(0.3)  # nothing more comes
    assert channel_events(events_file, "orders") == events == ["channel_occupied", "channel_vacated"] * 2
