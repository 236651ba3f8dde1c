"""Shop events to outbox rows, following the channel table of the README.

Each hook writes one outbox row (:mod:`.outbox`) holding every broadcast of the event, and returns:
no network call, no error when no engine runs. The draining node publishes it (with the row's id as
idempotency key, so no broadcast goes out twice).

**No personal data on public channels.** ``orders`` gets only :data:`PUBLIC_ORDER_FIELDS` (and the
item count, and the previous status, one of :data:`~shopologic.events.ORDER_STATUSES`); free text (a
cancellation's ``reason``) and the names of changed fields go to ``private-admin.orders`` and the
customer's ``private-customer.{id}`` only. Product events go to ``products`` and ``product.{id}``.
Ids name channels through :func:`~websocket_realtime_engine.protocol.channels.channel_id`, so every id
has its channel.
"""

from __future__ import annotations

from typing import Any

from shopologic.hookspecs import hookimpl
from websocket_realtime_engine.db.outbox import BROADCASTS
from websocket_realtime_engine.protocol.channels import channel_id

from .outbox import write_outbox

Broadcast = tuple[list[str], str, dict[str, Any]]
# what anyone subscribed to ``orders`` may read: nothing that names, reaches or describes a person
PUBLIC_ORDER_FIELDS = ("id", "number", "status", "total", "currency", "created_at", "updated_at")


def public_order(order: dict[str, Any]) -> dict[str, Any]:
    """An order without personal data: no customer, email, address, items or free text."""
    summary = {key: order[key] for key in PUBLIC_ORDER_FIELDS if order.get(key) is not None}
    summary["item_count"] = sum(item["quantity"] for item in order.get("items", ()))
    return summary


def order_broadcasts(
    event: str, order: dict[str, Any], public: dict[str, Any] | None = None, **private: Any
) -> list[Broadcast]:
    """The public summary (with ``public``'s non-personal extras) to ``orders``; the whole order with
    every extra to admins and to its customer."""
    full = {"order": order, **(public or {}), **private}
    broadcasts: list[Broadcast] = [
        (["orders"], event, {"order": public_order(order), **(public or {})}),
        (["private-admin.orders"], event, full),
    ]
    customer_id = order.get("customer_id")
    if customer_id:
        broadcasts.append(([f"private-customer.{channel_id(customer_id)}"], event, full))
    return broadcasts


def product_broadcasts(event: str, product: dict[str, Any], **extra: Any) -> list[Broadcast]:
    return [(["products", f"product.{channel_id(product['id'])}"], event, {"product": product, **extra})]


def _order_event(broadcasts: list[Broadcast], order: dict[str, Any]) -> Any:
    return write_outbox(BROADCASTS, broadcasts, customer_id=order.get("customer_id"))


@hookimpl
def order_created(order: dict[str, Any]) -> Any:
    return _order_event(order_broadcasts("order.created", order), order)


@hookimpl
def order_updated(order: dict[str, Any], changes: list[str]) -> Any:
    return _order_event(order_broadcasts("order.updated", order, changes=changes), order)


@hookimpl
def order_status_changed(order: dict[str, Any], previous_status: str) -> Any:
    broadcasts = order_broadcasts("order.status_changed", order, public={"previous_status": previous_status})
    return _order_event(broadcasts, order)


@hookimpl
def order_cancelled(order: dict[str, Any], reason: str) -> Any:
    return _order_event(order_broadcasts("order.cancelled", order, reason=reason), order)


@hookimpl
def product_created(product: dict[str, Any]) -> Any:
    return write_outbox(BROADCASTS, product_broadcasts("product.created", product))


@hookimpl
def product_updated(product: dict[str, Any], changes: list[str]) -> Any:
    return write_outbox(BROADCASTS, product_broadcasts("product.updated", product, changes=changes))


@hookimpl
def product_stock_changed(product: dict[str, Any], previous_stock: int) -> Any:
    return write_outbox(BROADCASTS, product_broadcasts("product.stock_changed", product, previous_stock=previous_stock))


@hookimpl
def product_price_changed(product: dict[str, Any], previous_price: str) -> Any:
    return write_outbox(BROADCASTS, product_broadcasts("product.price_changed", product, previous_price=previous_price))
