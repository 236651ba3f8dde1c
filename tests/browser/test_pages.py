"""The engine's pages in a real browser, against a real ``serve --demo`` (the CLI, in its own process).

The pretend shop is slowed to one step an hour so that only the tests' own events move the pages;
shop events are emitted as another process would (``bootstrap_plugins.py emit``), so they go through
the outbox. Each assertion reads the DOM.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from tests.browser.conftest import PageFactory
from tests.conftest import ROOT, TEST_PLUGINS, free_port
from tests.host.test_cli import ServerProcess
from websocket_realtime_engine.protocol import auth

pytestmark = pytest.mark.asyncio(loop_scope="module")
PLUGIN = "websocket-realtime-engine"


class Shop:
    """A ``serve --demo`` process and how to talk to it as the shop's other processes do."""

    def __init__(self, folder: Path) -> None:
        var = folder / "var"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(folder),
            "SHOPOLOGIC_VAR_DIR": str(var),
            "SHOPOLOGIC_DATABASE_URL": f"sqlite:///{var / 'platform.db'}",
            "SHOPOLOGIC_PLUGIN_PATH": str(TEST_PLUGINS),
            "REALTIME_CONFIG_FILE": str(var / "realtime.toml"),
            "REALTIME_LOG_LEVEL": "warning",
            "REALTIME_DEMO_INTERVAL": "3600",
            "REALTIME_OUTBOX_POLL_INTERVAL": "0.1",
            "REALTIME_ADMIN_STATS_INTERVAL": "0.3",
            "REALTIME_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        self.folder = folder
        self.server: ServerProcess | None = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(ROOT / "bootstrap_plugins.py"), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def start(self) -> None:
        activated = self.cli("plugin", "activate", PLUGIN)
        assert activated.returncode == 0, activated.stderr
        port = free_port()
        self.server = ServerProcess(["serve", "--demo", "--port", str(port)], self.env, port, self.folder)
        self.server.wait_until_accepting()

    def url(self, path: str) -> str:
        assert self.server is not None
        return self.server.url(path)

    async def emit(self, event: str, payload: dict[str, object]) -> None:
        result = await asyncio.to_thread(self.cli, "emit", event, json.dumps(payload))
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    running = Shop(tmp_path_factory.mktemp("shop"))
    running.start()
    yield running
    assert running.server is not None
    running.server.stop()


def demo_order(status: str) -> dict[str, object]:
    return {
        "id": "track-1",
        "number": "SO-9001",
        "customer_id": "demo-customer",
        "status": status,
        "total": "42.00",
        "currency": "EUR",
    }


@pytest_asyncio.fixture(loop_scope="module")
async def storefront(shop: Shop, new_page: PageFactory) -> Page:
    page = await new_page()
    await page.goto(shop.url("/demo/storefront"))
    await expect(page.locator("#connection")).to_have_text("connected")
    await expect(page.locator("#products .card")).to_have_count(6)  # the pretend shop's catalogue
    return page


async def test_the_storefront_tracker_follows_an_order_to_shipped(shop: Shop, storefront: Page) -> None:
    await shop.emit("order.created", {"order": demo_order("pending")})
    row = storefront.locator('#orders [data-order-id="track-1"]')
    await expect(row.locator(".status")).to_have_text("pending")
    for status, previous in (("paid", "pending"), ("shipped", "paid")):
        await shop.emit("order.status_changed", {"order": demo_order(status), "previous_status": previous})
    await expect(row.locator(".status")).to_have_text("shipped")
    await expect(row.locator(".steps li.done")).to_have_count(3)


async def test_the_storefront_shows_price_and_stock_changes_live(shop: Shop, storefront: Page) -> None:
    product = {"id": "p-103", "name": "Cast-iron teapot", "price": "39.00", "stock": 4}
    await shop.emit("product.price_changed", {"product": product, "previous_price": "48.00"})
    card = storefront.locator('#products [data-product-id="p-103"]')
    await expect(card.locator(".price")).to_have_text("39.00")
    await expect(card.locator(".stock")).to_have_text("4 in stock")


async def test_another_customers_order_never_reaches_the_storefront(shop: Shop, storefront: Page) -> None:
    other = {**demo_order("pending"), "id": "someone-else", "customer_id": "customer-77"}
    await shop.emit("order.created", {"order": other})
    await shop.emit("order.created", {"order": {**demo_order("pending"), "id": "track-2"}})
    await expect(storefront.locator('#orders [data-order-id="track-2"]')).to_have_count(1)
    await expect(storefront.locator('#orders [data-order-id="someone-else"]')).to_have_count(0)


async def test_the_storefront_works_on_a_phone_sized_screen(shop: Shop, storefront: Page) -> None:
    await storefront.set_viewport_size({"width": 390, "height": 844})
    width = await storefront.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "nothing sticks out sideways"
    await expect(storefront.locator("#products .card").first).to_be_visible()


ADMIN_TOKEN = "admin-token-for-the-browser-tests"


async def signed_in(shop: Shop, new_page: PageFactory, path: str) -> Page:
    """A page of an admin: sent to the login by ``path``, signed in with the token, back at ``path``."""
    page = await new_page()
    await page.goto(shop.url(path))
    await expect(page).to_have_url(shop.url(f"/admin/login?next={path.replace('/', '%2F')}"))
    await page.fill("#token", ADMIN_TOKEN)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(shop.url(path))
    await expect(page.locator("#connection")).to_have_text("connected")
    return page


async def test_a_wrong_admin_token_is_refused_and_the_dashboard_stays_closed(shop: Shop, page: Page) -> None:
    await page.goto(shop.url("/admin"))
    await page.fill("#token", ADMIN_TOKEN + "x")
    await page.click("button[type=submit]")
    await expect(page.locator("[role=alert]")).to_be_visible()
    await page.goto(shop.url("/admin"))
    assert "/admin/login" in page.url


async def test_the_dashboard_counts_connections_live_and_charts_them(shop: Shop, new_page: PageFactory) -> None:
    dashboard = await signed_in(shop, new_page, "/admin")
    figure = dashboard.locator("#fig-connections .value")
    await expect(figure).not_to_have_text("–")
    before = int(await figure.inner_text())  # the dashboard's own connection counts too
    async with aiohttp.ClientSession() as session:
        clients = [await session.ws_connect(shop.url("/socket")) for _ in range(3)]
        await expect(figure).to_have_text(str(before + 3))
        points = int(await dashboard.locator("#chart-connections").get_attribute("data-points") or 0)
        await clients[0].close()
        await expect(figure).to_have_text(str(before + 2))
        later = dashboard.locator("#chart-connections")
        await expect(later).not_to_have_attribute("data-points", str(points))
        assert int(await later.get_attribute("data-points") or 0) > points, "the chart gained a point"
        await expect(dashboard.locator("#chart-connections canvas")).to_have_count(1)
        for client in clients[1:]:
            await client.close()


async def test_the_dashboard_shows_the_shops_orders_live(shop: Shop, new_page: PageFactory) -> None:
    dashboard = await signed_in(shop, new_page, "/admin")
    await shop.emit("order.created", {"order": {**demo_order("pending"), "id": "feed-1", "number": "SO-7007"}})
    await expect(dashboard.locator('#orders [data-order-id="feed-1"]')).to_contain_text("SO-7007")


async def test_the_debug_console_publishes_what_a_second_client_receives(shop: Shop, new_page: PageFactory) -> None:
    console = await signed_in(shop, new_page, "/debug")
    key, secret = credentials(shop)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(shop.url("/socket"))
        connection_id = json.loads((await ws.receive(timeout=5)).data)["data"]["connection_id"]
        signature = auth.make_auth(key, secret, auth.channel_string(connection_id, "private-debug"))
        await ws.send_json({"event": "subscribe", "channel": "private-debug", "auth": signature})
        assert json.loads((await ws.receive(timeout=5)).data)["event"] == "subscribed"

        await console.fill("#subscribe-channel", "private-debug")
        await console.click("#subscribe-button")
        await expect(console.locator('#channels [data-channel="private-debug"]')).to_have_text(
            "private-debug: subscribed"
        )
        await console.fill("#publish-channel", "private-debug")
        await console.fill("#publish-data", '{"from": "the console"}')
        await console.click("#publish-button")
        frame = json.loads((await ws.receive(timeout=5)).data)
        assert frame["event"] == "message" and frame["data"] == {"from": "the console"}
        await ws.close()
    frames = console.locator("#frames li")
    await expect(frames.filter(has_text='"event":"subscribe"').first).to_be_visible()  # out
    await expect(frames.filter(has_text='"event":"subscribed"').first).to_be_visible()  # in
    log = console.locator("#engine-log li")
    await expect(log.filter(has_text="subscribed").filter(has_text="private-debug").first).to_be_visible()


def credentials(shop: Shop) -> tuple[str, str]:
    printed = dict(line.split("=", 1) for line in shop.cli("websocket", "credentials").stdout.splitlines())
    return printed["REALTIME_APP_KEY"], printed["REALTIME_APP_SECRET"]


@pytest.mark.parametrize("path", ["/admin", "/debug"])
async def test_the_admin_pages_work_on_a_phone_sized_screen(shop: Shop, browser: Browser, path: str) -> None:
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = await context.new_page()
        await page.goto(shop.url(path))
        await page.fill("#token", ADMIN_TOKEN)
        await page.click("button[type=submit]")
        await expect(page.locator("#connection")).to_have_text("connected")
        if path == "/admin":
            await expect(page.locator("#fig-connections .value")).not_to_have_text("–")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} sticks out sideways ({width} px)"
    finally:
        await context.close()
