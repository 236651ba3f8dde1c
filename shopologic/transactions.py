"""The unit of work: ``async with platform.transaction() as tx:`` around an order and its events.

A shop writes an order and emits its events in one database transaction of the platform database;
hook implementations that write (the realtime engine's outbox) find the transaction through a
:class:`~contextvars.ContextVar`, so the hookspecs' arguments stay as they are. When the block
raises, the transaction rolls back and whatever the hooks wrote in it is gone: no event of an order
that was never placed is published. When it commits, the callbacks the hooks registered with
:meth:`Transaction.after_commit` run (the engine wakes its outbox drainer).

A ``transaction()`` inside another joins it: one commit, at the outermost block's end.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("shopologic.transactions")


@dataclass
class Transaction:
    """One open transaction of the platform database.

    :param connection: the connection the transaction is open on: execute the order's statements
        on it (``await tx.connection.execute(...)``), as the hooks do theirs.
    """

    connection: AsyncConnection
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the transaction has committed (never when it rolls back)."""
        self._after_commit.append(callback)


_current: ContextVar[Transaction | None] = ContextVar("shopologic_transaction", default=None)


def current_transaction() -> Transaction | None:
    """The transaction the calling code runs in, or ``None``."""
    return _current.get()


@asynccontextmanager
async def transaction(engine: AsyncEngine) -> AsyncIterator[Transaction]:
    """Open a transaction on ``engine`` (or join the one already open in this context) and make it
    the current one for the block; commit at the block's end, roll back when it raises."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    async with engine.begin() as connection:
        current = Transaction(connection)
        token = _current.set(current)
        try:
            yield current
        finally:
            _current.reset(token)
    for callback in current._after_commit:
        try:
            callback()
        except Exception:  # a callback's failure must not turn a committed order into an error
            log.exception("an after-commit callback failed")
