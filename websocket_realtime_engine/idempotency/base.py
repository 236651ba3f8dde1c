"""The idempotency store interface: keys claimed once within a time to live.

A publisher claims a key before it publishes: the first claim of a key wins and every later claim
within ``ttl`` seconds loses, so a retried request (a client that timed out waiting for the answer,
a queue that redelivers) is not published twice. When the publish fails, the publisher releases the
key so that a retry can publish. Keys are opaque strings of at most :data:`MAX_KEY_LENGTH` characters.
"""

from __future__ import annotations

from typing import Protocol

MAX_KEY_LENGTH = 128


class IdempotencyStore(Protocol):
    """Keys remembered for a while; ``tests/backends`` holds the conformance suite."""

    async def claim(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; ``True`` when this call is the first to claim it
        within that time (atomic: of concurrent claims, exactly one wins)."""

    async def release(self, key: str) -> None:
        """Forget ``key`` (its publish failed), so the next claim of it wins; no error if unknown."""
