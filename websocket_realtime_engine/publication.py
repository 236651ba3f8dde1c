"""The dialect-neutral publication: what crosses the broker, the history and the hub.

No module below ``web/`` builds a dialect's frame from it; each node encodes a publication once per
(dialect, framing) present among its subscribers, when it delivers it (see :mod:`hub`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """A place in a channel's stream: the offset of its last publication, and the stream's epoch.

    The epoch names one incarnation of the stream: when a stream is lost (expired, its store
    restarted) a new one starts with a new epoch and offsets from 1 again, so a position from
    the old one can never be mistaken for a position in the new one.
    """

    offset: int
    epoch: str


@dataclass(slots=True)
class Publication:
    """One event published to one channel. Treated as immutable (:meth:`at` makes a new one);
    not ``frozen`` only because a frozen dataclass costs several times more to build, on every publish.

    :param channel: the channel name.
    :param event: the event name (``order.created``, ``message``, ``member_added``...).
    :param data: the event's data as JSON text (encoded once, by the publisher).
    :param offset: the position in the channel's stream, assigned by the broker with the publish;
        ``0`` for publications kept out of the history (presence changes).
    :param epoch: the stream's epoch with ``offset`` (``""`` when ``offset`` is 0).
    :param exclude: a connection id not to deliver to (the sender of a client message).
    :param user_id: the user a client message came from, if known.
    """

    channel: str
    event: str
    data: bytes
    offset: int = 0
    epoch: str = ""
    exclude: str | None = None
    user_id: str | None = None

    def at(self, position: StreamPosition) -> Publication:
        """This publication at a stream position."""
        return Publication(
            self.channel, self.event, self.data, position.offset, position.epoch, self.exclude, self.user_id
        )
