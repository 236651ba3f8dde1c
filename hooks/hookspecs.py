"""Hooks out of the engine, for other plugins to react to what happens on the sockets.

They are called from a worker thread, off the delivery path: a slow or failing implementation
delays nothing and loses nothing but its own events (see :mod:`websocket_realtime_engine.dispatch`).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("shopologic")


@hookspec
def realtime_connection_opened(connection_id: str, node_id: str) -> None:
    """A client connected.

    :param connection_id: the connection's id (``digits.digits``, unique in the cluster).
    :param node_id: the node it connected to.
    :returns: nothing.
    """


@hookspec
def realtime_connection_closed(connection_id: str, user_id: str | None, node_id: str) -> None:
    """A client's connection ended, for whatever reason.

    :param connection_id: the connection's id.
    :param user_id: the signed-in user, or ``None``.
    :param node_id: the node it was on.
    :returns: nothing.
    """


@hookspec
def realtime_channel_occupied(channel: str) -> None:
    """A channel got its first subscriber.

    :param channel: the channel name.
    :returns: nothing.
    """


@hookspec
def realtime_channel_vacated(channel: str) -> None:
    """A channel lost its last subscriber.

    :param channel: the channel name.
    :returns: nothing.
    """


@hookspec
def realtime_member_added(channel: str, user_id: str, user_info: dict[str, Any] | None) -> None:
    """A user joined a presence channel (their first connection there).

    :param channel: the presence channel.
    :param user_id: the member's user id.
    :param user_info: what the member's signed ``channel_data`` or sign-in says of them.
    :returns: nothing.
    """


@hookspec
def realtime_member_removed(channel: str, user_id: str) -> None:
    """A user left a presence channel (their last connection there).

    :param channel: the presence channel.
    :param user_id: the member's user id.
    :returns: nothing.
    """


@hookspec
def realtime_client_message(channel: str, data: Any, connection_id: str, user_id: str | None) -> None:
    """A client published a message to a channel (already delivered to its subscribers).

    :param channel: the channel.
    :param data: the message's data as the client sent it.
    :param connection_id: the sender's connection.
    :param user_id: the sender's user id, or ``None``.
    :returns: nothing.
    """
