"""REST API v1 against a real server, with real WebSocket subscribers."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.conftest import Engine, EngineFactory, make_settings, positioned


async def test_broadcast_reaches_subscribers_of_every_channel(engine: Engine) -> None:
    a, b = await engine.connect(), await engine.connect()
    await a.subscribe("orders")
    await b.subscribe("products")
    status, body = await engine.api(
        "POST", "/api/v1/broadcast", json={"channels": ["orders", "products"], "event": "sale", "data": {"pct": 10}}
    )
    assert status == 200 and body == {"published": {"channels": ["orders", "products"], "event": "sale"}}
    assert positioned(await a.recv()) == {"event": "sale", "channel": "orders", "data": {"pct": 10}}
    assert positioned(await b.recv()) == {"event": "sale", "channel": "products", "data": {"pct": 10}}


async def test_broadcast_exclude_leaves_one_connection_out(engine: Engine) -> None:
    a, b = await engine.connect(), await engine.connect()
    await a.subscribe("orders")
    await b.subscribe("orders")
    status, _ = await engine.api(
        "POST", "/api/v1/broadcast", json={"channel": "orders", "event": "e", "data": 1, "exclude": a.connection_id}
    )
    assert status == 200
    assert (await b.recv())["data"] == 1
    await a.nothing()


async def test_broadcast_to_an_empty_channel_is_a_success(engine: Engine) -> None:
    status, body = await engine.api("POST", "/api/v1/broadcast", json={"channel": "nobody", "event": "e", "data": None})
    assert status == 200 and body["published"]["channels"] == ["nobody"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"event": "e", "data": 1}, "channel"),
        ({"channel": "a", "channels": ["b"], "event": "e", "data": 1}, "channel"),
        ({"channel": "bad name", "event": "e", "data": 1}, "channel"),
        ({"channel": "a", "data": 1}, "event"),
        ({"channel": "a", "event": "e"}, "data"),
        ({"channel": "a", "event": "e", "data": 1, "exclude": "nope"}, "exclude"),
        ({"channel": "a", "event": "x" * 201, "data": 1}, "event"),
        ([1, 2], "JSON object"),
    ],
)
async def test_bad_broadcasts_are_400_with_a_message(engine: Engine, body: object, message: str) -> None:
    status, answer = await engine.api("POST", "/api/v1/broadcast", json=body)
    assert status == 400
    assert answer["error"]["code"] in ("invalid_request",) and message in answer["error"]["message"]


async def test_invalid_json_and_too_large_bodies(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(rest_max_body_bytes=1000))
    status, answer = await engine.api("POST", "/api/v1/broadcast", data=b"{nope")
    assert status == 400 and answer["error"]["code"] == "invalid_json"
    status, answer = await engine.api(
        "POST", "/api/v1/broadcast", json={"channel": "a", "event": "e", "data": "x" * 2000}
    )
    assert status == 413 and answer["error"]["code"] == "payload_too_large"


async def test_the_api_key_is_required(engine: Engine) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic test-api-key"}):
        status, answer = await engine.api("GET", "/api/v1/channels", headers=headers)
        assert status == 401 and answer["error"]["code"] == "unauthorized"


async def test_unknown_routes_are_json_404(engine: Engine) -> None:
    status, answer = await engine.api("GET", "/api/v1/nothing-here")
    assert status == 404 and answer["error"]["code"] == "not_found"


async def test_channels_list_filters_and_counts(engine: Engine) -> None:
    a, b = await engine.connect(), await engine.connect()
    for client in (a, b):
        await client.subscribe("product.1")
    await a.subscribe("orders")
    status, body = await engine.api("GET", "/api/v1/channels")
    assert status == 200 and body == {
        "channels": {
            "orders": {"type": "public", "subscription_count": 1},
            "product.1": {"type": "public", "subscription_count": 2},
        }
    }
    status, body = await engine.api("GET", "/api/v1/channels?prefix=product.")
    assert list(body["channels"]) == ["product.1"]
    status, body = await engine.api("GET", "/api/v1/channels?type=presence")
    assert body == {"channels": {}}
    status, body = await engine.api("GET", "/api/v1/channels?type=nonsense")
    assert status == 400


async def test_channel_info_and_members_errors(engine: Engine) -> None:
    status, body = await engine.api("GET", "/api/v1/channels/orders")
    assert status == 200 and body == {"name": "orders", "type": "public", "subscription_count": 0, "occupied": False}
    status, body = await engine.api("GET", "/api/v1/channels/orders/members")
    assert status == 400 and body["error"]["code"] == "not_presence"
    status, body = await engine.api("GET", "/api/v1/channels/bad%20name")
    assert status == 400 and body["error"]["code"] == "invalid_channel"


async def test_connections_list_and_disconnect(engine: Engine) -> None:
    a, b = await engine.connect(), await engine.connect()
    await a.subscribe("orders")
    status, body = await engine.api("GET", "/api/v1/connections")
    assert status == 200 and body["count"] == 2
    entry = next(c for c in body["connections"] if c["id"] == a.connection_id)
    assert entry["channels"] == ["orders"] and entry["node"] == "test-node" and entry["user_id"] is None
    status, body = await engine.api("GET", "/api/v1/connections?channel=orders")
    assert [c["id"] for c in body["connections"]] == [a.connection_id]
    status, body = await engine.api("GET", "/api/v1/connections?limit=0")
    assert status == 400
    status, body = await engine.api("POST", f"/api/v1/connections/{a.connection_id}/disconnect")
    assert status == 200 and body == {"disconnected": [a.connection_id]}
    message = await asyncio.wait_for(a.ws.receive(), 3)
    assert message.type is aiohttp.WSMsgType.CLOSE and message.data == 4009
    status, body = await engine.api("POST", "/api/v1/connections/1.1/disconnect")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert (await b.request({"event": "ping"}))["event"] == "pong"


async def test_disconnect_every_connection_of_a_user(engine: Engine) -> None:
    from tests.web.test_presence import signin

    tab1, tab2, other = await engine.connect(), await engine.connect(), await engine.connect()
    await signin(tab1, "ada")
    await signin(tab2, "ada")
    await signin(other, "bob")
    status, body = await engine.api("POST", "/api/v1/users/ada/disconnect")
    assert status == 200 and body == {"user_id": "ada", "disconnected": 2}
    for tab in (tab1, tab2):
        message = await asyncio.wait_for(tab.ws.receive(), 3)
        assert message.data == 4009
    assert (await other.request({"event": "ping"}))["event"] == "pong"
    status, body = await engine.api("GET", "/api/v1/connections?user_id=bob")
    assert body["count"] == 1


async def test_status_counts(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    await engine.api("POST", "/api/v1/broadcast", json={"channel": "orders", "event": "e", "data": 1})
    status, body = await engine.api("GET", "/api/v1/status")
    assert status == 200
    assert (
        body["connections"] == 1 and body["channels"] == 1 and body["published"] == 1 and body["node_id"] == "test-node"
    )


async def test_a_large_body_within_the_limit_is_read_whole(engine: Engine) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    big = "y" * 600_000
    status, body = await engine.api(
        "POST", "/api/v1/broadcast", json={"channel": "orders", "event": "big", "data": big}
    )
    assert status == 200, body
    assert (await client.recv())["data"] == big


async def test_disconnecting_a_presence_member_by_user_id(engine: Engine) -> None:
    from tests.web.test_presence import join

    member, other = await engine.connect(), await engine.connect()
    await join(member, "presence-admin", "carol")
    status, body = await engine.api("POST", "/api/v1/users/carol/disconnect")
    assert status == 200 and body["disconnected"] == 1
    assert (await asyncio.wait_for(member.ws.receive(), 3)).data == 4009
    assert (await other.request({"event": "ping"}))["event"] == "pong"
