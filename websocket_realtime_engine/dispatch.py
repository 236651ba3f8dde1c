"""Engine events out to plugins, off the delivery path.

An :class:`~websocket_realtime_engine.observers.Observer` of the node: each engine event becomes
one ``(name, payload)`` put on a bounded queue, the ``realtime_<name>`` hooks' arguments. One
daemon thread hands each event to ``handler`` in order, so a slow or failing plugin never delays
delivery, and one that never returns cannot keep the process from exiting. When the queue is full,
events are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from websocket_realtime_engine.observers import Observer

log = logging.getLogger("realtime.dispatch")

EventHandler = Callable[[str, dict[str, Any]], None]
_STOP: tuple[str, dict[str, Any]] = ("", {})  # the worker's signal to end (no event has an empty name)


class EventDispatcher(Observer):
    """A bounded queue of ``(name, payload)`` drained by one daemon thread into ``handler``."""

    def __init__(self, handler: EventHandler | None, limit: int) -> None:
        self.handler = handler
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue(maxsize=limit)
        self._thread: threading.Thread | None = None

    def emit(self, name: str, **payload: Any) -> None:
        """Queue one event; never blocks, never raises."""
        if self.handler is None:
            return
        try:
            self._queue.put_nowait((name, payload))
        except queue.Full:
            self.dropped += 1

    # -- the observer's events, as the hooks take them ----------------------------------------------

    def connection_opened(self, connection_id: str, node_id: str, remote: str) -> None:
        self.emit("connection_opened", connection_id=connection_id, node_id=node_id)

    def connection_closed(self, connection_id: str, user_id: str | None, node_id: str) -> None:
        self.emit("connection_closed", connection_id=connection_id, user_id=user_id, node_id=node_id)

    def channel_occupied(self, channel: str) -> None:
        self.emit("channel_occupied", channel=channel)

    def channel_vacated(self, channel: str) -> None:
        self.emit("channel_vacated", channel=channel)

    def member_added(self, channel: str, user_id: str, user_info: Any) -> None:
        self.emit("member_added", channel=channel, user_id=user_id, user_info=user_info)

    def member_removed(self, channel: str, user_id: str) -> None:
        self.emit("member_removed", channel=channel, user_id=user_id)

    def client_message(self, channel: str, data: Any, connection_id: str, user_id: str | None) -> None:
        self.emit("client_message", channel=channel, data=data, connection_id=connection_id, user_id=user_id)

    def stats(self) -> dict[str, int]:
        return {"dropped": self.dropped, "failed": self.failed}

    # -- the worker ----------------------------------------------------------------------------------

    async def start(self, node_id: str = "", host: str = "", port: int = 0) -> None:
        if self.handler is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="realtime-hooks", daemon=True)
            self._thread.start()

    async def stop(self, node_id: str = "", timeout: float = 5.0) -> None:
        """Deliver what is queued (``timeout`` seconds at most), then stop the worker."""
        thread, self._thread = self._thread, None
        if thread is None:
            return

        def finish() -> None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            thread.join(timeout)

        await asyncio.to_thread(finish)
        if thread.is_alive():
            log.warning("a plugin is still handling engine events at shutdown; left behind: %d", self._queue.qsize())

    def _run(self) -> None:
        handler = self.handler
        assert handler is not None
        while True:
            name, payload = self._queue.get()
            if name == "":
                return
            try:
                handler(name, payload)
            except Exception:
                self.failed += 1
                log.exception("a plugin failed on engine event %s", name)
