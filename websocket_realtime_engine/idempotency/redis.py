"""Idempotency keys in Redis, shared by every node of a cluster: a retry sent to another node is
recognised too.

Keys (``<prefix>`` is the deployment's):

- ``<prefix>idempotency:<key>`` string ``1``, expiring ``ttl`` seconds after it was claimed

A claim is one ``SET key 1 NX PX ttl``: atomic on the server, so of two nodes claiming the same key
at once exactly one wins. A Redis that cannot be reached raises :class:`UnavailableError` within
``timeout`` seconds (the broadcast then fails with 503, as its publish would).
"""

from __future__ import annotations

import redis.asyncio as redis

from websocket_realtime_engine.redis_calls import redis_call


class RedisIdempotency:
    """Claimed keys as expiring Redis strings.

    :param client: the node's client (its one connection pool).
    :param prefix: the deployment's key prefix.
    :param timeout: seconds a call may take before it raises :class:`UnavailableError`.
    """

    def __init__(self, client: redis.Redis, prefix: str, *, timeout: float = 2.0) -> None:
        self.client = client
        self.prefix = f"{prefix}idempotency:"
        self.timeout = timeout

    async def claim(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; ``True`` when this call is the first to claim it
        within that time, cluster-wide."""
        milliseconds = max(1, round(ttl * 1000))
        claimed = await redis_call(self.client.set(self.prefix + key, b"1", nx=True, px=milliseconds), self.timeout)
        return bool(claimed)

    async def release(self, key: str) -> None:
        """Forget ``key`` (its publish failed), so the next claim of it wins."""
        await redis_call(self.client.delete(self.prefix + key), self.timeout)
