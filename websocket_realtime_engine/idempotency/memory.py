"""In-process idempotency keys. With this store a retry is recognised only by the node that saw the
first request: run a single node, or send retries to the same node.

No method awaits anything, so on one event loop a claim is atomic. Memory is bounded by the keys
claimed within the last ``ttl`` seconds: expired keys are swept at least once per ``ttl`` seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryIdempotency:
    """key → when it expires, in a dictionary.

    :param clock: monotonic seconds; a test may pass its own.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, float] = {}
        self._next_sweep = 0.0

    async def claim(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; ``True`` when this call is the first to claim it
        within that time."""
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now, ttl)
        expires_at = self._expiry.get(key)
        if expires_at is not None and expires_at > now:
            return False
        self._expiry[key] = now + ttl
        return True

    async def release(self, key: str) -> None:
        """Forget ``key`` (its publish failed), so the next claim of it wins."""
        self._expiry.pop(key, None)

    def _sweep(self, now: float, ttl: float) -> None:
        """Forget every expired key; the next sweep is due ``ttl`` later."""
        self._expiry = {key: expires_at for key, expires_at in self._expiry.items() if expires_at > now}
        self._next_sweep = now + ttl
