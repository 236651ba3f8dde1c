"""Fan-out: slow consumers are cut off with 4101 while everyone else keeps receiving."""

from __future__ import annotations

import asyncio
import json
import threading

from websockets.sync.client import connect

from tests.conftest import Engine, EngineFactory, make_settings

MESSAGES = 2000


def read_all(url: str, ready: threading.Event, result: dict[str, int]) -> None:
    """A fast subscriber in its own thread (its own socket reads, not the server's event loop)."""
    with connect(url, max_size=None) as ws:
        json.loads(ws.recv())
        ws.send('{"event":"subscribe","channel":"flood"}')
        json.loads(ws.recv())
        ready.set()
        while result["received"] < MESSAGES:
            if json.loads(ws.recv(timeout=20))["event"] == "flood":
                result["received"] += 1


async def test_a_slow_consumer_is_closed_and_the_others_get_everything(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(write_buffer_limit=256 * 1024))
    host, port = engine.server.host, engine.server.port
    # A raw client that completes the handshake, subscribes, then never reads again.
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET /socket HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    payload = b'{"event":"subscribe","channel":"flood"}'
    writer.write(bytes((0x81, 0x80 | len(payload))) + b"\0\0\0\0" + payload)  # masked with a zero key
    await writer.drain()
    ready, result = threading.Event(), {"received": 0}
    fast = threading.Thread(target=read_all, args=(f"ws://{host}:{port}/socket", ready, result), daemon=True)
    fast.start()
    assert await asyncio.to_thread(ready.wait, 5)
    assert engine.node.hub.count("flood") == 2
    chunk = "x" * 8000
    for number in range(MESSAGES):
        await engine.node.publish(["flood"], "flood", {"n": number, "pad": chunk})
        if number % 10 == 0:
            await asyncio.sleep(0.001)
    await asyncio.to_thread(fast.join, 30)
    assert result["received"] == MESSAGES
    assert engine.node.slow_consumers == 1
    writer.close()
