"""Engine events out to plugins, off the delivery path.

The node calls :meth:`EventDispatcher.emit`, which only puts the event on a bounded queue. One
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

log = logging.getLogger("realtime.dispatch")

EventHandler = Callable[[str, dict[str, Any]], None]
_STOP: tuple[str, dict[str, Any]] = ("", {})  # the worker's signal to end (no event has an empty name)


class EventDispatcher:
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

    def start(self) -> None:
        if self.handler is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="realtime-hooks", daemon=True)
            self._thread.start()

    async def stop(self, timeout: float = 5.0) -> None:
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
