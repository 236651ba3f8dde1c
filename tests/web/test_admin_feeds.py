"""The engine's own live channels: ``private-realtime.stats`` and ``private-realtime.log``, received by a
real admin client, on one node and on two nodes joined by Redis; nothing published while nobody watches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import REDIS_URL, Client, Engine, EngineFactory, eventually, make_settings, own_redis_prefix
from websocket_realtime_engine.config import Settings

STATS, LOG = "private-realtime.stats", "private-realtime.log"
FAST = {"admin_stats_interval": 0.1, "node_heartbeat": 0.2}


def fast_settings(**overrides: Any) -> Settings:
    return make_settings(**{**FAST, **overrides})


async def watch(engine: Engine, channel: str) -> Client:
    """A client subscribed to one of the engine's channels, signed with the API key."""
    client = await engine.connect()
    body = {"connection_id": client.connection_id, "channel": channel}
    status, signed = await engine.api("POST", "/api/v1/authenticate", json=body)
    assert status == 200, signed
    assert (await client.subscribe(channel, auth=signed["auth"]))["event"] == "subscribed"
    return client


async def next_matching(
    client: Client, event: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """The data of the first ``event`` publication for which ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"no {event} matched within {timeout} s; the last: {seen}"
        frame = await client.recv(left)
        if frame["event"] == event:
            seen = frame["data"]
            if predicate(seen):
                return seen


class LogReader:
    """The events of an admin client's log batches, in order, each found once."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.events: list[dict[str, Any]] = []

    async def find(self, wanted: Callable[[dict[str, Any]], bool], timeout: float = 5.0) -> dict[str, Any]:
        """The first event not found before for which ``wanted`` holds (read from new batches as needed)."""
        found: list[dict[str, Any]] = []

        def take() -> bool:
            for index, event in enumerate(self.events):
                if wanted(event):
                    found.append(self.events.pop(index))
                    return True
            return False

        def arrived(batch: dict[str, Any]) -> bool:
            self.events.extend(batch["events"])
            return take()

        if not take():
            await next_matching(self.client, "log", arrived, timeout)
        return found[0]


async def test_stats_reach_an_admin_and_follow_the_connections(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(fast_settings())
    admin = await watch(engine, STATS)
    first = await next_matching(admin, "stats", lambda data: True)
    assert first["node_id"] == "test-node" and first["connections"] == {"cluster": 1, "node": 1}
    assert first["channels"]["top"] == [{"name": STATS, "type": "private", "subscribers": 1}]
    assert [node["node_id"] for node in first["nodes"]] == ["test-node"]
    assert 0 <= first["nodes"][0]["heartbeat_age"] < 1 and first["nodes"][0]["connections"] == 1
    assert set(first) == {
        "node_id",
        "at",
        "connections",
        "messages",
        "channels",
        "presence",
        "nodes",
        "errors",
        "slow_consumers",
        "rate_limits",
        "outbox",
        "log",
    }
    clients = [await engine.connect() for _ in range(3)]
    await next_matching(admin, "stats", lambda data: data["connections"]["node"] == 4)
    await clients[0].ws.close()
    later = await next_matching(admin, "stats", lambda data: data["connections"]["node"] == 3)
    assert later["connections"]["cluster"] == 3 and later["nodes"][0]["connections"] == 3


async def test_stats_count_messages_errors_and_presence(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(fast_settings())
    admin = await watch(engine, STATS)
    member = await engine.connect()
    data = '{"user_id":"9","user_info":{}}'
    body = {"connection_id": member.connection_id, "channel": "presence-room", "channel_data": data}
    signed = (await engine.api("POST", "/api/v1/authenticate", json=body))[1]
    await member.subscribe("presence-room", auth=signed["auth"], channel_data=data)
    await member.request({"event": "subscribe", "channel": "bad channel!"})  # an error frame: invalid_channel
    for number in range(5):
        broadcast = {"channel": "presence-room", "event": "e", "data": number}
        assert (await engine.api("POST", "/api/v1/broadcast", json=broadcast))[0] == 200
    assert (await engine.api("GET", "/api/v1/status", headers={}))[0] == 401  # an API error: unauthorized

    rates: list[dict[str, float]] = []

    def counted(stats: dict[str, Any]) -> bool:
        rates.append(stats["messages"])
        return stats["messages"]["in_total"] == 5 and stats["errors"]["api"].get("unauthorized") == 1

    stats = await next_matching(admin, "stats", counted)
    assert stats["messages"]["out_total"] >= 5  # the member got each (and the admin its stats)
    assert stats["errors"]["client"] == {"invalid_channel": 1}
    assert stats["presence"] == {"channels": 1, "members": 1}
    room = [channel for channel in stats["channels"]["top"] if channel["name"] == "presence-room"]
    assert room == [{"name": "presence-room", "type": "presence", "subscribers": 1, "members": 1}]
    assert stats["rate_limits"]["connections_refused"] == {
        "http_connections": 0,
        "address_connections": 0,
        "connection_rate": 0,
    }
    assert any(rate["in_per_second"] > 0 and rate["out_per_second"] > 0 for rate in rates), rates


async def test_the_log_carries_connections_subscriptions_and_errors(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(fast_settings())
    log = LogReader(await watch(engine, LOG))
    client = await engine.connect()
    opened = await log.find(lambda event: event.get("connection_id") == client.connection_id)
    assert opened == {"type": "connection_opened", "connection_id": client.connection_id, "at": opened["at"]}
    assert abs(opened["at"] - time.time()) < 5
    await client.subscribe("orders")
    await client.request({"event": "message", "channel": "orders", "data": 1})  # forbidden on a public channel
    subscribed = await log.find(lambda event: event["type"] == "subscribed" and event["channel"] == "orders")
    assert subscribed["connection_id"] == client.connection_id
    error = await log.find(lambda event: event["type"] == "error")
    assert error["connection_id"] == client.connection_id and (error["code"], error["name"]) == (4010, "forbidden")
    await client.ws.close()
    unsubscribed = await log.find(lambda event: event["type"] == "unsubscribed")
    assert (unsubscribed["channel"], unsubscribed["connection_id"]) == ("orders", client.connection_id)
    closed = await log.find(lambda event: event["type"] == "connection_closed")
    assert (closed["connection_id"], closed["user_id"]) == (client.connection_id, None)


async def test_the_log_is_bounded_and_counts_what_it_drops(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(fast_settings(admin_log_rate=5))
    admin = await watch(engine, LOG)
    client = await engine.connect()
    for number in range(20):
        await client.subscribe(f"channel-{number}")  # subscribed and occupied: two events each
    received, dropped = 0, 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        try:
            frame = await admin.recv(deadline - time.monotonic())
        except TimeoutError:
            break
        received += len(frame["data"]["events"])
        dropped += frame["data"]["dropped"]
    assert dropped > 0 and received <= 5 + 3  # the burst, and what refilled within the half second
    assert engine.node.feeds.log_dropped >= dropped


async def test_nothing_is_published_while_nobody_watches(engine_factory: EngineFactory) -> None:
    engine = await engine_factory(fast_settings())
    feeds = engine.node.feeds
    client = await engine.connect()
    await client.subscribe("orders")
    await asyncio.sleep(0.4)  # four intervals
    assert feeds.publications == 0 and not feeds.log_watched
    admin = await watch(engine, STATS)
    await next_matching(admin, "stats", lambda data: True)
    assert feeds.publications >= 1, "the counter counts"
    await admin.send({"event": "unsubscribe", "channel": STATS})
    while (await admin.recv())["event"] != "unsubscribed":  # stats still on their way come first
        pass
    await asyncio.sleep(0.15)  # a tick that may have started before the unsubscribe
    published = feeds.publications
    await client.ws.close()
    await asyncio.sleep(0.4)
    assert feeds.publications == published and not feeds.log_watched


# -- two nodes on Redis ----------------------------------------------------------------------------


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    async with own_redis_prefix("feeds") as prefix:
        yield prefix


async def test_every_node_publishes_its_own_stats_and_watchers_count_cluster_wide(
    engine_factory: EngineFactory, redis_prefix: str
) -> None:
    shared = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    first = await engine_factory(fast_settings(node_id="node-a", **shared))
    second = await engine_factory(fast_settings(node_id="node-b", **shared))
    admin = await watch(first, STATS)  # on node-a only: node-b learns of it from the cluster state
    await second.connect()
    await second.connect()
    from_b = await next_matching(admin, "stats", lambda data: data["node_id"] == "node-b")
    assert from_b["connections"] == {"cluster": 3, "node": 2}
    assert [node["node_id"] for node in from_b["nodes"]] == ["node-a", "node-b"]
    from_a = await next_matching(admin, "stats", lambda data: data["node_id"] == "node-a")
    assert from_a["connections"] == {"cluster": 3, "node": 1}
    log_admin = await watch(second, LOG)
    # node-a asks the cluster state once per interval
    await eventually(lambda: first.node.feeds.log_watched, timeout=2, message="node-a never saw node-b's log watcher")
    joined = await first.connect()  # on node-a, watched from node-b
    opened = await LogReader(log_admin).find(lambda event: event.get("connection_id") == joined.connection_id)
    assert opened["type"] == "connection_opened"
