"""The node running in this process, if any, and how to wake its outbox drainer.

pluggy hooks are plain module functions, so they find the engine here. When no node runs in this
process (the ``emit`` command, another worker), what they write to the outbox waits for the draining
node of the cluster, which finds it by ``LISTEN/NOTIFY`` (PostgreSQL) or by polling (SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from websocket_realtime_engine.node import Node

_local: tuple[Node, asyncio.AbstractEventLoop] | None = None
_outbox_waker: tuple[Callable[[], None], asyncio.AbstractEventLoop] | None = None


def set_local_node(node: Node | None) -> None:
    """Called by the engine service when its node starts (``node``) and stops (``None``)."""
    global _local
    _local = (node, asyncio.get_running_loop()) if node is not None else None


def local_node() -> tuple[Node, asyncio.AbstractEventLoop] | None:
    """The running node and its event loop, or ``None``."""
    return _local


def set_outbox_waker(waker: Callable[[], None] | None) -> None:
    """Called by the outbox drainer when it starts (its wake-up) and stops (``None``)."""
    global _outbox_waker
    _outbox_waker = (waker, asyncio.get_running_loop()) if waker is not None else None


def wake_outbox() -> None:
    """A row was committed to the outbox: wake this process's drainer, if one runs (from any thread)."""
    current = _outbox_waker
    if current is not None:
        waker, loop = current
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(waker)
