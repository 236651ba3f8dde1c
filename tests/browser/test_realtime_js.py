"""``/realtime.js`` in headless Chromium against real engines on loopback.

The test page (``page.html``, served by the engine under test) loads ``/realtime.js``; each test
drives it with ``page.evaluate`` and reads what the page shows (its lists of events, notices and
members) or the client's state. Publications come from the REST API; a node "drops" the page by
stopping, and comes back on the same port (with the Redis backends, so history survives it, or
with the embedded ones, so it does not).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from shopologic.defaults import SESSION_CLAIMS, SESSION_COOKIE, authorize_channel, read_session, sign_session
from tests.browser.conftest import TEST_PAGE_PATH, Engines, PageFactory
from tests.conftest import REDIS_URL, Engine, eventually, free_port, make_settings
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.web.app import CLIENT_SCRIPT
from websocket_realtime_engine.web.authenticate import HostAccess, User

pytestmark = pytest.mark.asyncio(loop_scope="module")

# quick reconnects for tests: the first retry within 100 ms, none later than 400 ms
FAST = {"initialDelay": 100, "maxDelay": 400, "stableAfter": 1000, "connectTimeout": 3000}
SESSION_SECRET = "browser-tests-session-secret-0123456789"


async def open_client(page: Page, engine: Engine, **options: Any) -> None:
    """Load the test page from ``engine`` and start its client with ``options`` (FAST by default)."""
    await page.goto(engine.url(TEST_PAGE_PATH))
    await page.evaluate("options => { start(options); }", {**FAST, **options})


async def follow(page: Page, channel: str) -> None:
    await page.evaluate("name => { follow(name); }", channel)


async def broadcast(engine: Engine, channel: str, event: str, data: Any) -> None:
    body = {"channel": channel, "event": event, "data": data}
    status, answer = await engine.api("POST", "/api/v1/broadcast", json=body)
    assert status == 200, answer


async def two_nodes(engines: Engines, redis_prefix: str) -> tuple[Settings, Engine, Engine]:
    """Nodes browser-a and browser-b on the test Redis (history survives a node); browser-a's settings,
    to start it again."""
    redis = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    node = make_settings(node_id="browser-a", **redis)
    return node, await engines.start(node), await engines.start(make_settings(node_id="browser-b", **redis))


async def received(page: Page) -> list[dict[str, Any]]:
    return await page.evaluate("() => received")


def shown(page: Page, list_id: str) -> Any:
    """The items of one of the page's lists (``events``, ``notices``, ``members``)."""
    return page.locator(f"#{list_id} li")


async def test_the_script_is_served_with_its_type_and_cache_headers(engines: Engines) -> None:
    engine = await engines.start()
    async with engine.session.get(engine.url("/realtime.js")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert response.headers["Cache-Control"] == "public, max-age=300"
        etag = response.headers["ETag"]
        assert await response.read() == CLIENT_SCRIPT.read_bytes()
    async with engine.session.get(engine.url("/realtime.js"), headers={"If-None-Match": etag}) as response:
        assert response.status == 304  # revalidated, not sent again


async def test_a_rest_broadcast_reaches_the_page(page: Page, engines: Engines) -> None:
    engine = await engines.start()
    await open_client(page, engine)
    await follow(page, "orders")
    await expect(shown(page, "notices")).to_have_text(["orders subscribed"])
    await expect(page.locator("#state")).to_have_text("connected")
    await expect(page.locator("#transport")).to_have_text("websocket")

    await broadcast(engine, "orders", "order.created", {"id": "1001"})
    await expect(shown(page, "events")).to_have_text(['orders order.created {"id":"1001"}'])


async def test_reconnects_after_the_node_restarts_and_recovers_what_it_missed_once_in_order(
    page: Page, engines: Engines, redis_prefix: str
) -> None:
    node, engine, other = await two_nodes(engines, redis_prefix)  # other publishes while the first is down
    await open_client(page, engine, transports=["websocket"])
    await follow(page, "orders")
    await expect(shown(page, "notices")).to_have_text(["orders subscribed"])
    await broadcast(engine, "orders", "n", 1)
    await expect(shown(page, "events")).to_have_count(1)

    port = await engines.stop(engine)  # the page's socket is closed with 1012: "reconnect"
    await page.wait_for_function("() => states.includes('unavailable')")
    for number in (2, 3, 4):
        await broadcast(other, "orders", "n", number)
    engine = await engines.start(node, port=port)

    notices = ["orders subscribed", "orders subscribed", "orders recovered true"]
    await expect(shown(page, "notices")).to_have_text(notices)
    await expect(shown(page, "events")).to_have_count(4)
    await broadcast(engine, "orders", "n", 5)
    await expect(shown(page, "events")).to_have_text([f"orders n {number}" for number in range(1, 6)])
    events = await received(page)
    assert [event["offset"] for event in events] == [1, 2, 3, 4, 5]
    assert len({event["epoch"] for event in events}) == 1
    await expect(page.locator("#state")).to_have_text("connected")


async def test_recovered_false_is_reported_when_the_history_is_gone(page: Page, engines: Engines) -> None:
    engine = await engines.start()  # the embedded backends: the history goes with the node
    await open_client(page, engine, transports=["websocket"])
    await follow(page, "orders")
    await expect(shown(page, "notices")).to_have_text(["orders subscribed"])
    await broadcast(engine, "orders", "n", 1)
    await expect(shown(page, "events")).to_have_count(1)

    port = await engines.stop(engine)
    engine = await engines.start(port=port)

    notices = ["orders subscribed", "orders subscribed", "orders recovered false"]
    await expect(shown(page, "notices")).to_have_text(notices)
    await broadcast(engine, "orders", "n", 2)  # the new stream's first: delivered, not taken for a repeat
    await expect(shown(page, "events")).to_have_text(["orders n 1", "orders n 2"])
    first, second = await received(page)
    assert second["offset"] == 1 and second["epoch"] != first["epoch"]


def identify_session(request: Any) -> User | None:
    """The host's ``identify_user`` without its database: the user of a validly signed session cookie."""
    session = read_session(SESSION_SECRET.encode(), request.cookies.get(SESSION_COOKIE, ""))
    return None if session is None else {key: value for key, value in session.items() if key not in SESSION_CLAIMS}


SHOP_ACCESS = HostAccess(identify=identify_session, authorize=authorize_channel, requests_per_second=50)


async def signed_in_page(new_page: PageFactory, engine: Engine, user: User) -> Page:
    """A page whose browser holds a shop session cookie of ``user``."""
    page = await new_page()
    cookie = sign_session(SESSION_SECRET, user, ttl=300)
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": engine.url("/")}])
    await open_client(page, engine)
    return page


async def test_private_channels_are_signed_through_the_auth_url_with_the_shop_session(
    new_page: PageFactory, engines: Engines
) -> None:
    engine = await engines.start(access=SHOP_ACCESS)
    page = await signed_in_page(new_page, engine, {"id": "7", "role": "customer"})
    await follow(page, "private-customer.7")
    await follow(page, "private-customer.8")  # another customer's: the host says no
    await expect(shown(page, "notices")).to_have_count(2)
    notices = sorted(await shown(page, "notices").all_text_contents())
    assert notices == ["private-customer.7 subscribed", "private-customer.8 error 403 forbidden"]
    await broadcast(engine, "private-customer.7", "order.status_changed", {"status": "shipped"})
    await expect(shown(page, "events")).to_have_text(['private-customer.7 order.status_changed {"status":"shipped"}'])

    anonymous = await new_page()  # no session cookie: refused, and told why
    await open_client(anonymous, engine)
    await follow(anonymous, "private-customer.7")
    await expect(shown(anonymous, "notices")).to_have_text(["private-customer.7 error 401 unauthorized"])


async def test_presence_members_and_client_messages(new_page: PageFactory, engines: Engines) -> None:
    engine = await engines.start(access=SHOP_ACCESS)
    ada = await signed_in_page(new_page, engine, {"id": "a1", "role": "admin", "info": {"name": "Ada"}})
    await follow(ada, "presence-admin")
    await expect(shown(ada, "members")).to_have_text(["a1 Ada"])
    bob = await signed_in_page(new_page, engine, {"id": "a2", "role": "admin", "info": {"name": "Bob"}})
    await follow(bob, "presence-admin")
    await expect(shown(bob, "members")).to_have_text(["a1 Ada", "a2 Bob"])
    await expect(shown(ada, "members")).to_have_text(["a1 Ada", "a2 Bob"])  # member_added
    bob_member = {"user_id": "a2", "user_info": {"name": "Bob"}}
    assert await bob.evaluate("() => rt.channel('presence-admin').me") == bob_member

    await bob.evaluate("() => rt.channel('presence-admin').publish({text: 'hi'})")  # resolves on the ack
    await expect(shown(ada, "events")).to_have_text(['presence-admin message {"text":"hi"}'])
    assert (await received(ada))[0]["user_id"] == "a2"
    await expect(shown(bob, "events")).to_have_count(0)  # no echo unless asked for

    await bob.evaluate("() => { rt.disconnect(); }")
    await expect(shown(ada, "members")).to_have_text(["a1 Ada"])  # member_removed
    await expect(bob.locator("#state")).to_have_text("disconnected")


async def test_signin_and_a_presence_channel_known_by_the_servers_patterns_only(
    new_page: PageFactory, engines: Engines
) -> None:
    engine = await engines.start(access=SHOP_ACCESS)
    page = await new_page()
    cookie = sign_session(SESSION_SECRET, {"id": "a1", "role": "admin", "info": {"name": "Ada"}}, ttl=300)
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": engine.url("/")}])
    await open_client(page, engine, signin=True)
    await follow(page, "users:online")  # joined as the signed-in user, without auth
    await expect(shown(page, "notices")).to_have_text(["users:online subscribed"])
    assert await page.evaluate("() => rt.user") == {"user_id": "a1", "user_info": {"name": "Ada"}}
    await follow(page, "users:admins")  # presence by REALTIME_PRESENCE_PATTERNS: refused without auth, then signed
    await expect(shown(page, "notices")).to_have_text(["users:online subscribed", "users:admins subscribed"])
    await expect(shown(page, "members")).to_have_text(["a1 Ada"])
    refused = await page.evaluate('() => wire.filter(text => text.startsWith(\'in {"event":"error"\'))')
    assert len(refused) == 1 and '"channel":"users:admins"' in refused[0] and '"code":4009' in refused[0]


async def test_back_off_is_exponential_with_full_jitter_capped_and_starts_over_once_stable(
    page: Page, engines: Engines
) -> None:
    host = await engines.start()  # serves the page; the client connects to another port
    port = free_port()
    await page.goto(host.url(TEST_PAGE_PATH))
    await page.evaluate(
        """port => {
            Math.random = () => 0.999;  // the top of each jittered range
            window.delays = [];
            start({url: `http://127.0.0.1:${port}`, transports: ['websocket'],
                   initialDelay: 50, maxDelay: 200, stableAfter: 300});
            rt.on('unavailable', (detail) => delays.push(detail.retryIn));
        }""",
        port,
    )
    await page.wait_for_function("() => delays.length >= 5")
    assert (await page.evaluate("() => delays"))[:5] == [49, 99, 199, 199, 199]
    assert await page.evaluate("() => rt.state") in ("connecting", "unavailable")

    engine = await engines.start(port=port)
    await expect(page.locator("#state")).to_have_text("connected")
    await asyncio.sleep(0.6)  # connected longer than stableAfter: the next back-off starts over
    await page.evaluate("() => { delays.length = 0; }")
    await engines.stop(engine)
    await page.wait_for_function("() => delays.length >= 2")
    assert (await page.evaluate("() => delays"))[:2] == [49, 99]
    await page.evaluate("() => { Math.random = () => 0; }")
    await page.wait_for_function("() => delays.includes(0)")  # full jitter: down to no wait at all


async def test_a_silent_connection_is_pinged_and_dropped_when_nothing_answers(page: Page, engines: Engines) -> None:
    engine = await engines.start()
    swallowing: list[bool] = [False]

    def proxy(client: WebSocketRoute) -> None:
        """Between page and engine: once told, the page's pings never reach the engine."""
        server = client.connect_to_server()

        def forward(message: str | bytes) -> None:
            if not (swallowing[0] and '"ping"' in str(message)):
                server.send(message)

        client.on_message(forward)

    await page.route_web_socket("**/socket", proxy)
    await open_client(page, engine, activityTimeout=200, pongTimeout=300, transports=["websocket"])
    await expect(page.locator("#state")).to_have_text("connected")
    # silence: the client asked, the engine answered
    await page.wait_for_function('() => wire.some(text => text.startsWith(\'in {"event":"pong"\'))')
    first = await page.evaluate("() => rt.connectionId")

    swallowing[0] = True
    started = time.monotonic()
    await page.wait_for_function("() => states.includes('unavailable')")
    assert time.monotonic() - started < 2
    swallowing[0] = False
    await page.wait_for_function(f"() => rt.state === 'connected' && rt.connectionId !== {first!r}")


async def test_the_server_saying_do_not_reconnect_is_obeyed(page: Page, engines: Engines) -> None:
    engine = await engines.start()
    await open_client(page, engine)
    await expect(page.locator("#state")).to_have_text("connected")
    connection_id = await page.evaluate("() => rt.connectionId")
    async with aiohttp.ClientSession() as session:
        url = engine.url(f"/api/v1/connections/{connection_id}/disconnect")
        async with session.post(url, headers=engine.api_headers) as response:
            assert response.status == 200, await response.text()
    await expect(page.locator("#state")).to_have_text("disconnected")  # 4009: not "unavailable"
    assert "unavailable" not in await page.evaluate("() => states")


# -- the HTTP fallback: WebSockets blocked ---------------------------------------------------------------


async def block_websockets(page: Page) -> None:
    """As a proxy that refuses the upgrade: every WebSocket of the page is closed before it connects."""

    def refuse(client: WebSocketRoute) -> None:
        asyncio.ensure_future(client.close(code=1011, reason="blocked"))

    await page.route_web_socket("**/socket", refuse)


async def test_with_websockets_blocked_it_falls_back_to_sse(new_page: PageFactory, engines: Engines) -> None:
    engine = await engines.start(access=SHOP_ACCESS)
    page = await new_page()
    cookie = sign_session(SESSION_SECRET, {"id": "7", "role": "customer"}, ttl=300)
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": engine.url("/")}])
    await block_websockets(page)
    await open_client(page, engine)
    await follow(page, "orders")
    await follow(page, "private-customer.7")  # signed through the auth URL for the stream's connection id
    await expect(page.locator("#transport")).to_have_text("sse")
    await expect(shown(page, "notices")).to_have_count(2)
    assert sorted(await shown(page, "notices").all_text_contents()) == [
        "orders subscribed",
        "private-customer.7 subscribed",
    ]
    # the stream's secret stays inside the client: not in its state, not in the frames it shows
    assert '"token"' not in await page.evaluate("() => JSON.stringify(rt) + wire.join()")
    assert await page.evaluate('() => wire.some(text => text.startsWith(\'in {"event":"connected"\'))')

    await broadcast(engine, "orders", "order.created", {"id": "1"})
    await broadcast(engine, "private-customer.7", "order.status_changed", {"status": "paid"})
    await page.evaluate("() => rt.channel('private-customer.7').publish({note: 'hi'}, {echo: true})")  # a control call
    await expect(shown(page, "events")).to_have_text(
        [
            'orders order.created {"id":"1"}',
            'private-customer.7 order.status_changed {"status":"paid"}',
            'private-customer.7 message {"note":"hi"}',
        ]
    )
    error = await page.evaluate("() => rt.channel('orders').publish(1).then(() => 'published', e => e.code)")
    assert error == "forbidden"  # clients may not publish on a public channel: refused, and said why


async def test_over_sse_it_signs_in_and_pings_by_control_calls(new_page: PageFactory, engines: Engines) -> None:
    engine = await engines.start(access=SHOP_ACCESS)
    page = await new_page()
    cookie = sign_session(SESSION_SECRET, {"id": "a1", "role": "admin", "info": {"name": "Ada"}}, ttl=300)
    await page.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": engine.url("/")}])
    await block_websockets(page)
    await open_client(page, engine, signin=True)
    await follow(page, "users:online")  # joined as the signed-in user: the sign-in went first, as a control call
    await expect(page.locator("#transport")).to_have_text("sse")
    await expect(shown(page, "notices")).to_have_text(["users:online subscribed"])
    await expect(shown(page, "members")).to_have_text(["a1 Ada"])
    assert await page.evaluate("() => rt.user") == {"user_id": "a1", "user_info": {"name": "Ada"}}
    round_trip = await page.evaluate("() => rt.ping()")
    assert isinstance(round_trip, int | float) and round_trip >= 0
    status, answer = await engine.api("POST", "/api/v1/users/a1/disconnect")  # the stream belongs to its user
    assert (status, answer["disconnected"]) == (200, 1)
    await expect(page.locator("#state")).to_have_text("disconnected")


async def test_on_the_fallback_it_moves_back_to_websockets_once_they_connect_losing_nothing(
    new_page: PageFactory, engines: Engines
) -> None:
    engine = await engines.start()
    page = await new_page()
    tries = {"blocked": 0, "through": 0}
    gate_open = False

    def gate(client: WebSocketRoute) -> None:  # a proxy that lets one WebSocket through once opened
        if gate_open and not tries["through"]:
            tries["through"] += 1
            client.connect_to_server()
        else:
            tries["blocked"] += 1
            asyncio.ensure_future(client.close(code=1011, reason="blocked"))

    await page.route_web_socket("**/socket", gate)
    # connectTimeout 8 s: the stream outlives the move by that long, which the test sees
    await open_client(page, engine, upgradeAfter=200, connectTimeout=8000)
    await follow(page, "orders")
    await expect(page.locator("#transport")).to_have_text("sse")
    await broadcast(engine, "orders", "n", 1)
    await expect(shown(page, "events")).to_have_text(["orders n 1"])
    # the two attempts before the fallback, then a first try of the upgrade
    await eventually(lambda: tries["blocked"] >= 3, timeout=10, message="no try of the upgrade")

    published, moved_at = [1], 0
    async with asyncio.timeout(20):  # publications all through the move: before, during, after
        while not moved_at or published[-1] < moved_at + 10:
            n = published[-1] + 1
            await broadcast(engine, "orders", "n", n)
            published.append(n)
            gate_open = gate_open or n >= 6
            if not moved_at and await page.evaluate("() => rt.transport") == "websocket":
                moved_at = n
            await asyncio.sleep(0.02)
    assert moved_at > 6 and tries["through"] == 1
    await expect(shown(page, "events")).to_have_count(len(published))
    assert [event["data"] for event in await received(page)] == published, "each once, in order"
    assert await page.evaluate("() => states.slice(-2)") == ["connecting", "connected"]

    assert len(engine.node.connections) == 2, "the stream stays until the socket has had time to join"
    await page.evaluate("() => { rt.disconnect(); }")  # ... unless the page disconnects: both go at once
    await eventually(lambda: not engine.node.connections, timeout=2, message="disconnect() left a connection open")


async def test_a_websocket_blocked_again_before_it_is_stable_falls_back_again(
    new_page: PageFactory, engines: Engines
) -> None:
    engine = await engines.start()
    page = await new_page()
    through: list[WebSocketRoute] = []
    gate_open = False

    def gate(client: WebSocketRoute) -> None:
        if gate_open:
            through.append(client)
            client.connect_to_server()
        else:
            asyncio.ensure_future(client.close(code=1011, reason="blocked"))

    await page.route_web_socket("**/socket", gate)
    await open_client(page, engine, upgradeAfter=200, stableAfter=10_000)
    await follow(page, "orders")
    await expect(page.locator("#transport")).to_have_text("sse")
    gate_open = True
    await expect(page.locator("#transport")).to_have_text("websocket")
    gate_open = False
    await through[0].close(code=1011, reason="cut")  # the proxy cuts it and blocks WebSockets again
    await expect(page.locator("#transport")).to_have_text("sse", timeout=10_000)
    await broadcast(engine, "orders", "n", 1)
    await expect(shown(page, "events")).to_have_text(["orders n 1"])


async def test_a_cut_stream_resumes_with_last_event_id_once_and_in_order(
    page: Page, engines: Engines, redis_prefix: str
) -> None:
    node, engine, other = await two_nodes(engines, redis_prefix)  # other publishes while the first is down
    streams: list[dict[str, str]] = []
    subscribe_calls: list[Any] = []

    async def watch(request: Any) -> None:
        if request.url.endswith("/api/v1/stream"):
            streams.append(await request.all_headers())
        elif request.url.endswith("/subscribe"):
            subscribe_calls.append(request.post_data_json)

    page.on("request", watch)
    await block_websockets(page)
    await open_client(page, engine)
    await follow(page, "orders")
    await expect(shown(page, "notices")).to_have_text(["orders subscribed"])
    await expect(page.locator("#transport")).to_have_text("sse")
    await broadcast(engine, "orders", "n", 1)
    await expect(shown(page, "events")).to_have_count(1)

    port = await engines.stop(engine)  # the stream ends ("close" 1012); the browser's EventSource reconnects
    await page.wait_for_function("() => states.includes('unavailable')")
    for number in (2, 3, 4):
        await broadcast(other, "orders", "n", number)
    engine = await engines.start(node, port=port)

    notices = ["orders subscribed", "orders subscribed", "orders recovered true"]
    await expect(shown(page, "notices")).to_have_text(notices, timeout=10_000)  # the browser waits 3 s to reconnect
    await broadcast(engine, "orders", "n", 5)
    await expect(shown(page, "events")).to_have_text([f"orders n {number}" for number in range(1, 6)])
    assert [event["offset"] for event in await received(page)] == [1, 2, 3, 4, 5]
    assert len(streams) == 2 and "last-event-id" not in streams[0]
    assert streams[1]["last-event-id"].startswith("1~")  # sent by EventSource itself
    assert [call.get("since") for call in subscribe_calls] == [None, None]  # the id, not the client, resumed it
