"""Ending background tasks for good.

Before Python 3.12, :func:`asyncio.wait_for` returns its result instead of raising when a
cancellation arrives in the loop iteration in which the awaited operation completes (CPython
gh-86296). redis-py writes every command through it when a socket timeout is set, so a task
cancelled while it sends a command (the broker's health PING, a subscription flush) can swallow the
cancellation and carry on: ``task.cancel()`` then ``await task`` waits forever, and a node's stop
hangs. :func:`cancel_and_wait` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_AFTER = 0.5  # seconds a cancelled task has to end before it is cancelled again


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel ``tasks`` (``None`` ones are skipped) and return once every one has ended; a task still
    running ``RECANCEL_AFTER`` seconds after a cancellation is cancelled again. Their results and
    errors are dropped (read, so that asyncio logs none as never retrieved).

    Cancelled itself meanwhile (a task that ends its own subtasks in a ``finally``, cancelled again
    by whoever stops it), it still ends them all first, then raises ``CancelledError``.
    """
    waiting = [task for task in tasks if task is not None]
    pending = {task for task in waiting if not task.done()}
    cancelled = False
    while pending:
        for task in pending:
            task.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=RECANCEL_AFTER)
        except asyncio.CancelledError:
            cancelled = True
    for task in waiting:
        if not task.cancelled():
            task.exception()
    if cancelled:
        raise asyncio.CancelledError
