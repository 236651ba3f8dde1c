"""Input limits, attacked as an attacker would: each bad input gets its documented error (an error
frame, a close code, or a JSON HTTP error), and a well-behaved subscriber on the same node receives
every one of its publications, in order, throughout.

docs/security.md ("Input limits" and "Rate limits") lists every limit these tests hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from tests.conftest import CREDENTIALS, Client, Engine, EngineFactory, make_settings, masked_text_frame, raw_websocket
from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.web.authenticate import HostAccess

TICKS = 40


def nested(depth: int) -> str:
    """JSON text of ``depth`` levels of arrays: ``nested(2) == "[[1]]"`` (deeper than any encoder writes)."""
    return "[" * depth + "1" + "]" * depth


def compact(value: Any, **deep: int) -> str:
    """``value`` as compact JSON where each string ``"<name>"`` is replaced by ``nested(deep[name])``."""
    text = json.dumps(value, separators=(",", ":"))
    for name, depth in deep.items():
        text = text.replace(f'"<{name}>"', nested(depth))
    return text


@contextlib.asynccontextmanager
async def bystander(engine: Engine, ticks: int = TICKS, every: float = 0.005) -> AsyncIterator[Client]:
    """A subscriber of ``orders`` while ``ticks`` publications go out during the block; on leaving it,
    the subscriber must have received each of them, in order (and nothing else)."""
    client = await engine.connect()
    assert (await client.subscribe("orders"))["event"] == "subscribed"

    async def publish() -> None:
        for number in range(ticks):
            await engine.node.publish(["orders"], "tick", {"n": number})
            await asyncio.sleep(every)

    publisher = asyncio.create_task(publish())
    try:
        yield client
    finally:
        await publisher
    received = [await client.recv() for _ in range(ticks)]
    assert [(frame["event"], frame["data"]["n"]) for frame in received] == [("tick", n) for n in range(ticks)]
    assert (await client.request({"event": "ping", "id": "alive"})) == {"event": "pong", "id": "alive"}


async def error_of(client: Client, frame: Any) -> dict[str, Any]:
    """Send ``frame`` (a dict, or text as it is); the error frame it must get in answer."""
    await client.send(frame)
    reply = await client.recv()
    assert reply["event"] == "error", reply
    return reply


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the server closes; its close code."""
    while True:
        message = await asyncio.wait_for(ws.receive(), 5)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return int(message.data)
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code


def signed_user_data(client: Client, user_data: str) -> dict[str, Any]:
    text = auth.user_string(client.connection_id, user_data)
    return {"event": "signin", "auth": auth.make_auth(CREDENTIALS["app_key"], CREDENTIALS["app_secret"], text)}


# -- frames ----------------------------------------------------------------------------------------


async def test_a_10_mb_frame_closes_its_connection_with_1009(engine: Engine) -> None:
    async with bystander(engine):
        attacker = await engine.connect()

        async def send() -> None:
            with contextlib.suppress(ConnectionError):  # the server stops reading and closes
                await attacker.ws.send_str('{"event":"message","data":"' + "x" * (10 * 1024 * 1024) + '"}')

        sending = asyncio.create_task(send())
        assert await closed_with(attacker.ws) == 1009  # "message too big": REALTIME_MAX_FRAME_BYTES
        await sending
    assert len(engine.node.connections) == 1  # the bystander


async def test_deep_json_in_a_frame_channel_data_and_user_data_is_4020(engine: Engine) -> None:
    async with bystander(engine):
        client = await engine.connect()
        await client.subscribe("private-chat", auth=client.auth("private-chat"))
        message = {"event": "message", "channel": "private-chat", "id": 1}
        reply = await error_of(client, compact({**message, "data": "<data>"}, data=32))  # 33 with the frame
        assert (reply["id"], reply["channel"], reply["data"]["code"]) == (1, "private-chat", 4020), reply
        assert "deeper than 32 levels" in reply["data"]["message"]
        # past the 1024 levels orjson reads, nothing of the frame can be read: no id or channel
        reply = await error_of(client, compact({**message, "data": "<data>"}, data=2000))
        assert reply == {"event": "error", "data": {"code": 4020, "message": "frame nests deeper than 32 levels"}}
        await client.send(compact({**message, "data": "<data>"}, data=31))  # 32 levels in all
        assert await client.recv() == {"event": "ack", "channel": "private-chat", "id": 1}

        member = compact({"user_id": "7", "user_info": {"x": "<x>"}}, x=40)
        reply = await error_of(
            client,
            {
                "event": "subscribe",
                "channel": "presence-room",
                "channel_data": member,
                "id": 2,
                "auth": client.auth("presence-room", member),
            },
        )
        assert (reply["id"], reply["data"]["code"]) == (2, 4020) and "channel_data" in reply["data"]["message"]

        user_data = compact({"id": "7", "user_info": {"x": "<x>"}}, x=40)
        reply = await error_of(client, {**signed_user_data(client, user_data), "user_data": user_data, "id": 3})
        assert (reply["id"], reply["data"]["code"]) == (3, 4020) and "user_data" in reply["data"]["message"]
        assert client.connection_id in engine.node.connections


async def test_the_depth_is_a_setting(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_json_depth=4))
    body = compact({"channel": "orders", "event": "e", "data": "<d>"}, d=3)  # 4 levels with the body
    assert (await engine.api("POST", "/api/v1/broadcast", data=body))[0] == 200
    body = compact({"channel": "orders", "event": "e", "data": "<d>"}, d=4)
    status, answer = await engine.api("POST", "/api/v1/broadcast", data=body)
    assert (status, answer["error"]["message"]) == (400, "the body nests deeper than 4 levels")
    client = await engine.connect()
    member = compact({"user_id": "7", "user_info": {"x": "<x>"}}, x=3)  # 5 levels
    body = {"connection_id": client.connection_id, "channel": "presence-a", "channel_data": member}
    status, answer = await engine.api("POST", "/api/v1/authenticate", json=body)
    assert (status, answer["error"]["code"]) == (400, "limit_exceeded")
    # frames over the socket follow the setting too
    await client.subscribe("private-c", auth=client.auth("private-c"))
    await client.send(compact({"event": "message", "channel": "private-c", "data": "<d>", "id": 1}, d=4))
    reply = await client.recv()
    assert reply["event"] == "error" and reply["data"]["code"] == 4020
    assert reply["data"]["message"] == "frame nests deeper than 4 levels"
    await client.send(compact({"event": "message", "channel": "private-c", "data": "<d>", "id": 2}, d=3))
    assert (await client.recv())["event"] == "ack"


async def test_integers_beyond_64_bits_are_refused_and_64_bit_ones_arrive_exactly(engine: Engine) -> None:
    async with bystander(engine):
        sender, receiver = await engine.connect(), await engine.connect()
        for client in (sender, receiver):
            await client.subscribe("private-chat", auth=client.auth("private-chat"))
        for number in (2**64, -(2**63) - 1, 10**40):
            reply = await error_of(sender, f'{{"event":"message","channel":"private-chat","data":{number},"id":4}}')
            assert (reply["id"], reply["data"]["code"]) == (4, 4000) and "64 bits" in reply["data"]["message"]
        await sender.send(f'{{"event":"message","channel":"private-chat","data":[{2**64 - 1},{-(2**63)}]}}')
        assert (await receiver.expect("message"))["data"] == [2**64 - 1, -(2**63)]  # not floats

        member = f'{{"user_id":{10**30}}}'
        subscribe = {"event": "subscribe", "channel": "presence-room", "channel_data": member, "id": 5}
        reply = await error_of(sender, {**subscribe, "auth": sender.auth("presence-room", member)})
        assert (reply["id"], reply["data"]["code"]) == (5, 4000)

        body = f'{{"channel":"orders","event":"e","data":{2**64}}}'
        status, answer = await engine.api("POST", "/api/v1/broadcast", data=body)
        assert (status, answer["error"]["code"]) == (400, "invalid_request") and "64 bits" in answer["error"]["message"]
        # digits in strings are not integers
        status, answer = await engine.api(
            "POST", "/api/v1/broadcast", json={"channel": "x", "event": "e", "data": "9" * 40}
        )
        assert status == 200, answer


async def test_long_names_ids_and_events_are_refused_with_their_codes(engine: Engine) -> None:
    async with bystander(engine):
        client = await engine.connect()
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"event": "subscribe", "channel": "a" * 165}, 4002, "longer than 164"),
            ({"event": "subscribe", "channel": "orders", "id": "i" * 65}, 4000, "at most 64"),
            ({"event": "e" * 60_000}, 4001, "unknown event"),
            ({"event": "subscribe", "channel": "orders", "since": {"offset": 1, "epoch": "e" * 65}}, 4000, "epoch"),
            ({"event": "subscribe", "channel": "orders", "since": {"offset": 2**63, "epoch": "e"}}, 4000, "offset"),
        ]
        for frame, code, words in cases:
            reply = await error_of(client, frame)
            assert reply["data"]["code"] == code and words in reply["data"]["message"], (frame, reply)
            assert len(reply["data"]["message"]) < 200  # the name is not echoed whole
        for body, words in (
            ({"channel": "a" * 165, "event": "e", "data": 1}, "longer than 164"),
            ({"channel": "orders", "event": "e" * 201, "data": 1}, "longer than 200"),
            ({"channels": [f"c{n}" for n in range(101)], "event": "e", "data": 1}, "at most 100 channels"),
        ):
            status, answer = await engine.api("POST", "/api/v1/broadcast", json=body)
            assert (status, answer["error"]["code"]) == (400, "invalid_request") and words in answer["error"]["message"]


async def test_binary_frames_get_4003_and_the_connection_stays(engine: Engine) -> None:
    async with bystander(engine):
        client = await engine.connect()
        for payload in (b'{"event":"ping","id":1}', b"\xff\xfe\x00", b""):
            await client.ws.send_bytes(payload)
            reply = await client.recv()
            assert reply["event"] == "error" and reply["data"]["code"] == 4003, reply
        assert (await client.request({"event": "ping", "id": 2})) == {"event": "pong", "id": 2}


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its opcode and payload."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 5)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007(engine: Engine) -> None:
    """RFC 6455 8.1: a text frame that is not UTF-8 fails the connection; aiohttp closes it with 1007
    before the engine sees the frame. Lone surrogates written as JSON escapes are valid UTF-8 text
    that is not valid JSON: error 4000, and the connection stays."""
    async with bystander(engine):
        client = await engine.connect()
        reply = await error_of(client, '{"event":"ping","id":"\\udc80"}')
        assert reply["data"]["code"] == 4000
        reader, writer = await raw_websocket(engine.server.host or "127.0.0.1", engine.server.port or 0)
        try:
            await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            opcode, payload = await read_frame(reader)
            assert opcode == 0x1 and b'"connected"' in payload
            writer.write(masked_text_frame(b'{"event":"ping","id":"\xff\xfe"}'))
            opcode, payload = await read_frame(reader)
            assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1007, (opcode, payload)
        finally:
            writer.close()
        assert (await client.request({"event": "ping", "id": 1})) == {"event": "pong", "id": 1}


async def test_ten_thousand_subscriptions_are_each_answered_and_refused_past_the_limit(
    engine_factory: EngineFactory,
) -> None:
    # frames are not rate-limited here, so that every subscribe reaches the channel limit (with the
    # default 100 frames a second, the flood guard drops most of them: tests/security/test_floods.py)
    engine = await engine_factory(make_settings(client_frames_per_second=1_000_000.0))
    async with bystander(engine, every=0.02):
        client = await engine.connect()
        started = time.monotonic()
        for number in range(10_000):
            await client.ws.send_str(f'{{"event":"subscribe","channel":"room.{number}","id":{number}}}')
        replies = [await client.recv(10) for _ in range(10_000)]
        assert [reply["id"] for reply in replies] == list(range(10_000))  # each answered, in order
        assert {reply["event"] for reply in replies[:100]} == {"subscribed"}
        refused = replies[100:]
        assert {(reply["event"], reply["data"]["code"]) for reply in refused} == {("error", 4020)}
        assert "at most 100 channels" in refused[0]["data"]["message"]
        assert len(engine.node.connections[client.connection_id].channels) == 100
        status, answer = await engine.api("GET", "/api/v1/status")  # the node answers meanwhile
        assert status == 200 and answer["channels"] == 101
    assert time.monotonic() - started < 20


# -- REST ------------------------------------------------------------------------------------------


async def test_deep_json_in_every_rest_body_is_a_json_400(engine: Engine) -> None:
    async with bystander(engine):
        client = await engine.connect()
        cid = client.connection_id
        deep_member = compact({"user_id": "1", "user_info": {"x": "<x>"}}, x=40)
        bodies: list[tuple[str, str]] = [
            ("/api/v1/broadcast", compact({"channel": "orders", "event": "e", "data": "<d>"}, d=40)),
            ("/api/v1/broadcast", compact({"channel": "orders", "event": "e", "data": "<d>"}, d=2000)),
            (
                "/api/v1/authenticate",
                compact(
                    {"connection_id": cid, "channel": "presence-a", "user": {"id": "1", "info": {"x": "<d>"}}}, d=40
                ),
            ),
            (
                "/api/v1/authenticate/user",
                compact({"connection_id": cid, "user_data": {"id": "1", "user_info": {"x": "<d>"}}}, d=40),
            ),
            (
                "/api/v1/authenticate/user",
                compact({"connection_id": cid, "user_data": {"id": "1", "user_info": {"x": "<d>"}}}, d=2000),
            ),
            (
                "/api/v1/authenticate",
                compact({"connection_id": cid, "channel": "presence-a", "channel_data": deep_member}),
            ),
        ]
        for path, body in bodies:
            async with engine.session.post(engine.url(path), data=body, headers=engine.api_headers) as answer:
                assert answer.status == 400 and answer.content_type == "application/json", (path, answer.status)
                error = (await answer.json())["error"]
                assert error["code"] == "limit_exceeded" and "deeper than 32" in error["message"], (path, error)
        await client.subscribe("news")
        fine = compact({"channel": "news", "event": "e", "data": "<d>"}, d=31)  # 32 levels with the body
        status, answer = await engine.api("POST", "/api/v1/broadcast", data=fine)
        assert status == 200, answer
        assert orjson.dumps((await client.expect("e"))["data"]).decode() == nested(31)
    status, answer = await engine.api("GET", "/api/v1/status")
    assert answer["api_errors"]["limit_exceeded"] == len(bodies)


async def test_what_authenticate_signs_is_what_subscribe_and_signin_accept(engine: Engine) -> None:
    client = await engine.connect()
    cid = client.connection_id
    big_info = {"bio": "x" * 3000}  # past REALTIME_MAX_USER_INFO_BYTES (2048)
    for path, body, code in [
        (
            "/api/v1/authenticate/user",
            {"connection_id": cid, "user_data": {"id": "1", "user_info": big_info}},
            "limit_exceeded",
        ),
        ("/api/v1/authenticate/user", {"connection_id": cid, "user_data": {"id": "u" * 129}}, "invalid_request"),
        (
            "/api/v1/authenticate",
            {
                "connection_id": cid,
                "channel": "presence-a",
                "channel_data": compact({"user_id": "1", "user_info": big_info}),
            },
            "limit_exceeded",
        ),
        (
            "/api/v1/authenticate",
            {"connection_id": cid, "channel": "presence-a", "channel_data": '{"user_id":[]}'},
            "invalid_request",
        ),
    ]:
        status, answer = await engine.api("POST", path, json=body)
        assert (status, answer["error"]["code"]) == (400, code), (body, answer)


async def test_invalid_utf8_over_rest_is_a_json_400(engine: Engine) -> None:
    async with bystander(engine):
        headers = {**engine.api_headers, "Content-Type": "application/json"}
        for path in ("/api/v1/broadcast", "/api/v1/authenticate"):
            body = b'{"channel":"orders","connection_id":"1.2","event":"e","data":"\xff\xfe"}'
            async with engine.session.post(engine.url(path), data=body, headers=headers) as answer:
                assert answer.status == 400 and answer.content_type == "application/json"
                error = (await answer.json())["error"]
                assert error["code"] == "invalid_json" and "UTF-8" in error["message"], error
        async with engine.session.get(engine.url("/api/v1/channels/or%FFders"), headers=engine.api_headers) as answer:
            assert answer.status == 400 and (await answer.json())["error"]["code"] == "invalid_channel"


async def test_a_body_past_the_size_limit_and_oversized_headers_are_refused(engine: Engine) -> None:
    async with bystander(engine):
        body = compact({"channel": "orders", "event": "e", "data": "x" * (2 * 1024 * 1024)})
        status, answer = await engine.api("POST", "/api/v1/broadcast", data=body)
        assert (status, answer["error"]["code"]) == (413, "payload_too_large")
        # aiohttp refuses a header line past 8190 bytes before any route runs (400, its own plain text)
        headers = {**engine.api_headers, "X-Junk": "j" * 10_000}
        async with engine.session.get(engine.url("/api/v1/status"), headers=headers) as response:
            assert response.status == 400
        status, _ = await engine.api("GET", "/api/v1/status")
        assert status == 200


async def test_unsigned_wrongly_signed_and_over_limit_rest_requests(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(rest_requests_per_second=5.0))
    async with bystander(engine):
        broadcast = {"channel": "news", "event": "e", "data": 1}
        for headers in (
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": f"Basic {CREDENTIALS['api_key']}"},
        ):
            status, answer = await engine.api("POST", "/api/v1/broadcast", headers=headers, json=broadcast)
            assert (status, answer["error"]["code"]) == (401, "unauthorized")
        statuses = []
        for _ in range(15):  # bursts of 10 (twice the rate), then 429
            async with engine.session.post(
                engine.url("/api/v1/broadcast"), headers=engine.api_headers, json=broadcast
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert response.headers["Retry-After"] == "1"
                    assert (await response.json())["error"]["code"] == "rate_limited"
        assert statuses[:10] == [200] * 10 and 429 in statuses[10:], statuses
        await asyncio.sleep(0.5)  # the bucket refills at 5 a second
        status, _ = await engine.api("POST", "/api/v1/broadcast", json=broadcast)
        assert status == 200
        # a client's signature made with another secret
        client = await engine.connect()
        reply = await error_of(
            client,
            {
                "event": "subscribe",
                "channel": "private-a",
                "id": 9,
                "auth": client.auth("private-a", secret="not-the-secret"),
            },
        )
        assert (reply["id"], reply["data"]["code"]) == (9, 4009)
    status, answer = await engine.api("GET", "/api/v1/status")
    assert answer["api_errors"]["unauthorized"] == 3 and answer["api_errors"]["rate_limited"] >= 1


SESSIONS = {"ada": {"id": "7", "role": "customer"}, "bob": {"id": "8", "role": "customer"}}


def identify(request: web.Request) -> dict[str, Any] | None:
    return SESSIONS.get(request.cookies.get("session", ""))


def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
    return user is not None and channel == f"private-customer.{user['id']}"


async def test_junk_from_an_address_does_not_lock_out_a_customer_behind_it(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(access=HostAccess(identify=identify, authorize=authorize, requests_per_second=5.0))
    async with bystander(engine):
        customer = await engine.connect()

        async def ask(session: str, user_id: str = "7") -> tuple[int, Any, str | None]:
            body = {"connection_id": customer.connection_id, "channel": f"private-customer.{user_id}"}
            url, cookie = engine.url("/api/v1/authenticate"), {"Cookie": f"session={session}"}
            async with engine.session.post(url, headers=cookie, json=body) as response:
                return response.status, await response.json(), response.headers.get("Retry-After")

        junk = [await ask("forged") for _ in range(30)]  # all from 127.0.0.1, as the customer
        assert junk[0][0] == 401 and junk[-1][0] == 429 and junk[-1][2] == "1"
        status, answer, _ = await ask("ada")
        assert status == 200, answer  # identified: charged to the customer, not to the address
        subscribed = await customer.subscribe("private-customer.7", auth=answer["auth"])
        assert subscribed["event"] == "subscribed"
        mine = [(await ask("ada"))[0] for _ in range(15)]  # a customer's own burst is limited too...
        assert 429 in mine
        assert (await ask("bob", "8"))[0] == 200  # ...without touching anyone else's
