"""Presence channels over real connections: members, joins and leaves, one user with two connections."""

from __future__ import annotations

import orjson

from tests.conftest import CREDENTIALS, Client, Engine, EngineFactory, make_settings, positioned
from websocket_realtime_engine.protocol import auth


def member_data(user_id: str, **info: str) -> str:
    return orjson.dumps({"user_id": user_id, "user_info": info}).decode()


async def join(client: Client, channel: str, user_id: str, **info: str) -> dict:
    data = member_data(user_id, **info)
    return await client.subscribe(channel, auth=client.auth(channel, data), channel_data=data)


async def signin(client: Client, user_id: str) -> None:
    user_data = orjson.dumps({"id": user_id, "user_info": {"name": user_id.title()}}).decode()
    signature = auth.make_auth(
        CREDENTIALS["app_key"], CREDENTIALS["app_secret"], auth.user_string(client.connection_id, user_data)
    )
    assert (await client.request({"event": "signin", "auth": signature, "user_data": user_data}))[
        "event"
    ] == "signed_in"


async def test_members_join_and_leave_with_pushes_to_the_others(engine: Engine) -> None:
    ada, bob = await engine.connect(), await engine.connect()
    joined = await join(ada, "presence-admin", "ada", name="Ada")
    assert joined["data"] == {"members": [{"user_id": "ada", "user_info": {"name": "Ada"}}], "count": 1}
    joined = await join(bob, "presence-admin", "bob", name="Bob")
    assert joined["data"]["count"] == 2
    assert await ada.recv() == {
        "event": "member_added",
        "channel": "presence-admin",
        "data": {"user_id": "bob", "user_info": {"name": "Bob"}},
    }
    await bob.nothing()  # no member_added about oneself
    await bob.request({"event": "unsubscribe", "channel": "presence-admin"})
    assert await ada.recv() == {"event": "member_removed", "channel": "presence-admin", "data": {"user_id": "bob"}}


async def test_a_user_with_two_connections_counts_once(engine: Engine) -> None:
    watcher, tab1, tab2 = await engine.connect(), await engine.connect(), await engine.connect()
    await join(watcher, "presence-admin", "watcher")
    await join(tab1, "presence-admin", "ada")
    assert (await watcher.recv())["event"] == "member_added"
    second = await join(tab2, "presence-admin", "ada")
    assert second["data"]["count"] == 2
    assert sorted(m["user_id"] for m in second["data"]["members"]) == ["ada", "watcher"]
    await watcher.nothing()  # the second tab is not a new member
    await tab1.ws.close()
    await watcher.nothing()  # ada is still there through tab2
    status, body = await engine.api("GET", "/api/v1/channels/presence-admin/members")
    assert status == 200 and body["count"] == 2
    await tab2.ws.close()
    assert await watcher.recv() == {"event": "member_removed", "channel": "presence-admin", "data": {"user_id": "ada"}}


async def test_presence_needs_signed_channel_data(engine: Engine) -> None:
    client = await engine.connect()
    data = member_data("ada")
    no_auth = await client.subscribe("presence-admin", channel_data=data)
    assert no_auth["data"]["code"] == 4009
    forged = member_data("root")
    wrong = await client.subscribe("presence-admin", auth=client.auth("presence-admin", data), channel_data=forged)
    assert wrong["data"]["code"] == 4009
    auth_only = await client.subscribe("presence-admin", auth=client.auth("presence-admin", data))
    assert auth_only["data"]["code"] == 4000


async def test_the_seed_presence_frame_works_for_a_signed_in_user(engine: Engine) -> None:
    anonymous, ada, bob = await engine.connect(), await engine.connect(), await engine.connect()
    refused = await anonymous.request({"event": "presence", "channel": "users:online", "id": 1})
    assert refused["data"]["code"] == 4009 and "sign in" in refused["data"]["message"]
    await signin(ada, "ada")
    await signin(bob, "bob")
    reply = await ada.request({"event": "presence", "channel": "users:online"})
    assert positioned(reply) == {
        "event": "presence",
        "channel": "users:online",
        "data": {"members": [{"user_id": "ada", "user_info": {"name": "Ada"}}], "count": 1},
    }
    reply = await bob.request({"event": "presence", "channel": "users:online"})
    assert reply["data"]["count"] == 2
    assert (await ada.recv())["data"] == {"user_id": "bob", "user_info": {"name": "Bob"}}
    again = await ada.request({"event": "presence", "channel": "users:online", "id": "again"})
    assert again["id"] == "again" and again["data"]["count"] == 2


async def test_presence_frame_on_a_non_presence_channel_is_an_error(engine: Engine) -> None:
    client = await engine.connect()
    reply = await client.request({"event": "presence", "channel": "orders"})
    assert reply["event"] == "error" and reply["data"]["code"] == 4000


async def test_signed_in_users_cannot_join_other_presence_channels_without_auth(engine: Engine) -> None:
    client = await engine.connect()
    await signin(client, "ada")
    reply = await client.subscribe("presence-admin")
    assert reply["data"]["code"] == 4009


async def test_presence_members_per_channel_are_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_presence_members=2))
    clients = [await engine.connect() for _ in range(3)]
    assert (await join(clients[0], "presence-room", "a"))["event"] == "subscribed"
    assert (await join(clients[1], "presence-room", "b"))["event"] == "subscribed"
    await clients[0].recv()  # member_added b
    full = await join(clients[2], "presence-room", "c")
    assert full["data"]["code"] == 4020
    assert (await join(clients[2], "presence-room", "a"))["event"] == "subscribed"  # an existing member may add a tab


async def test_user_info_size_is_limited(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(max_user_info_bytes=50))
    client = await engine.connect()
    reply = await join(client, "presence-room", "a", bio="x" * 100)
    assert reply["data"]["code"] == 4020


async def test_presence_member_count_in_channel_info(engine: Engine) -> None:
    a, b = await engine.connect(), await engine.connect()
    await join(a, "presence-admin", "ada")
    await join(b, "presence-admin", "ada")
    status, info = await engine.api("GET", "/api/v1/channels/presence-admin")
    assert status == 200
    assert info == {
        "name": "presence-admin",
        "type": "presence",
        "subscription_count": 2,
        "occupied": True,
        "user_count": 1,
    }
