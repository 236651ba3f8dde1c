"""Shop events to broadcasts, following the channel table of the README.

Public channels carry no personal data: ``orders`` gets an order's id, number, status and totals;
the full order goes to ``private-admin.orders`` and to its customer's ``private-customer.{id}``.
Product events go to ``products`` and ``product.{id}``. Ids name channels through
:func:`~websocket_realtime_engine.protocol.channels.channel_id`, so every id has its channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from shopologic.contracts import PluginError
from shopologic.hookspecs import hookimpl
from websocket_realtime_engine import client, runtime
from websocket_realtime_engine.protocol.channels import channel_id

from .state import STATE

log = logging.getLogger("realtime.commerce")
Broadcast = tuple[list[str], str, dict[str, Any]]
PUBLIC_ORDER_FIELDS = ("id", "number", "status", "total", "currency", "created_at", "updated_at")


def public_order(order: dict[str, Any]) -> dict[str, Any]:
    """An order without personal data: no customer, email, address or items."""
    summary = {key: order[key] for key in PUBLIC_ORDER_FIELDS if order.get(key) is not None}
    summary["item_count"] = sum(item["quantity"] for item in order.get("items", ()))
    return summary


def order_broadcasts(event: str, order: dict[str, Any], **extra: Any) -> list[Broadcast]:
    """The public summary to ``orders``; the whole order to admins and to its customer."""
    full = {"order": order, **extra}
    broadcasts: list[Broadcast] = [
        (["orders"], event, {"order": public_order(order), **extra}),
        (["private-admin.orders"], event, full),
    ]
    customer_id = order.get("customer_id")
    if customer_id:
        broadcasts.append(([f"private-customer.{channel_id(customer_id)}"], event, full))
    return broadcasts


def product_broadcasts(event: str, product: dict[str, Any], **extra: Any) -> list[Broadcast]:
    return [(["products", f"product.{channel_id(product['id'])}"], event, {"product": product, **extra})]


async def _publish_local(broadcasts: Iterable[Broadcast]) -> None:
    local = runtime.local_node()
    if local is not None:
        for channels, event, data in broadcasts:
            await local[0].publish(channels, event, data)


def publish(broadcasts: list[Broadcast]) -> Any:
    """Publish through the node in this process, or through a running node's REST API.

    Returns the task (or future) when a local node publishes, for async callers to await. When no
    node answers, the caller (another plugin, the ``emit`` command) gets a host
    :class:`~shopologic.contracts.PluginError`, not an engine exception it cannot import.
    """
    local = runtime.local_node()
    if local is None:
        for channels, event, data in broadcasts:
            try:
                client.broadcast(STATE.settings(), channels, event, data)
            except client.EngineUnreachableError as exc:
                raise PluginError(str(exc)) from None
        return None
    _, loop = local
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        return loop.create_task(_publish_local(broadcasts))
    return asyncio.run_coroutine_threadsafe(_publish_local(broadcasts), loop)


@hookimpl
def order_created(order: dict[str, Any]) -> Any:
    return publish(order_broadcasts("order.created", order))


@hookimpl
def order_updated(order: dict[str, Any], changes: list[str]) -> Any:
    return publish(order_broadcasts("order.updated", order, changes=changes))


@hookimpl
def order_status_changed(order: dict[str, Any], previous_status: str) -> Any:
    return publish(order_broadcasts("order.status_changed", order, previous_status=previous_status))


@hookimpl
def order_cancelled(order: dict[str, Any], reason: str) -> Any:
    return publish(order_broadcasts("order.cancelled", order, reason=reason))


@hookimpl
def product_created(product: dict[str, Any]) -> Any:
    return publish(product_broadcasts("product.created", product))


@hookimpl
def product_updated(product: dict[str, Any], changes: list[str]) -> Any:
    return publish(product_broadcasts("product.updated", product, changes=changes))


@hookimpl
def product_stock_changed(product: dict[str, Any], previous_stock: int) -> Any:
    return publish(product_broadcasts("product.stock_changed", product, previous_stock=previous_stock))


@hookimpl
def product_price_changed(product: dict[str, Any], previous_price: str) -> Any:
    return publish(product_broadcasts("product.price_changed", product, previous_price=previous_price))
