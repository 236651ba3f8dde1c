"""Rate limits: a token bucket (``rate`` events per second on average, bursts of up to ``burst``), the
flood guard every inbound frame of a connection passes, and the count of what a full queue drops."""

from __future__ import annotations

import enum
import math
import time


class TokenBucket:
    """Refills continuously; :meth:`take` says whether one more event fits now."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._tokens = self.burst
        self._at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


MAX_PAUSE = 0.5  # seconds a flooding connection goes unread at most, at a time


class Verdict(enum.Enum):
    """What to do with one inbound frame."""

    ADMIT = "admit"
    DROP = "drop"  # over the rate: dropped silently (an error went out less than a second ago)
    WARN = "warn"  # over the rate: dropped, with one error frame (at most one per second)
    CLOSE = "close"  # over the rate for ``close_after`` seconds without a break: end the connection


class FloodGuard:
    """Every inbound frame of one connection, whatever its kind, against ``rate`` per second (bursts of
    twice that). Over it, frames are dropped with one error per second; a client that stays over it
    (no second without a dropped frame) for ``close_after`` seconds is to be closed."""

    __slots__ = ("bucket", "close_after", "_streak_from", "_dropped_at", "_warned_at", "_pause")

    def __init__(self, rate: float, close_after: float) -> None:
        self.bucket = TokenBucket(rate, rate * 2)
        self.close_after = close_after
        self._streak_from = self._dropped_at = self._warned_at = -math.inf
        self._pause = 0.0

    def check(self) -> Verdict:
        if self.bucket.take():
            return Verdict.ADMIT
        now = time.monotonic()
        if now - self._dropped_at > 1.0:  # a second without a dropped frame ends a streak
            self._streak_from = now
            self._pause = 0.0
        self._dropped_at = now
        if now - self._streak_from >= self.close_after:
            return Verdict.CLOSE
        if now - self._warned_at >= 1.0:
            self._warned_at = now
            return Verdict.WARN
        return Verdict.DROP

    def pause(self) -> float:
        """Seconds to read nothing more from the connection after a dropped frame: one frame's time at first,
        doubling while the streak goes on, at most ``MAX_PAUSE`` (under a second, so the streak, and
        the way to ``close_after``, goes on too)."""
        self._pause = min(MAX_PAUSE, self._pause * 2 if self._pause else 1.0 / self.bucket.rate)
        return self._pause


class Drops:
    """What a bounded queue dropped: counted, and reported at most once per ``interval`` seconds."""

    __slots__ = ("count", "interval", "_reported", "_reported_at")

    def __init__(self, interval: float = 10.0) -> None:
        self.count = 0
        self.interval = interval
        self._reported = 0
        self._reported_at = -math.inf

    def drop(self) -> int:
        """Count one; how many were dropped since the last report when a report is due now, else 0."""
        self.count += 1
        now = time.monotonic()
        if now - self._reported_at < self.interval:
            return 0
        since, self._reported, self._reported_at = self.count - self._reported, self.count, now
        return since
