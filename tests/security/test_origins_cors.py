"""Which pages may open the socket (``REALTIME_ALLOWED_ORIGINS``) and call the authenticate endpoints
from script (CORS, ``REALTIME_CORS_ORIGINS``); the API-key routes never answer CORS.

Real servers on loopback, real clients that send the ``Origin`` a browser would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Engine, EngineFactory, make_settings, positioned
from websocket_realtime_engine.config import SettingsError, load_settings
from websocket_realtime_engine.origins import OriginMatch, parse_patterns
from websocket_realtime_engine.web.authenticate import HostAccess

SHOP = "https://shop.example"
ADMIN = "https://admin.shop.example"  # under the wildcard https://*.shop.example
EVIL = "https://evil.example"
SESSIONS = {"cust-7": {"id": "7", "role": "customer"}}


def identify(request: web.Request) -> dict[str, Any] | None:
    return SESSIONS.get(request.cookies.get("shopologic_session", ""))


def authorize(user: dict[str, Any] | None, channel: str, connection_id: str) -> bool:
    return user is not None and channel == f"private-customer.{user['id']}"


ACCESS = HostAccess(identify=identify, authorize=authorize, requests_per_second=100.0)


# -- the patterns ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://shop.example", OriginMatch.EXACT),
        ("HTTPS://Shop.Example:443", OriginMatch.EXACT),  # case and the default port do not matter
        ("https://admin.shop.example", OriginMatch.WILDCARD),
        ("https://a.b.shop.example", OriginMatch.WILDCARD),
        ("http://localhost:3000", OriginMatch.EXACT),
        ("https://shop.example:8443", None),  # another port
        ("http://shop.example", None),  # another scheme
        ("http://admin.shop.example", None),
        ("https://evilshop.example", None),  # not a subdomain
        ("https://shop.example.evil.example", None),
        ("https://*.shop.example", None),  # a pattern is not an origin
        ("null", None),
        ("", None),
    ],
)
def test_origin_patterns(origin: str, expected: OriginMatch | None) -> None:
    patterns = parse_patterns(("https://shop.example", "https://*.shop.example", "http://localhost:3000/"))
    assert patterns.match(origin) is expected


def test_star_allows_every_origin_and_the_most_specific_match_wins() -> None:
    assert parse_patterns(("*",)).match("null") is OriginMatch.ANY
    assert parse_patterns(("*", SHOP)).match(SHOP) is OriginMatch.EXACT
    assert parse_patterns(()).match(SHOP) is None


@pytest.mark.parametrize(
    "bad", ["shop.example", "https://shop.example/path", "https://*", "https://*.com", "https://a.*.example", "*.x.y"]
)
@pytest.mark.parametrize("variable", ["REALTIME_ALLOWED_ORIGINS", "REALTIME_CORS_ORIGINS"])
def test_a_bad_pattern_is_a_settings_error_naming_the_setting(variable: str, bad: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=variable) as caught:
        load_settings(environ={variable: f"{SHOP},{bad}"}, config_file=tmp_path / "none.toml")
    assert repr(bad) in str(caught.value)


def test_the_defaults_allow_every_page_on_the_socket_and_none_through_cors(tmp_path: Path) -> None:
    settings = load_settings(environ={}, config_file=tmp_path / "none.toml")
    assert settings.allowed_origins == ("*",) and settings.allow_missing_origin and settings.cors_origins == ()


# -- the socket ------------------------------------------------------------------------------------


async def handshake(engine: Engine, origin: str | None) -> tuple[int, Any]:
    """A WebSocket handshake as a browser sends it (with ``origin``); the status and the JSON body
    when it is refused."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13"}
    headers["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ=="
    if origin is not None:
        headers["Origin"] = origin
    async with engine.session.get(engine.url("/socket"), headers=headers) as response:
        if response.status == 101:
            return 101, None
        assert response.headers["Connection"].lower() == "close"
        return response.status, await response.json()


async def test_by_default_every_origin_and_none_may_open_the_socket(engine: Engine) -> None:
    for origin in (None, SHOP, EVIL, "null"):
        ws = await engine.session.ws_connect(engine.url("/socket"), origin=origin)
        assert (await ws.receive_json())["event"] == "connected"
        await ws.close()


async def test_a_page_not_listed_is_refused_with_403_before_the_upgrade(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(allowed_origins=(SHOP, "https://*.shop.example")))
    listener = await engine.connect()  # no Origin: a server-side client, allowed by default
    assert (await listener.subscribe("orders"))["event"] == "subscribed"

    status, body = await handshake(engine, EVIL)
    assert status == 403  # and Connection: close (handshake() checks it)
    assert body["error"]["code"] == "origin_not_allowed" and EVIL in body["error"]["message"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await engine.session.ws_connect(engine.url("/socket"), origin="https://shop.example.evil.example")
    assert refused.value.status == 403
    assert len(engine.node.connections) == 1  # a refused page never became a connection

    for origin in (SHOP, ADMIN):
        ws = await engine.session.ws_connect(engine.url("/socket"), origin=origin)
        assert (await ws.receive_json())["event"] == "connected", origin
        await ws.close()

    status, _ = await engine.api("POST", "/api/v1/broadcast", json={"channel": "orders", "event": "tick", "data": 1})
    assert status == 200
    assert positioned(await listener.expect("tick")) == {"event": "tick", "channel": "orders", "data": 1}


async def test_a_missing_origin_can_be_refused_too(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(allowed_origins=(SHOP,), allow_missing_origin=False))
    status, body = await handshake(engine, None)
    assert status == 403 and body["error"]["code"] == "origin_not_allowed" and "Origin" in body["error"]["message"]
    ws = await engine.session.ws_connect(engine.url("/socket"), origin=SHOP)
    assert (await ws.receive_json())["event"] == "connected"
    await ws.close()


# -- CORS ------------------------------------------------------------------------------------------


async def preflight(engine: Engine, path: str, origin: str, headers: str = "Content-Type") -> aiohttp.ClientResponse:
    """A browser's preflight for a POST with ``headers``; the response (its body already read)."""
    asked = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": headers}
    async with engine.session.options(engine.url(path), headers=asked) as response:
        await response.read()
        return response


async def page_post(engine: Engine, path: str, origin: str, **kwargs: Any) -> tuple[aiohttp.ClientResponse, Any]:
    async with engine.session.post(engine.url(path), headers={"Origin": origin}, **kwargs) as response:
        return response, await response.json()


API_KEY_ROUTES = ["/api/v1/broadcast", "/api/v1/channels", "/api/v1/status", "/api/v1/connections/1.1/disconnect"]


async def test_cors_is_off_by_default(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(), access=ACCESS)
    client = await engine.connect()
    response = await preflight(engine, "/api/v1/authenticate", SHOP)
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    status, counters = await engine.api("GET", "/api/v1/status")
    assert status == 200 and counters["api_errors"]["cors_refused"] == 1
    body = {"connection_id": client.connection_id, "channel": "private-customer.7"}
    answer, _ = await page_post(
        engine, "/api/v1/authenticate", SHOP, json=body, cookies={"shopologic_session": "cust-7"}
    )
    assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers  # the browser hides it


@pytest.mark.parametrize("path", API_KEY_ROUTES)
async def test_api_key_routes_never_answer_cors(engine_factory: EngineFactory, path: str) -> None:
    engine = await engine_factory(make_settings(cors_origins=("*", SHOP)), access=ACCESS)
    response = await preflight(engine, path, SHOP, headers="Authorization, Content-Type")
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    async with engine.session.options(
        engine.url(path), headers={"Origin": SHOP, "Access-Control-Request-Method": "GET"}
    ) as refused:
        assert refused.status == 403 and (await refused.json())["error"]["code"] == "cors_refused"
    # a request that carries the key anyway (a leaked key, not a browser that asked first) gets no CORS
    async with engine.session.post(engine.url(path), headers={"Origin": SHOP, **engine.api_headers}, json={}) as answer:
        assert (
            "Access-Control-Allow-Origin" not in answer.headers
            and "Access-Control-Allow-Credentials" not in answer.headers
        )


async def test_an_exact_origin_may_authenticate_with_its_session_cookie(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(cors_origins=(SHOP, "https://*.shop.example")), access=ACCESS)
    client = await engine.connect()
    for path in ("/api/v1/authenticate", "/api/v1/authenticate/user"):
        response = await preflight(engine, path, SHOP, headers="content-type, X-Requested-With")
        assert response.status == 204, path
        assert response.headers["Access-Control-Allow-Origin"] == SHOP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert "Authorization" not in response.headers["Access-Control-Allow-Headers"]
        assert "Origin" in response.headers["Vary"]

    body = {"connection_id": client.connection_id, "channel": "private-customer.7"}
    answer, signed = await page_post(
        engine, "/api/v1/authenticate", SHOP, json=body, cookies={"shopologic_session": "cust-7"}
    )
    assert answer.status == 200
    assert answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert (await client.subscribe("private-customer.7", auth=signed["auth"]))["event"] == "subscribed"

    # an error answer carries the headers too, so the page can read why
    answer, error = await page_post(engine, "/api/v1/authenticate", SHOP, json=body)
    assert answer.status == 401 and error["error"]["code"] == "unauthorized"
    assert answer.headers["Access-Control-Allow-Origin"] == SHOP


async def test_a_wildcard_origin_gets_cors_without_credentials(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(cors_origins=(SHOP, "https://*.shop.example")), access=ACCESS)
    response = await preflight(engine, "/api/v1/authenticate", ADMIN)
    assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == ADMIN
    assert "Access-Control-Allow-Credentials" not in response.headers


async def test_star_gets_star_and_no_credentials(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(make_settings(cors_origins=("*",)), access=ACCESS)
    response = await preflight(engine, "/api/v1/authenticate", EVIL)
    assert response.status == 204 and response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize(
    ("origin", "method", "headers", "problem"),
    [
        (EVIL, "POST", "Content-Type", "REALTIME_CORS_ORIGINS"),
        (SHOP, "PUT", "Content-Type", "method PUT"),
        (SHOP, "POST", "Authorization", "authorization"),  # an API key in a page is a leak
    ],
)
async def test_a_preflight_that_is_not_allowed_is_refused_with_a_reason(
    engine_factory: EngineFactory, origin: str, method: str, headers: str, problem: str
) -> None:
    engine = await engine_factory(make_settings(cors_origins=(SHOP,)), access=ACCESS)
    asked = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    async with engine.session.options(engine.url("/api/v1/authenticate"), headers=asked) as response:
        body = await response.json()
    assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers
    assert body["error"]["code"] == "cors_refused" and problem in body["error"]["message"]
