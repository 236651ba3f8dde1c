"""Engine events, told to one list of observers instead of twin calls at each site.

Observers today: the durable recorder (:mod:`db.recorder`), the plugins' hook thread
(:mod:`dispatch`) and the admin feeds' event log (:mod:`feeds`); metrics and webhooks join the same
list later. Every
method is called on the event loop, on the engine's path, so it must return at once and never raise:
an observer queues what it is told and does its work elsewhere.
"""

from __future__ import annotations

from typing import Any

from websocket_realtime_engine.publication import Publication


class Observer:
    """One listener to engine events; every method does nothing unless overridden."""

    async def start(self, node_id: str, host: str, port: int) -> None:
        """The node starts (before it accepts connections)."""

    async def stop(self, node_id: str) -> None:
        """The node has stopped: finish what is queued, within a few seconds."""

    def stats(self) -> dict[str, int]:
        """Counters for the status endpoint."""
        return {}

    def connection_opened(self, connection_id: str, node_id: str, remote: str) -> None:
        """A client connected."""

    def connection_closed(self, connection_id: str, user_id: str | None, node_id: str) -> None:
        """A client's connection ended, for whatever reason."""

    def signed_in(self, connection_id: str, user_id: str) -> None:
        """A connection signed in as a user."""

    def subscribed(self, channel: str, connection_id: str) -> None:
        """A connection of this node is now subscribed to a channel (live)."""

    def unsubscribed(self, channel: str, connection_id: str) -> None:
        """A connection of this node left a channel (unsubscribed, evicted or closed)."""

    def channel_occupied(self, channel: str) -> None:
        """A channel got its first subscriber on this node."""

    def channel_vacated(self, channel: str) -> None:
        """A channel lost its last subscriber on this node."""

    def presence_joined(self, channel: str, connection_id: str, user_id: str, user_info: Any) -> None:
        """A connection joined a presence channel as a user."""

    def presence_left(self, channel: str, connection_id: str) -> None:
        """A connection left a presence channel."""

    def member_added(self, channel: str, user_id: str, user_info: Any) -> None:
        """A user's first connection joined a presence channel."""

    def member_removed(self, channel: str, user_id: str) -> None:
        """A user's last connection left a presence channel."""

    def published(self, publication: Publication) -> None:
        """A publication was accepted by the broker (with its offset, when it has one)."""

    def node_reaped(self, node_id: str) -> None:
        """This node removed a dead node's state (its heartbeat expired without a goodbye)."""

    def client_message(self, channel: str, data: bytes, connection_id: str, user_id: str | None) -> None:
        """A client published a message (already delivered); ``data`` is its JSON text."""

    def client_error(self, connection_id: str, code: int, name: str, message: str) -> None:
        """An error frame was sent to a client (its code, name and message); the connection stays open."""


class Observers(Observer):
    """Tells every observer in the list, in order."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    async def start(self, node_id: str, host: str, port: int) -> None:
        for observer in self.observers:
            await observer.start(node_id, host, port)

    async def stop(self, node_id: str) -> None:
        for observer in self.observers:
            await observer.stop(node_id)

    def connection_opened(self, connection_id: str, node_id: str, remote: str) -> None:
        for observer in self.observers:
            observer.connection_opened(connection_id, node_id, remote)

    def connection_closed(self, connection_id: str, user_id: str | None, node_id: str) -> None:
        for observer in self.observers:
            observer.connection_closed(connection_id, user_id, node_id)

    def signed_in(self, connection_id: str, user_id: str) -> None:
        for observer in self.observers:
            observer.signed_in(connection_id, user_id)

    def subscribed(self, channel: str, connection_id: str) -> None:
        for observer in self.observers:
            observer.subscribed(channel, connection_id)

    def unsubscribed(self, channel: str, connection_id: str) -> None:
        for observer in self.observers:
            observer.unsubscribed(channel, connection_id)

    def channel_occupied(self, channel: str) -> None:
        for observer in self.observers:
            observer.channel_occupied(channel)

    def channel_vacated(self, channel: str) -> None:
        for observer in self.observers:
            observer.channel_vacated(channel)

    def presence_joined(self, channel: str, connection_id: str, user_id: str, user_info: Any) -> None:
        for observer in self.observers:
            observer.presence_joined(channel, connection_id, user_id, user_info)

    def presence_left(self, channel: str, connection_id: str) -> None:
        for observer in self.observers:
            observer.presence_left(channel, connection_id)

    def member_added(self, channel: str, user_id: str, user_info: Any) -> None:
        for observer in self.observers:
            observer.member_added(channel, user_id, user_info)

    def member_removed(self, channel: str, user_id: str) -> None:
        for observer in self.observers:
            observer.member_removed(channel, user_id)

    def published(self, publication: Publication) -> None:
        for observer in self.observers:
            observer.published(publication)

    def node_reaped(self, node_id: str) -> None:
        for observer in self.observers:
            observer.node_reaped(node_id)

    def client_message(self, channel: str, data: bytes, connection_id: str, user_id: str | None) -> None:
        for observer in self.observers:
            observer.client_message(channel, data, connection_id, user_id)

    def client_error(self, connection_id: str, code: int, name: str, message: str) -> None:
        for observer in self.observers:
            observer.client_error(connection_id, code, name, message)
