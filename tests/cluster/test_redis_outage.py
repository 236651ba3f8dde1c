"""Redis stopped and restarted under two running nodes, both ways: with its data kept (AOF) and lost.

The nodes run against a private ``redis-server`` on a free port (never the machine's shared one).
While it is down, publishes fail loudly (503); when it is back, delivery resumes on each node without
restarting anything, and recovery says whether the streams survived.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import tests.cluster.test_two_nodes as two_nodes
from tests.cluster.test_two_nodes import HEADERS, Cluster
from tests.conftest import Client, free_port
from tests.host.test_cli import connect

cluster, cluster_env, session = two_nodes.cluster, two_nodes.cluster_env, two_nodes.session  # the fixtures


class PrivateRedis:
    """A ``redis-server`` of this test's own, stopped and started at will."""

    def __init__(self, folder: Path, persistent: bool) -> None:
        self.port = free_port()
        self.folder = folder
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.folder),
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
            if ping.stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        pytest.fail(f"the private redis-server on port {self.port} did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


@pytest.fixture(params=[True, False], ids=["data-kept", "data-lost"])
def private_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, persistent=request.param)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()


@pytest.fixture
def cluster_env_on_private_redis(cluster_env: dict[str, str], private_redis: PrivateRedis) -> dict[str, str]:
    cluster_env["REALTIME_REDIS_URL"] = private_redis.url
    return cluster_env


async def publish(session: aiohttp.ClientSession, url: str, data: Any) -> tuple[int, Any]:
    body = {"channel": "orders", "event": "tick", "data": data}
    async with session.post(url, json=body, headers=HEADERS) as response:
        return response.status, await response.json()


async def test_delivery_survives_a_redis_restart(
    cluster_env_on_private_redis: dict[str, str],
    private_redis: PrivateRedis,
    cluster: Cluster,
    session: aiohttp.ClientSession,
) -> None:
    node_a, node_b = cluster.start("node-a"), cluster.start("node-b")
    broadcast_b = node_b.url("/api/v1/broadcast")
    on_a = await connect(session, node_a)
    await on_a.subscribe("orders")
    data = json.dumps({"user_id": "ada", "user_info": {"name": "ada"}})
    joined = await on_a.subscribe("presence-room", auth=on_a.auth("presence-room", data), channel_data=data)
    assert joined["data"]["count"] == 1
    assert (await publish(session, broadcast_b, 1))[0] == 200
    first = await on_a.expect("tick")

    private_redis.kill()
    status, answer = await publish(session, broadcast_b, "lost")
    assert status == 503 and answer["error"]["code"] == "unavailable", "a publish fails loudly"
    assert (await on_a.request({"event": "ping", "id": 1}))["event"] == "pong", "the connection stays up"

    private_redis.start()
    resumed = await resume(session, broadcast_b, on_a)
    if private_redis.persistent:
        assert (resumed["epoch"], resumed["offset"]) == (first["epoch"], first["offset"] + 1)
    else:
        assert resumed["epoch"] != first["epoch"], "the stream was lost: a new epoch"
    listed = await listed_on(session, node_b.url("/api/v1/connections"), on_a.connection_id)
    assert listed, "the node records its connections again in the cluster state (a lost Redis lost them)"
    members = await wait_for_members(session, node_b.url("/api/v1/channels/presence-room/members"))
    assert members == ["ada"], "presence memberships are recorded again too, info included"
    late = await connect(session, node_a)
    since = {"offset": first["offset"], "epoch": first["epoch"]}
    subscribed = await late.subscribe("orders", since=since)
    assert subscribed["recovered"] is private_redis.persistent
    if private_redis.persistent:
        assert (await late.expect("tick"))["offset"] == resumed["offset"]


async def resume(session: aiohttp.ClientSession, url: str, client: Client) -> dict[str, Any]:
    """Publish until the node takes it again (it reconnects by itself); the publication received."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, _ = await publish(session, url, "back")
        if status == 200:
            frame = await client.expect("tick", timeout=5)
            assert frame["data"] == "back"
            return frame
        assert status == 503
        await asyncio.sleep(0.2)
    pytest.fail("delivery did not resume within 15 s of Redis coming back")


async def listed_on(session: aiohttp.ClientSession, url: str, connection_id: str) -> bool:
    """Whether the connection list answered by ``url`` shows ``connection_id`` within a few seconds."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        async with session.get(url, headers=HEADERS) as response:
            if response.status == 200 and connection_id in {c["id"] for c in (await response.json())["connections"]}:
                return True
        await asyncio.sleep(0.2)
    return False


async def wait_for_members(session: aiohttp.ClientSession, url: str) -> list[str]:
    """The members ``url`` lists once it lists any (within a few seconds)."""
    deadline = time.monotonic() + 5
    members: list[str] = []
    while time.monotonic() < deadline:
        async with session.get(url, headers=HEADERS) as response:
            answer = await response.json()
        members = [m["user_id"] for m in answer["members"] if m["user_info"] == {"name": "ada"}]
        if members:
            return members
        await asyncio.sleep(0.2)
    return members
