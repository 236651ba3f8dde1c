"""Signed-in presence: a signed-in user joins ``users:online`` as itself; every other presence channel,
``users:admins`` included, needs a signature from ``POST /api/v1/authenticate``, where the host's
``authorize_channel`` decides (by default: admins everywhere, customers only their own channel).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from shopologic.defaults import sign_session
from tests.conftest import Client, Engine, EngineFactory, make_settings
from tests.host import test_cli as cli_tests
from tests.host.test_cli import ServerFactory
from tests.web.test_presence import signin
from websocket_realtime_engine.config import load_settings

start_server = cli_tests.start_server
SESSION_KEY = "presence-policy-session-key-0123456789"
ADMIN = {"id": "1", "role": "admin", "info": {"name": "Ada"}}
CUSTOMER = {"id": "7", "role": "customer", "info": {"name": "Cy"}}


def test_the_default_lets_signed_in_users_join_users_online_only(tmp_path: Path) -> None:
    settings = load_settings(environ={}, config_file=tmp_path / "none.toml")
    assert settings.signin_presence_patterns == ("users:online",)
    assert settings.presence_patterns == ("users:*",)  # users:admins is still a presence channel


async def test_signed_in_joins_users_online_but_not_users_admins(engine: Engine) -> None:
    ada = await engine.connect()
    await signin(ada, "ada")
    joined = await ada.subscribe("users:online")
    assert joined["event"] == "subscribed" and joined["data"]["members"][0]["user_id"] == "ada"
    for channel in ("users:admins", "users:42"):
        refused = await ada.subscribe(channel)
        assert refused["event"] == "error" and refused["data"]["code"] == 4009, refused
        assert "POST /api/v1/authenticate" in refused["data"]["message"]
    assert sorted(engine.node.connections[ada.connection_id].channels) == ["users:online"]


async def test_the_old_policy_is_one_setting_away(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(signin_presence_patterns=("users:*",)))
    ada = await engine.connect()
    await signin(ada, "ada")
    assert (await ada.subscribe("users:admins"))["event"] == "subscribed"


# -- with the host's hooks: a real platform process and shop session cookies ------------------------


async def page(session: aiohttp.ClientSession, server: cli_tests.ServerProcess, user: dict[str, Any]) -> Client:
    """A storefront page of ``user``: connected, signed in through its shop session."""
    client = Client(await session.ws_connect(server.url("/socket")))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    signed = await authenticate(session, server, user, "/api/v1/authenticate/user", {"client": client})
    assert signed[0] == 200, signed
    reply = await client.request({"event": "signin", "auth": signed[1]["auth"], "user_data": signed[1]["user_data"]})
    assert reply["event"] == "signed_in", reply
    return client


async def authenticate(
    session: aiohttp.ClientSession, server: cli_tests.ServerProcess, user: dict[str, Any], path: str, body: Any
) -> tuple[int, Any]:
    cookie = {"Cookie": f"shopologic_session={sign_session(SESSION_KEY, user)}"}
    payload = {"connection_id": body.pop("client").connection_id, **body}
    async with session.post(server.url(path), json=payload, headers=cookie) as response:
        return response.status, await response.json()


async def test_users_admins_needs_the_hosts_authorize_channel(
    start_server: ServerFactory, platform_env: dict[str, str]
) -> None:
    platform_env["SHOPOLOGIC_SECRET_KEY"] = SESSION_KEY
    server = start_server("websocket", "start")
    async with aiohttp.ClientSession() as session:
        customer, admin = await page(session, server, CUSTOMER), await page(session, server, ADMIN)
        for client in (customer, admin):
            assert (await client.subscribe("users:online"))["event"] == "subscribed"
        assert (await customer.recv())["data"]["user_id"] == "1"  # member_added: the admin came online

        assert (await customer.subscribe("users:admins"))["data"]["code"] == 4009
        status, refused = await authenticate(
            session, server, CUSTOMER, "/api/v1/authenticate", {"client": customer, "channel": "users:admins"}
        )
        assert status == 403 and refused["error"]["code"] == "forbidden"

        status, signed = await authenticate(
            session, server, ADMIN, "/api/v1/authenticate", {"client": admin, "channel": "users:admins"}
        )
        assert status == 200
        assert orjson.loads(signed["channel_data"]) == {"user_id": "1", "user_info": {"name": "Ada"}}
        joined = await admin.subscribe("users:admins", auth=signed["auth"], channel_data=signed["channel_data"])
        assert joined["event"] == "subscribed" and joined["data"]["members"] == [
            {"user_id": "1", "user_info": {"name": "Ada"}}
        ]
        await asyncio.gather(customer.ws.close(), admin.ws.close())
    assert await asyncio.to_thread(server.stop) == 0
