"""Demo mode: ``serve --demo`` (which ``make run`` passes) runs a small pretend shop.

Only when ``serve`` is given ``--demo`` (``platform.overrides["demo"]``): production ``serve`` and
``websocket start`` never emit demo events and never serve ``/demo/session``. The pretend shop
emits realistic events through the host's hooks (``platform.emit``, as any shop plugin would) every
``REALTIME_DEMO_INTERVAL`` seconds: orders placed (some by the demo customer), orders moving from
``pending`` to ``delivered``, stock and price changes. ``GET /demo/session`` gives the browser the
demo customer's shop session (a ``shopologic_session`` cookie), so the storefront demo page can
follow that customer's orders on its private channel.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from shopologic.contracts import PLATFORM_KEY, PluginHost
from shopologic.defaults import SESSION_COOKIE, session_cookie
from shopologic.hookspecs import hookimpl
from websocket_realtime_engine.protocol.channels import channel_id
from websocket_realtime_engine.tasks import cancel_and_wait
from websocket_realtime_engine.web.pages import page

from .state import STATE

log = logging.getLogger("realtime.demo")
DEMO_CUSTOMER = {"id": "demo-customer", "role": "customer", "info": {"name": "Demo Customer"}}
NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}
SESSION_TTL = 8 * 3600  # seconds a demo session lasts
MAX_SHOWN_ORDERS = 10  # the demo customer's orders /demo/catalogue lists


@dataclass
class Product:
    id: str
    name: str
    price: Decimal
    stock: int

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "price": f"{self.price:.2f}", "currency": "EUR", "stock": self.stock}


def catalogue() -> list[Product]:
    return [
        Product("p-101", "Stoneware mug", Decimal("14.90"), 40),
        Product("p-102", "Linen tea towel", Decimal("9.50"), 65),
        Product("p-103", "Cast-iron teapot", Decimal("48.00"), 12),
        Product("p-104", "Oak serving board", Decimal("32.00"), 20),
        Product("p-105", "Loose-leaf sencha, 100 g", Decimal("7.80"), 120),
        Product("p-106", "Glass storage jar", Decimal("11.20"), 55),
    ]


@dataclass
class DemoShop:
    """The pretend shop's state and one step of its life at a time (:meth:`step`)."""

    platform: PluginHost
    rng: random.Random = field(default_factory=random.Random)
    products: list[Product] = field(default_factory=catalogue)
    open_orders: list[dict[str, Any]] = field(default_factory=list)
    customer_orders: dict[str, dict[str, Any]] = field(default_factory=dict)  # the demo customer's latest
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def state(self) -> dict[str, Any]:
        """The catalogue and the demo customer's recent orders, for a page to start from."""
        return {"products": [p.payload() for p in self.products], "orders": list(self.customer_orders.values())}

    async def step(self) -> str:
        """Emit one event (or two, for an order that takes stock); the name of what happened."""
        roll = self.rng.random()
        if self.open_orders and roll < 0.45:
            return await self._advance(self.open_orders[0])
        if roll < 0.75 or not self.open_orders:
            return await self._place_order()
        return await self._reprice()

    async def _place_order(self) -> str:
        number = next(self.numbers)
        mine = number % 2 == 1  # every other order is the demo customer's, for the tracker
        customer = DEMO_CUSTOMER["id"] if mine else f"customer-{self.rng.randint(1, 40)}"
        chosen = self.rng.sample(self.products, k=self.rng.randint(1, 3))
        items = [
            {"product_id": p.id, "name": p.name, "quantity": self.rng.randint(1, 3), "price": p.payload()["price"]}
            for p in chosen
        ]
        total = sum(Decimal(item["price"]) * item["quantity"] for item in items)
        now = datetime.now(UTC).isoformat()
        order: dict[str, Any] = {
            "id": f"demo-{number}",
            "number": f"SO-{number}",
            "customer_id": customer,
            "email": f"{customer}@example.com",
            "status": "pending",
            "total": f"{total:.2f}",
            "currency": "EUR",
            "items": items,
            "created_at": now,
            "updated_at": now,
        }
        async with self.platform.transaction():  # the order's events commit together
            await self.platform.emit("order.created", order=order)
            for item, product in zip(items, chosen, strict=True):
                previous = product.stock
                product.stock = max(0, product.stock - item["quantity"]) or 50  # restocked when sold out
                await self.platform.emit("product.stock_changed", product=product.payload(), previous_stock=previous)
        self.open_orders.append(order)
        if mine:
            self.customer_orders[str(order["id"])] = order
            while len(self.customer_orders) > MAX_SHOWN_ORDERS:
                del self.customer_orders[next(iter(self.customer_orders))]
        return f"order {order['number']} placed"

    async def _advance(self, order: dict[str, Any]) -> str:
        previous = order["status"]
        order["status"] = NEXT_STATUS[previous]
        order["updated_at"] = datetime.now(UTC).isoformat()
        await self.platform.emit("order.status_changed", order=order, previous_status=previous)
        if order["status"] == "delivered":
            self.open_orders.remove(order)
        return f"order {order['number']} {order['status']}"

    async def _reprice(self) -> str:
        product = self.rng.choice(self.products)
        previous = f"{product.price:.2f}"
        product.price = max(Decimal("1.00"), product.price * Decimal(self.rng.choice(("0.9", "0.95", "1.05", "1.1"))))
        product.price = product.price.quantize(Decimal("0.01"))
        await self.platform.emit("product.price_changed", product=product.payload(), previous_price=previous)
        return f"{product.name} now {product.price}"


DEMO_SHOP_KEY = web.AppKey("realtime.demo_shop", DemoShop)


def demo_mode(platform: PluginHost) -> bool:
    """``serve --demo`` only."""
    return bool(platform.overrides.get("demo"))


async def demo_session(request: web.Request) -> web.Response:
    """``GET /demo/session``: the demo customer's shop session, as a cookie (demo mode only)."""
    platform = request.config_dict[PLATFORM_KEY]
    cookie = await session_cookie(platform, DEMO_CUSTOMER, ttl=SESSION_TTL)
    user = {key: DEMO_CUSTOMER[key] for key in ("id", "role", "info")}
    response = web.json_response({"user": {**user, "channel_id": channel_id(str(user["id"]))}})
    response.set_cookie(SESSION_COOKIE, cookie, max_age=SESSION_TTL, httponly=True, samesite="Lax", path="/")
    return response


async def demo_catalogue(request: web.Request) -> web.Response:
    """``GET /demo/catalogue``: the pretend shop's products and the demo customer's recent orders."""
    shop = request.app[DEMO_SHOP_KEY]
    return web.json_response(shop.state())


@hookimpl
def register_routes(app: web.Application, platform: PluginHost) -> None:
    """``/demo/storefront``, ``/demo/session`` and ``/demo/catalogue``, in demo mode only."""
    if demo_mode(platform):
        app[DEMO_SHOP_KEY] = DemoShop(platform)
        app.router.add_get("/demo/storefront", page("storefront.html"))
        app.router.add_get("/demo/session", demo_session)
        app.router.add_get("/demo/catalogue", demo_catalogue)


@hookimpl
def background_services(app: web.Application, platform: PluginHost) -> list[Any] | None:
    """The pretend shop, in demo mode only: one step every ``REALTIME_DEMO_INTERVAL`` seconds."""
    if not demo_mode(platform):
        return None
    interval = STATE.settings().demo_interval

    async def pretend_shop(app: web.Application) -> AsyncIterator[None]:
        shop = app[DEMO_SHOP_KEY]

        async def run() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    log.debug("demo: %s", await shop.step())
                except Exception:  # noqa: BLE001 - a failed step (the database away) is retried next time
                    log.exception("demo: a step failed")

        task = asyncio.create_task(run(), name="realtime-demo")
        yield
        await cancel_and_wait(task)

    return [pretend_shop]


@hookimpl(trylast=True)  # under the engine's own lines
def server_banner(url: str, platform: PluginHost) -> list[str] | None:
    """Say that the demo runs, and where its session is."""
    if not demo_mode(platform):
        return None
    return [
        f"  demo       {url}/demo/storefront (a pretend shop emits events every {STATE.settings().demo_interval:g} s)"
    ]
