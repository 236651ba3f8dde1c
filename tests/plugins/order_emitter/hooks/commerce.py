"""The test plugin's own ``hooks/commerce.py``: the engine has one too, and both must load and run."""

from __future__ import annotations

from typing import Any

from shopologic.hookspecs import hookimpl

from .record import received, record

__all__ = ["received"]


@hookimpl
def order_created(order: dict[str, Any]) -> None:
    record("order_created", order_id=order["id"])
