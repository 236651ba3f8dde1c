"""The native protocol over real WebSocket connections to a real server."""

from __future__ import annotations

import asyncio
import contextlib
import re

import aiohttp
import orjson
import pytest
import websockets

from tests.conftest import CREDENTIALS, Engine, EngineFactory, make_settings, positioned, raw_websocket
from websocket_realtime_engine.protocol import auth


async def test_connected_frame_gives_a_pusher_style_id_and_the_heartbeat(engine: Engine) -> None:
    first, second = await engine.connect(), await engine.connect()
    assert re.fullmatch(r"\d+\.\d+", first.connection_id)
    assert first.connection_id != second.connection_id
    assert engine.node.connections.keys() == {first.connection_id, second.connection_id}


async def test_subscribe_receive_unsubscribe(engine: Engine) -> None:
    client = await engine.connect()
    assert positioned(await client.subscribe("orders", id=1)) == {
        "event": "subscribed",
        "channel": "orders",
        "id": 1,
        "data": {},
    }
    await engine.node.publish(["orders"], "order.created", {"id": "1"})
    assert positioned(await client.recv()) == {"event": "order.created", "channel": "orders", "data": {"id": "1"}}
    reply = await client.request({"event": "unsubscribe", "channel": "orders", "id": "u"})
    assert reply == {"event": "unsubscribed", "channel": "orders", "id": "u"}
    await engine.node.publish(["orders"], "order.created", {"id": "2"})
    await client.nothing()


async def test_subscribing_twice_is_answered_like_the_first_time(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    assert (await client.subscribe("orders"))["event"] == "subscribed"
    await engine.node.publish(["orders"], "e", 1)
    assert (await client.recv())["data"] == 1
    await client.nothing()  # delivered once, not twice


async def test_ping_pong_echoes_the_id(engine: Engine) -> None:
    client = await engine.connect()
    assert await client.request({"event": "ping", "id": 42}) == {"event": "pong", "id": 42}


async def test_private_channel_needs_a_valid_signature_for_this_connection(engine: Engine) -> None:
    alice, mallory = await engine.connect(), await engine.connect()
    missing = await mallory.subscribe("private-admin.orders", id=1)
    assert missing["event"] == "error" and missing["data"]["code"] == 4009 and missing["id"] == 1
    wrong = await mallory.subscribe("private-admin.orders", auth=mallory.auth("private-admin.orders", secret="nope"))
    assert wrong["data"]["code"] == 4009
    good = alice.auth("private-admin.orders")
    assert (await alice.subscribe("private-admin.orders", auth=good))["event"] == "subscribed"
    replayed = await mallory.subscribe("private-admin.orders", auth=good)
    assert replayed["event"] == "error" and replayed["data"]["code"] == 4009
    await engine.node.publish(["private-admin.orders"], "secret", {"x": 1})
    assert (await alice.recv())["event"] == "secret"
    await mallory.nothing()


async def test_client_messages_reach_the_others_not_the_sender_unless_it_asks(engine: Engine) -> None:
    sender, other = await engine.connect(), await engine.connect()
    for client in (sender, other):
        await client.subscribe("private-chat", auth=client.auth("private-chat"))
    assert await sender.request({"event": "message", "channel": "private-chat", "data": {"t": "hi"}, "id": 5}) == {
        "event": "ack",
        "channel": "private-chat",
        "id": 5,
    }
    assert positioned(await other.recv()) == {"event": "message", "channel": "private-chat", "data": {"t": "hi"}}
    await sender.nothing()
    await sender.send({"event": "message", "channel": "private-chat", "data": 2, "echo": True})
    assert (await sender.recv())["data"] == 2
    assert (await other.recv())["data"] == 2


async def test_client_messages_are_refused_where_the_policy_forbids_or_not_subscribed(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    refused = await client.request({"event": "message", "channel": "orders", "data": 1, "id": 1})
    assert refused["data"]["code"] == 4010 and refused["channel"] == "orders"
    not_subscribed = await client.request({"event": "message", "channel": "private-x", "data": 1})
    assert not_subscribed["data"]["code"] == 4010


async def test_client_messages_are_rate_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(client_messages_per_second=3.0))
    client = await engine.connect()
    await client.subscribe("private-chat", auth=client.auth("private-chat"))
    codes = []
    for number in range(6):
        reply = await client.request(
            {"event": "message", "channel": "private-chat", "data": number, "id": number, "echo": False}
        )
        codes.append(reply["event"] if reply["event"] == "ack" else reply["data"]["code"])
    assert codes[:3] == ["ack", "ack", "ack"] and 4029 in codes[3:]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 4000),
        ('{"event":"subscribe"}', 4000),
        ('{"event":"teleport"}', 4001),
        ('{"event":"subscribe","channel":"no spaces"}', 4002),
        ('{"event":"subscribe","channel":"' + "x" * 200 + '"}', 4002),
    ],
)
async def test_bad_frames_get_an_error_and_everything_keeps_working(engine: Engine, frame: str, code: int) -> None:
    bad, good = await engine.connect(), await engine.connect()
    await good.subscribe("orders")
    await bad.subscribe("orders")
    reply = await bad.request(frame)
    assert reply["event"] == "error" and reply["data"]["code"] == code, reply
    await engine.node.publish(["orders"], "still", "alive")
    assert (await bad.recv())["data"] == "alive"
    assert (await good.recv())["data"] == "alive"


async def test_binary_frames_are_refused_without_closing(engine: Engine) -> None:
    client = await engine.connect()
    await client.ws.send_bytes(b"\x00\x01")
    reply = await client.recv()
    assert reply["data"]["code"] == 4003
    assert (await client.request({"event": "ping"}))["event"] == "pong"


async def test_oversized_frames_close_with_1009_and_others_keep_working(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_frame_bytes=1024))
    big, other = await engine.connect(), await engine.connect()
    await other.subscribe("orders")
    await big.send({"event": "message", "channel": "private-a", "data": "x" * 2000})
    message = await asyncio.wait_for(big.ws.receive(), 3)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert big.ws.close_code == 1009
    await engine.node.publish(["orders"], "e", 1)
    assert (await other.recv())["data"] == 1


async def test_channels_per_connection_are_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_channels_per_connection=2))
    client = await engine.connect()
    assert (await client.subscribe("a"))["event"] == "subscribed"
    assert (await client.subscribe("b"))["event"] == "subscribed"
    refused = await client.subscribe("c")
    assert refused["data"]["code"] == 4020


async def test_connections_per_node_are_limited_with_close_4100(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_connections=1))
    await engine.connect()
    ws = await engine.session.ws_connect(engine.url("/socket"))
    message = await asyncio.wait_for(ws.receive(), 3)
    assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4100
    await ws.close()


async def test_signin_binds_the_user_and_refuses_bad_signatures(engine: Engine) -> None:
    client = await engine.connect()
    user_data = '{"id":"u1","user_info":{"name":"Ada"}}'
    bad = await client.request({"event": "signin", "auth": "test-key:00", "user_data": user_data, "id": 1})
    assert bad["data"]["code"] == 4009 and bad["id"] == 1
    good = auth.make_auth(
        CREDENTIALS["app_key"], CREDENTIALS["app_secret"], auth.user_string(client.connection_id, user_data)
    )
    reply = await client.request({"event": "signin", "auth": good, "user_data": user_data, "id": 2})
    assert reply == {"event": "signed_in", "id": 2, "data": {"user_id": "u1", "user_info": {"name": "Ada"}}}
    other = '{"id":"u2"}'
    other_auth = auth.make_auth(
        CREDENTIALS["app_key"], CREDENTIALS["app_secret"], auth.user_string(client.connection_id, other)
    )
    assert (await client.request({"event": "signin", "auth": other_auth, "user_data": other}))["data"]["code"] == 4009


async def test_unresponsive_connections_are_closed_by_the_heartbeat(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(heartbeat=0.4))
    host, port = engine.server.host, engine.server.port
    # the websockets client answers pings from its own background task, as a browser does
    lively = await websockets.connect(f"ws://{host}:{port}/socket")
    await lively.recv()
    reader, writer = await raw_websocket(host, port)
    assert b"101" in await reader.readline()

    # never answer: read until the server gives up on us
    async def read_to_end() -> None:
        while await reader.read(4096):
            pass

    await asyncio.wait_for(read_to_end(), 5)
    writer.close()
    assert len(engine.node.connections) == 1
    await lively.send('{"event":"ping"}')
    assert orjson.loads(await lively.recv()) == {"event": "pong"}
    await lively.close()


async def test_graceful_shutdown_closes_clients_with_1012(engine_factory: EngineFactory) -> None:
    engine = await engine_factory()
    client = await engine.connect()
    await engine.node.stop()
    message = await asyncio.wait_for(client.ws.receive(), 3)
    assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 1012


async def test_frames_are_json_objects_with_an_event(engine: Engine) -> None:
    client = await engine.connect()
    await client.ws.send_str('{"event":"ping"}')
    raw = await asyncio.wait_for(client.ws.receive(), 3)
    assert orjson.loads(raw.data) == {"event": "pong"}


async def test_frames_of_any_kind_are_rate_limited_with_one_error_a_second(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(client_frames_per_second=5.0))
    client = await engine.connect()
    for _ in range(40):
        await client.send({"event": "ping"})
    replies = []
    with contextlib.suppress(TimeoutError):
        while True:
            replies.append(await client.recv(0.3))
    pongs = [r for r in replies if r["event"] == "pong"]
    limited = [r for r in replies if r["event"] == "error"]
    assert 10 <= len(pongs) < 20, "the burst (twice the rate) passes, the rest is dropped"
    assert len(limited) == 1 and limited[0]["data"]["code"] == 4029, "one error for the whole second, not one per frame"
    await asyncio.sleep(0.5)  # the bucket refills
    assert (await client.request({"event": "ping"}))["event"] == "pong"
