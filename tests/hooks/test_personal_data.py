"""No personal data reaches a public channel, through any field of any shop event.

Every order event is emitted through the real hooks with personal data in every field that can
hold it (customer id, email, address, item names, a cancellation reason, the names of changed
fields, and fields the schema does not know); real subscribers of the public channels must see
none of it, while the admins' private channel gets all of it (so the test sees the data flow).
Product events carry the catalogue (public by nature) and are checked not to carry an order's data.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from shopologic.platform import Platform
from tests.hooks.test_commerce import _subscriber
from tests.hooks.test_outbox import platform_server  # noqa: F401 - the fixture

MARKERS = {
    "customer_id": "cust-PII-1",
    "email": "ada.pii@example.com",
    "item_name": "Engraved for Ada PII",
    "item_product": "prod-PII-2",
    "address_name": "Ada PII Lovelace",
    "line1": "12 PII Street",
    "line2": "Flat PII-3",
    "city": "PIIcity",
    "postcode": "PII-45",
    "reason": "call +49 170 555 PII or ada.reason.pii@example.com",
    "changed": "shipping_address_pii",
    "unknown": "phone +44 PII 7700",
}


def order(status: str) -> dict[str, Any]:
    return {
        "id": "o-1",
        "number": "SO-1",
        "customer_id": MARKERS["customer_id"],
        "email": MARKERS["email"],
        "status": status,
        "total": "10.00",
        "currency": "EUR",
        "items": [
            {"product_id": MARKERS["item_product"], "name": MARKERS["item_name"], "quantity": 1, "price": "10.00"}
        ],
        "shipping_address": {
            "name": MARKERS["address_name"],
            "line1": MARKERS["line1"],
            "line2": MARKERS["line2"],
            "city": MARKERS["city"],
            "postcode": MARKERS["postcode"],
            "country": "DE",
        },
        "phone": MARKERS["unknown"],  # not in the schema: dropped before any hook runs
        "created_at": "2026-11-30T10:00:00+00:00",
    }


async def test_no_personal_data_reaches_a_public_channel(
    platform_server: tuple[Platform, TestServer],  # noqa: F811
) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        public = [
            await _subscriber(session, server, name, private=False) for name in ("orders", "products", "product.p1")
        ]
        admin = await _subscriber(session, server, "private-admin.orders", private=True)
        await platform.emit("order.created", order=order("pending"))
        await platform.emit("order.updated", order=order("pending"), changes=[MARKERS["changed"], "email"])
        await platform.emit("order.status_changed", order=order("paid"), previous_status="pending")
        await platform.emit("order.cancelled", order=order("cancelled"), reason=MARKERS["reason"])
        product = {"id": "p1", "name": "Mug", "price": "9.90", "stock": 3}
        await platform.emit("product.created", product=product)
        await platform.emit("product.updated", product=product, changes=["name"])
        await platform.emit("product.stock_changed", product=product, previous_stock=4)
        await platform.emit("product.price_changed", product=product, previous_price="10.90")

        admin_text = "".join([(await admin.receive(timeout=3)).data for _ in range(4)])
        seen = {name: [] for name in ("orders", "products", "product.p1")}
        for name, ws, count in zip(seen, public, (4, 4, 4), strict=True):
            seen[name] = [(await ws.receive(timeout=3)).data for _ in range(count)]
        for ws in public:
            with pytest.raises(TimeoutError):  # and nothing more
                await ws.receive(timeout=0.2)

    public_text = "".join(text for frames in seen.values() for text in frames)
    for field, marker in MARKERS.items():
        assert marker not in public_text, f"{field} reached a public channel"
        if field != "unknown":
            assert marker in admin_text, f"{field} did not reach the admins (the test would prove nothing)"
    assert MARKERS["unknown"] not in admin_text, "a field the schema does not know goes nowhere"
    assert '"changes"' not in "".join(seen["orders"]) and '"reason"' not in "".join(seen["orders"])
    assert '"previous_status":"pending"' in "".join(seen["orders"]), "the documented public extras still go"
