"""Memory stays within the configured byte limits under a slow plugin and a database outage.

RSS is read from /proc for this process, which runs the node (a real aiohttp server) and its clients:
what the node holds for later is bounded by the byte limits, whatever the clients send meanwhile."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from tests.conftest import Client, EngineFactory, make_settings
from tests.db.test_recorder import switched_postgres

MB = 1024 * 1024
SLACK = 50 * MB  # the allowance beyond the configured limits


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


NESTED = json.loads("[" + ",".join(["[[1,2],[3,4]]"] * 4500) + "]")  # ~63 KB as text, ~1.4 MB as objects


async def test_a_slow_plugin_while_clients_send_large_messages(engine_factory: EngineFactory) -> None:
    blocked = threading.Event()
    limit = 8 * MB

    def slow_plugin(name: str, payload: dict) -> None:
        blocked.wait(30)

    settings = make_settings(
        hook_queue_limit=100_000,
        hook_queue_max_bytes=limit,
        client_messages_per_second=1000.0,
        client_frames_per_second=1000.0,
        max_frame_bytes=128 * 1024,
        client_message_types=("public",),
        history_size=0,  # measured here: the hook queue (the history keeps its own bound: size x frame bytes)
    )
    engine = await engine_factory(settings, event_handler=slow_plugin)
    bystander = await engine.connect()
    await bystander.subscribe("orders")
    senders = [await engine.connect() for _ in range(10)]
    for number, sender in enumerate(senders):  # each on a channel of its own: nobody else to deliver to
        await sender.subscribe(f"chat-{number}")
    before = rss()
    for round_number in range(54):  # 540 messages of 63 KB of nested lists
        for number, sender in enumerate(senders):
            await sender.send({"event": "message", "channel": f"chat-{number}", "data": NESTED})
        await engine.node.publish(["orders"], "tick", {"n": round_number})
    ticks = [await bystander.expect("tick", timeout=10) for _ in range(54)]
    assert [t["data"]["n"] for t in ticks] == list(range(54)), "the bystander got every publication in order"
    grown = rss() - before
    events = engine.node.events
    assert events.queued_bytes <= limit and events.dropped > 0
    assert grown < limit + SLACK, f"RSS grew by {grown / MB:.0f} MB with a {limit / MB:.0f} MB hook queue"
    blocked.set()


async def join(client: Client, channel: str, user_id: str) -> None:
    data = json.dumps({"user_id": user_id, "user_info": {"bio": "x" * 1900}}, separators=(",", ":"))
    reply = await client.subscribe(channel, auth=client.auth(channel, data), channel_data=data)
    assert reply["event"] == "subscribed", reply
    await client.request({"event": "unsubscribe", "channel": channel})


async def test_a_database_outage_while_presence_churns(postgres_schema: str, engine_factory: EngineFactory) -> None:
    switch, db = await switched_postgres(postgres_schema)
    limit = 1 * MB
    settings = make_settings(db_backlog_max_bytes=limit, db_flush_interval=0.05, db_retry_max_delay=0.3)
    engine = await engine_factory(settings, db_engine=db)
    try:
        bystander = await engine.connect()
        await bystander.subscribe("orders")
        switch.cut()
        churners = [await engine.connect() for _ in range(90)]  # the client session's pool holds 100
        before = rss()
        for round_number in range(10):  # 900 joins and leaves (the per-connection burst), ~2 KB of user_info each
            await asyncio.gather(*(join(c, f"presence-room-{i}", f"user-{i}") for i, c in enumerate(churners)))
            await engine.node.publish(["orders"], "tick", {"n": round_number})
        ticks = [await bystander.expect("tick", timeout=10) for _ in range(10)]
        assert [t["data"]["n"] for t in ticks] == list(range(10))
        recorder = engine.node.recorder
        assert recorder.backlog_bytes <= limit and recorder.dropped > 0
        grown = rss() - before
        assert grown < limit + SLACK, f"RSS grew by {grown / MB:.0f} MB with a {limit / MB:.0f} MB backlog"
    finally:
        switch.enabled = True
        await engine.server.close()
        await db.dispose()
        await switch.stop()
