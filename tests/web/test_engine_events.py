"""Hooks out of the engine: called off the delivery path; slow or failing plugins delay nothing."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tests.conftest import EngineFactory, make_settings


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.delay, self.fail = delay, fail
        self.thread_names: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        self.thread_names.add(threading.current_thread().name)
        time.sleep(self.delay)
        with self.lock:
            self.events.append((name, payload))
        if self.fail:
            raise RuntimeError("plugin bug")

    async def wait_for(self, count: int, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


async def test_engine_events_reach_the_handler_in_order(engine_factory: EngineFactory) -> None:
    recorder = Recorder()
    engine = await engine_factory(make_settings(), event_handler=recorder)
    client = await engine.connect()
    data = '{"user_id":"ada"}'
    await client.subscribe("presence-room", auth=client.auth("presence-room", data), channel_data=data)
    await client.send({"event": "message", "channel": "presence-room", "data": {"t": 1}, "echo": True})
    await client.recv()
    await client.ws.close()
    await recorder.wait_for(7)
    names = [name for name, _ in recorder.events]
    assert names == [
        "connection_opened",
        "member_added",
        "channel_occupied",
        "client_message",
        "channel_vacated",
        "member_removed",
        "connection_closed",
    ]
    assert recorder.events[1][1] == {"channel": "presence-room", "user_id": "ada", "user_info": None}
    assert recorder.events[3][1]["data"] == {"t": 1} and recorder.events[3][1]["user_id"] == "ada"
    assert all(name.startswith("realtime-hooks") for name in recorder.thread_names)


async def test_a_slow_and_failing_plugin_does_not_delay_delivery(engine_factory: EngineFactory) -> None:
    recorder = Recorder(delay=0.5, fail=True)
    engine = await engine_factory(make_settings(), event_handler=recorder)
    clients = [await engine.connect() for _ in range(3)]
    for client in clients:
        await client.subscribe("orders")
    started = time.monotonic()
    await engine.node.publish(["orders"], "e", 1)
    for client in clients:
        assert (await client.recv(timeout=1))["data"] == 1
    assert time.monotonic() - started < 0.4  # the plugin sleeps 0.5 s per event, and six are queued
    await recorder.wait_for(2, timeout=3)
    assert engine.node.events.failed >= 1


async def test_a_full_event_queue_drops_and_counts(engine_factory: EngineFactory) -> None:
    recorder = Recorder(delay=0.2)
    engine = await engine_factory(make_settings(hook_queue_limit=2), event_handler=recorder)
    for _ in range(6):
        await engine.connect()
    status, body = await engine.api("GET", "/api/v1/status")
    assert body["hook_events_dropped"] >= 2


async def test_the_event_queue_is_bounded_by_bytes_and_says_so_once(caplog: Any) -> None:
    from websocket_realtime_engine.dispatch import EventDispatcher

    release = threading.Event()
    received: list[Any] = []

    def slow_plugin(name: str, payload: dict[str, Any]) -> None:
        release.wait(5)
        received.append(payload["data"])

    dispatcher = EventDispatcher(slow_plugin, limit=10_000, max_bytes=1_000_000)
    await dispatcher.start()
    frame = b"[" + b",".join([b"[[1,2],[3,4]]"] * 4500) + b"]"  # ~63 KB of nested lists, as it came in
    with caplog.at_level("WARNING", logger="realtime.dispatch"):
        for _ in range(100):
            dispatcher.client_message("chat", frame, "1.1", None)
    assert dispatcher.queued_bytes <= 1_000_000, "bounded by what it holds, not by the event count"
    assert dispatcher.dropped >= 80
    assert len([r for r in caplog.records if "engine events dropped" in r.getMessage()]) == 1, "logged once"
    release.set()
    await dispatcher.stop()
    assert received and received[0] == [[[1, 2], [3, 4]]] * 4500, "the plugin gets the data decoded"
    assert dispatcher.queued_bytes == 0
