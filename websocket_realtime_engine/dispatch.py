"""Engine events out to plugins, off the delivery path.

The node calls :meth:`EventDispatcher.emit`, which only appends to a bounded queue. One worker task
hands each event to ``handler`` in a worker thread, so a slow or failing plugin never delays
delivery; when the queue is full, events are dropped and counted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

log = logging.getLogger("realtime.dispatch")

EventHandler = Callable[[str, dict[str, Any]], None]


class EventDispatcher:
    """A bounded queue of ``(name, payload)`` drained by one worker into ``handler``."""

    def __init__(self, handler: EventHandler | None, limit: int) -> None:
        self.handler = handler
        self.limit = limit
        self.dropped = 0
        self.failed = 0
        self._queue: deque[tuple[str, dict[str, Any]]] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime-hooks")

    def emit(self, name: str, **payload: Any) -> None:
        """Queue one event; never blocks, never raises."""
        if self.handler is None:
            return
        if len(self._queue) >= self.limit:
            self.dropped += 1
            return
        self._queue.append((name, payload))
        self._wakeup.set()

    def start(self) -> None:
        if self.handler is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="realtime-hooks")

    async def stop(self) -> None:
        """Deliver what is queued (a few seconds at most), then stop the worker."""
        if self._task is not None:
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._drain(), timeout=5)
            except TimeoutError:
                log.warning("hook events left undelivered at shutdown: %d", len(self._queue))
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        while self._queue:
            await asyncio.sleep(0.01)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                name, payload = self._queue.popleft()
                try:
                    await loop.run_in_executor(self._executor, self.handler, name, payload)  # type: ignore[arg-type]
                except Exception:
                    self.failed += 1
                    log.exception("a plugin failed on engine event %s", name)
