"""The publish path's pipelined connection: concurrent commands on one connection, each caller its own
reply, an error reply for one caller only, and a Redis that stops answering taking the connection down."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from tests.backends.conftest import redis_connection
from tests.backends.test_redis_broker import PrivateRedis, private_redis  # noqa: F401 (the fixture)
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.redis_calls import PipelinedConnection


async def test_concurrent_calls_share_one_connection_and_get_their_own_replies() -> None:
    async with redis_connection() as (client, prefix):
        pipeline = PipelinedConnection(client, timeout=2.0)
        try:
            counter = f"{prefix}counter"
            replies = await asyncio.gather(*(pipeline.call("INCR", counter) for _ in range(200)))
            assert replies == list(range(1, 201)), "sent in call order, each caller its own reply"
            assert len(client.connection_pool._in_use_connections) == 1, "one connection held, for the pipeline"
        finally:
            await pipeline.close()
        assert len(client.connection_pool._in_use_connections) == 0, "closing gives it back"


async def test_an_error_reply_fails_its_caller_only() -> None:
    async with redis_connection() as (client, prefix):
        pipeline = PipelinedConnection(client, timeout=2.0)
        try:
            key = f"{prefix}text"
            await pipeline.call("SET", key, b"not a number")
            results = await asyncio.gather(
                pipeline.call("INCR", key), pipeline.call("GET", key), return_exceptions=True
            )
            assert isinstance(results[0], redis.ResponseError) and results[1] == b"not a number"
            assert await pipeline.call("PING") == b"PONG", "the connection is still in use"
        finally:
            await pipeline.close()


async def test_a_silent_redis_fails_the_waiting_calls_then_the_next_connection_works(
    private_redis: PrivateRedis,  # noqa: F811 (the fixture)
) -> None:
    await private_redis.start()
    client = redis.Redis(port=private_redis.port, socket_timeout=0.5, socket_connect_timeout=0.5)
    pipeline = PipelinedConnection(client, timeout=0.5)
    try:
        assert await pipeline.call("INCR", "n") == 1
        private_redis.pause()
        started = time.monotonic()
        results = await asyncio.gather(*(pipeline.call("INCR", "n") for _ in range(3)), return_exceptions=True)
        assert all(isinstance(result, UnavailableError) for result in results), results
        assert "no answer within 0.5 s" in str(results[0])
        assert time.monotonic() - started < 1.5, "every waiting call fails within the timeout"
        private_redis.resume()
        # the frozen connection was dropped; Redis may still run the commands it had read, so the count is 2..5
        assert 2 <= await pipeline.call("INCR", "n") <= 5
        assert await pipeline.call("PING") == b"PONG"
    finally:
        private_redis.resume()
        await pipeline.close()
        await client.aclose()


async def test_close_fails_the_calls_still_waiting(private_redis: PrivateRedis) -> None:  # noqa: F811
    await private_redis.start()
    client = redis.Redis(port=private_redis.port)
    pipeline = PipelinedConnection(client, timeout=5.0)
    try:
        await pipeline.call("PING")
        private_redis.pause()
        waiting = asyncio.ensure_future(pipeline.call("PING"))
        await asyncio.sleep(0.1)
        await pipeline.close()
        with pytest.raises(UnavailableError, match="closed"):
            await waiting
    finally:
        private_redis.resume()
        await client.aclose()
