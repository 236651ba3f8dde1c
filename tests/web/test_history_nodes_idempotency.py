"""One node's REST answers for the cluster routes: channel history, live nodes, idempotent broadcasts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from tests.conftest import Engine, EngineFactory, make_settings
from tests.web.test_openapi import SPEC_PATH, call_and_check
from websocket_realtime_engine import errors


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


def tick(number: int, **extra: Any) -> dict[str, Any]:
    """A broadcast body of a ``tick`` event to ``orders``."""
    return {"channel": "orders", "event": "tick", "data": {"n": number}, **extra}


# -- GET /api/v1/channels/{name}/history -------------------------------------------------------------


async def test_history_gives_the_newest_oldest_first_with_the_position(engine: Engine, spec: dict[str, Any]) -> None:
    client = await engine.connect()
    subscribed = await client.subscribe("orders")
    for number in range(1, 6):
        await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=tick(number))
    await engine.node.publish(["orders"], "empty", None)
    body = await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/history?limit=3", 200)
    epoch = subscribed["epoch"]
    assert body == {
        "channel": "orders",
        "offset": 6,
        "epoch": epoch,
        "publications": [
            {"event": "tick", "data": {"n": 4}, "offset": 4, "epoch": epoch},
            {"event": "tick", "data": {"n": 5}, "offset": 5, "epoch": epoch},
            {"event": "empty", "offset": 6, "epoch": epoch},
        ],
    }
    every = await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/history", 200)
    assert [publication["offset"] for publication in every["publications"]] == [1, 2, 3, 4, 5, 6]


async def test_history_keeps_at_most_the_history_size(engine_factory: EngineFactory, spec: dict[str, Any]) -> None:
    engine: Engine = await engine_factory(make_settings(history_size=2))
    for number in range(4):
        await engine.node.publish(["orders"], "tick", number)
    body = await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/history?limit=10", 200)
    assert [p["data"] for p in body["publications"]] == [2, 3] and body["offset"] == 4


async def test_history_of_an_unused_channel_is_empty(engine: Engine, spec: dict[str, Any]) -> None:
    body = await call_and_check(engine, spec, "GET", "/api/v1/channels/never-used/history", 200)
    assert body["offset"] == 0 and body["publications"] == [] and body["epoch"]


async def test_history_refuses_bad_requests(engine: Engine, spec: dict[str, Any]) -> None:
    for path in ("orders/history?limit=0", "orders/history?limit=1001", "orders/history?limit=x", "bad%20name/history"):
        error = await call_and_check(engine, spec, "GET", f"/api/v1/channels/{path}", 400)
        assert error["error"]["code"] in {"invalid_request", "invalid_channel"}
    await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/history", 401, headers={})


async def test_history_shows_who_sent_a_client_message(engine_factory: EngineFactory, spec: dict[str, Any]) -> None:
    engine: Engine = await engine_factory(make_settings(client_message_types=("public",)))
    await engine.node.publish(["orders"], "message", {"text": "hi"}, user_id="42")
    body = await call_and_check(engine, spec, "GET", "/api/v1/channels/orders/history", 200)
    assert body["publications"][0]["user_id"] == "42"


# -- GET /api/v1/nodes -----------------------------------------------------------------------------


async def test_nodes_lists_this_node_from_the_registry(engine: Engine, spec: dict[str, Any]) -> None:
    await engine.connect()
    await engine.node.membership._beat()  # the heartbeat the node sends every REALTIME_NODE_HEARTBEAT s
    body = await call_and_check(engine, spec, "GET", "/api/v1/nodes", 200)
    assert body["count"] == 1 and list(body["nodes"]) == ["test-node"]
    info = body["nodes"]["test-node"]
    assert info["connections"] == 1 and info["started_at"] <= info["last_seen"]
    await call_and_check(engine, spec, "GET", "/api/v1/nodes", 401, headers={})


async def test_nodes_is_503_when_the_registry_cannot_be_read(
    engine: Engine, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable() -> dict[str, Any]:
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(engine.node.registry, "nodes", unreachable)
    error = await call_and_check(engine, spec, "GET", "/api/v1/nodes", 503)
    assert error["error"]["code"] == "unavailable"


# -- POST /api/v1/broadcast with an idempotency_key -------------------------------------------------


async def test_a_retry_with_the_same_key_is_not_published_again(engine: Engine, spec: dict[str, Any]) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    body = tick(1, idempotency_key="order-1-paid")
    first = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=body)
    retry = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=body)
    assert first == {"published": {"channels": ["orders"], "event": "tick"}, "duplicate": False}
    assert retry == {**first, "duplicate": True}
    assert (await client.expect("tick"))["data"] == {"n": 1}
    await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=tick(2, idempotency_key="other"))
    assert (await client.expect("tick"))["data"] == {"n": 2}
    await client.nothing(0.2)
    assert engine.node.published == 2


async def test_a_key_is_remembered_for_the_idempotency_ttl(engine_factory: EngineFactory) -> None:
    engine: Engine = await engine_factory(make_settings(idempotency_ttl=0.2))
    assert await engine.node.publish(["orders"], "tick", 1, idempotency_key="k")
    assert await engine.node.publish(["orders"], "tick", 1, idempotency_key="k") == []
    await asyncio.sleep(0.3)
    assert await engine.node.publish(["orders"], "tick", 1, idempotency_key="k")


async def test_without_a_key_every_broadcast_is_published(engine: Engine, spec: dict[str, Any]) -> None:
    for _ in range(2):
        body = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=tick(1, idempotency_key=None))
        assert "duplicate" not in body
    assert engine.node.published == 2


async def test_a_key_must_be_1_to_128_characters(engine: Engine, spec: dict[str, Any]) -> None:
    for key in ("", "k" * 129, 7):
        error = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 400, json=tick(1, idempotency_key=key))
        assert error["error"]["message"].startswith("idempotency_key: ")
    await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=tick(1, idempotency_key="k" * 128))


async def test_a_failed_publish_forgets_the_key_so_a_retry_publishes(
    engine: Engine, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await engine.connect()
    await client.subscribe("orders")
    publish = engine.node.broker.publish

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise errors.UnavailableError("the broker cannot be reached")

    monkeypatch.setattr(engine.node.broker, "publish", down)
    body = tick(1, idempotency_key="retry-me")
    error = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 503, json=body)
    assert error["error"]["code"] == "unavailable"
    monkeypatch.setattr(engine.node.broker, "publish", publish)
    retry = await call_and_check(engine, spec, "POST", "/api/v1/broadcast", 200, json=body)
    assert retry["duplicate"] is False
    assert (await client.expect("tick"))["data"] == {"n": 1}
