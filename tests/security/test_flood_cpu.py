"""A flood costs the node little: a node in its own process, one connection sending frames as fast as
it can, and the node's CPU time read from /proc over the flood (under half a core)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest

from tests.host import test_cli as cli_tests
from tests.host.test_cli import ServerFactory, connect

start_server = cli_tests.start_server  # the fixture
FLOOD_SECONDS = 2.5


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("kind", ["native-pings", "websocket-pings"])
async def test_a_flood_costs_the_node_under_half_a_core(start_server: ServerFactory, kind: str) -> None:
    server = start_server("websocket", "start")
    async with aiohttp.ClientSession() as session:
        bystander = await connect(session, server)
        # its close waits behind what it queued (the node reads it at the frame rate): do not wait long
        flooder = await session.ws_connect(server.url("/socket"), timeout=aiohttp.ClientWSTimeout(ws_close=0.5))
        sent = 0

        async def flood() -> None:
            nonlocal sent
            while True:
                if kind == "native-pings":
                    await flooder.send_str('{"event":"ping"}')
                else:
                    await flooder.ping()
                sent += 1

        before, started = cpu_seconds(server.process.pid), time.monotonic()
        flooding = asyncio.create_task(flood())  # sends block once TCP holds the flooder back
        await asyncio.sleep(FLOOD_SECONDS)
        flooding.cancel()
        await asyncio.gather(flooding, return_exceptions=True)
        elapsed = time.monotonic() - started
        used = cpu_seconds(server.process.pid) - before
        print(f"{kind}: node CPU {used:.2f} s in {elapsed:.2f} s, {sent} frames sent")
        assert used / elapsed < 0.5, f"the node used {used:.2f} s of CPU in {elapsed:.2f} s ({sent} frames sent)"
        assert (await bystander.request({"event": "ping"}))["event"] == "pong", "the node still answers"
        await flooder.close()  # at most ws_close (0.5 s)
