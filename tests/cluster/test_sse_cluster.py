"""The HTTP fallback in a cluster: two real nodes joined by the real Redis (in this process, each its own
server and Redis connections), a stream on one and its control calls sent to the other; then both
behind nginx as ``websocket setup-cluster`` configures it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.backends.conftest import REDIS_URL, redis_connection
from tests.cluster.test_nginx import Nginx, nginx_binary  # noqa: F401  (nginx_binary: a fixture)
from tests.conftest import CREDENTIALS, Engine, EngineFactory, engine_hook_module, eventually, free_port, make_settings
from tests.web.test_sse import Stream, broadcast, signature
from websocket_realtime_engine.protocol.auth import make_auth, user_string

TwoEngines = Callable[..., Any]


@pytest.fixture
async def two_engines(engine_factory: EngineFactory) -> AsyncIterator[TwoEngines]:
    """Start node-a and node-b on one Redis prefix of their own (its keys deleted afterwards)."""
    async with redis_connection() as (_, prefix):

        async def start(**overrides: Any) -> tuple[Engine, Engine]:
            engines = []
            for node_id in ("node-a", "node-b"):
                settings = make_settings(node_id=node_id, redis_url=REDIS_URL, redis_prefix=prefix, **overrides)
                engines.append(await engine_factory(settings))
            return engines[0], engines[1]

        yield start


async def test_control_calls_sent_to_another_node_reach_the_stream(two_engines: TwoEngines) -> None:
    node_a, node_b = await two_engines()
    stream, _ = await Stream.open(node_a.session, node_a.url(""))
    stream.base = node_b.url("")  # every control call goes to the node that does not hold the stream
    channel = "private-chat"
    auth = await signature(node_b, stream.connection_id, channel)  # B signs for a connection of A
    status, answer = await stream.call("subscribe", channel=channel, auth=auth, id=1)
    assert status == 200 and answer["event"] == "subscribed" and answer["id"] == 1
    assert await stream.expect("subscribed") == answer

    on_b = await node_b.connect()
    await on_b.subscribe(channel, auth=on_b.auth(channel))
    status, answer = await stream.call("publish", channel=channel, data={"text": "from the stream"})
    assert (status, answer) == (200, {"event": "ack", "channel": channel})
    assert (await on_b.expect("message"))["data"] == {"text": "from the stream"}
    await on_b.send({"event": "message", "channel": channel, "data": {"text": "to the stream"}})
    assert (await stream.expect("message"))["data"] == {"text": "to the stream"}
    await broadcast(node_b, channel, "excluded", exclude=stream.connection_id)  # the id goes into exclude
    await broadcast(node_b, channel, "delivered")
    assert (await stream.expect("tick"))["data"] == "delivered"

    status, answer = await stream.call("unsubscribe", token="x" * 32, channel=channel)
    assert (status, answer["error"]["code"]) == (403, "invalid_token")  # checked by node A, in constant time
    status, answer = await stream.call("subscribe", channel="private-other", auth="test-key:" + "0" * 64)
    assert (status, answer["error"]["code"]) == (403, "unauthorized")

    user_data = orjson.dumps({"id": "42"}).decode()
    signed = make_auth(CREDENTIALS["app_key"], CREDENTIALS["app_secret"], user_string(stream.connection_id, user_data))
    status, answer = await stream.call("signin", auth=signed, user_data=user_data, id=2)
    assert (status, answer["event"]) == (200, "signed_in")
    assert (await stream.expect("signed_in"))["data"]["user_id"] == "42"

    # the cluster state learns the user a moment after the answer (written behind, as for a WebSocket)
    async def b_knows_the_user() -> bool:
        return bool((await node_b.api("GET", "/api/v1/connections?user_id=42"))[1]["count"] == 1)

    await eventually(b_knows_the_user, timeout=2, message="node B never saw the stream's user")
    status, answer = await node_b.api("POST", "/api/v1/users/42/disconnect")  # B finds A's stream by its user
    assert (status, answer["disconnected"]) == (200, 1)
    assert (await stream.until("close"))["data"]["code"] == 4009
    stream.close()
    stream.connected["data"]["connection_id"] = "1.2"
    status, answer = await stream.call("subscribe", channel="orders")
    assert (status, answer["error"]["code"]) == (404, "unknown_stream")


async def test_a_node_that_does_not_answer_gets_a_504(two_engines: TwoEngines) -> None:
    node_a, node_b = await two_engines(stream_call_timeout=0.3)
    stream, _ = await Stream.open(node_a.session, node_a.url(""))
    stream.base = node_b.url("")
    await node_a.node.broker.unsubscribe(node_a.node.membership.control_channel)  # A hears no calls now
    status, answer = await stream.call("subscribe", channel="orders")
    assert (status, answer["error"]["code"]) == (504, "owner_timeout")
    await stream.nothing(0.1)


async def test_a_stream_and_its_calls_through_nginx(
    two_engines: TwoEngines,
    nginx_binary: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    node_a, node_b = await two_engines()
    nginx = engine_hook_module("hooks/nginx.py")
    listen = free_port()
    ports = (node_a.server.port, node_b.server.port)
    plan = nginx.ProxyPlan(f"127.0.0.1:{listen}", ports, node_a.node.settings.heartbeat, 1024 * 1024)
    config = tmp_path / "nginx.conf"
    config.write_text(nginx.render_standalone(plan, tmp_path))
    proxy = Nginx(nginx_binary, config, listen)
    try:
        stream, _ = await Stream.open(node_a.session, proxy.url(""), "?channels=orders")
        await stream.expect("subscribed")
        for n in range(4):  # least connections: calls reach either node
            status, answer = await stream.call("subscribe", channel=f"product.{n}")
            assert status == 200 and answer["event"] == "subscribed"
            await stream.expect("subscribed")
        await broadcast(node_b, "orders", {"n": 1})
        assert (await stream.expect("tick", timeout=2))["data"] == {"n": 1}  # not held in nginx's buffers
    finally:
        proxy.stop()
