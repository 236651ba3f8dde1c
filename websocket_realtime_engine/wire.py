"""A :class:`Publication` as bytes, for Redis pub/sub and the Redis history.

One message is a JSON header, a newline, then the data exactly as published::

    [offset,"epoch","channel","event",exclude,user_id]\\n{"the":"data"}

orjson never writes a raw newline (inside strings it escapes it), so the first ``\\n`` ends the
header whatever the data holds, and the data is never parsed or copied into JSON again. The header
starts with the position so that a Lua script, which learns the offset and epoch only when it runs,
can build the message from :func:`encode_tail` with one concatenation::

    '[' .. offset .. ',"' .. epoch .. '",' .. tail

(the epochs of :mod:`history.redis` are hexadecimal, so they need no JSON escaping).
"""

from __future__ import annotations

import orjson

from websocket_realtime_engine.publication import Publication

SEPARATOR = b"\n"


def encode(publication: Publication) -> bytes:
    """The message of a publication at its own position."""
    header = orjson.dumps(
        [
            publication.offset,
            publication.epoch,
            publication.channel,
            publication.event,
            publication.exclude,
            publication.user_id,
        ]
    )
    return header + SEPARATOR + publication.data


def encode_tail(publication: Publication) -> bytes:
    """The message without its opening ``[offset,"epoch",``: what a script completes once it knows them."""
    header = orjson.dumps([publication.channel, publication.event, publication.exclude, publication.user_id])
    return header[1:] + SEPARATOR + publication.data


def decode(message: bytes, start: int = 0) -> Publication:
    """The publication a message (from ``start`` in ``message``) carries.

    :raises ValueError: when the message is not one :func:`encode` makes.
    """
    end = message.find(SEPARATOR, start)
    if end < 0:
        raise ValueError("a publication message has a header line")
    try:
        offset, epoch, channel, event, exclude, user_id = orjson.loads(message[start:end])
    except TypeError as exc:  # not a list of six
        raise ValueError(f"not a publication header: {exc}") from exc
    return Publication(channel, event, message[end + 1 :], offset, epoch, exclude, user_id)
