"""POST /api/v1/authenticate(/user): the shop's backend with the API key, a storefront with a session."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tests.conftest import Engine, EngineFactory
from websocket_realtime_engine.web.authenticate import HostAccess

SESSIONS = {"cust-7": {"id": "7", "role": "customer", "info": {"name": "Cy"}}, "admin": {"id": "1", "role": "admin"}}


def identify(request: web.Request) -> dict[str, Any] | None:
    return SESSIONS.get(request.cookies.get("session", ""))


def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
    if user is None:
        return False
    return user["role"] == "admin" or channel == f"private-customer.{user['id']}"


async def session_engine(engine_factory: EngineFactory, rate: float = 50.0) -> Engine:
    return await engine_factory(access=HostAccess(identify=identify, authorize=authorize, requests_per_second=rate))  # type: ignore[no-any-return]


async def test_backend_with_api_key_signs_a_private_channel_the_client_can_use(engine: Engine) -> None:
    client = await engine.connect()
    status, body = await engine.api(
        "POST", "/api/v1/authenticate", json={"connection_id": client.connection_id, "channel": "private-admin.orders"}
    )
    assert status == 200 and set(body) == {"auth"}
    reply = await client.subscribe("private-admin.orders", auth=body["auth"])
    assert reply["event"] == "subscribed"


async def test_pusher_form_body_is_accepted(engine: Engine) -> None:
    client = await engine.connect()
    status, body = await engine.api(
        "POST", "/api/v1/authenticate", data={"socket_id": client.connection_id, "channel_name": "private-x"}
    )
    assert status == 200
    assert (await client.subscribe("private-x", auth=body["auth"]))["event"] == "subscribed"


async def test_presence_with_api_key_signs_the_given_channel_data(engine: Engine) -> None:
    client = await engine.connect()
    data = '{"user_id":"9","user_info":{"name":"Nine"}}'
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        json={"connection_id": client.connection_id, "channel": "presence-admin", "channel_data": data},
    )
    assert status == 200 and body["channel_data"] == data
    reply = await client.subscribe("presence-admin", auth=body["auth"], channel_data=body["channel_data"])
    assert reply["data"]["members"] == [{"user_id": "9", "user_info": {"name": "Nine"}}]
    status, body = await engine.api(
        "POST", "/api/v1/authenticate", json={"connection_id": client.connection_id, "channel": "presence-admin"}
    )
    assert status == 400 and "channel_data" in body["error"]["message"]


async def test_a_customer_session_may_join_only_its_own_channel(engine_factory: EngineFactory) -> None:
    engine = await session_engine(engine_factory)
    client = await engine.connect()
    cookie = {"Cookie": "session=cust-7"}
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        headers=cookie,
        json={"connection_id": client.connection_id, "channel": "private-customer.7"},
    )
    assert status == 200
    assert (await client.subscribe("private-customer.7", auth=body["auth"]))["event"] == "subscribed"
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        headers=cookie,
        json={"connection_id": client.connection_id, "channel": "private-customer.8"},
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        headers={},
        json={"connection_id": client.connection_id, "channel": "private-customer.7"},
    )
    assert status == 401


async def test_a_session_presence_member_is_the_session_user(engine_factory: EngineFactory) -> None:
    engine = await session_engine(engine_factory)
    client = await engine.connect()
    admin = {"Cookie": "session=admin"}
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        headers=admin,
        json={"connection_id": client.connection_id, "channel": "presence-admin"},
    )
    assert status == 200 and orjson.loads(body["channel_data"]) == {"user_id": "1", "user_info": {}}
    claimed = '{"user_id":"2"}'
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate",
        headers=admin,
        json={"connection_id": client.connection_id, "channel": "presence-admin", "channel_data": claimed},
    )
    assert status == 403


async def test_session_requests_are_rate_limited_per_client(engine_factory: EngineFactory) -> None:
    engine = await session_engine(engine_factory, rate=2.0)
    client = await engine.connect()
    statuses = []
    for _ in range(8):
        status, _ = await engine.api(
            "POST",
            "/api/v1/authenticate",
            headers={"Cookie": "session=cust-7"},
            json={"connection_id": client.connection_id, "channel": "private-customer.7"},
        )
        statuses.append(status)
    assert statuses[0] == 200 and 429 in statuses


async def test_bad_authenticate_requests(engine: Engine) -> None:
    client = await engine.connect()
    cases = [
        ({"connection_id": "abc", "channel": "private-a"}, 400),
        ({"connection_id": client.connection_id, "channel": "bad name"}, 400),
        ({"connection_id": client.connection_id, "channel": "orders"}, 400),
        ({"channel": "private-a"}, 400),
    ]
    for body, expected in cases:
        status, answer = await engine.api("POST", "/api/v1/authenticate", json=body)
        assert status == expected, (body, answer)
        assert set(answer["error"]) == {"code", "message"}


async def test_user_authentication_then_signin(engine_factory: EngineFactory) -> None:
    engine = await session_engine(engine_factory)
    client = await engine.connect()
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate/user",
        headers={"Cookie": "session=cust-7"},
        json={"connection_id": client.connection_id},
    )
    assert status == 200 and orjson.loads(body["user_data"]) == {"id": "7", "user_info": {"name": "Cy"}}
    reply = await client.request({"event": "signin", "auth": body["auth"], "user_data": body["user_data"]})
    assert reply["event"] == "signed_in" and reply["data"]["user_id"] == "7"
    status, body = await engine.api(
        "POST",
        "/api/v1/authenticate/user",
        json={"connection_id": client.connection_id, "user_data": {"name": "no id"}},
    )
    assert status == 400


async def test_a_named_user_must_be_an_object_with_an_id(engine: Engine) -> None:
    client = await engine.connect()
    for user in ("abc", {"role": "customer"}, {"id": 5}):
        status, body = await engine.api(
            "POST",
            "/api/v1/authenticate",
            json={"connection_id": client.connection_id, "channel": "private-a", "user": user},
        )
        assert status == 400 and body["error"]["code"] == "invalid_request", (user, body)


async def test_a_named_user_is_the_presence_member_the_backend_gets_signed(engine_factory: EngineFactory) -> None:
    engine = await session_engine(engine_factory)
    client = await engine.connect()
    body = {"connection_id": client.connection_id, "channel": "presence-admin", "user": {"id": "1", "role": "admin"}}
    status, answer = await engine.api("POST", "/api/v1/authenticate", json=body)
    assert status == 200 and orjson.loads(answer["channel_data"]) == {"user_id": "1", "user_info": {}}
    status, answer = await engine.api("POST", "/api/v1/authenticate", json={**body, "channel_data": '{"user_id":"2"}'})
    assert status == 403


async def test_behind_a_trusted_proxy_each_visitor_has_its_own_rate_limit(engine_factory: EngineFactory) -> None:
    from tests.conftest import make_settings

    access = HostAccess(identify=identify, authorize=authorize, requests_per_second=1.0)
    engine = await engine_factory(make_settings(trusted_proxies=("127.0.0.1",)), access=access)
    client = await engine.connect()
    body = {"connection_id": client.connection_id, "channel": "private-customer.7"}

    async def ask(visitor: str, session: str) -> int:
        headers = {"Cookie": f"session={session}", "X-Forwarded-For": f"{visitor}, 127.0.0.1"}
        status, _ = await engine.api("POST", "/api/v1/authenticate", headers=headers, json=body)
        return status

    # callers the host does not know are limited by their (forwarded) address...
    first = [await ask("203.0.113.1", "forged") for _ in range(4)]
    assert first[0] == 401 and 429 in first  # one visitor is limited...
    assert await ask("203.0.113.2", "forged") == 401  # ...the next one behind the same proxy is not
    # ...and a user the host knows by itself, wherever it comes from
    assert await ask("203.0.113.1", "cust-7") == 200
    status, answer = await engine.api("GET", "/api/v1/connections")
    assert answer["connections"][0]["id"] == client.connection_id
