"""Two real nodes joined by Redis: processes started through the CLI, sharing one PostgreSQL database.

Each test gets its own database and its own Redis key prefix; the nodes beat every 0.3 s (a node is
thought dead after three missed beats) so a crash is noticed within a second or two.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.conftest import CREDENTIALS, POSTGRES_URL, ROOT, Client, free_port, positioned
from tests.host.test_cli import ServerProcess, connect
from tests.web.test_hardening import member_data

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PLUGIN = "websocket-realtime-engine"


def psql(sql: str) -> None:
    host = POSTGRES_URL.split("@", 1)[1].split("/", 1)[0].split(":")[0]
    subprocess.run(["psql", "-h", host, "-U", "postgres", "-d", "postgres", "-qc", sql], check=True, timeout=30)


@pytest.fixture
def cluster_env(platform_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database, a Redis prefix of its own, the test credentials, short heartbeats."""
    database = f"cluster_{secrets.token_hex(4)}"
    psql(f"create database {database}")
    base = POSTGRES_URL.rsplit("/", 1)[0]
    env = {
        **platform_env,
        "SHOPOLOGIC_DATABASE_URL": f"{base}/{database}",
        "REALTIME_REDIS_URL": REDIS_URL,
        "REALTIME_REDIS_PREFIX": f"test-{secrets.token_hex(4)}:",
        "REALTIME_NODE_HEARTBEAT": "0.3",
        **{f"REALTIME_{name.upper()}": value for name, value in CREDENTIALS.items()},
    }
    yield env
    psql(f"drop database if exists {database} with (force)")
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{env['REALTIME_REDIS_PREFIX']}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@dataclass
class Cluster:
    env: dict[str, str]
    folder: Path
    nodes: list[ServerProcess]

    def start(self, node_id: str) -> ServerProcess:
        port = free_port()
        args = ["websocket", "start", "--port", str(port), "--node-id", node_id]
        node = ServerProcess(args, self.env, port, self.folder)
        self.nodes.append(node)
        node.wait_until_accepting()
        return node


@pytest.fixture
def cluster(cluster_env: dict[str, str], tmp_path: Path) -> Iterator[Cluster]:
    """Start nodes of one cluster (the plugin activated once first); all stopped at the end."""
    activate = subprocess.run(
        [sys.executable, str(ROOT / "bootstrap_plugins.py"), "plugin", "activate", PLUGIN],
        env=cluster_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert activate.returncode == 0, activate.stderr
    started = Cluster(cluster_env, tmp_path, [])
    yield started
    for node in started.nodes:
        if node.process.poll() is None:
            node.process.terminate()
    for node in started.nodes:
        try:
            node.process.wait(10)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


HEADERS = {"Authorization": f"Bearer {CREDENTIALS['api_key']}"}


async def broadcast(session: aiohttp.ClientSession, node: ServerProcess, channel: str, data: Any) -> None:
    body = {"channel": channel, "event": "tick", "data": data}
    async with session.post(node.url("/api/v1/broadcast"), json=body, headers=HEADERS) as response:
        assert response.status == 200, await response.text()


async def members(session: aiohttp.ClientSession, node: ServerProcess, channel: str) -> Any:
    async with session.get(node.url(f"/api/v1/channels/{channel}/members"), headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        answer = await response.json()
    return sorted(member["user_id"] for member in answer["members"]), answer["count"]


async def join(client: Client, channel: str, user_id: str) -> dict[str, Any]:
    data = member_data(user_id)
    return await client.subscribe(channel, auth=client.auth(channel, data), channel_data=data)


async def ada_on_a_and_bob_on_b(
    cluster: Cluster, session: aiohttp.ClientSession
) -> tuple[ServerProcess, ServerProcess, Client, Client]:
    """Nodes a and b; ada (the watcher) joins presence-room on a, bob on b; ada saw bob arrive. The
    caller keeps bob's client: a client nobody holds is closed when it is collected."""
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    watcher = await connect(session, node_a)
    await join(watcher, "presence-room", "ada")
    bob = await connect(session, node_b)
    await join(bob, "presence-room", "bob")
    assert (await watcher.expect("member_added"))["data"]["user_id"] == "bob"
    return node_a, node_b, watcher, bob


async def test_a_broadcast_sent_to_b_reaches_a_client_on_a(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_a = await connect(session, node_a)
    on_b = await connect(session, node_b)
    assert (await on_a.subscribe("orders"))["event"] == "subscribed"
    assert (await on_b.subscribe("orders"))["event"] == "subscribed"
    await broadcast(session, node_b, "orders", {"n": 1})
    await broadcast(session, node_a, "orders", {"n": 2})
    for client in (on_a, on_b):
        first, second = await client.expect("tick"), await client.expect("tick")
        assert positioned(first)["data"] == {"n": 1} and positioned(second)["data"] == {"n": 2}
        assert (first["offset"], second["offset"]) == (1, 2), "one stream, whichever node published"
    async with session.get(node_a.url("/api/v1/status"), headers=HEADERS) as response:
        status = await response.json()
    assert status["backends"] == "redis"
    stats = status["backend_stats"]
    assert stats["pool"]["size"] == 52, "REALTIME_REDIS_POOL_SIZE (50) + the subscription and publish connections"
    assert stats["broker"]["state"] == "connected" and stats["cluster_state_dropped"] == 0


async def test_presence_is_one_list_across_nodes(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    ada_a = await connect(session, node_a)
    await join(ada_a, "presence-room", "ada")
    bob_b = await connect(session, node_b)
    joined = await join(bob_b, "presence-room", "bob")
    assert sorted(m["user_id"] for m in joined["data"]["members"]) == ["ada", "bob"]
    assert (await ada_a.expect("member_added"))["data"]["user_id"] == "bob"
    ada_b = await connect(session, node_b)  # ada again, on the other node: still one member
    await join(ada_b, "presence-room", "ada")
    assert await members(session, node_a, "presence-room") == (["ada", "bob"], 2)
    assert await members(session, node_b, "presence-room") == (["ada", "bob"], 2)
    await bob_b.nothing(0.3)  # no second member_added for ada
    await ada_a.ws.close()
    await bob_b.nothing(0.3)  # ada is still here through node b
    await ada_b.ws.close()
    assert (await bob_b.expect("member_removed"))["data"]["user_id"] == "ada"


async def test_a_client_that_loses_its_node_recovers_on_the_other(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    on_b = await connect(session, node_b)
    await on_b.subscribe("orders")
    await broadcast(session, node_a, "orders", {"n": 0})
    last = await on_b.expect("tick")
    node_b.process.kill()  # the node is gone; the client notices and goes to node a
    for number in range(1, 6):
        await broadcast(session, node_a, "orders", {"n": number})
    again = await connect(session, node_a)
    subscribed = await again.subscribe("orders", since={"offset": last["offset"], "epoch": last["epoch"]})
    assert subscribed["recovered"] is True
    missed = [await again.expect("tick") for _ in range(5)]
    assert [frame["data"]["n"] for frame in missed] == [1, 2, 3, 4, 5]
    assert [frame["offset"] for frame in missed] == list(range(last["offset"] + 1, last["offset"] + 6))
    await again.nothing(0.3)


async def test_the_members_of_a_killed_node_leave_within_ten_seconds(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b, watcher, _bob = await ada_on_a_and_bob_on_b(cluster, session)
    node_b.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    removed = await watcher.expect("member_removed", timeout=10)
    assert removed["data"]["user_id"] == "bob"
    assert time.monotonic() - killed < 10
    assert await members(session, node_a, "presence-room") == (["ada"], 1)


async def test_sigterm_makes_a_nodes_members_leave_at_once(cluster: Cluster, session: aiohttp.ClientSession) -> None:
    node_a, node_b, watcher, _bob = await ada_on_a_and_bob_on_b(cluster, session)
    node_b.process.terminate()
    stopped = time.monotonic()
    assert (await watcher.expect("member_removed", timeout=5))["data"]["user_id"] == "bob"
    assert time.monotonic() - stopped < 3, "at shutdown, not after the heartbeat expires"
    await asyncio.to_thread(node_b.process.wait, 10)


def query(env: dict[str, str], sql: str) -> list[str]:
    """Rows of a query on the cluster's database, as psql prints them (``|`` between columns)."""
    url = env["SHOPOLOGIC_DATABASE_URL"]
    database = url.rsplit("/", 1)[1]
    host = url.split("@", 1)[1].split("/", 1)[0].split(":")[0]
    answer = subprocess.run(
        ["psql", "-h", host, "-U", "postgres", "-d", database, "-Atc", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return answer.stdout.splitlines()


async def test_the_record_of_a_killed_node_is_closed_by_the_survivor(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b, watcher, _bob = await ada_on_a_and_bob_on_b(cluster, session)
    await asyncio.sleep(1.0)  # the write-behind record has the rows (it flushes every 0.5 s)
    open_rows = "select count(*) from realtime_connections where node_id = 'node-b' and closed_at is null"
    assert query(cluster.env, open_rows) == ["1"]
    node_b.process.kill()
    await watcher.expect("member_removed", timeout=10)
    deadline = time.monotonic() + 5
    while query(cluster.env, open_rows) != ["0"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert query(cluster.env, open_rows) == ["0"], "the dead node's connections are closed"
    left = "select count(*) from realtime_presence where user_id = 'bob' and left_at is null"
    assert query(cluster.env, left) == ["0"], "its presence rows have their end"
    stopped = "select id from realtime_server_nodes where stopped_at is not null"
    assert query(cluster.env, stopped) == ["node-b"]
    alive = "select count(*) from realtime_connections where node_id = 'node-a' and closed_at is null"
    assert query(cluster.env, alive) == ["1"], "the survivor's own stay open"


async def test_a_node_restarted_under_its_id_after_a_kill_leaves_no_ghosts(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a, node_b, watcher, _bob = await ada_on_a_and_bob_on_b(cluster, session)
    await asyncio.sleep(1.0)  # the write-behind record has bob's connection
    node_b.process.kill()
    # at once, under the same id: its old heartbeat has not expired yet, so it waits for that first
    again = await asyncio.to_thread(cluster.start, "node-b")
    assert (await watcher.expect("member_removed", timeout=10))["data"]["user_id"] == "bob"
    for node in (node_a, again):
        assert await members(session, node, "presence-room") == (["ada"], 1)
    async with session.get(again.url("/api/v1/connections"), headers=HEADERS) as response:
        listed = await response.json()
    assert [c["node"] for c in listed["connections"]] == ["node-a"], "the killed run's connection is gone"
    open_rows = "select count(*) from realtime_connections where node_id = 'node-b' and closed_at is null"
    assert query(cluster.env, open_rows) == ["0"], "the killed run's record is closed"
    newcomer = await connect(session, again)
    await join(newcomer, "presence-room", "cy")
    assert (await watcher.expect("member_added"))["data"]["user_id"] == "cy"


async def test_a_second_node_under_a_live_nodes_id_refuses_to_start(
    cluster: Cluster, session: aiohttp.ClientSession
) -> None:
    node_a = cluster.start("node-a")
    watcher = await connect(session, node_a)
    await join(watcher, "presence-room", "ada")
    port = free_port()
    twin = ServerProcess(
        ["websocket", "start", "--port", str(port), "--node-id", "node-a"], cluster.env, port, cluster.folder
    )
    cluster.nodes.append(twin)
    code = await asyncio.to_thread(twin.process.wait, 20)
    assert code != 0
    assert "error: another node is running with node id 'node-a'" in twin.stderr
    assert await members(session, node_a, "presence-room") == (["ada"], 1), "the live node lost nothing"
    await broadcast(session, node_a, "presence-room", {"still": "here"})
    assert (await watcher.expect("tick"))["data"] == {"still": "here"}
