"""Fan-out: slow consumers are cut off with 4101 while everyone else keeps receiving."""

from __future__ import annotations

import asyncio
import json
import threading

from websockets.sync.client import connect

from tests.conftest import Engine, EngineFactory, make_settings, masked_text_frame, raw_websocket

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
    reader, writer = await raw_websocket(host, port)
    payload = b'{"event":"subscribe","channel":"flood"}'
    writer.write(masked_text_frame(payload))
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


async def test_a_slow_presence_member_is_removed_for_the_others(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(write_buffer_limit=1024 * 1024))
    watcher = await engine.connect()
    data = '{"user_id":"watcher"}'
    await watcher.subscribe("presence-room", auth=watcher.auth("presence-room", data), channel_data=data)
    host, port = engine.server.host, engine.server.port
    reader, writer = await raw_websocket(host, port)
    await reader.readuntil(b"\r\n\r\n")
    header = await reader.readexactly(2)
    hello = json.loads(await reader.readexactly(header[1]))
    from websocket_realtime_engine.protocol import auth

    member = '{"user_id":"sleepy"}'
    signature = auth.make_auth(
        "test-key", "test-secret-value", auth.channel_string(hello["data"]["connection_id"], "presence-room", member)
    )
    payload = json.dumps(
        {"event": "subscribe", "channel": "presence-room", "auth": signature, "channel_data": member}
    ).encode()
    writer.write(masked_text_frame(payload))
    await writer.drain()
    assert (await watcher.expect("member_added"))["data"]["user_id"] == "sleepy"
    frames: list[dict] = []

    async def watch() -> None:
        while not frames or frames[-1]["event"] != "member_removed":
            frames.append(await watcher.recv(timeout=10))

    watching = asyncio.create_task(watch())
    # the sleepy client reads nothing more; large publications fill its socket, then its buffer
    for number in range(600):
        if watching.done():
            break
        await engine.node.publish(["presence-room"], "big", {"n": number, "pad": "x" * 60_000})
        await asyncio.sleep(0.001)
    await asyncio.wait_for(watching, 10)
    assert frames[-1]["data"] == {"user_id": "sleepy"}
    assert engine.node.slow_consumers == 1
    writer.close()
