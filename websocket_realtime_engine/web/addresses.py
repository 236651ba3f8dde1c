"""Per client address: connections open now and a token bucket of new connections, in a table that
forgets addresses that have gone quiet.

An address is what one client holds: an IPv4 address, an IPv6 /64 (one household, one server; an
attacker holding a /64 would otherwise have 2**64 addresses). Loopback and addresses without an IP
(a Unix socket: the machine itself) are nobody's to limit unless asked; see :func:`address_key`.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import time
from collections.abc import Callable

# seconds between two sweeps of the quiet addresses out of the table
SWEEP_INTERVAL = 10.0
# quiet addresses kept at most: past it, all of them are forgotten (their buckets start full again)
MAX_QUIET_ADDRESSES = 100_000


def address_key(host: str, loopback_limited: bool) -> str | None:
    """The key ``host`` is counted under, or ``None`` when it is not limited per address.

    IPv4 addresses (IPv4-mapped IPv6 included) count as themselves, IPv6 addresses by their /64.
    Loopback is ``None`` unless ``loopback_limited``; so is an empty host (a Unix socket). A host
    that is not an IP address (a forwarded address a proxy wrote) counts as its first 64 characters.
    """
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback and not loopback_limited:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Verdict(enum.Enum):
    """Why an address may not open one more connection."""

    TOO_MANY = "too_many"  # it holds as many as it may
    TOO_FAST = "too_fast"  # its bucket of new connections is empty


class AddressRecord:
    """One address: connections open now, and its bucket of new connections (``tokens`` at ``at``)."""

    __slots__ = ("key", "open", "tokens", "at")

    def __init__(self, key: str, tokens: float, at: float) -> None:
        self.key = key
        self.open = 0
        self.tokens = tokens
        self.at = at


class AddressTable:
    """Every limited address with a connection open or a bucket not yet full again.

    ``admit`` counts one more connection of an address (``most_open`` at once, ``rate`` new ones a
    second on average, bursts of ``burst``); ``release`` ends one. Quiet addresses (nothing open,
    a full bucket) are swept out every :data:`SWEEP_INTERVAL` seconds, and all addresses with
    nothing open are dropped when more than :data:`MAX_QUIET_ADDRESSES` are kept: the table holds
    at most the addresses with a connection open plus that many.
    """

    def __init__(self, most_open: int, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.most_open, self.rate, self.burst = most_open, rate, burst
        self.clock = clock
        self._records: dict[str, AddressRecord] = {}
        self._next_sweep = clock() + SWEEP_INTERVAL

    def __len__(self) -> int:
        return len(self._records)

    def admit(self, key: str) -> AddressRecord | tuple[Verdict, float]:
        """Count one more connection of ``key``: its record, or why not and the seconds until it may
        try again (0 when nothing but a connection closing would let it)."""
        now = self.clock()
        if now >= self._next_sweep or len(self._records) > MAX_QUIET_ADDRESSES:
            self._sweep(now)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = AddressRecord(key, self.burst, now)
        if record.open >= self.most_open:
            return Verdict.TOO_MANY, 0.0
        record.tokens = min(self.burst, record.tokens + (now - record.at) * self.rate)
        record.at = now
        if record.tokens < 1.0:
            return Verdict.TOO_FAST, (1.0 - record.tokens) / self.rate
        record.tokens -= 1.0
        record.open += 1
        return record

    def release(self, record: AddressRecord) -> None:
        """One connection of ``record``'s address ended."""
        record.open -= 1

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL
        refill = self.burst / self.rate  # seconds an empty bucket takes to be full again
        crowded = len(self._records) > MAX_QUIET_ADDRESSES
        for key, record in list(self._records.items()):
            if record.open == 0 and (crowded or now - record.at >= refill):
                del self._records[key]


def retry_after(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header: at least 1."""
    return max(1, math.ceil(seconds))
