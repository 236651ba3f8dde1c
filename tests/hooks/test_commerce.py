"""Shop events through the host's hooks reach storefront and admin subscribers, and no personal data goes public."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer

from shopologic.platform import Platform, await_all
from tests.conftest import engine_hook_module, served
from websocket_realtime_engine.protocol import auth
from websocket_realtime_engine.protocol.channels import channel_id, check_name
from websocket_realtime_engine.web.app import NODE_KEY

commerce = engine_hook_module("hooks/commerce.py")
order_broadcasts, public_order = commerce.order_broadcasts, commerce.public_order

ORDER = {
    "id": 1001,
    "number": "SO-1001",
    "customer_id": 7,
    "email": "cy@example.com",
    "status": "pending",
    "total": "59.90",
    "currency": "EUR",
    "items": [{"product_id": 5, "name": "Mug", "quantity": 2, "price": "29.95"}],
    "shipping_address": {"name": "Cy", "line1": "1 Road", "city": "Town", "postcode": "12345", "country": "DE"},
}


def test_the_public_summary_has_no_personal_data() -> None:
    summary = public_order({**ORDER, "customer_id": "7", "total": "59.90"})
    assert summary == {
        "id": 1001,
        "number": "SO-1001",
        "status": "pending",
        "total": "59.90",
        "currency": "EUR",
        "item_count": 2,
    }
    assert not {"customer_id", "email", "shipping_address", "items"} & set(summary)


def test_order_events_go_to_the_three_channels() -> None:
    order = {**ORDER, "id": "1001", "customer_id": "7"}
    public, admin, customer = order_broadcasts("order.created", order)
    assert public[0] == ["orders"] and "email" not in orjson.dumps(public[2]).decode()
    assert admin[0] == ["private-admin.orders"] and admin[2]["order"]["email"] == "cy@example.com"
    assert customer[0] == ["private-customer.7"] and customer[2] == admin[2]
    anonymous = order_broadcasts("order.created", {**order, "customer_id": None})
    assert [channels for channels, _, _ in anonymous] == [["orders"], ["private-admin.orders"]]
    odd = order_broadcasts("order.created", {**order, "customer_id": "c 7"})  # a space: hashed
    digest = hashlib.sha256(b"c 7").hexdigest()[:40]
    assert [channels for channels, _, _ in odd] == [
        ["orders"],
        ["private-admin.orders"],
        [f"private-customer.={digest}"],
    ]


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ("p-1", "p-1"),
        ("a b", "=" + hashlib.sha256(b"a b").hexdigest()[:40]),
        ("x" * 64, "x" * 64),
        ("x" * 65, "=" + hashlib.sha256(b"x" * 65).hexdigest()[:40]),
        ("a=b", "=" + hashlib.sha256(b"a=b").hexdigest()[:40]),  # "=" is the hashed form's mark
        ("Küche/7", "=" + hashlib.sha256("Küche/7".encode()).hexdigest()[:40]),
    ],
)
def test_every_id_names_a_valid_channel(given: str, named: str) -> None:
    assert channel_id(given) == named
    assert check_name(f"private-customer.{channel_id(given)}")


@pytest.fixture
async def platform_server(scoped_env: dict[str, str]) -> AsyncIterator[tuple[Platform, TestServer]]:
    async with served() as both:
        yield both


async def _subscriber(session: aiohttp.ClientSession, server: TestServer, channel: str, private: bool) -> Any:
    ws = await session.ws_connect(server.make_url("/socket"))
    connection_id = orjson.loads((await ws.receive()).data)["data"]["connection_id"]
    frame: dict[str, Any] = {"event": "subscribe", "channel": channel}
    if private:
        settings = server.app[NODE_KEY].settings
        frame["auth"] = auth.make_auth(
            settings.app_key, settings.app_secret, auth.channel_string(connection_id, channel)
        )
    await ws.send_str(orjson.dumps(frame).decode())
    assert orjson.loads((await ws.receive(timeout=3)).data)["event"] == "subscribed"
    return ws


async def test_a_storefront_sees_its_order_move_from_pending_to_shipped(
    platform_server: tuple[Platform, TestServer],
) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        storefront = await _subscriber(session, server, "private-customer.7", private=True)
        other_customer = await _subscriber(session, server, "private-customer.8", private=True)
        dashboard = await _subscriber(session, server, "orders", private=False)
        await await_all(platform.hook.order_created(order=ORDER))
        for status, previous in (("paid", "pending"), ("shipped", "paid")):
            await await_all(
                platform.hook.order_status_changed(order={**ORDER, "status": status}, previous_status=previous)
            )
        seen = [orjson.loads((await storefront.receive(timeout=3)).data) for _ in range(3)]
        assert [(f["event"], f["data"]["order"]["status"]) for f in seen] == [
            ("order.created", "pending"),
            ("order.status_changed", "paid"),
            ("order.status_changed", "shipped"),
        ]
        assert seen[2]["data"]["previous_status"] == "paid" and seen[2]["data"]["order"]["email"] == "cy@example.com"
        public = [orjson.loads((await dashboard.receive(timeout=3)).data) for _ in range(3)]
        assert public[2]["data"] == {
            "order": {
                "id": "1001",
                "number": "SO-1001",
                "status": "shipped",
                "total": "59.90",
                "currency": "EUR",
                "item_count": 2,
            },
            "previous_status": "paid",
        }
        with pytest.raises(TimeoutError):
            await other_customer.receive(timeout=0.3)


async def test_a_product_whose_id_is_no_channel_name_reaches_both_channels_in_process(
    platform_server: tuple[Platform, TestServer],
) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        page = await _subscriber(session, server, f"product.{channel_id('mug 7/blue')}", private=False)
        listing = await _subscriber(session, server, "products", private=False)
        product = {"id": "mug 7/blue", "name": "Mug", "price": "29.95", "stock": 3}
        await await_all(platform.hook.product_stock_changed(product=product, previous_stock=4))
        for ws in (page, listing):
            frame = orjson.loads((await ws.receive(timeout=3)).data)
            assert frame["event"] == "product.stock_changed" and frame["data"]["product"]["id"] == "mug 7/blue"


async def test_product_events_reach_product_pages(platform_server: tuple[Platform, TestServer]) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        page = await _subscriber(session, server, "product.5", private=False)
        listing = await _subscriber(session, server, "products", private=False)
        product = {"id": 5, "name": "Mug", "price": "29.95", "stock": 3}
        await await_all(platform.hook.product_stock_changed(product=product, previous_stock=4))
        await await_all(
            platform.hook.product_price_changed(product={**product, "price": "24.95"}, previous_price="29.95")
        )
        for ws in (page, listing):
            stock = orjson.loads((await ws.receive(timeout=3)).data)
            price = orjson.loads((await ws.receive(timeout=3)).data)
            assert stock["event"] == "product.stock_changed" and stock["data"]["product"]["stock"] == 3
            assert stock["data"]["previous_stock"] == 4
            assert price["event"] == "product.price_changed" and price["data"]["product"]["price"] == "24.95"
            assert price["data"]["previous_price"] == "29.95"
