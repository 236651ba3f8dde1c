"""``GET /metrics`` against real nodes: real WebSocket clients and REST calls, the text parsed with the
Prometheus client's own parser, every figure compared with what the test did."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.backends.conftest import redis_connection
from tests.conftest import Engine, EngineFactory, eventually, make_settings
from tests.hooks.test_commerce import ORDER, _subscriber
from tests.hooks.test_outbox import FAST, served

TOKEN = "metrics-token-for-tests"
# REALTIME_FANOUT_SECONDS buckets: LATENCY_BUCKETS and +Inf
BUCKETS = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25"]
BUCKETS += ["0.5", "1.0", "2.5", "+Inf"]


@dataclass
class Scrape:
    """One parsed answer of ``/metrics``: each family's type, each sample's value."""

    types: dict[str, str]
    samples: list[Sample]

    def value(self, name: str, **labels: str) -> float:
        """The value of the one sample named ``name`` with exactly ``labels``."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """The samples named ``name``, by their value of ``label``."""
        return {s.labels[label]: s.value for s in self.samples if s.name == name}

    def buckets(self, name: str) -> dict[str, float]:
        return self.labelled(f"{name}_bucket", "le")


def parse(text: str) -> Scrape:
    families = list(text_string_to_metric_families(text))
    return Scrape({f.name: f.type for f in families}, [s for f in families for s in f.samples])


async def scrape(session: aiohttp.ClientSession, url: str) -> Scrape:
    async with session.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await response.text())


def check_histogram(metrics: Scrape, name: str, count: int) -> None:
    """Every bucket present, cumulative, the last one and ``_count`` equal to ``count``, a positive sum."""
    buckets = metrics.buckets(name)
    assert list(buckets) == BUCKETS
    values = list(buckets.values())
    assert values == sorted(values) and values[-1] == count
    assert metrics.value(f"{name}_count") == count
    assert (metrics.value(f"{name}_sum") > 0) == (count > 0)
    assert metrics.types[name] == "histogram"


async def test_the_figures_match_what_clients_and_the_api_did(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(client_message_types=("public",)))
    clients = [await engine.connect() for _ in range(3)]
    for client in clients:
        assert (await client.subscribe("orders"))["event"] == "subscribed"
        assert (await client.subscribe("chat"))["event"] == "subscribed"
    # REST: one event to two channels, one of them without subscribers
    body = {"channels": ["orders", "products"], "event": "sale", "data": {"pct": 10}}
    assert (await engine.api("POST", "/api/v1/broadcast", json=body))[0] == 200
    for client in clients:
        await client.expect("sale")
    # a client publishes (not to itself), then makes two mistakes: one refused message, one bad frame
    sender = clients[0]
    assert (await sender.request({"event": "message", "channel": "chat", "data": "hi", "id": 1}))["event"] == "ack"
    for client in clients[1:]:
        await client.expect("message")
    refused = await sender.request({"event": "message", "channel": "elsewhere", "data": "hi"})
    assert refused["data"]["code"] == 4010
    assert (await sender.request("not json"))["data"]["code"] == 4000
    # two REST mistakes: no API key, a malformed body
    assert (await engine.api("GET", "/api/v1/channels", headers={}))[0] == 401
    assert (await engine.api("POST", "/api/v1/broadcast", json={"event": "e"}))[0] == 400

    metrics = await scrape(engine.session, engine.url("/metrics"))
    assert metrics.types["realtime_connections"] == "gauge"
    assert metrics.value("realtime_connections") == 3
    assert metrics.value("realtime_channels") == 2  # orders, chat
    assert metrics.value("realtime_subscriptions") == 6
    assert metrics.value("realtime_users") == 0
    assert metrics.types["realtime_client_messages"] == "counter"
    assert metrics.value("realtime_client_messages_total") == 2  # the refused one too
    assert metrics.labelled("realtime_publications_total", "source") == {"rest": 2, "client": 1, "outbox": 0}
    assert metrics.value("realtime_deliveries_total") == 3 + 2  # the sale to 3, the message to 2
    check_histogram(metrics, "realtime_fanout_seconds", 3)
    assert metrics.labelled("realtime_client_errors_total", "error") == {"forbidden": 1, "bad_request": 1}
    assert metrics.labelled("realtime_api_errors_total", "code") == {"unauthorized": 1, "invalid_request": 1}
    assert metrics.value("realtime_slow_consumers_total") == 0
    assert set(metrics.labelled("realtime_rate_limited_total", "limit").values()) == {0}
    assert metrics.value("realtime_node_info", node_id="test-node", backends="memory") == 1
    absent = ("realtime_broker_", "realtime_outbox_", "realtime_recorder_")  # memory broker, no database
    assert not any(sample.name.startswith(absent) for sample in metrics.samples)

    await clients[2].ws.close()
    await eventually(lambda: _connections_are(engine, 2))
    metrics = await scrape(engine.session, engine.url("/metrics"))
    assert metrics.value("realtime_subscriptions") == 4


async def _connections_are(engine: Engine, count: int) -> bool:
    return (await scrape(engine.session, engine.url("/metrics"))).value("realtime_connections") == count


async def test_a_token_is_required_once_set(engine_factory: EngineFactory) -> None:
    admin = "an-admin-token-of-24-chars"
    engine = await engine_factory(make_settings(metrics_token=TOKEN, admin_token=admin))
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        async with engine.session.get(engine.url("/metrics"), headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await response.json())["error"]["code"] == "unauthorized"
    async with engine.session.get(engine.url("/metrics"), headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200
        assert parse(await response.text()).value("realtime_connections") == 0
    async with engine.session.get(engine.url("/metrics"), headers={"Authorization": f"Bearer {admin}"}) as response:
        assert response.status == 200, "an admin may read them too"


async def test_rate_limit_hits_are_counted(engine_factory: EngineFactory) -> None:
    """REST 429s exactly; frames dropped as the node counted them, each one a frame the client sent
    that got no answer."""
    engine = await engine_factory(make_settings(rest_requests_per_second=1, client_frames_per_second=20))
    statuses = [(await engine.api("GET", "/api/v1/channels"))[0] for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]  # bursts of twice the rate
    client = await engine.connect()
    sent = 50  # the burst is 40: some are dropped
    for number in range(sent):
        await client.send({"event": "ping", "id": number})
    answered: set[int] = set()
    marker = 1000
    while marker not in answered:  # pings until one is answered after every earlier frame was read
        marker += 1
        await client.send({"event": "ping", "id": marker})
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            try:
                frame = await client.recv(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if frame["event"] == "pong":
                answered.add(frame["id"])
    dropped = sent + (marker - 1000) - len(answered)
    assert dropped > 0
    metrics = await scrape(engine.session, engine.url("/metrics"))
    hits = metrics.labelled("realtime_rate_limited_total", "limit")
    assert hits["frame_rate"] == dropped == engine.node.frames_dropped
    assert hits["rest_requests"] == 3 and hits["flooding"] == 0
    assert metrics.labelled("realtime_api_errors_total", "code") == {"rate_limited": 3}


async def test_redis_round_trips_are_a_histogram(engine_factory: EngineFactory) -> None:
    async with redis_connection() as (_, prefix):
        settings = make_settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix=prefix)
        engine = await engine_factory(settings)
        client = await engine.connect()
        await client.subscribe("orders")
        for number in range(4):
            await engine.api("POST", "/api/v1/broadcast", json={"channel": "orders", "event": "e", "data": number})
            await client.expect("e")
        metrics = await scrape(engine.session, engine.url("/metrics"))
        check_histogram(metrics, "realtime_broker_publish_seconds", 4)
        check_histogram(metrics, "realtime_fanout_seconds", 4)
        assert metrics.value("realtime_broker_connected") == 1
        assert metrics.value("realtime_broker_publish_failures_total") == 0
        assert metrics.value("realtime_node_info", node_id="test-node", backends="redis") == 1
        assert metrics.value("realtime_deliveries_total") == 4


async def test_the_platform_serves_outbox_and_recorder_figures(scoped_env: dict[str, str]) -> None:
    async with served(**FAST) as (platform, server), aiohttp.ClientSession() as session:
        url = str(server.make_url("/metrics"))
        orders = await _subscriber(session, server, "orders", private=False)
        await platform.emit("order.created", order=ORDER)
        assert (await orders.receive(timeout=3)).json()["event"] == "order.created"

        async def published() -> bool:
            return (await scrape(session, url)).value("realtime_outbox_published_total") == 1

        await eventually(published)
        metrics = await scrape(session, url)
        # one row, to orders, private-admin.orders and private-customer.7
        assert metrics.labelled("realtime_publications_total", "source") == {"rest": 0, "client": 0, "outbox": 3}
        check_histogram(metrics, "realtime_fanout_seconds", 3)
        assert metrics.value("realtime_outbox_draining") == 1
        assert metrics.value("realtime_outbox_failed_total") == 0
        assert metrics.value("realtime_outbox_depth") >= 0
        assert math.isfinite(metrics.value("realtime_outbox_oldest_age_seconds"))
        assert metrics.value("realtime_recorder_backlog") >= 0
        assert metrics.value("realtime_recorder_dropped_total") == 0
        assert metrics.value("realtime_connections") == 1
        await orders.close()
