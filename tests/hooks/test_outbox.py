"""Shop events go through the outbox: written in the caller's transaction, published by the drainer.

A real node in this process (the platform's application on a loopback server), real WebSocket
subscribers, the platform database on SQLite (and PostgreSQL where the transaction is tested).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import func, insert, select, text

from shopologic.platform import Platform
from tests.cluster.test_two_nodes import psql
from tests.conftest import POSTGRES_URL, served
from tests.hooks.test_commerce import ORDER, _subscriber
from websocket_realtime_engine.db.lease import DatabaseLease
from websocket_realtime_engine.db.models import OutboxEntry
from websocket_realtime_engine.db.outbox import OutboxRow
from websocket_realtime_engine.db.retention import erase_user
from websocket_realtime_engine.protocol.channels import channel_id
from websocket_realtime_engine.web.app import NODE_KEY

FAST = {"REALTIME_OUTBOX_POLL_INTERVAL": "0.1", "REALTIME_OUTBOX_LEASE_TTL": "0.5"}


@pytest.fixture
async def platform_server(scoped_env: dict[str, str]) -> AsyncIterator[tuple[Platform, TestServer]]:
    async with served(**FAST) as both:
        yield both


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_server(
    request: pytest.FixtureRequest, scoped_env: dict[str, str]
) -> AsyncIterator[tuple[Platform, TestServer]]:
    """The same on SQLite, and on a PostgreSQL database of its own with polling slowed down to 5 s
    (so only NOTIFY can wake the drainer in time)."""
    if request.param == "sqlite":
        async with served(**FAST) as both:
            yield both
        return
    database = f"outbox_{secrets.token_hex(4)}"
    psql(f"create database {database}")
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{database}"
    try:
        async with served(SHOPOLOGIC_DATABASE_URL=url, REALTIME_OUTBOX_POLL_INTERVAL="5") as both:
            yield both
    finally:
        psql(f"drop database if exists {database} with (force)")


async def outbox_rows(platform: Platform) -> list[Any]:
    async with platform.engine.connect() as conn:
        return list((await conn.execute(select(OutboxEntry).order_by(OutboxEntry.id))).all())


ORDERS_TABLE = "create table if not exists shop_orders (id varchar(64) primary key, total varchar(20))"


async def place_order(platform: Platform, order_id: str, fail: bool) -> None:
    """The shop's own unit of work: the order's row and its event, one transaction."""
    async with platform.transaction() as tx:
        await tx.connection.execute(text("insert into shop_orders (id, total) values (:id, '59.90')"), {"id": order_id})
        [row] = await platform.emit("order.created", order={**ORDER, "id": order_id})
        assert isinstance(row, OutboxRow)
        if fail:
            raise RuntimeError("payment declined")


async def test_an_event_is_published_only_if_its_transaction_commits(
    any_server: tuple[Platform, TestServer],
) -> None:
    platform, server = any_server
    async with platform.engine.begin() as conn:
        await conn.execute(text(ORDERS_TABLE))
    async with aiohttp.ClientSession() as session:
        dashboard = await _subscriber(session, server, "orders", private=False)
        with pytest.raises(RuntimeError, match="payment declined"):
            await place_order(platform, "o-declined", fail=True)
        await place_order(platform, "o-paid", fail=False)
        frame = orjson.loads((await dashboard.receive(timeout=3)).data)
        assert frame["event"] == "order.created" and frame["data"]["order"]["id"] == "o-paid"
        with pytest.raises(TimeoutError):
            await dashboard.receive(timeout=0.5)  # the declined order's event never comes
    async with platform.engine.connect() as conn:
        orders = (await conn.execute(text("select id from shop_orders"))).scalars().all()
    assert orders == ["o-paid"]
    rows = await outbox_rows(platform)
    assert len(rows) == 1 and json.loads(rows[0].body)[0][2]["order"]["id"] == "o-paid"
    assert rows[0].published_at is not None and rows[0].customer_id == "7"


async def test_a_caller_without_an_event_loop_writes_synchronously(
    platform_server: tuple[Platform, TestServer],
) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        page = await _subscriber(session, server, "product.5", private=False)
        product = {"id": 5, "name": "Mug", "price": "29.95", "stock": 3}
        # a worker thread runs no event loop: the hook inserts through sqlite3 and returns the row
        results = await asyncio.to_thread(platform.hook.product_stock_changed, product=product, previous_stock=4)
        assert len(results) == 1 and isinstance(results[0], OutboxRow)
        frame = orjson.loads((await page.receive(timeout=3)).data)
        assert frame["event"] == "product.stock_changed" and frame["data"]["previous_stock"] == 4


async def test_a_standby_node_reports_the_waiting_rows_and_takes_over_when_the_lease_is_free(
    platform_server: tuple[Platform, TestServer],
) -> None:
    platform, server = platform_server
    node = server.app[NODE_KEY]
    other = DatabaseLease(platform.engine, "outbox", "another-node@1", ttl=60)
    deadline = time.monotonic() + 5
    while not await other.acquire():  # another node takes the lease from this one
        assert time.monotonic() < deadline
        async with platform.engine.begin() as conn:
            await conn.execute(text("update realtime_leases set expires_at = 0 where name = 'outbox'"))
    await asyncio.sleep(0.6)  # past this node's last renewal: it knows it does not hold the lease
    async with aiohttp.ClientSession() as session:
        listing = await _subscriber(session, server, "products", private=False)
        for stock in range(3):
            await platform.emit(
                "product.stock_changed", product={"id": 5, "name": "Mug", "price": "1"}, previous_stock=stock
            )
        await asyncio.sleep(0.5)
        figures = node.status()["outbox"]
        assert figures["draining"] is False and figures["depth"] == 3 and figures["oldest_age"] > 0.3
        with pytest.raises(TimeoutError):
            await listing.receive(timeout=0.1)
        await other.release()
        frames = [orjson.loads((await listing.receive(timeout=3)).data) for _ in range(3)]
        assert [frame["data"]["previous_stock"] for frame in frames] == [0, 1, 2]
    await asyncio.sleep(0.3)
    figures = node.status()["outbox"]
    assert figures["draining"] is True and figures["depth"] == 0 and figures["published"] == 3


async def test_a_row_that_can_never_be_published_does_not_hold_back_the_rest(
    platform_server: tuple[Platform, TestServer],
) -> None:
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        listing = await _subscriber(session, server, "products", private=False)
        async with platform.transaction() as tx:
            bad = [[["not a channel!"], "product.created", {}]]
            await tx.connection.execute(insert(OutboxEntry).values(kind="broadcasts", body=json.dumps(bad)))
            await platform.emit("product.created", product={"id": 6, "name": "Cup", "price": "2"})
        frame = orjson.loads((await listing.receive(timeout=3)).data)
        assert frame["event"] == "product.created" and frame["data"]["product"]["id"] == "6"
    await asyncio.sleep(0.2)
    assert server.app[NODE_KEY].status()["outbox"]["failed"] == 1
    async with platform.engine.connect() as conn:
        waiting = await conn.scalar(select(func.count()).where(OutboxEntry.published_at.is_(None)))
    assert waiting == 0


async def test_one_lease_holder_at_a_time(platform_server: tuple[Platform, TestServer]) -> None:
    platform, _ = platform_server
    first = DatabaseLease(platform.engine, "test-job", "node-1@1", ttl=0.3)
    second = DatabaseLease(platform.engine, "test-job", "node-2@1", ttl=0.3)
    assert await first.acquire() and first.held
    assert not await second.acquire() and not second.held
    assert await first.acquire(), "the holder renews"
    await asyncio.sleep(0.4)
    assert not first.held
    assert await second.acquire(), "an expired lease is taken over"
    assert not await first.acquire()
    await second.release()
    assert await first.acquire(), "a released lease is free at once"


async def test_ids_that_are_no_channel_names_lose_nothing_from_a_worker(
    platform_server: tuple[Platform, TestServer],
) -> None:
    """A worker (no event loop: the synchronous insert) emits an order of customer ``c 7`` and a
    product ``mug 7/blue``: every channel of both events gets them, under the mapped names."""
    platform, server = platform_server
    customer = f"private-customer.{channel_id('c 7')}"
    async with aiohttp.ClientSession() as session:
        admins = await _subscriber(session, server, "private-admin.orders", private=True)
        theirs = await _subscriber(session, server, customer, private=True)
        page = await _subscriber(session, server, f"product.{channel_id('mug 7/blue')}", private=False)
        listing = await _subscriber(session, server, "products", private=False)
        order = {"id": "1", "customer_id": "c 7", "status": "paid", "total": "1.00"}
        await asyncio.to_thread(platform.hook.order_created, order=order)
        product = {"id": "mug 7/blue", "name": "Mug", "price": "29.95", "stock": 3}
        await asyncio.to_thread(platform.hook.product_created, product=product)
        for ws in (admins, theirs):
            frame = orjson.loads((await ws.receive(timeout=3)).data)
            assert frame["event"] == "order.created" and frame["data"]["order"]["customer_id"] == "c 7"
        for ws in (page, listing):
            frame = orjson.loads((await ws.receive(timeout=3)).data)
            assert frame["event"] == "product.created" and frame["data"]["product"]["id"] == "mug 7/blue"


async def test_an_event_after_an_erased_customer_is_never_taken_for_theirs(
    platform_server: tuple[Platform, TestServer],
) -> None:
    """erase-user deletes the newest outbox row; the next event must get a new id (SQLite
    AUTOINCREMENT) and go out, not be skipped as already published under the erased row's keys."""
    platform, server = platform_server
    async with aiohttp.ClientSession() as session:
        dashboard = await _subscriber(session, server, "orders", private=False)
        [first] = await platform.emit("order.created", order={**ORDER, "id": "a-1", "customer_id": "9"})
        assert orjson.loads((await dashboard.receive(timeout=3)).data)["data"]["order"]["id"] == "a-1"
        assert (await erase_user(platform.engine, "9"))["realtime_outbox"] == 1
        [second] = await platform.emit("order.created", order={**ORDER, "id": "b-2", "customer_id": "10"})
        assert second.id != first.id
        assert orjson.loads((await dashboard.receive(timeout=3)).data)["data"]["order"]["id"] == "b-2"


def test_a_row_key_tells_apart_two_rows_that_had_the_same_id() -> None:
    """A recreated table (PostgreSQL after migrate down/up) gives ids again: the key has the creation time."""
    from datetime import UTC, datetime

    from websocket_realtime_engine.outbox import _row_key

    earlier = datetime(2026, 11, 30, 10, 0, 0, 1, tzinfo=UTC)
    assert _row_key(7, earlier) != _row_key(7, earlier.replace(microsecond=2))
    assert _row_key(7, earlier) == _row_key(7, earlier.replace(tzinfo=None)), "SQLite's naive times are UTC"
