"""The HTTP fallback over real connections: ``GET /api/v1/stream`` read by a real aiohttp client as
an ``EventSource`` reads it, control calls, resuming with ``Last-Event-ID``, limits and cleanup."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import CREDENTIALS, Engine, EngineFactory, eventually, make_settings
from tests.security.test_connection_throttling import GatedEngine, gated  # noqa: F401  (gated: a fixture)
from websocket_realtime_engine.protocol import auth, sse
from websocket_realtime_engine.web.sse import STREAMS_KEY


class Stream:
    """A client of ``/api/v1/stream``: events parsed as ``EventSource`` parses them, and control calls."""

    def __init__(self, session: aiohttp.ClientSession, base: str, response: aiohttp.ClientResponse) -> None:
        self.session, self.base, self.response = session, base, response
        self.last_id = ""
        self.comments: list[bytes] = []
        self.connected: dict[str, Any] = {}

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, base: str, query: str = "", **headers: str
    ) -> tuple[Stream, dict[str, Any]]:
        """A stream past its ``connected`` event (and that event)."""
        response = await session.get(f"{base}/api/v1/stream{query}", headers=headers)
        assert response.status == 200, await response.text()
        stream = cls(session, base, response)
        stream.connected = await stream.expect("connected")
        return stream, stream.connected

    @property
    def connection_id(self) -> str:
        return str(self.connected["data"]["connection_id"])

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next event's JSON; comments are kept in ``comments``."""
        data: list[bytes] = []
        async with asyncio.timeout(timeout):
            while True:
                line = await self.response.content.readline()
                if not line:
                    raise EOFError("the stream ended")
                line = line.rstrip(b"\n")
                if not line:
                    if data:
                        return orjson.loads(b"\n".join(data))
                    continue
                if line.startswith(b":"):
                    self.comments.append(line)
                    continue
                name, _, value = line.partition(b":")
                value = value.removeprefix(b" ")
                if name == b"id":
                    self.last_id = value.decode()
                elif name == b"data":
                    data.append(value)

    async def expect(self, event: str, timeout: float = 3.0) -> dict[str, Any]:
        frame = await self.next(timeout)
        assert frame["event"] == event, frame
        return frame

    async def until(self, event: str, timeout: float = 3.0) -> dict[str, Any]:
        """The next ``event``, past any other."""
        async with asyncio.timeout(timeout):
            while (frame := await self.next(timeout))["event"] != event:
                pass
        return frame

    async def nothing(self, wait: float = 0.3) -> None:
        with pytest.raises(TimeoutError):
            frame = await self.next(wait)
            pytest.fail(f"unexpected event {frame}")

    async def call(self, action: str, token: str | None = None, **body: Any) -> tuple[int, Any]:
        """A control call with the stream's token (or ``token``)."""
        body["token"] = self.connected["data"]["token"] if token is None else token
        url = f"{self.base}/api/v1/stream/{self.connection_id}/{action}"
        async with self.session.post(url, data=orjson.dumps(body)) as answer:
            return answer.status, await answer.json()

    def close(self) -> None:
        self.response.close()


async def open_stream(engine: Engine, query: str = "", **headers: str) -> Stream:
    stream, _ = await Stream.open(engine.session, engine.url(""), query, **headers)
    return stream


async def signature(engine: Engine, connection_id: str, channel: str, channel_data: str | None = None) -> str:
    """What a shop backend gets from ``POST /api/v1/authenticate`` for the stream's connection."""
    body = {"connection_id": connection_id, "channel": channel, "channel_data": channel_data}
    status, answer = await engine.api("POST", "/api/v1/authenticate", json=body)
    assert status == 200, answer
    return str(answer["auth"])


async def broadcast(engine: Engine, channel: str, data: Any, exclude: str | None = None) -> None:
    body = {"channels": [channel], "event": "tick", "data": data, "exclude": exclude}
    status, answer = await engine.api("POST", "/api/v1/broadcast", json=body)
    assert status == 200, answer


def member(user_id: str) -> str:
    return orjson.dumps({"user_id": user_id, "user_info": {"name": user_id.title()}}).decode()


async def test_the_stream_opens_with_its_id_and_token_and_carries_the_query_channels(
    engine_factory: EngineFactory,
) -> None:
    engine = await engine_factory(make_settings(heartbeat=0.2))
    response = await engine.session.get(engine.url("/api/v1/stream?channels=orders,products"))
    assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert response.headers["X-Accel-Buffering"] == "no" and response.headers["Cache-Control"] == "no-store"
    stream = Stream(engine.session, engine.url(""), response)
    stream.connected = hello = await stream.expect("connected")
    assert hello["data"]["transport"] == "sse" and hello["data"]["heartbeat"] == 0.2
    assert len(hello["data"]["token"]) >= 32 and stream.connection_id in engine.node.connections
    for channel in ("orders", "products"):
        subscribed = await stream.expect("subscribed")
        assert subscribed["channel"] == channel and subscribed["offset"] == 0
    await broadcast(engine, "orders", {"n": 1})
    tick = await stream.expect("tick")
    assert tick == {"event": "tick", "channel": "orders", "data": {"n": 1}, "offset": 1, "epoch": tick["epoch"]}
    key = sse.channel_key("orders")
    assert f"{key}.1.{tick['epoch']}" in stream.last_id.split("~")
    await stream.nothing(0.5)
    assert b": heartbeat" in stream.comments  # a comment every REALTIME_HEARTBEAT seconds


async def test_private_and_presence_channels_are_joined_by_signed_control_calls(engine: Engine) -> None:
    stream = await open_stream(engine)
    channel = "private-admin.orders"
    status, answer = await stream.call("subscribe", channel=channel, auth="test-key:" + "0" * 64, id=1)
    assert status == 403 and answer["error"]["code"] == "unauthorized"
    auth = await signature(engine, stream.connection_id, channel)
    status, answer = await stream.call("subscribe", channel=channel, auth=auth, id=2)
    assert status == 200 and answer["event"] == "subscribed" and answer["id"] == 2
    assert await stream.expect("subscribed") == answer  # the stream gets the same reply, in its place
    await broadcast(engine, channel, {"order": "1002"})
    assert (await stream.expect("tick"))["data"] == {"order": "1002"}

    watcher = await engine.connect()
    data = member("watcher")
    await watcher.subscribe("presence-team", auth=watcher.auth("presence-team", data), channel_data=data)
    data = member("ada")
    auth = await signature(engine, stream.connection_id, "presence-team", data)
    status, answer = await stream.call("subscribe", channel="presence-team", auth=auth, channel_data=data)
    assert status == 200 and answer["data"]["count"] == 2
    assert await watcher.expect("member_added") == {
        "event": "member_added",
        "channel": "presence-team",
        "data": {"user_id": "ada", "user_info": {"name": "Ada"}},
    }
    assert (await stream.expect("subscribed"))["data"]["count"] == 2
    status, answer = await stream.call("unsubscribe", channel="presence-team")
    assert (status, answer) == (200, {"event": "unsubscribed", "channel": "presence-team"})
    assert (await watcher.expect("member_removed"))["data"] == {"user_id": "ada"}


async def test_publishing_reaches_a_websocket_client_and_back(engine: Engine) -> None:
    channel = "private-chat"
    stream, client = await open_stream(engine), await engine.connect()
    await client.subscribe(channel, auth=client.auth(channel))
    await stream.call("subscribe", channel=channel, auth=await signature(engine, stream.connection_id, channel))
    await stream.expect("subscribed")
    status, answer = await stream.call("publish", channel=channel, data={"text": "hi"})
    assert (status, answer) == (200, {"event": "ack", "channel": channel})
    message = await client.expect("message")
    assert message["data"] == {"text": "hi"} and message["channel"] == channel
    await stream.nothing()  # no echo of one's own message
    await client.send({"event": "message", "channel": channel, "data": {"text": "hello"}})
    assert (await stream.expect("message"))["data"] == {"text": "hello"}
    status, answer = await stream.call("publish", channel="private-elsewhere", data={})
    assert status == 403 and answer["error"]["code"] == "forbidden"


async def test_last_event_id_resumes_every_channel_exactly_once_in_order(engine: Engine) -> None:
    stream = await open_stream(engine, "?channels=orders,products")
    await stream.expect("subscribed")
    await stream.expect("subscribed")
    private = "private-customer.7"
    await stream.call("subscribe", channel=private, auth=await signature(engine, stream.connection_id, private))
    await stream.expect("subscribed")
    await broadcast(engine, "orders", 1)
    await broadcast(engine, private, "p1")
    await stream.expect("tick")
    await stream.expect("tick")
    cut_at = stream.last_id
    stream.close()  # the stream is cut; publications go on meanwhile
    for channel, data in (("orders", 2), ("products", 1), ("orders", 3), (private, "p2")):
        await broadcast(engine, channel, data)

    resumed = await open_stream(engine, "?channels=orders,products,news", **{"Last-Event-ID": cut_at})
    assert resumed.last_id == cut_at  # the connected event carries the old positions
    subscribed = await resumed.expect("subscribed")
    assert (subscribed["channel"], subscribed["recovered"], subscribed["offset"]) == ("orders", True, 3)
    assert f"{sse.channel_key('orders')}.1." in resumed.last_id  # before what it recovers
    assert [(await resumed.expect("tick"))["data"] for _ in range(2)] == [2, 3]
    subscribed = await resumed.expect("subscribed")
    assert (subscribed["channel"], subscribed["recovered"]) == ("products", True)
    assert (await resumed.expect("tick"))["data"] == 1
    news = await resumed.expect("subscribed")
    assert (news["channel"], news["recovered"]) == ("news", False)  # not in the id: cannot tell
    # the private channel comes back with a new signature (new connection id), from the id's position
    auth = await signature(engine, resumed.connection_id, private)
    status, answer = await resumed.call("subscribe", channel=private, auth=auth)
    assert status == 200 and answer["recovered"] is True
    await resumed.expect("subscribed")
    assert (await resumed.expect("tick"))["data"] == "p2"
    await resumed.nothing()

    # the same through the query parameter, for clients that cannot set headers: nothing missed
    again = await open_stream(engine, f"?channels=orders&last_event_id={resumed.last_id}")
    subscribed = await again.expect("subscribed")
    assert subscribed["recovered"] is True and subscribed["offset"] == 3
    await again.nothing()


async def test_a_stream_signs_in_reads_presence_and_pings_by_control_calls(engine: Engine) -> None:
    stream = await open_stream(engine)
    status, answer = await stream.call("ping", id=1)
    assert (status, answer) == (200, {"event": "pong", "id": 1})
    assert await stream.expect("pong") == answer  # on the stream too, as every reply

    user_data = orjson.dumps({"id": "42", "user_info": {"name": "Ada"}}).decode()
    forged = auth.make_auth(CREDENTIALS["app_key"], "not-the-secret", auth.user_string(stream.connection_id, user_data))
    status, answer = await stream.call("signin", auth=forged, user_data=user_data, id=2)
    assert status == 403 and answer["error"]["code"] == "unauthorized"
    signed = auth.make_auth(
        CREDENTIALS["app_key"], CREDENTIALS["app_secret"], auth.user_string(stream.connection_id, user_data)
    )
    status, answer = await stream.call("signin", auth=signed, user_data=user_data, id=3)
    assert (status, answer) == (
        200,
        {"event": "signed_in", "id": 3, "data": {"user_id": "42", "user_info": {"name": "Ada"}}},
    )
    assert await stream.expect("signed_in") == answer
    assert engine.node.users["42"] == {engine.node.connections[stream.connection_id]}

    # signed in: users:online is joined as itself, without a signature, with the presence call
    status, answer = await stream.call("presence", channel="users:online", id=4)
    assert status == 200 and answer["event"] == "presence" and answer["id"] == 4
    assert answer["data"] == {"members": [{"user_id": "42", "user_info": {"name": "Ada"}}], "count": 1}
    assert await stream.expect("presence") == answer
    watcher = await engine.connect()
    await broadcast(engine, "users:online", {"n": 1})
    assert (await stream.expect("tick"))["data"] == {"n": 1}
    # a read of a channel it is on: the members again
    status, answer = await stream.call("presence", channel="users:online", id=5)
    assert status == 200 and answer["data"]["count"] == 1
    status, answer = await stream.call("presence", channel="orders")
    assert status == 400 and "not a presence channel" in answer["error"]["message"]

    # a client message now carries the user, as over a WebSocket
    await stream.call(
        "subscribe", channel="private-chat", auth=await signature(engine, stream.connection_id, "private-chat")
    )
    await watcher.subscribe("private-chat", auth=watcher.auth("private-chat"))
    await stream.call("publish", channel="private-chat", data={"text": "hi"})
    message = await watcher.expect("message")
    assert message["data"] == {"text": "hi"} and message["user_id"] == "42"

    status, answer = await engine.api("POST", "/api/v1/users/42/disconnect")
    assert status == 200, answer
    assert (await stream.until("close"))["data"]["code"] == 4009


async def test_a_resumed_stream_joins_a_presence_channel_from_its_id(engine: Engine) -> None:
    stream = await open_stream(engine)
    data = member("ada")
    joined = await stream.call(
        "presence",
        channel="presence-team",
        auth=await signature(engine, stream.connection_id, "presence-team", data),
        channel_data=data,
    )
    assert joined[0] == 200 and joined[1]["data"]["count"] == 1
    await stream.expect("presence")
    await broadcast(engine, "presence-team", {"n": 1})
    await stream.expect("tick")
    last_id = stream.last_id
    stream.close()
    await broadcast(engine, "presence-team", {"n": 2})
    again = await open_stream(engine, **{"Last-Event-ID": last_id})
    status, answer = await again.call(
        "presence",
        channel="presence-team",
        auth=await signature(engine, again.connection_id, "presence-team", data),
        channel_data=data,
    )
    assert status == 200 and answer["event"] == "presence" and answer["recovered"] is True
    assert (await again.expect("presence"))["channel"] == "presence-team"
    assert (await again.expect("tick"))["data"] == {"n": 2}, "what it missed follows its join"


async def test_a_call_passed_on_by_a_node_that_knows_more_calls_is_refused_with_404(engine: Engine) -> None:
    stream = await open_stream(engine)
    streams = engine.server.app[STREAMS_KEY]
    token = stream.connected["data"]["token"]
    call = {"connection_id": stream.connection_id, "token": token, "action": "teleport", "frame": {}}
    answer = await streams.answer(call)  # as another node's call arrives, during a rolling upgrade
    assert answer["status"] == 404 and orjson.loads(orjson.dumps(answer["body"]))["error"]["code"] == "not_found"
    assert (await stream.call("ping"))[0] == 200, "the stream goes on"


async def test_control_calls_with_a_wrong_token_or_body_are_refused(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(client_frames_per_second=1.0, client_flood_close_after=60.0))
    stream = await open_stream(engine)
    for _ in range(5):  # a stranger who knows the connection id: refused, and not counted against the stream
        status, answer = await stream.call("subscribe", token="x" * 32, channel="orders")
        assert (status, answer["error"]["code"]) == (403, "invalid_token")
    status, answer = await stream.call("subscribe", channel="orders")
    assert status == 200 and answer["event"] == "subscribed"
    url = engine.url(f"/api/v1/stream/{stream.connection_id}/subscribe")
    for body, expected in (
        (b"{", (400, "invalid_json")),
        (b"[]", (400, "bad_request")),
        (b"{}", (403, "invalid_token")),
    ):
        async with engine.session.post(url, data=body) as response:
            assert (response.status, (await response.json())["error"]["code"]) == expected
    async with engine.session.post(url, data=b" " * (engine.node.settings.max_frame_bytes + 1)) as response:
        assert response.status == 413
    async with engine.session.post(engine.url("/api/v1/stream/1.2/subscribe"), data=b'{"token":"t"}') as response:
        assert (response.status, (await response.json())["error"]["code"]) == (404, "unknown_stream")
    status, answer = await stream.call("shutdown")  # no such control call
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_the_stream_has_the_limits_of_a_connection(engine_factory: EngineFactory) -> None:
    settings = make_settings(max_channels_per_connection=2, client_frames_per_second=2.0, client_flood_close_after=0.5)
    engine = await engine_factory(settings)
    for query, code in (
        ("?channels=a,b,c", "limit_exceeded"),
        ("?channels=private-a", "bad_request"),
        ("?channels=bad%20name", "invalid_channel"),
        ("?last_event_id=2~x", "invalid_last_event_id"),
    ):
        async with engine.session.get(engine.url(f"/api/v1/stream{query}")) as response:
            assert (response.status, (await response.json())["error"]["code"]) == (400, code), query
    stream = await open_stream(engine, "?channels=a,b")
    await stream.expect("subscribed")
    await stream.expect("subscribed")
    status, answer = await stream.call("subscribe", channel="c")
    assert (status, answer["error"]["code"]) == (400, "limit_exceeded")
    statuses = [(await stream.call("unsubscribe", channel="c"))[0] for _ in range(6)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 429  # bursts of twice the rate, then refused
    deadline = time.monotonic() + 3
    while (await stream.call("unsubscribe", channel="c"))[0] != 404 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # kept over the rate past REALTIME_CLIENT_FLOOD_CLOSE_AFTER: closed
    assert (await stream.until("close"))["data"] == {"code": 4102, "reason": "flooding"}
    with pytest.raises(EOFError):
        await stream.next()


async def test_a_stream_whose_client_goes_is_cleaned_up(gated: Any) -> None:  # noqa: F811
    # served as `serve` serves it (aiohttp does not cancel a handler whose client went): the stream notices
    engine: GatedEngine = await gated()
    watcher = await engine.connect()
    data = member("watcher")
    await watcher.subscribe("presence-team", auth=watcher.auth("presence-team", data), channel_data=data)
    stream, _ = await Stream.open(engine.session("127.0.0.1"), engine.url(""), "?channels=orders")
    await stream.expect("subscribed")
    data = member("ada")
    signed = auth.channel_string(stream.connection_id, "presence-team", data)
    signature = auth.make_auth(CREDENTIALS["app_key"], CREDENTIALS["app_secret"], signed)
    assert (await stream.call("subscribe", channel="presence-team", auth=signature, channel_data=data))[0] == 200
    await watcher.expect("member_added")
    stream.close()
    assert (await watcher.expect("member_removed", timeout=2.5))["data"] == {"user_id": "ada"}
    assert stream.connection_id not in engine.node.connections
    assert engine.node.hub.count("orders") == 0
    status, answer = await stream.call("subscribe", channel="orders")
    assert (status, answer["error"]["code"]) == (404, "unknown_stream")


async def test_a_stream_that_does_not_read_is_cut_off_as_a_slow_consumer(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(write_buffer_limit=256 * 1024, close_timeout=0.5))
    node = engine.node
    reader, writer = await asyncio.open_connection(engine.server.host, engine.server.port)
    writer.write(b"GET /api/v1/stream?channels=flood HTTP/1.1\r\nHost: test\r\n\r\n")  # and never reads
    while node.hub.count("flood") < 1:
        await asyncio.sleep(0.01)
    (sleepy,) = node.connections.values()
    pad = "x" * 60_000
    for number in range(2_000):  # until the kernel's buffers are full and the stream's backlog stays
        await node.publish(["flood"], "big", {"n": number, "pad": pad})
        await asyncio.sleep(0.001)
        if node.slow_consumers:
            break
    assert node.slow_consumers == 1
    await eventually(
        lambda: sleepy.id not in node.connections and sleepy.transport.is_closing(),
        timeout=0.5 + 1,
        message="the stream is still there after the close timeout",
    )
    writer.close()


async def test_a_disconnect_through_the_api_ends_the_stream_with_a_close_event(engine: Engine) -> None:
    stream = await open_stream(engine)
    status, _ = await engine.api("POST", f"/api/v1/connections/{stream.connection_id}/disconnect")
    assert status == 200
    assert (await stream.expect("close"))["data"] == {"code": 4009, "reason": "disconnected"}
    with pytest.raises(EOFError):
        await stream.next()


async def test_pages_of_allowed_origins_get_cors_and_others_are_refused(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(allowed_origins=("https://shop.example",)))
    shop = {"Origin": "https://shop.example"}
    stream = await open_stream(engine, **shop)
    assert stream.response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Access-Control-Allow-Credentials" not in stream.response.headers
    url = engine.url(f"/api/v1/stream/{stream.connection_id}/subscribe")
    preflight = {**shop, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    async with engine.session.options(url, headers=preflight) as response:
        assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "Last-Event-ID" in response.headers["Access-Control-Allow-Headers"]
    for path, method in (("/api/v1/stream", "GET"), (f"/api/v1/stream/{stream.connection_id}/subscribe", "POST")):
        headers = {"Origin": "https://evil.example"}
        async with engine.session.request(method, engine.url(path), headers=headers, data=b"{}") as response:
            assert (response.status, (await response.json())["error"]["code"]) == (403, "origin_not_allowed")


async def test_the_throttle_counts_a_stream_per_address_and_not_as_an_http_connection(
    gated: Any,  # noqa: F811
) -> None:
    engine: GatedEngine = await gated(max_connections_per_address=2, handshake_timeout=0.3)
    base = engine.url("")
    streams = [(await Stream.open(engine.session(f"127.0.0.{n}"), base))[0] for n in (2, 2, 3)]
    await asyncio.sleep(0.5)  # past the handshake timeout: a stream is left to its heartbeat
    throttle = (await engine.status())["throttle"]
    assert throttle["connections"] >= 3 and throttle["http_connections"] <= 1  # the status call's own
    async with engine.session("127.0.0.2").get(engine.url("/api/v1/stream")) as response:
        assert (response.status, (await response.json())["error"]["code"]) == (429, "too_many_connections")
    for stream in streams:
        stream.close()
