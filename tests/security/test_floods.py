"""Floods of frames of every kind: the flooder gets one error a second, then its close code; a
well-behaved client on the same node receives every one of its messages, in order, throughout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.conftest import Client, Engine, EngineFactory, make_settings

Flood = Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]


async def native_ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"event":"ping"}')


async def websocket_ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.ping(b"x")  # a control frame: aiohttp would answer it by itself; the engine counts it


async def binary(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_bytes(b"\x00\x01binary")


async def client_message(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str('{"event":"message","channel":"private-chat","data":{"spam":true}}')


async def junk(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str("{not json")


FLOODS = [
    pytest.param(native_ping, id="native-pings"),
    pytest.param(websocket_ping, id="websocket-pings"),
    pytest.param(binary, id="binary-frames"),
    pytest.param(client_message, id="client-messages"),
    pytest.param(junk, id="junk-text"),
]


async def drain(ws: aiohttp.ClientWebSocketResponse, into: list[aiohttp.WSMessage]) -> None:
    """Read everything the flooder gets until its connection ends."""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            message = await ws.receive()
            into.append(message)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return


async def flood_beside_a_bystander(engine: Engine, send: Flood, seconds: float) -> tuple[list[Any], Client]:
    """Flood for ``seconds`` while 50 publications go to a bystander; what the flooder received."""
    bystander = await engine.connect()
    await bystander.subscribe("orders")
    # its close waits behind what it queued (the node reads it at the frame rate): do not wait long
    ws = await engine.session.ws_connect(engine.url("/socket"), timeout=aiohttp.ClientWSTimeout(ws_close=0.5))
    flooder = Client(ws)
    await flooder.expect("connected")
    received: list[aiohttp.WSMessage] = []
    reader = asyncio.create_task(drain(flooder.ws, received))

    async def publish() -> None:
        for number in range(50):
            await engine.node.publish(["orders"], "tick", {"n": number})
            await asyncio.sleep(seconds / 60)

    async def flood() -> None:  # its sends block once TCP holds it back; the node closing it ends it
        with contextlib.suppress(ConnectionError, aiohttp.ClientConnectionError):
            while not flooder.ws.closed:
                await send(flooder.ws)

    publisher = asyncio.create_task(publish())
    flooding = asyncio.create_task(flood())
    await asyncio.sleep(seconds)
    flooding.cancel()
    await asyncio.gather(flooding, return_exceptions=True)
    await publisher
    ticks = [await bystander.expect("tick") for _ in range(50)]
    assert [tick["data"]["n"] for tick in ticks] == list(range(50)), "every publication, in order"
    await asyncio.sleep(0.3)
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await flooder.ws.close()
    return received, bystander


@pytest.mark.parametrize("send", FLOODS)
async def test_a_flood_gets_one_error_a_second_and_the_bystander_everything(
    engine_factory: EngineFactory, send: Flood
) -> None:
    engine = await engine_factory(make_settings(client_frames_per_second=20.0, client_flood_close_after=60.0))
    received, bystander = await flood_beside_a_bystander(engine, send, seconds=2.5)
    errors = [m for m in received if m.type is aiohttp.WSMsgType.TEXT and '"code":4029' in m.data]
    assert 1 <= len(errors) <= 4, f"one rate error a second over 2.5 s, got {len(errors)}"
    assert (await bystander.request({"event": "ping"}))["event"] == "pong"


@pytest.mark.parametrize("send", FLOODS)
async def test_a_flood_that_goes_on_is_closed_with_its_code(engine_factory: EngineFactory, send: Flood) -> None:
    engine = await engine_factory(make_settings(client_frames_per_second=20.0, client_flood_close_after=1.0))
    received, bystander = await flood_beside_a_bystander(engine, send, seconds=3.0)
    closes = [m for m in received if m.type is aiohttp.WSMsgType.CLOSE]
    assert closes and closes[0].data == 4102, received[-3:]
    assert engine.node.connections.keys() == {bystander.connection_id}
    status, body = await engine.api("GET", "/api/v1/status")
    assert status == 200 and body["flooding_closed"] == 1 and body["frames_dropped"] > 0
    assert body["client_errors"]["rate_limited"] >= 1
    assert (await bystander.request({"event": "ping"}))["event"] == "pong"


async def test_a_client_under_the_rate_is_never_closed(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(client_frames_per_second=20.0, client_flood_close_after=1.0))
    client = await engine.connect()
    for _ in range(30):  # 15 frames a second for 2 s
        assert (await client.request({"event": "ping"}))["event"] == "pong"
        await client.ws.ping()
        await asyncio.sleep(1 / 15)
    assert not client.ws.closed
