"""Redis broker: publications cross the nodes of a cluster through Redis pub/sub.

Keys and pub/sub channels (``<prefix>`` is the deployment's, the channel name used as given):

- ``<prefix>channel:<channel>`` pub/sub channel: the channel's publications, as :mod:`wire` messages
- ``<prefix>history-meta:<channel>`` hash and ``<prefix>history:<channel>`` list: the history (:mod:`history.redis`)

Pub/sub ignores Redis's database number: the prefix is what keeps deployments apart.

- **Order.** A publish with history is one Lua script (offset, stream append and ``PUBLISH``), so
  every node receives a channel's publications in offset order.
- **At most once, recovered by offsets.** While a node's subscription connection is down it misses
  what is published. The reader reconnects by itself (backoff from ``backoff[0]`` doubling to
  ``backoff[1]`` s), subscribes again to every channel of the node, and only then reports
  ``CONNECTED`` to :attr:`RedisBroker.on_state_change`; clients recover from the history by offset.
- **Loud failures.** A publish that cannot reach Redis within ``timeout`` raises
  :class:`UnavailableError`, as does a subscribe while the subscription connection is down or
  unconfirmed after ``timeout``. An unsubscribe never fails.
- **Only what is needed.** The node subscribes only to channels with local subscribers; the
  SUBSCRIBE and UNSUBSCRIBE requests of one event-loop iteration go out as one command each.
- **One pool.** Commands use the client's pool; subscriptions hold one of its connections for the
  broker's life. The client must keep ``decode_responses=False``; RESP2 and RESP3 both work.

The subscription connection is driven directly, not through redis-py's ``PubSub``, which reconnects
and resubscribes silently inside its reads: the broker could tell neither that publications were
missed nor when deliveries flow again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection

from websocket_realtime_engine import wire
from websocket_realtime_engine.broker.base import DeliveryHandler
from websocket_realtime_engine.errors import UnavailableError
from websocket_realtime_engine.history.redis import RedisHistory
from websocket_realtime_engine.publication import Publication, StreamPosition
from websocket_realtime_engine.redis_calls import require_bytes
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.broker")

NO_POSITION = StreamPosition(0, "")
RESUBSCRIBED = b"realtime-resubscribed"  # a PING's payload: every SUBSCRIBE sent before it is confirmed
CHANNELS_PER_COMMAND = 1000

Command = tuple[str | bytes, ...]


async def _push_as_is(push: Any) -> Any:
    return push


class BrokerState(enum.Enum):
    """Whether deliveries flow: ``CONNECTED`` once every channel of the node is subscribed in Redis."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class RedisBroker:
    """Publishes through Redis and delivers the publications of the channels this node subscribed.

    :param client: the node's client (its one connection pool).
    :param prefix: the deployment's key and channel prefix.
    :param history: the history a publish appends to, in the same script.
    :param timeout: seconds a publish or a subscribe may take before it raises :class:`UnavailableError`.
    :param health_interval: seconds of silence on the subscription connection before a PING;
        without an answer in as many seconds more, the connection is taken as lost (so a silent
        connection is noticed within three ``health_interval``).
    :param backoff: the first and the longest pause between reconnection attempts, in seconds.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        history: RedisHistory,
        *,
        timeout: float = 2.0,
        health_interval: float = 5.0,
        backoff: tuple[float, float] = (0.1, 2.0),
    ) -> None:
        require_bytes(client)
        self.client = client
        self.prefix = prefix
        self.history = history
        self.timeout = timeout
        self.health_interval = health_interval
        self.backoff = backoff
        self.state = BrokerState.DISCONNECTED
        self.on_state_change: Callable[[BrokerState], None] | None = None
        """Called with the new state on each change (the node reports the gap after a loss)."""
        self.on_round_trip: Callable[[float], None] | None = None
        """Called with the seconds each publish Redis answered took: its round trip (the node's metrics)."""
        self._channel_prefix = f"{prefix}channel:"
        self._handler: DeliveryHandler | None = None
        self._reader: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._tried = asyncio.Event()  # set once the first connection succeeded or failed
        self._connection: AbstractConnection | None = None
        self._heard = 0  # replies and messages read, for the watch
        # Per pub/sub channel (bytes, as Redis names them in replies):
        self._wanted: dict[bytes, str] = {}  # the node's channels
        self._sent: set[bytes] = set()  # whose last command on this connection was a SUBSCRIBE
        self._unconfirmed: dict[bytes, int] = {}  # commands sent on this connection, not yet confirmed
        self._waiters: dict[bytes, asyncio.Future[bool]] = {}  # subscribes waiting for Redis's word
        self._to_subscribe: set[bytes] = set()
        self._to_unsubscribe: set[bytes] = set()
        counters = ("published", "publish_failures", "delivered", "disconnections", "subscribe_commands")
        self._counters = dict.fromkeys(counters, 0)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self, handler: DeliveryHandler) -> None:
        """Start delivering to ``handler``; returns once connected, or once the first attempt failed
        (the broker then keeps trying in the background, and reports ``DISCONNECTED`` meanwhile)."""
        self._handler = handler
        if self._reader is None:
            self._tried.clear()
            self._reader = asyncio.get_running_loop().create_task(self._run(), name="realtime-redis-broker")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout * 2):
                    await self._tried.wait()

    async def stop(self) -> None:
        """Stop delivering, end the reader and give its connection back to the pool."""
        self._handler = None
        tasks = [task for task in (self._reader, self._flusher) if task is not None]
        self._reader = self._flusher = None
        await cancel_and_wait(*tasks)
        self._wanted.clear()
        self.state = BrokerState.DISCONNECTED

    def stats(self) -> dict[str, Any]:
        """The state, the channels subscribed and the counters, for status pages."""
        return {"state": self.state.value, "channels": len(self._wanted), **self._counters}

    # -- the Broker interface ----------------------------------------------------------------------

    async def publish(self, publication: Publication, history: bool = True) -> StreamPosition:
        """Send one publication to every node subscribed to its channel; with ``history``, append it
        in the same script and return its position.

        :raises UnavailableError: when Redis cannot be reached within ``timeout``.
        """
        pubsub_channel = self._channel_prefix + publication.channel
        started = time.perf_counter()
        try:
            if history:
                position = await self.history.append_and_publish(publication, pubsub_channel)
            else:
                await self.history.pipeline.call("PUBLISH", pubsub_channel, wire.encode(publication))
                position = NO_POSITION
        except UnavailableError:
            self._counters["publish_failures"] += 1
            raise
        self._round_trip(started)
        self._counters["published"] += 1
        return position

    async def publish_once(self, publication: Publication, key: str, ttl: float) -> StreamPosition | None:
        """:meth:`publish` with history in the same script as the once-key's check (``<prefix>once:<key>``).

        :raises UnavailableError: when Redis cannot be reached within ``timeout``.
        """
        pubsub_channel = self._channel_prefix + publication.channel
        started = time.perf_counter()
        try:
            position = await self.history.append_and_publish_once(publication, pubsub_channel, key, ttl)
        except UnavailableError:
            self._counters["publish_failures"] += 1
            raise
        self._round_trip(started)
        if position is not None:
            self._counters["published"] += 1
        return position

    def _round_trip(self, started: float) -> None:
        """Report how long a publish that Redis answered took."""
        if self.on_round_trip is not None:
            self.on_round_trip(time.perf_counter() - started)

    async def subscribe(self, channel: str) -> None:
        """Deliver ``channel`` to this node; returns once Redis has confirmed the subscription.

        :raises UnavailableError: when the subscription connection is down, or Redis does not
            confirm within ``timeout``.
        """
        if self._connection is None:
            raise UnavailableError(f"cannot subscribe to {channel}: Redis cannot be reached")
        key = (self._channel_prefix + channel).encode()
        self._wanted[key] = channel
        if key in self._to_unsubscribe:  # an UNSUBSCRIBE not sent yet: cancelled, its caller answered
            self._to_unsubscribe.discard(key)
            self._resolve(key, True)
        if key in self._sent and key not in self._unconfirmed:
            return  # already delivered
        waiter = self._waiter(key)
        if key not in self._sent:
            self._to_subscribe.add(key)
            self._schedule_flush()
        confirmed = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                confirmed = await asyncio.shield(waiter)
        if not confirmed:
            self._resolve(key, False)
            self._drop(key)  # the caller was told it failed: nothing resubscribes it later
            raise UnavailableError(f"Redis did not confirm the subscription to {channel} (connection lost or slow)")

    async def unsubscribe(self, channel: str) -> None:
        """Stop delivering ``channel`` to this node. Returns once Redis has confirmed, so what was
        published before is delivered and nothing after; never raises (at once while Redis is down)."""
        key = (self._channel_prefix + channel).encode()
        if self._drop(key):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(self._waiter(key))

    # -- subscriptions -----------------------------------------------------------------------------

    def _waiter(self, key: bytes) -> asyncio.Future[bool]:
        """Resolved once Redis has answered every command sent for ``key``: whether it is subscribed."""
        if key not in self._waiters:
            self._waiters[key] = asyncio.get_running_loop().create_future()
        return self._waiters[key]

    def _resolve(self, key: bytes, subscribed: bool) -> None:
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(subscribed)

    def _drop(self, key: bytes) -> bool:
        """Forget a channel; whether an UNSUBSCRIBE goes out for it."""
        if self._wanted.pop(key, None) is None:
            return False
        self._to_subscribe.discard(key)
        self._resolve(key, True)  # a subscribe under way ends quietly: its channel is left anyway
        if key not in self._sent:
            return False
        self._to_unsubscribe.add(key)
        self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        """Send the pending requests on the next loop iteration, all of this one's in one command."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._to_subscribe or self._to_unsubscribe:
                connection = self._connection
                if connection is None or not connection.is_connected:
                    return  # the next connection subscribes to every wanted channel
                # to_subscribe holds no key of sent, to_unsubscribe only keys of sent (subscribe, _drop)
                subscribe, unsubscribe = list(self._to_subscribe), list(self._to_unsubscribe)
                self._to_subscribe.clear()
                self._to_unsubscribe.clear()
                self._sent.update(subscribe)
                self._sent.difference_update(unsubscribe)
                commands = self._commands("SUBSCRIBE", subscribe) + self._commands("UNSUBSCRIBE", unsubscribe)
                await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        except Exception as exc:  # the reader sees the connection fail too, and reconnects
            log.warning("sending subscriptions to Redis failed: %s", exc)
        finally:
            self._flusher = None

    def _commands(self, verb: str, keys: list[bytes]) -> list[Command]:
        """``verb`` for ``keys``, at most CHANNELS_PER_COMMAND a command; each key counted unconfirmed."""
        for key in keys:
            self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
        commands: list[Command] = [
            (verb, *keys[start : start + CHANNELS_PER_COMMAND]) for start in range(0, len(keys), CHANNELS_PER_COMMAND)
        ]
        if verb == "SUBSCRIBE":
            self._counters["subscribe_commands"] += len(commands)
        return commands

    # -- the reader --------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Connect, subscribe and read until the connection fails; again after a pause, until stopped."""
        delay = self.backoff[0]
        while True:
            connection: AbstractConnection | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    connection = await self.client.connection_pool.get_connection()
                # with RESP3, redis-py's own push handler formats each message for a debug log
                connection._parser.set_pubsub_push_handler(_push_as_is)  # type: ignore[union-attr]
                await self._resubscribe(connection)
                delay = self.backoff[0]
                await self._serve(connection)
            except Exception as exc:
                log.warning("Redis subscription connection lost: %s; retrying in %.2f s", str(exc) or repr(exc), delay)
            finally:
                await self._lost(connection)
            self._tried.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _resubscribe(self, connection: AbstractConnection) -> None:
        """Send every wanted channel's SUBSCRIBE on a new connection, then the RESUBSCRIBED PING."""
        self._connection = connection
        keys = list(self._wanted)
        self._sent = set(keys)  # nothing else is pending: _lost cleared it, and subscribes failed meanwhile
        commands = [*self._commands("SUBSCRIBE", keys), ("PING", RESUBSCRIBED)]
        await connection.send_packed_command(connection.pack_commands(commands), check_health=False)

    async def _serve(self, connection: AbstractConnection) -> None:
        """Read until the connection fails, or stays silent through a PING (see :meth:`_watch`)."""
        loop = asyncio.get_running_loop()
        tasks = (loop.create_task(self._read(connection)), loop.create_task(self._watch(connection)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*tasks)
        for task in tasks:
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    async def _read(self, connection: AbstractConnection) -> None:
        """Hand each message to the handler, the rest to :meth:`_control`.

        Reads wait with no timeout (a timeout per read would cost more than the rest of a delivery);
        :meth:`_watch` notices a silent connection instead."""
        while True:
            response = await connection.read_response(timeout=math.inf, push_request=True)
            self._heard += 1
            if isinstance(response, list) and response[0] == b"message":
                self._deliver(response[1], response[2])
            else:
                self._control(response)

    async def _watch(self, connection: AbstractConnection) -> None:
        """After ``health_interval`` without a word from Redis, PING; without an answer after as long
        again, raise: a silent connection is noticed within three ``health_interval``."""
        interval = self.health_interval
        heard = self._heard
        while True:
            await asyncio.sleep(interval)
            if self._heard == heard:
                if not connection.is_connected:  # sending would reconnect silently, unsubscribed
                    raise redis.ConnectionError("the subscription connection closed")
                await connection.send_command("PING", check_health=False)
                await asyncio.sleep(interval)
                if self._heard == heard:
                    raise redis.ConnectionError(f"no answer to a PING within {interval} s")
            heard = self._heard

    def _deliver(self, key: bytes, message: bytes) -> None:
        """Redis sends only subscribed channels: what was published before an UNSUBSCRIBE is delivered."""
        handler = self._handler
        if handler is None:
            return
        try:
            publication = wire.decode(message)
        except ValueError as exc:
            log.warning("an undecodable message on %r: %s", key, exc)
            return
        self._counters["delivered"] += 1
        try:
            handler(publication)
        except Exception:
            log.exception("the delivery handler failed on %s", publication.channel)

    def _control(self, response: Any) -> None:
        """A (un)subscribe confirmation or a PING's answer (a plain string outside subscribed mode)."""
        kind, payload = (b"pong", response) if isinstance(response, bytes) else (response[0], response[1])
        if kind in (b"subscribe", b"unsubscribe"):
            self._confirm(payload)
        elif kind == b"pong" and payload == RESUBSCRIBED:
            self._set_state(BrokerState.CONNECTED)
            self._tried.set()

    def _confirm(self, key: bytes) -> None:
        """Redis answered one command for ``key``; after the last one, its waiters learn the outcome."""
        left = self._unconfirmed.pop(key, 0) - 1
        if left > 0:
            self._unconfirmed[key] = left
        elif key not in self._to_subscribe and key not in self._to_unsubscribe:  # none about to go out
            self._resolve(key, key in self._sent)

    async def _lost(self, connection: AbstractConnection | None) -> None:
        """Forget the connection's subscriptions (failing their waiters) and give it back to the pool."""
        self._connection = None
        for pending in (self._sent, self._unconfirmed, self._to_subscribe, self._to_unsubscribe):
            pending.clear()
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_result(False)
        if self.state is BrokerState.CONNECTED:
            self._counters["disconnections"] += 1
            self._set_state(BrokerState.DISCONNECTED)
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.disconnect(nowait=True)
            with contextlib.suppress(Exception):
                await self.client.connection_pool.release(connection)

    def _set_state(self, state: BrokerState) -> None:
        if state is not self.state:
            self.state = state
            log.info("Redis broker %s", state.value)
            if self.on_state_change is not None and self._handler is not None:
                try:
                    self.on_state_change(state)
                except Exception:
                    log.exception("the broker state callback failed")
