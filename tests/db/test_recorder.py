"""The write-behind recorder against real databases, including one that goes away and comes back."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tests.conftest import POSTGRES_URL, EngineFactory, free_port, make_settings
from tests.web.test_presence import signin
from websocket_realtime_engine.backends import build_backends
from websocket_realtime_engine.db import models
from websocket_realtime_engine.db.recorder import DatabaseRecorder
from websocket_realtime_engine.node import Node
from websocket_realtime_engine.web.app import NODE_KEY, create_app


async def migrated_sqlite(tmp_path: Path) -> AsyncEngine:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rec.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(models.Base.metadata.create_all)
    return engine


async def count(engine: AsyncEngine, table: type[models.Base]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_messages_connections_and_the_node_are_recorded(tmp_path: Path, engine_factory: EngineFactory) -> None:
    db = await migrated_sqlite(tmp_path)
    settings = make_settings(db_flush_interval=0.05)
    engine = await engine_factory(settings, db_engine=db)
    client = await engine.connect()
    await signin(client, "ada")
    await client.subscribe("orders")
    for number in range(5):
        await engine.node.publish(["orders"], "order.created", {"n": number})
    data = '{"user_id":"ada","user_info":{"name":"Ada"}}'
    await client.subscribe("presence-admin", auth=client.auth("presence-admin", data), channel_data=data)
    await client.ws.close()
    await asyncio.sleep(0.3)
    assert await count(db, models.Message) == 5
    async with db.connect() as conn:
        row = (await conn.execute(select(models.Connection))).one()
        assert row.id == client.connection_id and row.closed_at is not None and row.user_id == "ada"
        member = (await conn.execute(select(models.Presence))).one()
        assert (member.channel, member.user_id, member.connection_id) == ("presence-admin", "ada", client.connection_id)
        assert member.user_info == {"name": "Ada"} and member.left_at is not None
        channel = (await conn.execute(select(models.Channel))).one()
        assert channel.name == "orders" and channel.type == "public"
        node = (await conn.execute(select(models.ServerNode))).one()
        assert node.id == "test-node" and node.stopped_at is None
    await engine.server.close()
    async with db.connect() as conn:
        assert (await conn.execute(select(models.ServerNode.stopped_at))).scalar_one() is not None
    await db.dispose()


class Switch:
    """A TCP proxy on loopback to a real PostgreSQL that can be cut (connections refused and dropped)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.enabled = True
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers.update((writer, up_writer))
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            self.tasks.add(asyncio.create_task(task))

    def cut(self) -> None:
        self.enabled = False
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    async def stop(self) -> None:
        self.cut()
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def switched_postgres(schema: str) -> tuple[Switch, AsyncEngine]:
    """The test PostgreSQL (tables in ``schema``) through a started :class:`Switch`, and an engine on it."""
    switch = Switch(5432)
    await switch.start()
    user_host = POSTGRES_URL.split("://", 1)[1].split("@", 1)[0]
    database = POSTGRES_URL.rsplit("/", 1)[1]
    db = create_async_engine(
        f"postgresql+asyncpg://{user_host}@127.0.0.1:{switch.port}/{database}",
        pool_pre_ping=True,
        connect_args={"server_settings": {"search_path": schema}, "timeout": 2},
    )
    return switch, db


async def test_an_unreachable_database_delays_no_delivery_and_the_backlog_is_written_later(
    postgres_schema: str, engine_factory: EngineFactory
) -> None:
    switch, db = await switched_postgres(postgres_schema)
    settings = make_settings(db_flush_interval=0.05, db_backlog_limit=30, db_retry_max_delay=0.3)
    engine = await engine_factory(settings, db_engine=db)
    client = await engine.connect()
    await client.subscribe("orders")
    switch.cut()
    for number in range(40):  # 40 messages, 2 connection records: room for 30
        await engine.node.publish(["orders"], "e", number)
    received = [(await client.recv())["data"] for _ in range(40)]
    assert received == list(range(40))  # delivered while the database is down
    await asyncio.sleep(0.5)
    stats = engine.node.recorder.stats()
    assert stats["failures"] >= 1 and stats["dropped"] == 40 + 1 - 30 and stats["backlog"] == 30
    switch.enabled = True
    for _ in range(100):  # back-off grows to db_retry_max_delay
        if engine.node.recorder.stats()["backlog"] == 0:
            break
        await asyncio.sleep(0.1)
    assert engine.node.recorder.stats()["backlog"] == 0
    assert await count(db, models.Message) == 29  # the first record in the backlog is the connection
    await engine.server.close()
    await db.dispose()
    await switch.stop()


def test_node_accepts_a_recorder_instance() -> None:
    settings = make_settings()
    recorder = DatabaseRecorder(create_async_engine("sqlite+aiosqlite://"), settings.node_id)
    node = Node(settings, build_backends(settings), recorder=recorder)
    assert node.recorder is recorder and recorder in node.observers.observers
    assert NODE_KEY is not None and create_app is not None


async def test_a_late_reap_leaves_the_rows_of_a_newer_run_under_the_same_id_open(tmp_path: Path) -> None:
    db = await migrated_sqlite(tmp_path)
    survivor = DatabaseRecorder(db, "node-a", interval=0.05)
    restarted = DatabaseRecorder(db, "node-b", interval=0.05)
    survivor.node_reaped("node-b")  # claimed before the new run started; written only later
    await asyncio.sleep(0.01)
    await restarted.start("node-b", "127.0.0.1", 8082)
    restarted.connection_opened("1.1", "node-b", "127.0.0.1")
    await asyncio.sleep(0.2)
    await survivor.start("node-a", "127.0.0.1", 8081)
    await asyncio.sleep(0.2)
    async with db.connect() as conn:
        connection = (await conn.execute(select(models.Connection))).one()
        assert connection.id == "1.1" and connection.closed_at is None, "the new run's connection stays open"
        stopped = await conn.execute(select(models.ServerNode.stopped_at).where(models.ServerNode.id == "node-b"))
        assert stopped.scalar_one() is None, "the new run's node row has no end"
    for recorder, node_id in ((survivor, "node-a"), (restarted, "node-b")):
        await recorder.stop(node_id)
    await db.dispose()


async def test_presence_joins_count_toward_the_backlog_bytes_and_are_written_as_they_came(
    tmp_path: Path, caplog: Any
) -> None:
    db = await migrated_sqlite(tmp_path)
    recorder = DatabaseRecorder(db, "n", interval=0.05, backlog_max_bytes=100_000)
    info = {"name": "Ada", "tags": [[["deep"] * 10] * 10] * 10}  # ~9 KB of JSON, much more as objects
    with caplog.at_level("WARNING", logger="realtime.recorder"):
        for number in range(20):
            recorder.presence_joined("presence-room", f"1.{number}", "ada", info)
    assert len([r for r in caplog.records if "records dropped" in r.getMessage()]) == 1, "logged once"
    held = recorder.backlog_bytes
    assert recorder.stats()["backlog"] < 20 and recorder.dropped > 0, "the byte limit stopped the joins"
    assert 0 < held <= 100_000
    await recorder.start("n", "127.0.0.1", 8080)
    await asyncio.sleep(0.3)
    assert recorder.backlog_bytes == 0 and recorder.stats()["backlog"] == 0
    async with db.connect() as conn:
        rows = (await conn.execute(select(models.Presence.user_info))).scalars().all()
    assert rows and all(row == info for row in rows)
    await recorder.stop("n")
    await db.dispose()
