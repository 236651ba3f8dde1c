"""Writing outbox rows from hook implementations, whoever calls them and however.

- inside ``async with platform.transaction()``: on the caller's transaction (published only if it
  commits); the coroutine returned must be awaited inside the block;
- from async code outside a transaction: its own short transaction; the coroutine must be awaited
  (``await platform.emit(...)`` does);
- from code that runs no event loop (a worker, a script): a synchronous insert, done on return.

Each returns (or its coroutine returns) the :class:`~websocket_realtime_engine.db.outbox.OutboxRow`;
the engine in this process is woken once the row is committed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from shopologic.contracts import PluginError
from shopologic.transactions import Transaction, current_transaction
from websocket_realtime_engine import runtime
from websocket_realtime_engine.db import outbox
from websocket_realtime_engine.db.outbox import OutboxRow

from .state import STATE


def write_outbox(kind: str, body: Any, customer_id: str | None = None) -> Any:
    """Write one outbox row the way the caller can: an :class:`OutboxRow`, or a coroutine of one."""
    platform = STATE.platform
    if platform is None:
        raise PluginError("the realtime engine is not loaded into a platform: no database to write events to")
    transaction = current_transaction()
    if transaction is not None:
        return _in_transaction(transaction, kind, body, customer_id)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        row = outbox.write_sync(platform.settings.database_url, kind, body, customer_id)
        runtime.wake_outbox()
        return row
    return _in_own_transaction(kind, body, customer_id)


async def _in_transaction(transaction: Transaction, kind: str, body: Any, customer_id: str | None) -> OutboxRow:
    row = await outbox.write(transaction.connection, kind, body, customer_id)
    transaction.after_commit(runtime.wake_outbox)
    return row


async def _in_own_transaction(kind: str, body: Any, customer_id: str | None) -> OutboxRow:
    assert STATE.platform is not None
    async with STATE.platform.engine.begin() as connection:
        row = await outbox.write(connection, kind, body, customer_id)
    runtime.wake_outbox()
    return row
