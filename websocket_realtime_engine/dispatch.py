"""Engine events out to plugins, off the delivery path.

An :class:`~websocket_realtime_engine.observers.Observer` of the node: each engine event becomes
one ``(name, payload)`` put on a queue, the ``realtime_<name>`` hooks' arguments. One daemon thread
hands each event to ``handler`` in order, so a slow or failing plugin never delays delivery, and one
that never returns cannot keep the process from exiting.

The queue is bounded by events (``limit``) and by the bytes they hold (``max_bytes``: every text
and JSON value plus an overhead per event). A client message's data waits as the JSON text it came
in, decoded by the worker just before the hook gets it: decoded, 63 KB of nested lists take over a
megabyte. Events past either bound are dropped, counted, and logged at most once per
``DROP_LOG_INTERVAL`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import orjson

from websocket_realtime_engine.observers import Observer
from websocket_realtime_engine.ratelimit import Drops

log = logging.getLogger("realtime.dispatch")

EventHandler = Callable[[str, dict[str, Any]], None]
_STOP: tuple[str, dict[str, Any], int] = ("", {}, 0)  # the worker's signal to end (no event has an empty name)
EVENT_OVERHEAD = 300  # bytes an event holds besides its text values (tuple, dict, queue slot)
DROP_LOG_INTERVAL = 10.0  # seconds between two warnings about dropped events


class EventDispatcher(Observer):
    """A bounded queue of ``(name, payload)`` drained by one daemon thread into ``handler``."""

    def __init__(self, handler: EventHandler | None, limit: int, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.handler = handler
        self.max_bytes = max_bytes
        self.drops = Drops(DROP_LOG_INTERVAL)
        self.failed = 0
        self.queued_bytes = 0
        self._queue: queue.Queue[tuple[str, dict[str, Any], int]] = queue.Queue(maxsize=limit)
        self._bytes_lock = threading.Lock()  # the worker thread gives bytes back
        self._thread: threading.Thread | None = None

    def emit(self, name: str, **payload: Any) -> None:
        """Queue one event; never blocks, never raises."""
        if self.handler is None:
            return
        size = EVENT_OVERHEAD + sum(len(value) for value in payload.values() if isinstance(value, str | bytes))
        with self._bytes_lock:
            fits = self.queued_bytes + size <= self.max_bytes
            if fits:
                self.queued_bytes += size
        if fits:
            try:
                self._queue.put_nowait((name, payload, size))
                return
            except queue.Full:
                self._give_back(size)
        self._drop()

    def _give_back(self, size: int) -> None:
        with self._bytes_lock:
            self.queued_bytes -= size

    @property
    def dropped(self) -> int:
        return self.drops.count

    def _drop(self) -> None:
        if since := self.drops.drop():
            log.warning(
                "plugins are behind: %d engine events dropped (queue full: %d events, %d bytes)",
                since,
                self._queue.qsize(),
                self.queued_bytes,
            )

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

    def client_message(self, channel: str, data: bytes, connection_id: str, user_id: str | None) -> None:
        # the JSON text waits in the queue; the worker decodes it (see the module's text)
        self.emit("client_message", channel=channel, data=data, connection_id=connection_id, user_id=user_id)

    def stats(self) -> dict[str, int]:
        return {"dropped": self.dropped, "failed": self.failed, "queued_bytes": self.queued_bytes}

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
            name, payload, size = self._queue.get()
            if name == "":
                return
            self._give_back(size)
            try:
                if name == "client_message":
                    payload["data"] = orjson.loads(payload["data"])
                handler(name, payload)
            except Exception:
                self.failed += 1
                log.exception("a plugin failed on engine event %s", name)
