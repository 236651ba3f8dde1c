"""The authenticate routes' answers to shop sessions that ended, and a revoked user's disconnection.

First the engine's contract alone (a host whose ``identify`` is async and says why a session ended),
then a real platform process (``websocket start``) with the host's own ``identify_user``: a valid
session gets its signature, an expired one ``session_expired``, a revoked one ``session_revoked``,
and the revoked user's connections are closed by the outbox drainer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from shopologic.defaults import SESSION_COOKIE, sign_session
from tests.conftest import Client, Engine, EngineFactory
from tests.host import test_cli as cli_tests
from tests.host.test_cli import Cli, ServerFactory, assert_ok
from websocket_realtime_engine import errors
from websocket_realtime_engine.web.authenticate import HostAccess

start_server = cli_tests.start_server
SECRET = "shop-sessions-test-secret-0123456789"
CUSTOMER = {"id": "7", "role": "customer", "info": {"name": "Cy"}}
SIGN_IN_AGAIN = "sign in again"


# -- the engine's contract: an async identify, and the reasons a session ended -------------------------


async def identify(request: web.Request) -> dict[str, Any] | None:
    await asyncio.sleep(0)  # answered asynchronously, as the host's default reads its database
    cookie = request.cookies.get("session", "")
    if cookie == "expired":
        raise errors.SessionExpiredError("the shop session has expired: sign in again")
    if cookie == "revoked":
        raise errors.SessionRevokedError("the shop session was revoked: sign in again")
    return dict(CUSTOMER) if cookie == "valid" else None


def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
    return user is not None and channel == f"private-customer.{user['id']}"


async def ask(engine: Engine, path: str, cookie: str, body: dict[str, Any]) -> tuple[int, Any]:
    return await engine.api("POST", path, headers={"Cookie": f"session={cookie}"}, json=body)


@pytest.mark.parametrize("path", ["/api/v1/authenticate", "/api/v1/authenticate/user"])
async def test_each_ended_session_has_its_own_401(engine_factory: EngineFactory, path: str) -> None:
    engine = await engine_factory(access=HostAccess(identify=identify, authorize=authorize, requests_per_second=50))
    client = await engine.connect()
    body = {"connection_id": client.connection_id}
    if path == "/api/v1/authenticate":
        body["channel"] = "private-customer.7"
    status, answer = await ask(engine, path, "valid", body)
    assert status == 200 and answer["auth"], answer
    for cookie, code in (("expired", "session_expired"), ("revoked", "session_revoked"), ("junk", "unauthorized")):
        status, answer = await ask(engine, path, cookie, body)
        assert status == 401 and answer["error"]["code"] == code, (cookie, answer)
        assert (SIGN_IN_AGAIN in answer["error"]["message"]) is (code != "unauthorized")
    status, answer = await engine.api("GET", "/api/v1/status")
    assert answer["api_errors"] == {"session_expired": 1, "session_revoked": 1, "unauthorized": 1}


async def test_ended_sessions_are_rate_limited_by_address(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(access=HostAccess(identify=identify, authorize=authorize, requests_per_second=1))
    client = await engine.connect()
    body = {"connection_id": client.connection_id, "channel": "private-customer.7"}
    statuses = [(await ask(engine, "/api/v1/authenticate", "revoked", body))[0] for _ in range(4)]
    assert statuses[0] == 401 and 429 in statuses
    assert (await ask(engine, "/api/v1/authenticate", "valid", body))[0] == 200  # the user has a bucket of its own


# -- a real platform process, with the host's identify_user --------------------------------------------


async def connect(session: aiohttp.ClientSession, server: cli_tests.ServerProcess) -> Client:
    client = Client(await session.ws_connect(server.url("/socket")))
    client.connection_id = (await client.expect("connected"))["data"]["connection_id"]
    return client


async def authenticate(
    session: aiohttp.ClientSession, server: cli_tests.ServerProcess, cookie: str, client: Client, path: str
) -> tuple[int, Any]:
    body: dict[str, Any] = {"connection_id": client.connection_id}
    if path == "/api/v1/authenticate":
        body["channel"] = "private-customer.7"
    async with session.post(server.url(path), json=body, headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}) as response:
        return response.status, await response.json()


async def online(session: aiohttp.ClientSession, server: cli_tests.ServerProcess, cookie: str) -> Client:
    """A storefront page: connected, signed in with its shop session, a member of ``users:online``."""
    client = await connect(session, server)
    status, signed = await authenticate(session, server, cookie, client, "/api/v1/authenticate/user")
    assert status == 200, signed
    reply = await client.request({"event": "signin", "auth": signed["auth"], "user_data": signed["user_data"]})
    assert reply["event"] == "signed_in", reply
    assert (await client.subscribe("users:online"))["event"] == "subscribed"
    return client


async def closed_within(client: Client, seconds: float) -> aiohttp.WSMessage:
    """The close the server sent, within ``seconds`` (frames before it are skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            message = await client.ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return message


async def test_valid_expired_and_revoked_sessions_and_the_revoked_user_is_disconnected(
    start_server: ServerFactory, platform_env: dict[str, str], cli: Cli
) -> None:
    platform_env.update({"SHOPOLOGIC_SECRET_KEY": SECRET, "REALTIME_OUTBOX_POLL_INTERVAL": "0.2"})
    server = start_server("websocket", "start")
    valid = sign_session(SECRET, CUSTOMER, ttl=60)
    expired = sign_session(SECRET, CUSTOMER, ttl=60, issued_at=time.time() - 61)
    async with aiohttp.ClientSession() as session:
        page = await online(session, server, valid)
        other = await online(session, server, sign_session(SECRET, {"id": "8", "role": "customer"}))
        assert (await page.recv())["event"] == "member_added"  # user 8 came online

        status, answer = await authenticate(session, server, valid, page, "/api/v1/authenticate")
        assert status == 200 and answer["auth"]
        status, answer = await authenticate(session, server, expired, page, "/api/v1/authenticate")
        assert (status, answer["error"]["code"]) == (401, "session_expired")
        assert SIGN_IN_AGAIN in answer["error"]["message"]

        assert_ok(await asyncio.to_thread(cli, "session", "--user", "7", "--revoke"))
        for path in ("/api/v1/authenticate", "/api/v1/authenticate/user"):
            status, answer = await authenticate(session, server, valid, page, path)
            assert (status, answer["error"]["code"]) == (401, "session_revoked"), answer
            assert SIGN_IN_AGAIN in answer["error"]["message"]

        message = await closed_within(page, 5.0)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4009), message  # disconnected: no reconnect
        assert (await other.recv())["event"] == "member_removed"  # user 8 stays, and sees 7 leave

        fresh = assert_ok(await asyncio.to_thread(cli, "session", "--user", "7")).strip()  # signing in again
        again = await online(session, server, fresh)
        await asyncio.gather(other.ws.close(), again.ws.close())
    assert await asyncio.to_thread(server.stop) == 0


async def test_revocation_ends_a_private_subscription_made_with_the_session_alone(
    start_server: ServerFactory, platform_env: dict[str, str], cli: Cli
) -> None:
    """A page that never signs in: its private channel was signed through the shop session, and that
    is what makes the connection the user's. One that only asked for a signature stays."""
    platform_env.update({"SHOPOLOGIC_SECRET_KEY": SECRET, "REALTIME_OUTBOX_POLL_INTERVAL": "0.2"})
    server = start_server("websocket", "start")
    cookie = sign_session(SECRET, CUSTOMER, ttl=60)
    async with aiohttp.ClientSession() as session:
        page, asked_only = await connect(session, server), await connect(session, server)
        status, signed = await authenticate(session, server, cookie, page, "/api/v1/authenticate")
        assert status == 200
        reply = await page.subscribe("private-customer.7", auth=signed["auth"])
        assert reply["event"] == "subscribed", reply
        assert (await authenticate(session, server, cookie, asked_only, "/api/v1/authenticate"))[0] == 200

        assert_ok(await asyncio.to_thread(cli, "session", "--user", "7", "--revoke"))
        message = await closed_within(page, 5.0)
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 4009), message
        assert (await asked_only.request({"event": "ping"}))["event"] == "pong", "never subscribed: not the user's"
        await asked_only.ws.close()
    assert await asyncio.to_thread(server.stop) == 0
