"""The node running in this process, if any, for hook implementations to publish through.

pluggy hooks are plain module functions, so they find the engine here. When no node runs in this
process (the ``emit`` command, another worker), :mod:`websocket_realtime_engine.client` publishes
through a running node's REST API instead.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from websocket_realtime_engine.node import Node

_local: tuple[Node, asyncio.AbstractEventLoop] | None = None


def set_local_node(node: Node | None) -> None:
    """Called by the engine service when its node starts (``node``) and stops (``None``)."""
    global _local
    _local = (node, asyncio.get_running_loop()) if node is not None else None


def local_node() -> tuple[Node, asyncio.AbstractEventLoop] | None:
    """The running node and its event loop, or ``None``."""
    return _local
