"""Origin patterns: which web pages (``Origin: scheme://host[:port]``) the node answers.

Pure values, read from the settings (``REALTIME_ALLOWED_ORIGINS`` for the socket,
``REALTIME_CORS_ORIGINS`` for CORS) and used by ``web/cors.py``. A pattern is one of:

- ``*``: every origin;
- an exact origin, ``https://shop.example`` or ``https://shop.example:8443``;
- a wildcard host, ``https://*.shop.example``: any subdomain of ``shop.example`` (not
  ``shop.example`` itself), same scheme and port; not a whole top-level domain (``https://*.com``).

Schemes and hosts compare case-insensitively; a default port (80 for ``http``, 443 for ``https``)
is the same as none, as browsers leave it out of ``Origin``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

ANY = "*"
DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
# scheme://host[:port] with host a name, an IPv4 address or a bracketed IPv6 address (a pattern's
# name may start with "*.")
ORIGIN = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9a-f:.]+\]|(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


class OriginMatch(StrEnum):
    """How an origin was allowed: the CORS answer depends on it (credentials for exact origins only)."""

    ANY = "any"
    WILDCARD = "wildcard"
    EXACT = "exact"


@dataclass(frozen=True)
class Origin:
    """A parsed origin (or pattern, whose ``host`` may start with ``*.``), normalised."""

    scheme: str
    host: str
    port: str

    @classmethod
    def parse(cls, text: str, pattern: bool = False) -> Origin | None:
        """``scheme://host[:port]``, or ``None`` when ``text`` is not one (``null``, a path, junk); with
        ``pattern``, the host may start with ``*.``."""
        found = ORIGIN.fullmatch(text.strip().lower())
        if found is None or (found["host"].startswith("*") and not pattern):
            return None
        scheme, host, port = found["scheme"], found["host"], found["port"] or ""
        if port == DEFAULT_PORTS.get(scheme):
            port = ""
        return cls(scheme, host, port)


@dataclass(frozen=True)
class OriginPatterns:
    """A list of origin patterns; :meth:`match` says whether, and how, an origin is allowed."""

    any: bool
    exact: frozenset[Origin]
    wildcards: tuple[Origin, ...]  # hosts without their "*." prefix, e.g. Origin("https", "shop.example", "")

    @property
    def empty(self) -> bool:
        return not (self.any or self.exact or self.wildcards)

    def match(self, origin: str) -> OriginMatch | None:
        """How ``origin`` (an ``Origin`` header) is allowed, the most specific way; ``None``: refused."""
        parsed = Origin.parse(origin)
        if parsed is not None and parsed in self.exact:
            return OriginMatch.EXACT
        if parsed is not None and any(_under(parsed, wildcard) for wildcard in self.wildcards):
            return OriginMatch.WILDCARD
        return OriginMatch.ANY if self.any else None


def _under(origin: Origin, wildcard: Origin) -> bool:
    return (
        origin.scheme == wildcard.scheme and origin.port == wildcard.port and origin.host.endswith("." + wildcard.host)
    )


@lru_cache(maxsize=16)
def parse_patterns(patterns: tuple[str, ...]) -> OriginPatterns:
    """The patterns of a setting (cached: the settings' tuple is parsed once).

    :raises ValueError: naming the first pattern that is not ``*``, an origin or a wildcard host.
    """
    exact: set[Origin] = set()
    wildcards: list[Origin] = []
    for pattern in patterns:
        if pattern == ANY:
            continue
        parsed = Origin.parse(pattern.rstrip("/"), pattern=True)
        if parsed is None:
            raise ValueError(
                f"{pattern!r} is not an origin pattern: use *, scheme://host[:port] (https://shop.example) or a"
                " wildcard host (https://*.shop.example), without a path"
            )
        if parsed.host.startswith("*."):
            base = parsed.host.removeprefix("*.")
            if "." not in base:
                raise ValueError(f"{pattern!r}: a wildcard host needs a domain under it (https://*.shop.example)")
            wildcards.append(Origin(parsed.scheme, base, parsed.port))
        else:
            exact.add(parsed)
    return OriginPatterns(ANY in patterns, frozenset(exact), tuple(wildcards))
