"""Alembic environment of the realtime engine's tables.

The host passes the database URL, the version table and the table prefix in
``config.attributes``; ``include_name`` keeps alembic to the tables starting with ``realtime_``, so
it never touches the host's tables or another plugin's.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from websocket_realtime_engine.db.models import TABLE_PREFIX, Base

config = context.config
url = str(config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url"))
version_table = config.attributes.get("version_table", "realtime_alembic_version")
prefix = config.attributes.get("table_prefix", TABLE_PREFIX)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return bool(name) and name.startswith(prefix)  # type: ignore[union-attr]
    return True


def configure(connection: Connection | None = None) -> None:
    context.configure(
        connection=connection,
        url=None if connection is not None else url,
        target_metadata=Base.metadata,
        version_table=version_table,
        include_name=include_name,
        render_as_batch=True,
        compare_type=True,
        literal_binds=connection is None,
    )


def run_sync_migrations(connection: Connection) -> None:
    configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_sync_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    configure()
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async_migrations())
