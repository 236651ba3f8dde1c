"""A node's membership of its cluster: its id, heartbeat, dead peers, control messages, outages.

- **Taking its id** (:meth:`Membership.join`): a node started under the id of a run that was killed
  (``kill -9``, a crash) cleans up after that run before it serves: the run's presence members
  leave (``member_removed`` goes out once per user, as when a peer reaps a dead node) and its
  connections leave the cluster's lists. When the id still has a live heartbeat, the node waits up
  to one heartbeat TTL for it to expire (the killed run stops beating); a heartbeat that keeps
  going is another live node with this id, and the start fails with :class:`~errors.StartupError`.
- **Heartbeat**: every ``node_heartbeat`` s, with a TTL of three beats; each beat also claims
  peers whose heartbeat expired and reaps them (their presence members leave, their connections
  leave the lists, the observers close their durable records).
- **Control channel**: ``#node:<id>`` on the broker carries the disconnects that another node was
  asked for (REST) to the node that holds the connections, and **calls**: a request another node
  got for something only this node can carry out (a control call of an SSE stream it holds) goes
  to a handler registered under its kind (:attr:`Membership.call_handlers`), whose answer goes
  back on the asking node's control channel (:meth:`Membership.call`).
- **After a Redis outage**: deliver what the history got meanwhile, then record again what this
  node holds (changes made while Redis was away were dropped).
- **Leaving** (:meth:`Membership.leave`): the node's connections leave the lists and it
  deregisters, so its members go at once rather than when its heartbeat expires.

The node is reached through :class:`NodeSide`, so this module does not import :mod:`node`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

import orjson

from websocket_realtime_engine import errors
from websocket_realtime_engine.backends import Backends
from websocket_realtime_engine.catchup import GapFiller
from websocket_realtime_engine.config import Settings
from websocket_realtime_engine.connection import Connection
from websocket_realtime_engine.observers import Observers
from websocket_realtime_engine.publication import Publication
from websocket_realtime_engine.tasks import cancel_and_wait

log = logging.getLogger("realtime.node")
T = TypeVar("T")
# a kind of call's handler: the call's arguments in, its answer out (JSON values); it never raises
CallHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

CONTROL_PREFIX = "#node:"  # a node's control channel on the broker; no client channel has a "#"
HEARTBEATS_PER_TTL = 3  # a node is thought dead after this many missed beats


class NodeSide(Protocol):
    """What membership needs of its node."""

    settings: Settings
    connections: dict[str, Connection]
    observers: Observers
    started_at: float  # epoch seconds

    async def close_connection(self, connection: Connection, reason: errors.CloseReason) -> None: ...

    async def publish_member_removed(self, channel: str, user_id: str) -> None: ...

    def spawn(self, work: Coroutine[Any, Any, None]) -> None: ...


async def recorded(change: Awaitable[T], failed: T) -> T:
    """A cluster state change's answer, or ``failed`` when the store cannot be reached: a client's
    subscription or close never fails because the cluster's lists could not follow it."""
    try:
        return await change
    except Exception as exc:  # noqa: BLE001 - logged; the lists heal when the node is reaped or restarts
        log.warning("the cluster state did not record a change: %r", exc)
        return failed


class Membership:
    """The node's part in the cluster (on the memory backends: a cluster of one)."""

    def __init__(self, node: NodeSide, backends: Backends, gaps: GapFiller) -> None:
        self.node = node
        self.backends = backends
        self.gaps = gaps
        self.node_id = node.settings.node_id
        self.control_channel = CONTROL_PREFIX + self.node_id
        # whether the control channel is subscribed: one node alone (memory backends) needs none
        self._listening = backends.kind == "memory"
        self._heartbeat: asyncio.Task[None] | None = None
        self.call_handlers: dict[str, CallHandler] = {}  # by kind: calls other nodes send this one
        self._calls: dict[str, asyncio.Future[dict[str, Any]]] = {}  # this node's calls awaiting answers

    @property
    def ttl(self) -> float:
        return self.node.settings.node_heartbeat * HEARTBEATS_PER_TTL

    # -- joining and leaving -----------------------------------------------------------------------

    async def join(self) -> None:
        """Take the node id (cleaning up after a killed run under it), listen, beat.

        :raises errors.StartupError: when another live node beats under this id.
        """
        try:
            await self._take_id()
        except errors.StartupError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis is away: serve; the lists heal when it is back
            log.warning("the cluster cannot be reached at start: %r", exc)
        if not self._listening:
            await self._listen()
        try:
            await self._beat()
        except Exception as exc:  # noqa: BLE001 - serve local clients; the heartbeat loop retries
            log.warning("the node registry cannot be reached at start: %r", exc)
        self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats(), name="realtime-heartbeat")

    async def leave(self) -> None:
        """Stop beating; the node's connections leave the lists and it deregisters."""
        if self._heartbeat is not None:
            await cancel_and_wait(self._heartbeat)
        try:
            self._vacate(await self.backends.cluster.remove_node(self.node_id))
            await self.backends.registry.deregister(self.node_id)
        except Exception as exc:  # noqa: BLE001 - the registry is away: the others reap this node later
            log.warning("could not deregister the node: %r", exc)

    async def _take_id(self) -> None:
        """Wait for a killed run's heartbeat under this id to expire, then clean up after it."""
        registry, loop = self.backends.registry, asyncio.get_running_loop()
        live = (await registry.nodes()).get(self.node_id)
        if live is not None:
            log.warning(
                "node id %s has a live heartbeat (a run that just ended, or another node): waiting up to %.1f s",
                self.node_id,
                self.ttl,
            )
            seen, deadline = live.get("last_seen"), loop.time() + self.ttl + self.node.settings.node_heartbeat
            while live is not None:
                if live.get("last_seen") != seen or loop.time() > deadline:
                    raise errors.StartupError(
                        f"another node is running with node id {self.node_id!r}: give each node its own --node-id"
                    )
                await asyncio.sleep(min(0.2, self.node.settings.node_heartbeat))
                live = (await registry.nodes()).get(self.node_id)
        await self._clean_up_after(self.node_id)

    async def _clean_up_after(self, node_id: str) -> None:
        """A run under ``node_id`` is gone without a goodbye: its members leave, subscribers are told,
        and its connections leave the cluster's lists."""
        removed = await self.backends.presence.remove_node(node_id)
        for channel, user_id in removed:
            await self.node.publish_member_removed(channel, user_id)
        if removed:
            log.warning("removed a dead node's presence members", extra={"node_id": node_id, "members": len(removed)})
        self._vacate(await self.backends.cluster.remove_node(node_id))

    # -- the heartbeat -----------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        interval = self.node.settings.node_heartbeat
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat()
                if not self._listening:
                    await self._listen()
                for dead in await self.backends.registry.claim_dead():
                    await self._clean_up_after(dead)
                    self.node.observers.node_reaped(dead)
            except Exception:  # noqa: BLE001 - a backend hiccup: try again next beat
                log.exception("node heartbeat failed")

    async def _beat(self) -> None:
        await self.backends.registry.heartbeat(self.node_id, self.info(), self.ttl)

    def info(self) -> dict[str, Any]:
        """What the heartbeat says of this node: connections, started and last seen (epoch seconds)."""
        node = self.node
        return {"connections": len(node.connections), "started_at": node.started_at, "last_seen": time.time()}

    async def nodes(self) -> dict[str, dict[str, Any]]:
        """The live nodes of the cluster (their last heartbeats), this one as it is now."""
        nodes = await self.backends.registry.nodes()
        if self.node_id in nodes:
            nodes[self.node_id] = self.info()
        return nodes

    def _vacate(self, channels: Iterable[str]) -> None:
        """Tell the observers that the cluster state found these channels vacated."""
        for channel in channels:
            self.node.observers.channel_vacated(channel)

    # -- the control channel -----------------------------------------------------------------------

    async def _listen(self) -> None:
        """Subscribe to this node's control channel (disconnects asked for on other nodes)."""
        try:
            await self.backends.broker.subscribe(self.control_channel)
            self._listening = True
        except Exception as exc:  # noqa: BLE001 - the broker is away: the heartbeat loop tries again
            log.warning("cannot subscribe to the node's control channel: %r", exc)

    async def send_disconnect(self, node_id: str, connection_ids: list[str]) -> None:
        """Ask ``node_id`` to close some of its connections (raises when the broker cannot)."""
        control = Publication(CONTROL_PREFIX + node_id, "disconnect", orjson.dumps(connection_ids))
        await self.backends.broker.publish(control, history=False)

    async def send_vouch(self, node_id: str, connection_id: str, channel: str, user_id: str) -> None:
        """Tell ``node_id`` that a user's session got ``channel`` signed for its connection."""
        message = orjson.dumps({"connection_id": connection_id, "channel": channel, "user_id": user_id})
        await self.backends.broker.publish(Publication(CONTROL_PREFIX + node_id, "vouch", message), history=False)

    def on_control(self, publication: Publication) -> None:
        """A message on this node's control channel: connections to close, a call, a call's answer."""
        event = publication.event
        if event == "disconnect":
            node = self.node
            for connection_id in orjson.loads(publication.data):
                connection = node.connections.get(connection_id)
                if connection is not None:
                    node.spawn(node.close_connection(connection, errors.CloseReason.DISCONNECTED))
        elif event == "vouch":
            vouched = orjson.loads(publication.data)
            connection = self.node.connections.get(vouched["connection_id"])
            if connection is not None:
                connection.vouch(vouched["channel"], vouched["user_id"])
        elif event == "call":
            self.node.spawn(self._answer(orjson.loads(publication.data)))
        elif event == "answer":
            answer = orjson.loads(publication.data)
            future = self._calls.get(answer["id"])
            if future is not None and not future.done():  # else it timed out meanwhile
                future.set_result(answer)
        else:
            log.warning("an unknown control message: %r", event)

    async def call(self, node_id: str, kind: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Have ``node_id`` carry out a call of ``kind`` (its handler in :attr:`call_handlers`); its answer.

        :raises TimeoutError: when no answer came within ``timeout`` seconds.
        :raises errors.RealtimeError: when the node has no handler, or its handler failed.
        :raises errors.UnavailableError: when the broker cannot take the call.
        """
        call_id = secrets.token_hex(8)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        request = {"id": call_id, "from": self.node_id, "kind": kind, "arguments": arguments}
        try:
            async with asyncio.timeout(timeout):
                await self.backends.broker.publish(
                    Publication(CONTROL_PREFIX + node_id, "call", orjson.dumps(request)), history=False
                )
                answer = await future
        finally:
            del self._calls[call_id]
        if "error" in answer:
            raise errors.RealtimeError(f"node {node_id} could not answer: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result

    async def _answer(self, request: dict[str, Any]) -> None:
        """Carry out another node's call and send it the answer."""
        answer: dict[str, Any] = {"id": request["id"]}
        handler = self.call_handlers.get(request["kind"])
        if handler is None:
            answer["error"] = f"no handler of {request['kind']!r} calls"
        else:
            try:
                answer["result"] = await handler(request["arguments"])
            except Exception:  # noqa: BLE001 - a handler's bug: the caller gets an error, not a wait
                log.exception("a %s call from node %s failed", request["kind"], request["from"])
                answer["error"] = "internal error"
        reply = Publication(CONTROL_PREFIX + request["from"], "answer", orjson.dumps(answer))
        try:
            await self.backends.broker.publish(reply, history=False)
        except Exception as exc:  # noqa: BLE001 - the caller times out
            log.warning("could not answer node %s: %r", request["from"], exc)

    # -- Redis outages -----------------------------------------------------------------------------

    def broker_state(self, state: Any) -> None:
        """The broker lost Redis and is back: deliver what the history got meanwhile."""
        if getattr(state, "value", None) == "connected":
            self.node.spawn(self._after_outage())

    async def _after_outage(self) -> None:
        await self.backends.reset()  # pooled connections to the Redis that went away fail on first use
        await self.gaps.fill()
        await self._record_again()

    async def _record_again(self) -> None:
        """Tell the cluster state and presence again what this node holds: changes made while Redis was
        away were dropped, and a Redis that lost its data lost them all (the scripts are idempotent).
        No member_added goes out: the other clients never saw these members leave."""
        cluster, presence, node = self.backends.cluster, self.backends.presence, self.node
        limit = node.settings.max_presence_members
        for connection in list(node.connections.values()):
            cluster.opened(self.node_id, connection.id, connection.connected_at, connection.remote)
            if connection.user_id is not None:
                cluster.signed_in(connection.id, connection.user_id)
            for channel in list(connection.channels):
                member_id = connection.presence.get(channel)
                if await recorded(cluster.subscribed(connection.id, channel, member_id), False):
                    node.observers.channel_occupied(channel)
            for channel, user_id in list(connection.presence.items()):
                info = connection.member_info.get(channel)
                try:  # a member already there is left as it is (AGAIN); a lost one is back, silently
                    await presence.join(channel, connection.id, user_id, info, self.node_id, limit)
                except Exception as exc:  # noqa: BLE001 - away again: the next reconnection retries
                    log.warning("could not record a presence member again: %r", exc)
