"""``python bootstrap_plugins.py websocket erase-user ID``, run as users run it (a subprocess), on SQLite
and on a PostgreSQL database of its own, with the channel's history in Redis under a key prefix of
the test's own: none of that customer's records is left, another customer's all are."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import redis.asyncio as redis
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shopologic.config import normalize_database_url
from tests.conftest import REDIS_URL, own_redis_prefix
from tests.db.test_migrations import database_url, postgres_database  # noqa: F401 - the fixtures
from tests.host.test_cli import Cli, assert_ok, assert_one_line_error
from websocket_realtime_engine import PLUGIN_NAME
from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.retention import customer_channel
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.publication import Publication

CUSTOMERS = ("7", "Ann Example")  # erased: an id used as it is, and one hashed in its channel's name
OTHER = "8"


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A Redis key prefix of this test's own, its keys deleted afterwards."""
    async with own_redis_prefix("erase") as prefix:
        yield prefix


async def seed(db: AsyncEngine, customer: str) -> None:
    """A customer's rows in every table erase-user clears, and an order on the public channel."""
    now, channel = datetime.now(UTC), customer_channel(customer)
    rows: list[tuple[type[models.Base], dict[str, object]]] = [
        (models.Message, {"channel": channel, "event": "order.created", "payload": b"{}", "node_id": "n"}),
        (models.Message, {"channel": "orders", "event": "order.created", "payload": b"{}", "node_id": "n"}),
        (models.Channel, {"name": channel, "type": "private"}),
        (models.Connection, {"id": f"1.{customer}", "node_id": "n", "user_id": customer, "closed_at": now}),
        (models.Presence, {"channel": "users:online", "user_id": customer, "connection_id": f"1.{customer}"}),
        (models.OutboxEntry, {"kind": "broadcasts", "body": "[]", "customer_id": customer}),
        (models.OutboxEntry, {"kind": "broadcasts", "body": "[]", "customer_id": customer, "published_at": now}),
    ]
    async with db.begin() as conn:
        for model, values in rows:
            await conn.execute(insert(model).values(**values))


async def rows_of(db: AsyncEngine, customer: str) -> dict[str, int]:
    """The customer's rows left, by table."""
    channel = customer_channel(customer)
    whose = {
        "realtime_messages": (models.Message, models.Message.channel == channel),
        "realtime_channels": (models.Channel, models.Channel.name == channel),
        "realtime_connections": (models.Connection, models.Connection.user_id == customer),
        "realtime_presence": (models.Presence, models.Presence.user_id == customer),
        "realtime_outbox": (models.OutboxEntry, models.OutboxEntry.customer_id == customer),
    }
    async with db.connect() as conn:
        return {
            table: int((await conn.execute(select(func.count()).select_from(model).where(where))).scalar_one())
            for table, (model, where) in whose.items()
        }


async def append_history(prefix: str, customer: str) -> list[str]:
    """A publication in the customer's channel history, through the engine's own Redis history."""
    client = redis.Redis.from_url(REDIS_URL)
    history = RedisHistory(client, prefix, 10, 60.0)
    channel = customer_channel(customer)
    await history.append(Publication(channel, "order.created", b"{}"))
    keys = history.keys(channel)
    await history.close()
    await client.aclose()
    return keys


async def existing(keys: list[str]) -> int:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(await client.exists(*keys))
    finally:
        await client.aclose()


async def test_erase_user_leaves_none_of_the_customers_records_and_all_of_anothers(
    cli: Cli,
    database_url: str,  # noqa: F811 - the fixture: SQLite, then a PostgreSQL database of its own
    redis_prefix: str,
) -> None:
    env = {
        "SHOPOLOGIC_DATABASE_URL": database_url,
        "REALTIME_REDIS_URL": REDIS_URL,
        "REALTIME_REDIS_PREFIX": redis_prefix,
    }
    assert_ok(cli("plugin", "activate", PLUGIN_NAME, env=env))  # the migrations create the tables
    db = create_async_engine(normalize_database_url(database_url))
    try:
        keys = {}
        for customer in (*CUSTOMERS, OTHER):
            await seed(db, customer)
            keys[customer] = await append_history(redis_prefix, customer)
            assert await existing(keys[customer]) == 2
        for customer in CUSTOMERS:
            output = assert_ok(cli("websocket", "erase-user", customer, env=env))
            assert output.splitlines() == [
                f"removed the records of user {customer!r} (channel {customer_channel(customer)}):",
                "  realtime_messages: 1",
                "  realtime_channels: 1",
                "  realtime_connections: 1",
                "  realtime_presence: 1",
                "  realtime_outbox: 2",
                "  Redis history keys: 2",
            ]
            assert await rows_of(db, customer) == dict.fromkeys(await rows_of(db, OTHER), 0)
            assert await existing(keys[customer]) == 0
        assert set((await rows_of(db, OTHER)).values()) == {1, 2}, "another customer's records are all kept"
        assert await existing(keys[OTHER]) == 2
        async with db.connect() as conn:
            public = select(func.count()).where(models.Message.channel == "orders")
            assert (await conn.execute(public)).scalar_one() == 3, "the public channel's messages are kept"
        again = assert_ok(cli("websocket", "erase-user", "7", env=env))
        assert "  realtime_outbox: 0" in again.splitlines() and "  Redis history keys: 0" in again.splitlines()
    finally:
        await db.dispose()


@pytest.mark.parametrize(("user_id", "fragment"), [("", "the user id is empty"), ("x" * 129, "129 characters")])
def test_an_empty_or_too_long_id_is_one_error_line(cli: Cli, user_id: str, fragment: str) -> None:
    assert_one_line_error(cli("websocket", "erase-user", user_id), fragment)


def test_erase_user_without_the_engines_tables_is_one_error_line(cli: Cli) -> None:
    assert_one_line_error(cli("websocket", "erase-user", "7"), "could not erase the records of user '7'")


def test_erase_user_with_redis_away_says_what_is_left(cli: Cli) -> None:
    assert_ok(cli("plugin", "activate", PLUGIN_NAME))
    result = cli("websocket", "erase-user", "7", env={"REALTIME_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert "  realtime_messages: 0" in result.stdout.splitlines(), "the database part is done and said"
    assert_one_line_error(result, "the database records are removed, not the Redis history of private-customer.7")
