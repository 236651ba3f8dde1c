"""Server-Sent Events: an event's bytes, and the event id that holds a stream's channel positions.

Sans-I/O. A browser's ``EventSource`` sends back only the last id it saw (``Last-Event-ID``) when it
reconnects, so the id carries the position of every channel of the stream::

    id     = "1" *( "~" entry )
    entry  = key "." offset "." epoch
    key    = base64url of the first 6 bytes of SHA-256(channel name): 8 characters
    offset = decimal; epoch = 1 to 64 characters of A-Z a-z 0-9 - _

Every character is one a header and a URL carry as it is. docs/http-fallback.md has the rules.
"""

from __future__ import annotations

import base64
import hashlib
import re

from websocket_realtime_engine.errors import ProtocolError
from websocket_realtime_engine.publication import StreamPosition

VERSION = "1"
ENTRY_SEPARATOR = "~"
MAX_ID_LENGTH = 4096  # characters of an id; entries past it are left out
MAX_OFFSET = 2**63 - 1
EPOCH_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ENTRY_PATTERN = re.compile(r"([A-Za-z0-9_-]{8})\.(0|[1-9][0-9]{0,18})\.([A-Za-z0-9_-]{1,64})")
HEARTBEAT = b": heartbeat\n\n"


class InvalidEventIdError(ProtocolError):
    """A ``Last-Event-ID`` that is not an id this module makes."""

    name = "invalid_last_event_id"


def channel_key(channel: str) -> str:
    """The 8 characters that stand for ``channel`` in an id."""
    return base64.urlsafe_b64encode(hashlib.sha256(channel.encode()).digest()[:6]).decode()


def entry(key: str, position: StreamPosition) -> str | None:
    """One channel's entry, or ``None`` for a position an id cannot hold (an epoch of other characters)."""
    if EPOCH_PATTERN.fullmatch(position.epoch) is None or not 0 <= position.offset <= MAX_OFFSET:
        return None
    return f"{key}.{position.offset}.{position.epoch}"


def event_id(entries: list[str]) -> str:
    """The id of ``entries`` (in order), as many as fit in :data:`MAX_ID_LENGTH` characters."""
    parts = [VERSION]
    length = len(VERSION)
    for item in entries:
        length += len(item) + 1
        if length > MAX_ID_LENGTH:
            break
        parts.append(item)
    return ENTRY_SEPARATOR.join(parts)


def parse_event_id(text: str) -> dict[str, StreamPosition]:
    """The positions an id holds, by channel key.

    :raises InvalidEventIdError: when ``text`` is not an id :func:`event_id` makes.
    """
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEventIdError(f"Last-Event-ID is longer than {MAX_ID_LENGTH} characters")
    version, *items = text.split(ENTRY_SEPARATOR)
    if version != VERSION:
        raise InvalidEventIdError("Last-Event-ID is not an event id of this engine")
    positions = {}
    for item in items:
        match = ENTRY_PATTERN.fullmatch(item)
        if match is None:
            raise InvalidEventIdError(f"Last-Event-ID has an entry that is not key.offset.epoch: {item[:80]!r}")
        key, offset, epoch = match.groups()
        if int(offset) > MAX_OFFSET:
            raise InvalidEventIdError(f"Last-Event-ID has an offset beyond {MAX_OFFSET}")
        positions[key] = StreamPosition(int(offset), epoch)
    return positions


def event(identifier: str, data: bytes) -> bytes:
    """One event: its id and one ``data:`` line (``data`` holds no line break: JSON from orjson)."""
    return b"id: " + identifier.encode() + b"\ndata: " + data + b"\n\n"
