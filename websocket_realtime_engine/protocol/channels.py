"""Channel names and types.

A name is ``^[-a-zA-Z0-9_=@,.;:]+$`` (Pusher's characters plus ``:``), at most 164 characters.
Its type comes from its prefix (``private-``, ``presence-``) or from configured name patterns
(``fnmatch`` globs such as ``users:*``); everything else is public.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from websocket_realtime_engine.errors import ChannelError

NAME_PATTERN = re.compile(r"[-a-zA-Z0-9_=@,.;:]+")
MAX_NAME_LENGTH = 164


class ChannelType(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"
    PRESENCE = "presence"


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid channel name, else raise ChannelError."""
    if not isinstance(name, str) or not name:
        raise ChannelError("channel must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise ChannelError(f"channel name longer than {MAX_NAME_LENGTH} characters")
    if NAME_PATTERN.fullmatch(name) is None:
        raise ChannelError("channel name may only contain letters, digits and -_=@,.;:")
    return name


ID_PATTERN = re.compile(r"[-a-zA-Z0-9_@,.;:]{1,64}")  # the name characters but ``=``


def channel_id(value: str) -> str:
    """An id (a product's, a customer's) as it appears in a channel name (``product.{id}``).

    An id of at most 64 name characters other than ``=`` is used as it is; any other id (a space, a
    slash, a letter outside ASCII, too long) becomes ``=`` and the first 40 hex digits of the SHA-256
    of its UTF-8 bytes. The two forms cannot meet (only the second has ``=``), so no two ids share a
    channel; a page computes the same name from the same id.
    """
    if ID_PATTERN.fullmatch(value):
        return value
    return "=" + hashlib.sha256(value.encode()).hexdigest()[:40]


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` matches any of the ``fnmatch`` patterns (case-sensitive)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class ChannelPolicy:
    """Which names are private or presence, who may publish, where signed-in users may join."""

    presence_patterns: tuple[str, ...] = ("users:*",)
    private_patterns: tuple[str, ...] = ()
    signin_presence_patterns: tuple[str, ...] = ("users:online",)
    client_message_types: tuple[str, ...] = ("private", "presence")
    client_message_patterns: tuple[str, ...] = ()

    def type_of(self, name: str) -> ChannelType:
        """The channel's type: by prefix first, then by pattern."""
        if name.startswith("presence-") or matches(name, self.presence_patterns):
            return ChannelType.PRESENCE
        if name.startswith("private-") or matches(name, self.private_patterns):
            return ChannelType.PRIVATE
        return ChannelType.PUBLIC

    def allows_client_messages(self, name: str) -> bool:
        """Whether subscribers may publish to the channel themselves."""
        return self.type_of(name).value in self.client_message_types or matches(name, self.client_message_patterns)

    def allows_signed_in_presence(self, name: str) -> bool:
        """Whether a signed-in connection may join this presence channel without per-channel auth."""
        return matches(name, self.signin_presence_patterns)
