"""``GET /metrics``: the node's figures as Prometheus text (``prometheus-client``).

A custom collector reads, at scrape time, what the node already counts for ``GET /api/v1/status``
(its counters, the broker's, the recorder's, the outbox drainer's, the connection throttle's, the
REST API's errors by code); the hot path gains no work for it but two histograms observed once per
publication (``Node.fanout_latency``, ``Node.broker_round_trip``). docs/metrics.md lists every metric.

Readable by anyone by default (the figures hold no personal data, no channel or user name); with
``REALTIME_METRICS_TOKEN`` set, only with ``Authorization: Bearer <token>`` (a JSON 401 otherwise).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from websocket_realtime_engine.node import Node
from websocket_realtime_engine.web.admin import is_admin
from websocket_realtime_engine.web.keys import NODE_KEY
from websocket_realtime_engine.web.rest import BUCKETS_KEY, RequestLimits, error_response
from websocket_realtime_engine.web.throttle import ConnectionThrottle

METRICS_PATH = "/metrics"
REGISTRY_KEY = web.AppKey("realtime.metrics", CollectorRegistry)
SOURCES = ("rest", "client", "outbox")  # always shown, 0 until the first publication of each


# every metric's help text, by name (counters without their ``_total``); docs/metrics.md says more
HELP = {
    "realtime_node": "This node's id and backends",
    "realtime_start_time_seconds": "When the node started, in Unix time",
    "realtime_connections": "Open client connections on this node",
    "realtime_users": "Signed-in users with a connection on this node",
    "realtime_channels": "Channels with a subscriber on this node",
    "realtime_subscriptions": "Subscriptions (a connection on a channel) on this node",
    "realtime_client_messages": "Client message requests received",
    "realtime_publications": "Publications made by this node, one per channel, by source",
    "realtime_deliveries": "Publications queued for local subscribers, one per subscriber",
    "realtime_client_errors": "Error frames sent to clients, by error name",
    "realtime_api_errors": "REST API error answers, by code",
    "realtime_slow_consumers": "Connections closed as slow consumers",
    "realtime_rate_limited": "Rate-limit hits, by limit",
    "realtime_handshake_timeouts": "Connections closed before completing a request in time",
    "realtime_hook_events_dropped": "Events dropped from the plugins' hook queue",
    "realtime_broker_connected": "1 when the broker delivers to this node",
    "realtime_broker_publish_failures": "Publishes the broker could not make",
    "realtime_broker_disconnections": "Times the broker's subscription connection was lost",
    "realtime_recorder_backlog": "Records waiting to be written to the database",
    "realtime_recorder_written": "Records written to the database",
    "realtime_recorder_dropped": "Records dropped past the backlog's limits",
    "realtime_recorder_failures": "Failed attempts to write to the database",
    "realtime_outbox_depth": "Shop events waiting in the outbox, at this node's last look",
    "realtime_outbox_oldest_age_seconds": "Age of the oldest waiting outbox row, at this node's last look",
    "realtime_outbox_draining": "1 when this node drains the outbox",
    "realtime_outbox_published": "Outbox rows this node published",
    "realtime_outbox_failed": "Outbox rows that could not be published",
}


def _gauge(name: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, HELP[name], value=value)


def _counter(name: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, HELP[name], value=value)


def _labelled(name: str, label: str, values: Mapping[str, float]) -> CounterMetricFamily:
    """A counter with one label, one sample per key of ``values``, sorted."""
    family = CounterMetricFamily(name, HELP[name], labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(histogram: Histogram) -> list[Metric]:
    """A histogram's buckets, count and sum, without the ``_created`` series (its creation time: the
    node's start time says that once)."""
    families = list(histogram.collect())
    for family in families:  # made anew at each collect: changing them changes nothing else
        family.samples = [sample for sample in family.samples if not sample.name.endswith("_created")]
    return families


class NodeCollector(Collector):
    """The node's figures, read when Prometheus scrapes.

    :param node: the node.
    :param api: the REST API's application (its errors by code, its 429s).
    :param throttle: the connection throttle of the node's application (its refusals).
    """

    def __init__(self, node: Node, api: web.Application, throttle: ConnectionThrottle) -> None:
        self.node = node
        self.api = api
        self.throttle = throttle

    def collect(self) -> Iterator[Metric]:
        yield from self._node()
        yield from self._messages()
        yield from self._problems()
        yield from self._broker()
        yield from self._recorder()
        yield from self._outbox()

    def _node(self) -> Iterable[Metric]:
        node, hub = self.node, self.node.hub
        info = InfoMetricFamily("realtime_node", HELP["realtime_node"])
        info.add_metric([], {"node_id": node.settings.node_id, "backends": node.backends.kind})
        subscriptions = sum(map(len, hub.channels.values())) + sum(map(len, hub.pending.values()))
        return [
            info,
            _gauge("realtime_start_time_seconds", node.started_at),
            _gauge("realtime_connections", len(node.connections)),
            _gauge("realtime_users", len(node.users)),
            _gauge("realtime_channels", len(hub.names())),
            _gauge("realtime_subscriptions", subscriptions),
        ]

    def _messages(self) -> Iterable[Metric]:
        node = self.node
        return [
            _counter("realtime_client_messages", node.client_messages),
            _labelled("realtime_publications", "source", {**dict.fromkeys(SOURCES, 0), **node.publications}),
            _counter("realtime_deliveries", node.deliveries),
            *_histogram(node.fanout_latency),
        ]

    def _problems(self) -> Iterable[Metric]:
        node, throttle = self.node, self.throttle
        limits: RequestLimits | None = self.api[BUCKETS_KEY].get(RequestLimits)
        api_errors = dict(limits.errors) if limits is not None else {}
        rate_limited = {
            "frame_rate": node.frames_dropped,
            "flooding": node.flooding_closed,
            "rest_requests": api_errors.get("rate_limited", 0),
            **throttle.refused,  # connections refused: http_connections, address_connections, connection_rate
        }
        return [
            _labelled("realtime_client_errors", "error", node.client_errors),
            _labelled("realtime_api_errors", "code", api_errors),
            _counter("realtime_slow_consumers", node.slow_consumers),
            _labelled("realtime_rate_limited", "limit", rate_limited),
            _counter("realtime_handshake_timeouts", throttle.timed_out),
            _counter("realtime_hook_events_dropped", node.events.dropped),
        ]

    def _broker(self) -> Iterable[Metric]:
        stats: dict[str, Any] | None = self.node.backends.stats().get("broker")
        if stats is None:  # the memory broker: no round trip, never disconnected
            return []
        return [
            _gauge("realtime_broker_connected", float(stats["state"] == "connected")),
            _counter("realtime_broker_publish_failures", stats["publish_failures"]),
            _counter("realtime_broker_disconnections", stats["disconnections"]),
            *_histogram(self.node.broker_round_trip),
        ]

    def _recorder(self) -> Iterable[Metric]:
        stats = self.node.recorder.stats()
        if not stats:  # no durable record (no database)
            return []
        return [
            _gauge("realtime_recorder_backlog", stats["backlog"]),
            _counter("realtime_recorder_written", stats["written"]),
            _counter("realtime_recorder_dropped", stats["dropped"]),
            _counter("realtime_recorder_failures", stats["failures"]),
        ]

    def _outbox(self) -> Iterable[Metric]:
        section = self.node.status_sections.get("outbox")
        if section is None:  # no database, so no outbox
            return []
        stats = section()
        return [
            _gauge("realtime_outbox_depth", stats["depth"]),
            _gauge("realtime_outbox_oldest_age_seconds", stats["oldest_age"]),
            _gauge("realtime_outbox_draining", float(stats["draining"])),
            _counter("realtime_outbox_published", stats["published"]),
            _counter("realtime_outbox_failed", stats["failed"]),
        ]


def _authorised(request: web.Request, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``; constant-time."""
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # aiohttp keeps undecodable header bytes as surrogates: encode them back, never raise
    value = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(value, token.encode())


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: the figures; with ``REALTIME_METRICS_TOKEN`` set, only with it as a Bearer token
    (or for an admin: the admin token as a Bearer token, or the admin cookie)."""
    token = request.app[NODE_KEY].settings.metrics_token
    if token and not (_authorised(request, token) or is_admin(request)):
        response = error_response(401, "unauthorized", "missing or wrong metrics token (Authorization: Bearer <token>)")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # the Prometheus text format (0.0.4), or OpenMetrics when the scraper asks for it, as the library chooses
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encode(request.app[REGISTRY_KEY]), headers={"Content-Type": content_type})


def add_metrics_route(app: web.Application, node: Node, api: web.Application, throttle: ConnectionThrottle) -> None:
    """``GET /metrics`` on the node's application, with a registry of its own (one per node, so
    several nodes in one process never share a figure)."""
    registry = app[REGISTRY_KEY] = CollectorRegistry(auto_describe=False)
    registry.register(NodeCollector(node, api, throttle))
    app.router.add_get(METRICS_PATH, metrics)
