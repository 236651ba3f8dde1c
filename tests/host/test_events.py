"""Shop events are validated before any implementation sees them, whoever calls the hook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from shopologic.config import HostSettings
from shopologic.events import InvalidEventError
from shopologic.hookspecs import hookimpl
from shopologic.platform import Platform


class EventRecorder:
    """A plugin, registered by the tests, that keeps what each shop hook received."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def order_created(self, order: dict[str, Any]) -> None:
        self.calls.append(("order_created", {"order": order}))

    @hookimpl
    def order_status_changed(self, order: dict[str, Any], previous_status: str) -> None:
        self.calls.append(("order_status_changed", {"order": order, "previous_status": previous_status}))

    @hookimpl
    def order_updated(self, order: dict[str, Any], changes: list[str]) -> None:
        self.calls.append(("order_updated", {"order": order, "changes": changes}))

    @hookimpl
    def product_stock_changed(self, product: dict[str, Any], previous_stock: int) -> None:
        self.calls.append(("product_stock_changed", {"product": product, "previous_stock": previous_stock}))

    @hookimpl
    def product_price_changed(self, product: dict[str, Any], previous_price: str) -> None:
        self.calls.append(("product_price_changed", {"product": product, "previous_price": previous_price}))


@pytest.fixture
async def platform(scoped_env: dict[str, str]) -> AsyncIterator[Platform]:
    """A loaded platform on the test's SQLite file, no plugin active."""
    platform = Platform(HostSettings.from_env())
    await platform.load()
    try:
        yield platform
    finally:
        await platform.close()


@pytest.fixture
def recorder(platform: Platform) -> Any:
    plugin = EventRecorder()
    platform.pm.register(plugin, name="tests.event-recorder")
    try:
        yield plugin
    finally:
        platform.pm.unregister(plugin)


def order(**changes: Any) -> dict[str, Any]:
    """A valid order, as another plugin would emit it, with ``changes`` applied (``None`` removes)."""
    base: dict[str, Any] = {
        "id": "1001",
        "number": "SO-1001",
        "status": "paid",
        "total": "59.80",
        "currency": "EUR",
        "customer_id": "c-7",
        "email": "ann@example.com",
        "items": [item()],
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def item(**changes: Any) -> dict[str, Any]:
    return {"product_id": "p-1", "name": "Mug", "quantity": 2, "price": "29.90", **changes}


def product(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "p-1", "sku": "MUG-1", "name": "Mug", "price": "29.90", "stock": 5}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


@pytest.mark.parametrize(
    ("hook_name", "kwargs", "path"),
    [
        ("order_created", {"order": order(id=None)}, ["order", "id"]),
        ("order_created", {"order": order(id="")}, ["order", "id"]),
        ("order_created", {"order": order(id=True)}, ["order", "id"]),
        ("order_created", {"order": order(status="lost")}, ["order", "status"]),
        ("order_created", {"order": order(status=None)}, ["order", "status"]),
        ("order_created", {"order": order(total="-1")}, ["order", "total"]),
        ("order_created", {"order": order(total="twelve")}, ["order", "total"]),
        ("order_created", {"order": order(total="NaN")}, ["order", "total"]),
        ("order_created", {"order": order(email="not-an-email")}, ["order", "email"]),
        ("order_created", {"order": order(currency="euro")}, ["order", "currency"]),
        ("order_created", {"order": order(created_at="yesterday")}, ["order", "created_at"]),
        ("order_created", {"order": order(items=[item(quantity=0)])}, ["order", "items", 0, "quantity"]),
        ("order_created", {"order": order(items=[item(quantity="2")])}, ["order", "items", 0, "quantity"]),
        ("order_created", {"order": order(items=[item(), item(price="-1")])}, ["order", "items", 1, "price"]),
        ("order_created", {"order": "order 1001"}, ["order", "_schema"]),
        ("order_status_changed", {"order": order(), "previous_status": "teleported"}, ["previous_status"]),
        ("order_updated", {"order": order(), "changes": "status"}, ["changes"]),
        ("product_stock_changed", {"product": product(stock=-1), "previous_stock": 5}, ["product", "stock"]),
        ("product_stock_changed", {"product": product(), "previous_stock": "5"}, ["previous_stock"]),
        ("product_stock_changed", {"product": product(name=None), "previous_stock": 5}, ["product", "name"]),
        ("product_price_changed", {"product": product(price=None), "previous_price": "1"}, ["product", "price"]),
        ("product_price_changed", {"product": product(), "previous_price": "-0.01"}, ["previous_price"]),
    ],
)
def test_a_malformed_event_is_refused_naming_the_field(
    platform: Platform, recorder: EventRecorder, hook_name: str, kwargs: dict[str, Any], path: list[Any]
) -> None:
    hook = getattr(platform.hook, hook_name)
    with pytest.raises(InvalidEventError) as caught:
        hook(**kwargs)
    error = caught.value
    assert error.hook_name == hook_name
    node: Any = error.errors
    for key in path:
        assert isinstance(node, dict) and key in node, f"{path} not in {error.errors}"
        node = node[key]
    assert str(path[-1]) in str(error)
    assert recorder.calls == [], "an implementation saw a malformed event"


def test_a_missing_argument_is_refused_naming_it(platform: Platform, recorder: EventRecorder) -> None:
    with pytest.warns(UserWarning, match="previous_status"), pytest.raises(InvalidEventError) as caught:
        platform.hook.order_status_changed(order=order())
    assert caught.value.errors == {"previous_status": ["Missing data for required field."]}
    assert recorder.calls == []


def test_a_valid_order_reaches_implementations_cleaned(platform: Platform, recorder: EventRecorder) -> None:
    emitted = {
        "id": 1001,
        "status": "paid",
        "total": "59.8",
        "customer_id": 7,
        "email": "ann@example.com",
        "items": [{"product_id": 3, "name": "Mug", "quantity": 2, "price": 29.9}],
        "created_at": "2026-01-02T03:04:05+00:00",
        "internal_note": "not part of an order",
    }
    platform.hook.order_created(order=emitted)
    assert recorder.calls == [
        (
            "order_created",
            {
                "order": {
                    "id": "1001",
                    "status": "paid",
                    "total": "59.8",  # kept as given, never re-formatted
                    "currency": "EUR",
                    "customer_id": "7",
                    "email": "ann@example.com",
                    "items": [{"product_id": "3", "name": "Mug", "quantity": 2, "price": "29.9"}],
                    "shipping_address": None,
                    "created_at": "2026-01-02T03:04:05+00:00",
                    "updated_at": None,
                }
            },
        )
    ]
    assert emitted["id"] == 1001, "the caller's own dictionary is left as it was"


def test_defaults_are_filled_in(platform: Platform, recorder: EventRecorder) -> None:
    with pytest.warns(UserWarning, match="changes"):
        platform.hook.order_updated(order=order())
    ((name, kwargs),) = recorder.calls
    assert name == "order_updated"
    assert kwargs["changes"] == []


def test_a_valid_product_event_is_cleaned(platform: Platform, recorder: EventRecorder) -> None:
    emitted = {"id": 12, "name": "Mug", "price": 3, "stock": 2}
    platform.hook.product_stock_changed(product=emitted, previous_stock=4)
    platform.hook.product_price_changed(product=product(price="31"), previous_price=29.9)
    assert recorder.calls == [
        (
            "product_stock_changed",
            {
                "product": {"id": "12", "sku": None, "name": "Mug", "price": "3", "currency": "EUR", "stock": 2},
                "previous_stock": 4,
            },
        ),
        (
            "product_price_changed",
            {
                "product": {
                    "id": "p-1",
                    "sku": "MUG-1",
                    "name": "Mug",
                    "price": "31",
                    "currency": "EUR",
                    "stock": 5,
                },
                "previous_price": "29.9",
            },
        ),
    ]


def test_hooks_that_are_not_shop_events_are_not_validated(platform: Platform) -> None:
    # plugin_migrations takes no payload schema: the monitor lets it through untouched
    assert platform.hook.plugin_migrations(script_location=Path("migrations"), platform=platform) == []


@pytest.mark.parametrize(
    ("currency", "amount", "kept"),
    [
        ("EUR", "0.1234", None),
        ("EUR", "19.90", "19.90"),
        ("JPY", "100.5", None),
        ("JPY", 100, "100"),
        ("KWD", "1.234", "1.234"),
    ],
)
def test_amounts_are_kept_as_given_or_refused_never_rounded(
    platform: Platform, recorder: EventRecorder, currency: str, amount: Any, kept: str | None
) -> None:
    emitted = {"id": 1, "status": "paid", "total": amount, "currency": currency}
    if kept is None:
        with pytest.raises(InvalidEventError) as caught:
            platform.hook.order_created(order=emitted)
        assert caught.value.errors == {
            "order": {
                "total": [
                    f"{amount} has more decimals than {currency} allows ({0 if currency == 'JPY' else 2});"
                    " amounts are never rounded"
                ]
            }
        }
        assert recorder.calls == []
    else:
        platform.hook.order_created(order=emitted)
        assert recorder.calls[0][1]["order"]["total"] == kept


def test_an_item_price_and_a_previous_price_follow_their_currency(platform: Platform) -> None:
    with pytest.raises(InvalidEventError) as caught:
        platform.hook.order_created(
            order={
                "id": 1,
                "status": "paid",
                "total": "5",
                "currency": "JPY",
                "items": [{"product_id": 1, "name": "Tea", "quantity": 1, "price": "4.5"}],
            }
        )
    assert list(caught.value.errors["order"]) == ["items.0.price"]
    with pytest.raises(InvalidEventError) as caught:
        platform.hook.product_price_changed(product=product(price="31"), previous_price="29.999")
    assert list(caught.value.errors) == ["previous_price"]
