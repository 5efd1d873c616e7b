"""Usage-plan throttling as API Gateway applies it: a token bucket per API key."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass
class TokenBucket:
    """``rate`` tokens per second refill a bucket holding at most ``burst``; each request takes one."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 0:
            raise ValueError("throttle rate and burst must not be negative")
        self._tokens = float(self.burst)
        self._updated = self.clock()

    def take(self) -> bool:
        """Take one token; False when the bucket is empty (the request is throttled)."""
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class KeyThrottle:
    """One bucket per API key, all with the usage plan's RateLimit and BurstLimit; thread-safe."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def allow(self, api_key: str) -> bool:
        """Whether a request with ``api_key`` may pass now."""
        with self._lock:
            bucket = self._buckets.get(api_key)
            if bucket is None:
                bucket = self._buckets[api_key] = TokenBucket(self.rate, self.burst, self.clock)
            return bucket.take()


def _period_key(period: str, now: float) -> tuple[int, ...]:
    moment = time.gmtime(now)
    if period == "DAY":
        return (moment.tm_year, moment.tm_yday)
    if period == "WEEK":
        iso = datetime.fromtimestamp(now, UTC).isocalendar()
        return (iso.year, iso.week)
    if period == "MONTH":
        return (moment.tm_year, moment.tm_mon)
    raise ValueError(f"usage plan quota period {period!r} is not DAY, WEEK or MONTH")


@dataclass
class KeyQuota:
    """A usage plan Quota: at most ``limit`` requests per key per calendar ``period`` (UTC; Offset ignored)."""

    limit: int
    period: str
    clock: Callable[[], float] = time.time
    _used: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        _period_key(self.period, self.clock())  # reject an unknown period at start-up

    def allow(self, api_key: str) -> bool:
        """Count a request with ``api_key``; False once the period's quota is used up."""
        with self._lock:
            current = _period_key(self.period, self.clock())
            period, used = self._used.get(api_key, (current, 0))
            if period != current:
                used = 0
            if used >= self.limit:
                return False
            self._used[api_key] = (current, used + 1)
            return True
