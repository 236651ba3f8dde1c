"""How fast shop events go into the outbox and out of it, on one node.

    .venv/bin/python scripts/bench_outbox.py [--events 5000] [--database-url URL] [--redis-url URL]

Emits ``--events`` product events with ``await platform.emit`` while no node runs (the emit rate:
one INSERT and commit each), then starts a node and times the drain until every row is published
(the drain rate: each row two publications, marked in batches). SQLite in a temporary folder by
default; a PostgreSQL URL is used as given (the tables are created by activation: use an empty
database). ``--redis-url`` drains through the Redis broker (a key prefix of its own, removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp.test_utils import TestServer  # noqa: E402

from shopologic.config import HostSettings  # noqa: E402
from shopologic.platform import Platform  # noqa: E402
from websocket_realtime_engine import PLUGIN_NAME  # noqa: E402
from websocket_realtime_engine.web.app import NODE_KEY  # noqa: E402


async def run(events: int, database_url: str, redis_url: str) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-outbox-"))
    os.environ.update(
        {
            "SHOPOLOGIC_VAR_DIR": str(folder),
            "SHOPOLOGIC_DATABASE_URL": database_url or f"sqlite:///{folder / 'platform.db'}",
            "REALTIME_CONFIG_FILE": str(folder / "realtime.toml"),
            "REALTIME_LOG_LEVEL": "warning",
            "REALTIME_REDIS_URL": redis_url,
            "REALTIME_REDIS_PREFIX": f"bench-outbox-{secrets.token_hex(4)}:",
        }
    )
    platform = Platform(HostSettings.from_env())
    await platform.load()
    await platform.activate(PLUGIN_NAME)
    started = time.perf_counter()
    for number in range(events):
        product = {"id": f"p{number % 50}", "name": "Mug", "price": "9.90", "stock": number}
        await platform.emit("product.stock_changed", product=product, previous_stock=number + 1)
    emitting = time.perf_counter() - started
    server = TestServer(platform.build_app(only=PLUGIN_NAME), host="127.0.0.1")
    started = time.perf_counter()
    await server.start_server()
    node = server.app[NODE_KEY]
    while node.status_sections.get("outbox") is None or node.status()["outbox"]["published"] < events:
        await asyncio.sleep(0.01)
    draining = time.perf_counter() - started
    await server.close()
    await platform.close()
    backend = "redis" if redis_url else "memory"
    database = platform.settings.database_url.split("+", 1)[0]
    print(f"{events} events, {database}, {backend} broker")
    print(f"  emit  {events / emitting:8.0f} events/s  ({emitting:.2f} s; one INSERT and commit each)")
    print(f"  drain {events / draining:8.0f} events/s  ({draining:.2f} s from the node's start; 2 publications each)")
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{os.environ['REALTIME_REDIS_PREFIX']}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    asyncio.run(run(args.events, args.database_url, args.redis_url))


if __name__ == "__main__":
    main()
