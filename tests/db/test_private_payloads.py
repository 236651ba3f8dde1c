"""``REALTIME_STORE_PRIVATE_PAYLOADS``: off, the record keeps that a private or presence channel carried
an event, and when, but not what it carried; on (the default), every payload is kept. SQLite and
PostgreSQL, through a real node publishing and a real client sending a client message."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import EngineFactory, make_settings
from tests.db.test_retention import database, database_place  # noqa: F401 - the fixtures
from websocket_realtime_engine.db import models

CHANNELS = ("orders", "private-customer.7", "presence-admin", "users:admins")  # public, private, presence x2


async def recorded(db: AsyncEngine, count: int) -> dict[tuple[str, str], bytes | None]:
    """The recorded messages, (channel, event) → payload, once ``count`` are written."""
    async with asyncio.timeout(5):
        while True:
            async with db.connect() as conn:
                rows = (await conn.execute(select(models.Message))).all()
            if len(rows) >= count:
                break
            await asyncio.sleep(0.05)
    assert len(rows) == count
    assert all(row.created_at is not None and row.node_id == "test-node" for row in rows)
    return {(row.channel, row.event): row.payload for row in rows}


@pytest.mark.parametrize("store", [True, False])
async def test_private_and_presence_payloads_are_kept_only_when_the_setting_says_so(
    database: AsyncEngine,  # noqa: F811 - the fixture
    engine_factory: EngineFactory,
    store: bool,
) -> None:
    settings = make_settings(store_private_payloads=store, db_flush_interval=0.05)
    engine = await engine_factory(settings, db_engine=database)
    for channel in CHANNELS:
        await engine.node.publish([channel], "order.created", {"order": {"email": "ann@example.com"}})
    client = await engine.connect()
    await client.subscribe("private-customer.7", auth=client.auth("private-customer.7"))
    await client.send({"event": "message", "channel": "private-customer.7", "data": {"note": "call me"}, "echo": True})
    await client.expect("message")  # echoed: published
    messages = await recorded(database, len(CHANNELS) + 1)
    public = messages[("orders", "order.created")]
    assert public is not None and orjson.loads(public) == {"order": {"email": "ann@example.com"}}, "public: kept"
    for channel in CHANNELS[1:]:
        payload = messages[(channel, "order.created")]
        assert (payload is not None) is store, channel
        if store:
            assert orjson.loads(payload or b"") == {"order": {"email": "ann@example.com"}}
    client_message = messages[("private-customer.7", "message")]
    assert (client_message is not None) is store
