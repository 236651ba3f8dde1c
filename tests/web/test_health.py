"""``/healthz`` and ``/readyz`` of one node: no API key, no API middleware, 503 with the reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import Engine, EngineFactory, free_port
from tests.web.test_hardening import migrated_sqlite
from tests.web.test_openapi import SPEC_PATH, call_and_check
from websocket_realtime_engine.web.health import database_check


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))


async def test_healthz_answers_without_an_api_key(engine: Engine, spec: dict[str, Any]) -> None:
    body = await call_and_check(engine, spec, "GET", "/healthz", 200, headers={})
    assert body == {"status": "ok"}


async def test_readyz_without_a_database_checks_the_node_and_the_broker(engine: Engine, spec: dict[str, Any]) -> None:
    body = await call_and_check(engine, spec, "GET", "/readyz", 200, headers={})
    assert body == {"status": "ok", "checks": {"node": "ok", "broker": "ok"}}


async def test_readyz_checks_the_database(tmp_path: Path, engine_factory: EngineFactory, spec: dict[str, Any]) -> None:
    db = await migrated_sqlite(tmp_path / "ready.db")
    engine = await engine_factory(db_engine=db)
    try:
        body = await call_and_check(engine, spec, "GET", "/readyz", 200, headers={})
        assert body["checks"] == {"node": "ok", "database": "ok", "broker": "ok"}
    finally:
        await engine.server.close()  # the node's recorder writes to the database until it stops
        await db.dispose()


async def test_a_database_that_does_not_answer_is_a_reason() -> None:
    # a PostgreSQL port nothing listens on (a failed SQLite connect leaves an aiosqlite thread behind
    # that raises into a later test once this test's event loop is closed)
    db = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test")
    try:
        reason = await database_check(db)
    finally:
        await db.dispose()
    assert reason.startswith("unreachable: ") and len(reason) <= 200


async def test_readyz_is_503_with_the_broker_reason(
    engine: Engine, spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = {"kind": "redis", "broker": {"state": "disconnected", "channels": 0}}
    monkeypatch.setattr(engine.node.backends, "stats", lambda: stats)
    body = await call_and_check(engine, spec, "GET", "/readyz", 503, headers={})
    assert body["status"] == "unavailable"
    assert body["checks"]["node"] == "ok"
    assert body["checks"]["broker"].startswith("disconnected: ")
    assert (await call_and_check(engine, spec, "GET", "/healthz", 200, headers={})) == {"status": "ok"}


async def test_a_node_shutting_down_is_not_ready(engine: Engine, spec: dict[str, Any]) -> None:
    engine.node.accepting = False  # what close_all sets first at shutdown
    body = await call_and_check(engine, spec, "GET", "/readyz", 503, headers={})
    assert body["checks"] == {"node": "shutting down", "broker": "ok"}


async def test_the_api_middleware_does_not_wrap_the_health_routes(engine: Engine) -> None:
    async with engine.session.post(engine.url("/healthz")) as response:
        assert response.status == 405
        assert "error" not in (await response.text()), "aiohttp's own answer, not the API's JSON error"
