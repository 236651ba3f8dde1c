"""Two nodes behind the nginx that ``websocket setup-cluster`` configured: real processes throughout.

``setup-cluster --standalone`` writes a whole nginx.conf; the test starts the two nodes on the ports
it was given and nginx (Debian's package, its own process, files in the test's folder) with that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import tests.cluster.test_two_nodes as two_nodes
from tests.conftest import ROOT, Client, free_port, positioned
from tests.host.test_cli import ServerProcess, connect

cluster, cluster_env, session = two_nodes.cluster, two_nodes.cluster_env, two_nodes.session

CLIENT_ADDRESS = "203.0.113.7"  # what the client says it is; nginx appends the address it came from


def free_port_pair() -> int:
    """A free port whose next one is free too, for the two nodes."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


def wait_until_accepting(port: int, process: subprocess.Popen[str], log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nginx does not accept connections on port {port}")


@pytest.fixture
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").is_file() else None)
    assert found, "nginx is not installed: `make services` installs it (scripts/ensure-services.sh)"
    return found


class Nginx:
    """nginx in the foreground with ``config``; terminated (then killed) by :meth:`stop`."""

    def __init__(self, binary: str, config: Path, port: int) -> None:
        self.port = port
        self.log = config.parent / "nginx-startup.log"
        command = [binary, "-c", str(config), "-e", str(self.log), "-g", "daemon off;"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        wait_until_accepting(port, self.process, self.log)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Proxied:
    """nginx in front of two nodes, as ``setup-cluster`` configured them."""

    proxy: Nginx
    node_a: ServerProcess
    node_b: ServerProcess
    output: str  # what setup-cluster printed
    config: Path  # the nginx configuration it wrote


@contextlib.contextmanager
def proxied_cluster(
    cluster: two_nodes.Cluster, cluster_env: dict[str, str], nginx_binary: str, tmp_path: Path, *more_flags: str
) -> Iterator[Proxied]:
    """setup-cluster for two nodes (with ``more_flags``), the nodes started as it says, nginx with what it wrote."""
    base, listen = free_port_pair(), free_port()
    config = tmp_path / "nginx" / "realtime.conf"
    flags = ["--nodes", "2", "--base-port", str(base), "--listen", f"127.0.0.1:{listen}", "--standalone"]
    command = [sys.executable, str(ROOT / "bootstrap_plugins.py"), "websocket", "setup-cluster"]
    command += ["--redis-url", two_nodes.REDIS_URL, *flags, *more_flags, "--nginx-config", str(config)]
    result = subprocess.run(command, cwd=ROOT, env=cluster_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    nodes = []
    for number, port in enumerate((base, base + 1), start=1):
        args = ["websocket", "start", "--port", str(port), "--node-id", f"node-{number}"]
        assert " ".join(args) in result.stdout, result.stdout  # the command it printed
        node = ServerProcess(args, cluster.env, port, cluster.folder)
        cluster.nodes.append(node)  # stopped by the cluster fixture
        nodes.append(node)
    for node in nodes:
        node.wait_until_accepting()
    proxy = Nginx(nginx_binary, config, listen)
    try:
        yield Proxied(proxy, nodes[0], nodes[1], result.stdout, config)
    finally:
        proxy.stop()


@pytest.fixture
def proxied(
    cluster: two_nodes.Cluster, cluster_env: dict[str, str], nginx_binary: str, tmp_path: Path
) -> Iterator[Proxied]:
    """setup-cluster for two nodes, the nodes started as it says, nginx with what it wrote."""
    with proxied_cluster(cluster, cluster_env, nginx_binary, tmp_path) as started:
        yield started


async def connect_through(session: aiohttp.ClientSession, proxy: Nginx) -> Client:
    ws = await session.ws_connect(proxy.url("/socket"), headers={"X-Forwarded-For": CLIENT_ADDRESS})
    client = Client(ws)
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


async def post_broadcast(session: aiohttp.ClientSession, url: str, data: Any) -> None:
    body = {"channel": "orders", "event": "tick", "data": data}
    async with session.post(url + "/api/v1/broadcast", json=body, headers=two_nodes.HEADERS) as response:
        assert response.status == 200, await response.text()


def recorded_remote(env: dict[str, str], connection_id: str, timeout: float = 5.0) -> str:
    """The ``remote`` the durable record has for the connection (written behind, so polled)."""
    sql = f"select remote from realtime_connections where id = '{connection_id}'"
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            ["psql", env["SHOPOLOGIC_DATABASE_URL"], "-Atc", sql], capture_output=True, text=True, timeout=10
        )
        if found.stdout.strip() or time.monotonic() > deadline:
            return found.stdout.strip()
        time.sleep(0.2)


async def test_broadcasts_cross_nginx_both_ways(
    proxied: Proxied, session: aiohttp.ClientSession, cluster_env: dict[str, str]
) -> None:
    stored = tomllib.loads(Path(cluster_env["REALTIME_CONFIG_FILE"]).read_text())
    assert stored == {"redis_url": two_nodes.REDIS_URL, "trusted_proxies": ["127.0.0.1"]}
    assert f"nginx -c {proxied.config.resolve()}" in proxied.output
    proxy, node_a, node_b = proxied.proxy, proxied.node_a, proxied.node_b
    through = await connect_through(session, proxy)
    on_a = await connect(session, node_a)
    for client in (through, on_a):
        assert (await client.subscribe("orders"))["event"] == "subscribed"
    await post_broadcast(session, node_b.url(""), {"n": 1})  # to node B directly
    await post_broadcast(session, proxy.url(""), {"n": 2})  # through nginx, to either node
    for client in (through, on_a):
        received = [positioned(await client.expect("tick"))["data"] for _ in range(2)]
        assert received == [{"n": 1}, {"n": 2}]
    # the node read the client's address from X-Forwarded-For: nginx (127.0.0.1) is a trusted proxy
    remote = await asyncio.to_thread(recorded_remote, cluster_env, through.connection_id)
    assert remote == CLIENT_ADDRESS
    assert await asyncio.to_thread(recorded_remote, cluster_env, on_a.connection_id) == "127.0.0.1"
