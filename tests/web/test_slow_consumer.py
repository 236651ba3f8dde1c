"""A reader that never reads is cut off for real: closed, and its transport aborted when the close
frame cannot be sent, within ``close_timeout`` + 1 s of passing the buffer limit."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import Engine, EngineFactory, make_settings, masked_text_frame, raw_websocket

PUBLICATIONS = 400
PAD = "x" * 60_000


async def test_a_reader_that_never_reads_is_closed_while_a_bystander_gets_everything(
    engine_factory: EngineFactory,
) -> None:
    close_timeout = 1.0
    engine: Engine = await engine_factory(make_settings(write_buffer_limit=256 * 1024, close_timeout=close_timeout))
    node = engine.node
    bystander = await engine.connect()
    await bystander.subscribe("flood")
    reader, writer = await raw_websocket(engine.server.host, engine.server.port)
    writer.write(masked_text_frame(b'{"event":"subscribe","channel":"flood"}'))
    await writer.drain()
    while node.hub.count("flood") < 2:
        await asyncio.sleep(0.01)
    (sleepy,) = [c for c in node.connections.values() if c.id != bystander.connection_id]
    times: dict[str, float] = {}

    async def watch() -> None:
        while "closed" not in times:
            if node.slow_consumers and "limit" not in times:
                times["limit"] = time.monotonic()
            if sleepy.id not in node.connections and sleepy.transport.is_closing():
                times["closed"] = time.monotonic()
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watch())
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < PUBLICATIONS:
            frame = await bystander.recv(timeout=10)
            if frame["event"] == "big":
                received += 1

    reading = asyncio.create_task(read_all())
    for number in range(PUBLICATIONS):
        await node.publish(["flood"], "big", {"n": number, "pad": PAD})
        await asyncio.sleep(0.001)
    await asyncio.wait_for(reading, 20)
    await asyncio.wait_for(watching, close_timeout + 5)
    writer.close()
    assert received == PUBLICATIONS, "the bystander on the same channel receives everything"
    assert node.slow_consumers == 1
    elapsed = times["closed"] - times["limit"]
    assert elapsed <= close_timeout + 1, f"closed {elapsed:.2f} s after passing the limit"
