"""Admin access: the login form and its cookie, the Bearer token, ``/admin``, the admin at the
authenticate endpoint, and the reserved ``private-realtime.*`` channels. Real servers on loopback."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import create_async_engine

from shopologic import log
from tests.conftest import Client, Engine, EngineFactory, engine_hook_module, make_settings
from tests.web.test_openapi import call_and_check
from websocket_realtime_engine import errors
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.credentials import check_secret_lengths, ensure_default_app, store_credentials
from websocket_realtime_engine.web import rest
from websocket_realtime_engine.web.admin import ADMIN_COOKIE, sign_cookie
from websocket_realtime_engine.web.app import create_app
from websocket_realtime_engine.web.authenticate import HostAccess

TOKEN = "admin-token-for-the-tests-0123456789"
TTL = 600
SESSIONS = {"cust-7": {"id": "7", "role": "customer"}, "shop-admin": {"id": "1", "role": "admin"}}


def admin_settings(**overrides: Any) -> Settings:
    return make_settings(admin_token=TOKEN, admin_session_ttl=TTL, **overrides)


def host_access() -> HostAccess:
    """The host's rule, as shopologic.defaults has it: admins everywhere, customers their own channel."""

    def identify(request: web.Request) -> dict[str, Any] | None:
        return SESSIONS.get(request.cookies.get("session", ""))

    def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
        return user is not None and (user["role"] == "admin" or channel == f"private-customer.{user['id']}")

    return HostAccess(identify=identify, authorize=authorize, requests_per_second=50)


@pytest.fixture
async def admin_engine(engine_factory: EngineFactory) -> Engine:
    return await engine_factory(admin_settings(), access=host_access())  # type: ignore[no-any-return]


async def post_login(engine: Engine, token: str, next_path: str | None = None) -> aiohttp.ClientResponse:
    form = {"token": token, **({"next": next_path} if next_path is not None else {})}
    async with engine.session.post(engine.url("/admin/login"), data=form, allow_redirects=False) as response:
        await response.read()
        return response


def set_cookie_header(response: aiohttp.ClientResponse) -> str:
    (header,) = [value for value in response.headers.getall("Set-Cookie", []) if value.startswith(ADMIN_COOKIE)]
    return header


def cookie_value(response: aiohttp.ClientResponse) -> str:
    return set_cookie_header(response).split(";")[0].split("=", 1)[1]


async def get(engine: Engine, path: str, **headers: str) -> tuple[int, str, aiohttp.ClientResponse]:
    async with engine.session.get(engine.url(path), headers=headers, allow_redirects=False) as response:
        return response.status, await response.text(), response


# -- the login -------------------------------------------------------------------------------------


async def test_the_login_form_is_plain_html_under_a_strict_policy(admin_engine: Engine) -> None:
    status, text, response = await get(admin_engine, "/admin/login?next=/debug")
    assert status == 200 and response.content_type == "text/html"
    assert '<form method="post" action="/admin/login">' in text and 'name="token"' in text
    assert '<input type="hidden" name="next" value="/debug">' in text
    assert "<script" not in text
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["Cache-Control"] == "no-store"


async def test_the_right_token_sets_a_signed_http_only_strict_cookie_with_an_expiry(admin_engine: Engine) -> None:
    response = await post_login(admin_engine, TOKEN)
    assert response.status == 303 and response.headers["Location"] == "/admin"
    header = set_cookie_header(response)
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "samesite", "max-age", "expires", "path"} <= attributes
    assert "samesite=strict" in header.lower() and f"max-age={TTL}" in header.lower()
    assert "secure" not in attributes, "plain HTTP: a Secure cookie would never come back"
    assert TOKEN not in header
    status, text, _ = await get(admin_engine, "/admin", Cookie=f"{ADMIN_COOKIE}={cookie_value(response)}")
    assert status == 200 and "<title>Dashboard · Shopologic Realtime</title>" in text


async def test_a_wrong_token_gets_the_form_again_with_401_and_no_cookie(admin_engine: Engine) -> None:
    response = await post_login(admin_engine, "not-the-token", "/debug")
    assert response.status == 401
    assert not [value for value in response.headers.getall("Set-Cookie", []) if value.startswith(ADMIN_COOKIE)]
    async with admin_engine.session.post(
        admin_engine.url("/admin/login"), data={"token": TOKEN[:-1], "next": "/debug"}
    ) as again:
        text = await again.text()
    assert again.status == 401 and "Wrong admin token." in text and 'value="/debug"' in text


async def test_login_attempts_are_limited_per_address(admin_engine: Engine) -> None:
    statuses = [(await post_login(admin_engine, "wrong")).status for _ in range(3)]
    assert statuses == [401, 401, 429]
    refused = await post_login(admin_engine, TOKEN)  # even the right token waits its turn
    assert refused.status == 429 and refused.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("given", "location"),
    [
        ("/debug?channel=orders", "/debug?channel=orders"),
        ("//evil.example/x", "/admin"),
        ("/\\evil.example", "/admin"),
        ("https://evil.example/", "/admin"),
        ("/admin\r\nSet-Cookie: x=1", "/admin"),
    ],
)
async def test_login_goes_on_to_a_local_next_path_only(
    engine_factory: EngineFactory, given: str, location: str
) -> None:
    engine = await engine_factory(admin_settings())
    response = await post_login(engine, TOKEN, given)
    assert response.status == 303 and response.headers["Location"] == location


async def test_admin_without_the_cookie_or_token_goes_to_the_login(admin_engine: Engine) -> None:
    status, _, response = await get(admin_engine, "/admin")
    assert status == 303 and response.headers["Location"] == "/admin/login?next=%2Fadmin"
    expired = sign_cookie(TOKEN, 1_000_000_000, "00ff")  # signed right, expired in 2001
    other = sign_cookie("another-token-entirely-0123456789", 4_000_000_000, "00ff")  # signed with another token
    tampered = sign_cookie(TOKEN, 4_000_000_000, "00ff")[:-1] + "0"
    for value in (expired, other, tampered, "v1.4000000000.00ff", "garbage"):
        assert (await get(admin_engine, "/admin", Cookie=f"{ADMIN_COOKIE}={value}"))[0] == 303, value
    valid = sign_cookie(TOKEN, 4_000_000_000, "ab")
    assert (await get(admin_engine, "/admin", Cookie=f"{ADMIN_COOKIE}={valid}"))[0] == 200


async def test_the_token_works_as_a_bearer_header(admin_engine: Engine) -> None:
    assert (await get(admin_engine, "/admin", Authorization=f"Bearer {TOKEN}"))[0] == 200
    assert (await get(admin_engine, "/admin", Authorization="Bearer test-api-key"))[0] == 303
    status, _, response = await get(admin_engine, "/admin/login?next=/debug", Authorization=f"Bearer {TOKEN}")
    assert status == 303 and response.headers["Location"] == "/debug"


async def test_logout_clears_the_cookie(admin_engine: Engine) -> None:
    async with admin_engine.session.post(admin_engine.url("/admin/logout"), allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/admin/login"
        header = set_cookie_header(response)
    assert header.startswith(f'{ADMIN_COOKIE}="";') and "max-age=0" in header.lower()


async def test_without_an_admin_token_nobody_is_admin(engine: Engine) -> None:
    assert (await post_login(engine, "")).status == 401
    assert (await get(engine, "/admin", Authorization="Bearer "))[0] == 303


@pytest.fixture
def tls_context(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and the client context that trusts it."""
    authority = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    authority.configure_trust(client)
    return server, client


@pytest.fixture
async def tls_server(tls_context: tuple[ssl.SSLContext, ssl.SSLContext]) -> AsyncIterator[TestServer]:
    server = TestServer(create_app(admin_settings(tls_cert="cert.pem", tls_key="key.pem")), host="127.0.0.1")
    await server.start_server(ssl=tls_context[0])
    yield server
    await server.close()


async def test_over_tls_the_cookie_is_secure(
    tls_server: TestServer, tls_context: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    connector = aiohttp.TCPConnector(ssl=tls_context[1])
    async with aiohttp.ClientSession(connector=connector) as session:
        url = str(tls_server.make_url("/admin/login"))
        assert url.startswith("https://")
        async with session.post(url, data={"token": TOKEN}, allow_redirects=False) as response:
            assert response.status == 303
            header = [value for value in response.headers.getall("Set-Cookie") if value.startswith(ADMIN_COOKIE)][0]
    assert re.search(r";\s*Secure(;|$)", header, re.IGNORECASE)


# -- the credential --------------------------------------------------------------------------------


async def test_an_app_stored_before_the_admin_token_gets_one_and_the_environment_wins(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    old = {"app_id": "123456", "app_key": "k" * 20, "app_secret": "s" * 40, "api_key": "a" * 48, "admin_token": ""}
    await store_credentials(engine, old)
    credentials, created = await ensure_default_app(engine, Settings())
    assert not created and len(credentials["admin_token"]) == 48
    assert {name: credentials[name] for name in ("app_id", "app_key", "app_secret", "api_key")} == {
        name: old[name] for name in ("app_id", "app_key", "app_secret", "api_key")
    }
    again, _ = await ensure_default_app(engine, Settings())
    assert again["admin_token"] == credentials["admin_token"], "a stored token is kept"
    given, _ = await ensure_default_app(engine, Settings(admin_token=TOKEN))
    assert given["admin_token"] == TOKEN
    await engine.dispose()


def test_a_short_admin_token_stops_the_node_and_none_means_no_admin() -> None:
    long = {"api_key": "a" * 48, "app_secret": "s" * 40}
    with pytest.raises(errors.StartupError, match="REALTIME_ADMIN_TOKEN"):
        check_secret_lengths(Settings(admin_token="too-short", **long))
    assert check_secret_lengths(Settings(admin_token="", **long)) == []
    assert check_secret_lengths(Settings(admin_token=TOKEN, **long)) == []


def test_the_admin_token_is_kept_out_of_log_lines() -> None:
    lifecycle = engine_hook_module("hooks/lifecycle.py")
    token = "an-admin-token-nobody-may-read-0123"
    lifecycle._redact({"app_secret": "s" * 40, "api_key": "a" * 48, "admin_token": token})
    assert token not in log.mask(f"login with {token}")
    assert Settings(admin_token=token).redacted()["admin_token"] == "***"


# -- the authenticate endpoint and the reserved channels -------------------------------------------


async def authenticate(engine: Engine, client: Client, channel: str, **headers: str) -> tuple[int, Any]:
    body = {"connection_id": client.connection_id, "channel": channel}
    return await engine.api("POST", "/api/v1/authenticate", json=body, headers=headers)


async def admin_cookie(engine: Engine) -> str:
    return f"{ADMIN_COOKIE}={cookie_value(await post_login(engine, TOKEN))}"


async def test_the_admin_cookie_signs_private_and_presence_channels(admin_engine: Engine) -> None:
    cookie = await admin_cookie(admin_engine)
    client = await admin_engine.connect()
    status, body = await authenticate(admin_engine, client, "private-customer.42", Cookie=cookie)
    assert status == 200
    assert (await client.subscribe("private-customer.42", auth=body["auth"]))["event"] == "subscribed"
    status, body = await authenticate(admin_engine, client, "presence-support", Cookie=cookie)
    assert status == 200 and body["channel_data"] == '{"user_id":"admin","user_info":{"name":"admin"}}'
    reply = await client.subscribe("presence-support", auth=body["auth"], channel_data=body["channel_data"])
    assert reply["data"]["members"] == [{"user_id": "admin", "user_info": {"name": "admin"}}]
    status, body = await authenticate(admin_engine, client, "private-x", Authorization=f"Bearer {TOKEN}")
    assert status == 200 and (await client.subscribe("private-x", auth=body["auth"]))["event"] == "subscribed"
    status, body = await authenticate(admin_engine, client, "private-x", Cookie=f"{ADMIN_COOKIE}=v1.1.2.3")
    assert status == 401 and body["error"]["code"] == "unauthorized"


async def test_only_admins_get_the_reserved_channels_signed(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(admin_settings(), access=host_access())
    client = await engine.connect()
    channel = "private-realtime.stats"
    status, body = await authenticate(engine, client, channel, Cookie="session=cust-7")
    assert status == 403 and body["error"]["code"] == "forbidden"  # the host refuses a customer first
    for headers in ({"Cookie": "session=shop-admin"}, {"Cookie": await admin_cookie(engine)}, engine.api_headers):
        admin = await engine.connect()
        status, body = await authenticate(engine, admin, channel, **headers)
        assert status == 200, (headers, body)
        assert (await admin.subscribe(channel, auth=body["auth"]))["event"] == "subscribed"
    # a host that lets everyone in still cannot open the engine's own channels to non-admins
    everyone = HostAccess(identify=host_access().identify, authorize=lambda user, channel, connection_id: True)
    lenient = await engine_factory(admin_settings(), access=everyone)
    other = await lenient.connect()
    status, body = await authenticate(lenient, other, channel, Cookie="session=cust-7")
    assert status == 403 and body["error"]["code"] == "reserved_channel"
    assert (await authenticate(lenient, other, "private-anything", Cookie="session=cust-7"))[0] == 200


async def test_rest_broadcasts_may_not_use_the_reserved_prefix(admin_engine: Engine) -> None:
    spec = yaml.safe_load(rest.OPENAPI.read_text(encoding="utf-8"))
    for body in (
        {"channel": "private-realtime.stats", "event": "stats", "data": {}},
        {"channels": ["orders", "private-realtime.anything"], "event": "x", "data": 1},
    ):
        answer = await call_and_check(admin_engine, spec, "POST", "/api/v1/broadcast", 403, json=body)
        assert answer["error"]["code"] == "reserved_channel", answer
    assert admin_engine.node.published == 0, "nothing of a refused broadcast went out"


async def test_clients_may_not_publish_on_the_reserved_prefix(admin_engine: Engine) -> None:
    client = await admin_engine.connect()
    status, body = await authenticate(admin_engine, client, "private-realtime.log", **admin_engine.api_headers)
    assert status == 200
    assert (await client.subscribe("private-realtime.log", auth=body["auth"]))["event"] == "subscribed"
    reply = await client.request({"event": "message", "channel": "private-realtime.log", "data": {"x": 1}, "id": 7})
    assert reply["event"] == "error" and reply["id"] == 7
    assert reply["data"]["code"] == 4011 and "engine's own" in reply["data"]["message"]
    assert admin_engine.node.client_errors["reserved_channel"] == 1


async def test_a_shop_session_beside_the_admin_cookie_is_who_asks(admin_engine: Engine) -> None:
    """The owner on their own storefront, signed in to the admin pages too: the storefront's
    requests are the customer's, decided by the host, not the admin's."""
    both = f"{await admin_cookie(admin_engine)}; session=cust-7"
    client = await admin_engine.connect()
    assert (await authenticate(admin_engine, client, "private-customer.7", Cookie=both))[0] == 200
    status, body = await authenticate(admin_engine, client, "private-customer.8", Cookie=both)
    assert (status, body["error"]["code"]) == (403, "forbidden"), "not signed as the admin"
