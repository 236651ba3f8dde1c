"""Demo mode: ``serve --demo`` runs a pretend shop whose events go through the host's hooks; without
``--demo`` (production ``serve``, ``websocket start``) there is no demo event and no ``/demo/session``."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from shopologic.config import HostSettings
from shopologic.defaults import SESSION_COOKIE, read_session
from shopologic.platform import Platform
from tests.conftest import engine_hook_module
from tests.host.test_cli import ServerFactory, ServerProcess, connect, start_server  # noqa: F401 - the fixture
from websocket_realtime_engine import PLUGIN_NAME
from websocket_realtime_engine.db.models import OutboxEntry

demo = engine_hook_module("hooks/demo.py")


@pytest.fixture
async def platform(scoped_env: dict[str, str]) -> AsyncIterator[Platform]:
    loaded = Platform(HostSettings.from_env())
    await loaded.load()
    await loaded.activate(PLUGIN_NAME)
    yield loaded
    await loaded.close()


async def test_the_pretend_shop_emits_valid_events_and_walks_orders_to_delivered(platform: Platform) -> None:
    shop = demo.DemoShop(platform, rng=random.Random(7))
    for _ in range(60):
        await shop.step()  # every payload passes the host's validation, or this raises
    async with platform.engine.connect() as conn:
        rows = (await conn.execute(select(OutboxEntry.body).order_by(OutboxEntry.id))).scalars().all()
    events = [json.loads(body)[0] for body in rows]  # each row's first broadcast: (channels, event, data)
    names = {event for _, event, _ in events}
    assert {"order.created", "order.status_changed", "product.stock_changed", "product.price_changed"} <= names
    statuses: dict[str, list[str]] = {}
    for _, event, data in events:
        if event.startswith("order."):
            statuses.setdefault(data["order"]["id"], []).append(data["order"]["status"])
    walked = [seen for seen in statuses.values() if seen[-1] == "delivered"]
    assert walked and all(seen == ["pending", "paid", "shipped", "delivered"] for seen in walked)
    stocks = [data["product"]["stock"] for _, event, data in events if event == "product.stock_changed"]
    assert all(stock >= 0 for stock in stocks)
    mine = [row for row in rows if '"customer_id":"demo-customer"' in row]
    assert mine, "the demo customer places orders too, for the storefront's tracker"


def serve(start: ServerFactory, platform_env: dict[str, str], cli: Any, *flags: str) -> ServerProcess:
    """``serve FLAGS`` with the engine active and the pretend shop stepping every 0.1 s (when it runs)."""
    platform_env["REALTIME_DEMO_INTERVAL"] = "0.1"
    assert cli("plugin", "activate", PLUGIN_NAME).returncode == 0
    return start("serve", *flags)


async def test_serve_demo_emits_events_and_gives_the_demo_session(
    start_server: ServerFactory,  # noqa: F811
    platform_env: dict[str, str],
    cli: Any,
) -> None:
    server = serve(start_server, platform_env, cli, "--demo")
    async with aiohttp.ClientSession() as session:
        client = await connect(session, server)
        await client.subscribe("products")
        frame = await client.expect("product.stock_changed", timeout=10)  # an order took stock
        assert frame["data"]["product"]["id"].startswith("p-")
        async with session.get(server.url("/demo/session")) as response:
            assert response.status == 200
            body = await response.json()
            cookie = response.cookies[SESSION_COOKIE]
    assert body["user"]["id"] == "demo-customer" and cookie["httponly"]
    secret = HostSettings.from_env(platform_env).secret_key.encode()
    assert read_session(secret, cookie.value)["id"] == "demo-customer"
    printed = server.stderr + server.stdout_path.read_text()
    assert "/demo/storefront (a pretend shop emits events every 0.1 s)" in printed


async def test_serve_without_demo_emits_nothing_and_has_no_demo_session(
    start_server: ServerFactory,  # noqa: F811
    platform_env: dict[str, str],
    cli: Any,
) -> None:
    server = serve(start_server, platform_env, cli)
    async with aiohttp.ClientSession() as session:
        client = await connect(session, server)
        await client.subscribe("products")
        await client.subscribe("orders")
        await client.nothing(1.0)
        async with session.get(server.url("/demo/session")) as response:
            assert response.status == 404
