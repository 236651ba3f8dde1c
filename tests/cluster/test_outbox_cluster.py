"""The outbox across processes and node failures: real nodes (``websocket start``) on PostgreSQL and
Redis, shop events emitted by other processes, the draining node killed.

- Emitting while no engine runs returns at once, with no error and no network call; the events go
  out once the engine is back, and a subscriber that resumes from its last offset gets each once, in order.
- 1,000 events drained by one of two nodes, which is ``kill -9``'d midway: the other takes over and
  every event is published once, in per-channel order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.cluster.test_two_nodes import HEADERS, Cluster, cluster, cluster_env, query, session  # noqa: F401
from tests.conftest import ROOT, Client
from tests.host.test_cli import ServerProcess, connect

FAST_OUTBOX = {
    "REALTIME_OUTBOX_POLL_INTERVAL": "0.2",
    "REALTIME_OUTBOX_LEASE_TTL": "1.0",
    "REALTIME_OUTBOX_BATCH_SIZE": "20",
}


class CountingListener:
    """A TCP port that counts the connections made to it (nothing should ever connect)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[CountingListener]:
    counting = CountingListener()
    yield counting
    counting.close()


def order(number: int) -> dict[str, Any]:
    return {"id": f"o-{number}", "customer_id": "7", "status": "pending", "total": "10.00", "number": str(number)}


async def status(session: aiohttp.ClientSession, node: ServerProcess) -> dict[str, Any]:  # noqa: F811
    async with session.get(node.url("/api/v1/status"), headers=HEADERS) as response:
        assert response.status == 200, await response.text()
        return await response.json()  # type: ignore[no-any-return]


async def test_events_emitted_while_the_engine_is_down_arrive_once_in_order_after_it_restarts(
    cluster: Cluster,  # noqa: F811
    session: aiohttp.ClientSession,  # noqa: F811
    listener: CountingListener,
) -> None:
    # polling slowed down: the first event, emitted by another process, must arrive by NOTIFY
    cluster.env.update({**FAST_OUTBOX, "REALTIME_OUTBOX_POLL_INTERVAL": "5"})
    node = cluster.start("node-1")
    await asyncio.sleep(0.5)  # the drainer's first look is over: it waits for a wake-up now
    client = await connect(session, node)
    await client.subscribe("orders")
    emit = [sys.executable, str(ROOT / "bootstrap_plugins.py"), "emit", "order.created"]
    first = subprocess.run([*emit, json.dumps({"order": order(0)})], env=cluster.env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    last = await client.expect("order.created", timeout=3)
    assert last["data"]["order"]["number"] == "0"

    node.process.send_signal(signal.SIGKILL)
    node.process.wait(10)
    # the emitters are told the engine is somewhere that counts every connection made to it
    env = {**cluster.env, "REALTIME_ENGINE_URL": f"http://127.0.0.1:{listener.port}"}
    started = time.monotonic()
    result = subprocess.run([*emit, json.dumps({"order": order(1)})], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "realtime outbox row" in result.stdout, result.stdout
    script = ORDER_EMITTER.format(root=str(ROOT), first=2, last=5)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 15
    assert listener.accepted == 0, "emitting made a network call"
    waiting = query(cluster.env, "select count(*) from realtime_outbox where published_at is null")
    assert waiting == ["5"]

    again = cluster.start("node-1")  # the same node id: it waits out its dead run's heartbeat
    resumed = await connect(session, again)
    subscribed = await resumed.subscribe("orders", since={"offset": last["offset"], "epoch": last["epoch"]})
    assert subscribed["event"] == "subscribed"
    frames = [await resumed.expect("order.created", timeout=10) for _ in range(5)]
    assert [frame["data"]["order"]["number"] for frame in frames] == ["1", "2", "3", "4", "5"]
    assert [frame["offset"] for frame in frames] == list(range(last["offset"] + 1, last["offset"] + 6))
    await resumed.nothing(0.5)
    figures = (await status(session, again))["outbox"]
    assert figures["depth"] == 0 and figures["draining"] is True and figures["published"] == 5


ORDER_EMITTER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from shopologic.config import HostSettings
    from shopologic.platform import Platform

    async def main():
        platform = Platform(HostSettings.from_env())
        await platform.load()
        for number in range({first}, {last} + 1):
            order = {{"id": f"o-{{number}}", "customer_id": "7", "status": "pending", "total": "10.00",
                     "number": str(number)}}
            await platform.emit("order.created", order=order)
        await platform.close()

    asyncio.run(main())
    """
)

EMITTER = textwrap.dedent(
    """
    import asyncio, sys
    sys.path.insert(0, {root!r})
    from shopologic.config import HostSettings
    from shopologic.platform import Platform

    platform = Platform(HostSettings.from_env())
    asyncio.run(platform.load())
    # no event loop runs here any more: each hook call is a synchronous insert (psycopg)
    for number in range({count}):
        product = {{"id": f"p{{number % 5}}", "name": "Mug", "price": "9.90", "stock": number}}
        [row] = platform.hook.product_stock_changed(product=product, previous_stock=number + 1)
    print(row.id)
    """
)


async def collect(client: Client, into: list[dict[str, Any]], count: int) -> None:
    while len(into) < count:
        into.append(await client.recv(timeout=30))


async def test_a_thousand_events_survive_the_draining_node_being_killed(
    cluster: Cluster,  # noqa: F811
    session: aiohttp.ClientSession,  # noqa: F811
) -> None:
    cluster.env.update(FAST_OUTBOX)
    nodes = {"node-a": cluster.start("node-a"), "node-b": cluster.start("node-b")}
    deadline = time.monotonic() + 10
    drainer = None
    while drainer is None and time.monotonic() < deadline:
        for name, node in nodes.items():
            if (await status(session, node))["outbox"]["draining"]:
                drainer = name
        await asyncio.sleep(0.1)
    assert drainer is not None, "one node drains"
    survivor = nodes["node-b" if drainer == "node-a" else "node-a"]
    assert not (await status(session, survivor))["outbox"]["draining"], "and only one"

    listing = await connect(session, survivor)
    await listing.subscribe("products")
    pages = {}
    for number in range(5):
        pages[number] = await connect(session, survivor)
        await pages[number].subscribe(f"product.p{number}")
    seen: list[dict[str, Any]] = []
    watching = asyncio.create_task(collect(listing, seen, 1000))
    emitter = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EMITTER.format(root=str(ROOT), count=1000),
        env=cluster.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    while len(seen) < 300:
        await asyncio.sleep(0.01)
        assert not watching.done(), watching.exception()
    nodes[drainer].process.send_signal(signal.SIGKILL)
    killed_at = len(seen)
    out, err = await emitter.communicate()
    assert emitter.returncode == 0, err.decode()
    await asyncio.wait_for(watching, 60)
    await listing.nothing(1.0)  # nothing after the thousandth: no duplicate

    stocks = [frame["data"]["product"]["stock"] for frame in seen]
    assert stocks == list(range(1000)), f"once each, in order (killed after {killed_at})"
    for number, page in pages.items():
        frames = [await page.recv(timeout=10) for _ in range(200)]
        assert [frame["data"]["product"]["stock"] for frame in frames] == list(range(number, 1000, 5))
        await page.nothing(0.1)
    assert killed_at < 1000, "the drainer was killed before it was done"
    figures = (await status(session, survivor))["outbox"]
    assert figures["draining"] is True and figures["depth"] == 0
    assert query(cluster.env, "select count(*) from realtime_outbox where published_at is null") == ["0"]
