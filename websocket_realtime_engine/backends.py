"""The one factory that chooses the backends (broker, history, presence, registry, idempotency) from the settings.

Without ``REALTIME_REDIS_URL`` (nor a ``redis_url`` stored by ``websocket setup-cluster``), every
backend is the in-process one: one node. With it, every backend is the Redis one, all sharing one
connection pool per node (``REALTIME_REDIS_POOL_SIZE`` connections, plus the broker's subscription
connection and the publish path's pipelined connection), and every key starts with
``REALTIME_REDIS_PREFIX``. Nothing else in the engine changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from websocket_realtime_engine.broker.base import Broker
from websocket_realtime_engine.broker.memory import MemoryBroker
from websocket_realtime_engine.broker.redis import RedisBroker
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.history.base import History
from websocket_realtime_engine.history.memory import MemoryHistory
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.idempotency.base import IdempotencyStore
from websocket_realtime_engine.idempotency.memory import MemoryIdempotency
from websocket_realtime_engine.idempotency.redis import RedisIdempotency
from websocket_realtime_engine.presence.base import PresenceStore
from websocket_realtime_engine.presence.memory import MemoryPresence
from websocket_realtime_engine.presence.redis import RedisPresence
from websocket_realtime_engine.registry.base import NodeRegistry
from websocket_realtime_engine.registry.cluster import ClusterState
from websocket_realtime_engine.registry.cluster_memory import MemoryClusterState
from websocket_realtime_engine.registry.cluster_redis import RedisClusterState
from websocket_realtime_engine.registry.memory import MemoryRegistry
from websocket_realtime_engine.registry.redis import RedisRegistry

log = logging.getLogger("realtime.backends")


@dataclass
class Backends:
    """What a node shares with the other nodes of its cluster."""

    broker: Broker
    history: History
    presence: PresenceStore
    registry: NodeRegistry
    idempotency: IdempotencyStore  # broadcasts' idempotency keys (REALTIME_IDEMPOTENCY_TTL)
    kind: str
    pool: redis.BlockingConnectionPool | None = field(default=None, repr=False)
    client: redis.Redis | None = field(default=None, repr=False)
    # connections, subscriptions and channel counts of every node (the cluster's lists, occupied/vacated)
    cluster: ClusterState = field(default_factory=MemoryClusterState)

    def stats(self) -> dict[str, Any]:
        """What status shows of the backends: their kind, the pool's use, the broker's counters, and
        the cluster-state changes dropped while Redis was away."""
        answer: dict[str, Any] = {"kind": self.kind}
        if self.pool is not None:
            answer["pool"] = {
                "size": self.pool.max_connections,
                "in_use": len(self.pool._in_use_connections),  # redis-py keeps no public count
            }
        broker_stats = getattr(self.broker, "stats", None)
        if broker_stats is not None:
            answer["broker"] = broker_stats()
        dropped = getattr(self.cluster, "dropped", None)
        if dropped is not None:  # cluster-state changes lost while Redis was away (the lists may drift)
            answer["cluster_state_dropped"] = dropped
        return answer

    async def reset(self) -> None:
        """Drop the idle pooled connections (after Redis came back: they would fail once each)."""
        if self.pool is not None:
            await self.pool.disconnect(inuse_connections=False)

    async def close(self) -> None:
        """Release the connections (after the broker has stopped)."""
        if isinstance(self.history, RedisHistory):
            await self.history.close()
        if self.client is not None:
            await self.client.aclose()
        if self.pool is not None:
            await self.pool.aclose()


def build_backends(settings: Settings) -> Backends:
    """The backends the settings ask for."""
    if settings.redis_url:
        return redis_backends(settings)
    history = MemoryHistory(settings.history_size, settings.history_ttl)
    return Backends(MemoryBroker(history), history, MemoryPresence(), MemoryRegistry(), MemoryIdempotency(), "memory")


def redis_backends(settings: Settings) -> Backends:
    """Every backend on one Redis, through one pool for this node.

    No automatic retries: a publish script retried after a timeout could be published twice; the
    broker reconnects by itself, and a failed command is the caller's error (HTTP 503).
    """
    timeout = settings.redis_timeout
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size + 2,  # + the broker's subscription and publish connections
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=1,  # an idle connection is checked before use: a Redis restart costs no error later
    )
    client = redis.Redis(connection_pool=pool)
    prefix = settings.redis_prefix
    history = RedisHistory(client, prefix, settings.history_size, settings.history_ttl, timeout=timeout)
    broker = RedisBroker(client, prefix, history, timeout=timeout)
    idempotency = RedisIdempotency(client, prefix, timeout=timeout)
    return Backends(
        broker,
        history,
        RedisPresence(client, prefix),
        RedisRegistry(client, prefix),
        idempotency,
        "redis",
        pool,
        client,
        cluster=RedisClusterState(client, prefix, timeout=timeout),
    )
