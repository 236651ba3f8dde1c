"""Retention and erasure of the durable record, on SQLite and on the PostgreSQL server.

Old rows are pruned in batches (the ``DELETE`` statements are counted as they reach the database),
recent rows, open connections, present members and unpublished outbox rows stay, one pruner at a
time holds the lease, and a node runs the pruner and shows it in ``GET /api/v1/status``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import POSTGRES_URL, EngineFactory, eventually, make_settings
from tests.web.test_openapi import SPEC_PATH, schema_errors
from websocket_realtime_engine.config import SettingsError, load_settings
from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.retention import Retention, customer_channel, erase_user
from websocket_realtime_engine.protocol.channels import channel_id

WEEK = 7 * 24 * 3600.0
OLD = timedelta(days=10)  # older than the default retention of a week
RECENT = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_place(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """An async URL and its connect arguments: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'record.db'}", {}
    schema = request.getfixturevalue("postgres_schema")
    url = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://")
    return url, {"server_settings": {"search_path": schema}}


@pytest.fixture
async def database(database_place: tuple[str, dict[str, Any]]) -> AsyncIterator[AsyncEngine]:
    """An engine on a database holding the realtime tables (SQLite or PostgreSQL)."""
    url, connect_args = database_place
    engine = create_async_engine(url, connect_args=connect_args)
    if url.startswith("sqlite"):
        async with engine.begin() as conn:
            await conn.run_sync(models.Base.metadata.create_all)
    yield engine
    await engine.dispose()


def ago(age: timedelta) -> datetime:
    return datetime.now(UTC) - age


async def add(engine: AsyncEngine, model: type[models.Base], rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(model), rows)


async def count(engine: AsyncEngine, model: type[models.Base], *where: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one())


def message(channel: str, age: timedelta, payload: bytes = b"{}") -> dict[str, Any]:
    return {"channel": channel, "event": "e", "payload": payload, "node_id": "n", "created_at": ago(age)}


def connection(id: str, opened: timedelta, closed: timedelta | None, user_id: str | None = None) -> dict[str, Any]:
    closed_at = ago(closed) if closed is not None else None
    return {"id": id, "node_id": "n", "user_id": user_id, "opened_at": ago(opened), "closed_at": closed_at}


def member(channel: str, user_id: str, joined: timedelta, left: timedelta | None) -> dict[str, Any]:
    left_at = ago(left) if left is not None else None
    return {"channel": channel, "user_id": user_id, "connection_id": "c", "joined_at": ago(joined), "left_at": left_at}


def outbox(created: timedelta, published: timedelta | None, customer_id: str | None = None) -> dict[str, Any]:
    published_at = ago(published) if published is not None else None
    return {
        "kind": "broadcasts",
        "body": "[]",
        "customer_id": customer_id,
        "created_at": ago(created),
        "published_at": published_at,
    }


def server_node(id: str, started: timedelta, stopped: timedelta | None) -> dict[str, Any]:
    stopped_at = ago(stopped) if stopped is not None else None
    return {
        "id": id,
        "host": "h",
        "port": 1,
        "started_at": ago(started),
        "last_seen_at": ago(started),
        "stopped_at": stopped_at,
    }


async def seed_old_and_recent(engine: AsyncEngine) -> None:
    """Old rows that ended (pruned) and rows that are recent or have not ended (kept) in every table."""
    eleven = OLD + timedelta(days=1)
    await add(engine, models.Message, [message("orders", OLD) for _ in range(25)] + [message("orders", RECENT)] * 3)
    await add(
        engine,
        models.Connection,
        [connection(f"old{i}", eleven, OLD) for i in range(12)]
        + [connection("open-old", eleven, None), connection("recent", eleven, RECENT)],
    )
    await add(
        engine,
        models.Presence,
        [member("presence-a", f"u{i}", eleven, OLD) for i in range(12)]
        + [member("presence-a", "still", eleven, None), member("presence-a", "left-lately", eleven, RECENT)],
    )
    await add(
        engine,
        models.OutboxEntry,
        [outbox(eleven, OLD) for _ in range(12)] + [outbox(eleven, None), outbox(eleven, None), outbox(OLD, RECENT)],
    )
    await add(
        engine,
        models.ServerNode,
        [server_node(f"gone{i}", eleven, OLD) for i in range(3)]
        + [server_node("running", eleven, None), server_node("stopped-lately", eleven, RECENT)],
    )


PRUNED_OLD = {
    "realtime_messages": 25,
    "realtime_connections": 12,
    "realtime_presence": 12,
    "realtime_outbox": 12,
    "realtime_server_nodes": 3,
}


async def assert_only_the_kept_rows_are_left(engine: AsyncEngine, running: frozenset[str] = frozenset()) -> None:
    """What :func:`seed_old_and_recent` wrote that must stay is there, and nothing else (but the
    ``running`` nodes' own records; their outbox drainers may have published the waiting rows)."""
    assert await count(engine, models.Message) == 3
    async with engine.connect() as conn:
        connections = set((await conn.execute(select(models.Connection.id))).scalars())
        members = set((await conn.execute(select(models.Presence.user_id))).scalars())
        waiting = await conn.execute(select(func.count()).where(models.OutboxEntry.published_at.is_(None)))
        nodes = set((await conn.execute(select(models.ServerNode.id))).scalars())
    assert connections == {"open-old", "recent"}
    assert members == {"still", "left-lately"}
    if not running:
        assert waiting.scalar_one() == 2, "an unpublished row is never pruned, however old"
    assert await count(engine, models.OutboxEntry) == 3
    assert nodes == {"running", "stopped-lately", *running}


def count_deletes(engine: AsyncEngine) -> collections.Counter[str]:
    """``DELETE`` statements sent to the database from now on, by table."""
    deletes: collections.Counter[str] = collections.Counter()

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM"):
            deletes[statement.split()[2].strip('"')] += 1

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return deletes


async def test_old_rows_are_pruned_in_batches_and_the_rest_is_kept(database: AsyncEngine) -> None:
    await seed_old_and_recent(database)
    deletes = count_deletes(database)
    retention = Retention(database, "node-a", WEEK, batch=10, pause=0.01)
    assert await retention.run_once() == PRUNED_OLD
    await assert_only_the_kept_rows_are_left(database)
    # 25 messages in batches of 10: 10, 10, 5; 12 rows: 10, 2; 3 nodes: one statement
    assert deletes == {
        "realtime_messages": 3,
        "realtime_connections": 2,
        "realtime_presence": 2,
        "realtime_outbox": 2,
        "realtime_server_nodes": 1,
    }
    stats = retention.stats()
    assert stats["enabled"] and stats["last_pruned"] == stats["pruned"] == PRUNED_OLD
    assert isinstance(stats["last_run"], float)
    assert await retention.run_once() == dict.fromkeys(PRUNED_OLD, 0), "nothing old is left"
    await retention.stop()


async def test_two_pruners_at_once_one_holds_the_lease(database: AsyncEngine) -> None:
    await seed_old_and_recent(database)
    first = Retention(database, "node-a", WEEK, batch=10, pause=0.01)
    second = Retention(database, "node-b", WEEK, batch=10, pause=0.01)
    results = await asyncio.gather(first.run_once(), second.run_once())
    assert sorted(results, key=lambda result: result is None) == [PRUNED_OLD, None]
    holder, standby = (first, second) if results[0] is not None else (second, first)
    await assert_only_the_kept_rows_are_left(database)
    assert standby.stats()["last_run"] is None and sum(standby.stats()["pruned"].values()) == 0
    assert await standby.run_once() is None, "the holder keeps the lease between runs"
    await holder.stop()  # gives the lease up: the other node takes over at its next run
    assert await standby.run_once() == dict.fromkeys(PRUNED_OLD, 0)
    await standby.stop()


async def test_a_restarted_node_does_not_inherit_its_old_runs_lease(database: AsyncEngine) -> None:
    killed = Retention(database, "node-a", WEEK)
    assert await killed.run_once() is not None  # never stopped: its lease stays until it expires
    restarted = Retention(database, "node-a", WEEK)
    assert restarted.lease.holder != killed.lease.holder
    assert await restarted.run_once() is None


async def test_erase_user_removes_one_customers_rows_and_no_one_elses(database: AsyncEngine) -> None:
    customers = ("7", "Ann Example")  # an id used as it is, and one that is hashed in channel names
    for customer in (*customers, "8"):
        channel = customer_channel(customer)
        await add(database, models.Message, [message(channel, RECENT), message(channel, OLD)])
        await add(database, models.Channel, [{"name": channel, "type": "private"}])
        await add(database, models.Connection, [connection(f"c-{customer}", OLD, None, customer)])
        await add(database, models.Presence, [member("users:online", customer, RECENT, None)])
        await add(database, models.OutboxEntry, [outbox(RECENT, None, customer), outbox(OLD, RECENT, customer)])
    await add(database, models.Message, [message("orders", RECENT)])
    assert customer_channel("Ann Example") == f"private-customer.{channel_id('Ann Example')}"
    assert customer_channel("Ann Example").startswith("private-customer.=")
    removed = {
        "realtime_messages": 2,
        "realtime_channels": 1,
        "realtime_connections": 1,
        "realtime_presence": 1,
        "realtime_outbox": 2,
    }
    for customer in customers:
        assert await erase_user(database, customer) == removed
        assert await erase_user(database, customer) == dict.fromkeys(removed, 0)
    for model, column in (
        (models.Message, models.Message.channel),
        (models.Channel, models.Channel.name),
    ):
        assert await count(database, model, column.in_([customer_channel(c) for c in customers])) == 0
        assert await count(database, model, column == customer_channel("8")) > 0
    for model, user_column in (
        (models.Connection, models.Connection.user_id),
        (models.Presence, models.Presence.user_id),
        (models.OutboxEntry, models.OutboxEntry.customer_id),
    ):
        assert await count(database, model, user_column.in_(customers)) == 0
        assert await count(database, model, user_column == "8") > 0
    assert await count(database, models.Message, models.Message.channel == "orders") == 1


@pytest.mark.parametrize("bad", ["", "x" * 129])
async def test_erase_user_refuses_an_empty_or_too_long_id(database: AsyncEngine, bad: str) -> None:
    with pytest.raises(ValueError, match="user id"):
        await erase_user(database, bad)


# -- the service a node runs -----------------------------------------------------------------------


async def test_nodes_prune_every_interval_one_at_a_time_and_say_so_in_status(
    database: AsyncEngine, engine_factory: EngineFactory
) -> None:
    await seed_old_and_recent(database)
    nodes = [
        await engine_factory(
            make_settings(node_id=name, retention_interval=0.1, retention_batch=10, db_flush_interval=0.05),
            db_engine=database,
        )
        for name in ("node-a", "node-b")
    ]

    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    schema = {"$ref": "#/components/schemas/RetentionStatus"}

    async def retention_statuses() -> list[dict[str, Any]]:
        answers = [(await node.api("GET", "/api/v1/status"))[1]["retention"] for node in nodes]
        for answer in answers:
            assert schema_errors(spec, schema, answer) == [], "as the API's contract says"
        return answers

    async def one_has_run() -> bool:
        return any(status["last_run"] is not None for status in await retention_statuses())

    await eventually(one_has_run, timeout=5.0)
    await asyncio.sleep(0.3)  # a few more intervals: the standby still does not prune
    statuses = await retention_statuses()
    ran = [status for status in statuses if status["last_run"] is not None]
    assert len(ran) == 1, statuses
    assert ran[0]["enabled"] and ran[0]["failures"] == 0
    for table, rows in PRUNED_OLD.items():
        assert ran[0]["pruned"][table] == rows
    standby = next(status for status in statuses if status["last_run"] is None)
    assert sum(standby["pruned"].values()) == 0 and standby["enabled"]
    await assert_only_the_kept_rows_are_left(database, running=frozenset({"node-a", "node-b"}))


async def test_retention_zero_prunes_nothing(tmp_path: Path, engine_factory: EngineFactory) -> None:
    database = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'record.db'}")
    async with database.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    await seed_old_and_recent(database)
    node = await engine_factory(make_settings(retention=0, retention_interval=0.05), db_engine=database)
    await asyncio.sleep(0.3)
    assert await count(database, models.Message) == 28
    assert await count(database, models.Connection) == 14
    _, status = await node.api("GET", "/api/v1/status")
    retention = status["retention"]
    assert not retention["enabled"] and retention["last_run"] is None and retention["failures"] == 0
    assert sum(retention["pruned"].values()) == 0
    assert await Retention(database, "node-b", 0).run_once() is None, "0 is off, not 'everything is old'"
    assert await count(database, models.Message) == 28
    await database.dispose()


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("REALTIME_RETENTION", "-1", "REALTIME_RETENTION: must be 0"),
        ("REALTIME_RETENTION", "a week", "REALTIME_RETENTION: 'a week' is not a valid value"),
        ("REALTIME_RETENTION_INTERVAL", "0", "REALTIME_RETENTION_INTERVAL: must be greater than 0"),
        ("REALTIME_RETENTION_BATCH", "0", "REALTIME_RETENTION_BATCH: must be greater than 0"),
        ("REALTIME_STORE_PRIVATE_PAYLOADS", "maybe", "REALTIME_STORE_PRIVATE_PAYLOADS: 'maybe' is not a valid value"),
    ],
)
def test_bad_retention_settings_are_refused(tmp_path: Path, variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings({variable: value}, config_file=tmp_path / "none.toml")


def test_retention_defaults(tmp_path: Path) -> None:
    settings = load_settings({}, config_file=tmp_path / "none.toml")
    assert (settings.retention, settings.retention_interval, settings.retention_batch) == (WEEK, 3600.0, 1000)
    assert settings.store_private_payloads is True
    settings = load_settings(
        {"REALTIME_RETENTION": "0", "REALTIME_STORE_PRIVATE_PAYLOADS": "false"}, config_file=tmp_path / "none.toml"
    )
    assert settings.retention == 0 and settings.store_private_payloads is False
