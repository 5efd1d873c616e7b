"""Breaker states, window counters and the parsed breaker record.

The record is the store-agnostic view of the one item a breaker keeps (see
:mod:`resilience.breaker.dynamodb` for its layout): the state machine's position, its version,
the open/half-open bookkeeping and the fleet-wide window buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

AttributeValue = str | int | float
Attributes = Mapping[str, AttributeValue]

# Attribute names of the breaker item. Short, because DynamoDB bills item size by attribute name too.
NAME = "name"
STATE = "state"
VERSION = "version"
OPENED_AT = "opened_at"
OPEN_UNTIL = "open_until"
OPEN_COUNT = "open_count"
WINDOW_START = "window_start"
PROBE_SUCCESSES = "probe_successes"
EXPIRES_AT = "expires_at"
TRANSITION_REASON = "reason"
CHANGED_AT = "changed_at"
LEASE_DONE = "done"  # a probe slot whose probe succeeded: used up for this half-open period

_CALLS, _FAILURES, _SLOW = "c", "f", "s"


class BreakerState(StrEnum):
    """Where a breaker's state machine stands."""

    CLOSED = "CLOSED"
    """Calls flow; outcomes feed the sliding window."""
    OPEN = "OPEN"
    """Calls are rejected until the wait ends."""
    HALF_OPEN = "HALF_OPEN"
    """A bounded number of probe calls decide between CLOSED and OPEN."""
    FORCED_OPEN = "FORCED_OPEN"
    """An operator opened the breaker; it stays open until reset."""
    DISABLED = "DISABLED"
    """An operator switched the breaker off; every call flows and nothing is recorded."""


STATE_CODES: Mapping[BreakerState, int] = {
    BreakerState.CLOSED: 0,
    BreakerState.HALF_OPEN: 1,
    BreakerState.OPEN: 2,
    BreakerState.FORCED_OPEN: 3,
    BreakerState.DISABLED: 4,
}
"""The value of the ``CircuitBreakerState`` metric for each state (higher is less healthy, DISABLED aside)."""


def lease_attribute(slot: int) -> str:
    """Attribute holding the holder of probe slot ``slot`` (1-based)."""
    return f"lease{slot}"


def lease_until_attribute(slot: int) -> str:
    """Attribute holding the expiry (epoch seconds) of probe slot ``slot``'s lease."""
    return f"lease{slot}_until"


def bucket_attributes(bucket: int) -> tuple[str, str, str]:
    """The calls, failures and slow-calls attributes of the window bucket starting at ``bucket``."""
    return f"{_CALLS}{bucket}", f"{_FAILURES}{bucket}", f"{_SLOW}{bucket}"


def bucket_of(now: float, bucket_seconds: float) -> int:
    """Start (epoch seconds, an integer) of the bucket that ``now`` falls in."""
    return int(math.floor(now / bucket_seconds) * bucket_seconds)


@dataclass(frozen=True)
class WindowCounts:
    """Calls, failures and slow calls counted over some span of time.

    Parameters
    ----------
    calls : int
        Calls that reached the protected function and were not ignored.
    failures : int
        Of those, the ones that failed.
    slow : int
        Of those, the ones that lasted at least ``slow_call_seconds``.
    """

    calls: int = 0
    failures: int = 0
    slow: int = 0

    def __add__(self, other: WindowCounts) -> WindowCounts:
        return WindowCounts(self.calls + other.calls, self.failures + other.failures, self.slow + other.slow)

    @property
    def failure_rate(self) -> float:
        """Failures over calls, 0 when there were no calls."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Slow calls over calls, 0 when there were no calls."""
        return self.slow / self.calls if self.calls else 0.0

    @property
    def has_trouble(self) -> bool:
        """Whether any call failed or was slow: only such buckets are ever written."""
        return self.failures > 0 or self.slow > 0

    @classmethod
    def total(cls, counts: Iterable[WindowCounts]) -> WindowCounts:
        """Sum of several counts."""
        calls = failures = slow = 0
        for item in counts:  # plain integers: this runs after every outcome, so no object per term
            calls += item.calls
            failures += item.failures
            slow += item.slow
        return cls(calls, failures, slow)


def in_window(bucket: int, now: float, window_seconds: float, bucket_seconds: float, window_start: float) -> bool:
    """Whether the bucket starting at ``bucket`` counts towards the window ending at ``now``.

    A bucket counts while any part of it lies inside ``(now - window_seconds, now]`` and it started
    at or after ``window_start`` (the last close or reset: older outcomes belong to a previous period).
    """
    return bucket + bucket_seconds > now - window_seconds and bucket >= window_start


@dataclass(frozen=True)
class Lease:
    """One probe permit of a half-open period.

    Parameters
    ----------
    slot : int
        Which of the ``half_open_permits`` slots (1-based).
    holder : str
        The permit's id, or ``"done"`` once its probe succeeded.
    until : float
        When the lease expires (epoch seconds); an expired, unfinished lease may be re-granted.
    """

    slot: int
    holder: str
    until: float

    def claimable(self, now: float) -> bool:
        """Whether another caller may take this slot: the probe died and never reported."""
        return self.holder != LEASE_DONE and self.until <= now


@dataclass(frozen=True)
class BreakerRecord:
    """A breaker's shared state, as read from (or returned by) the store.

    Parameters
    ----------
    name : str
        The breaker's name.
    state : BreakerState
        Current state; a breaker without an item is CLOSED.
    version : int
        Incremented by every transition; a breaker without an item is at version 0.
    opened_at : float | None
        When the breaker last opened.
    open_until : float | None
        When OPEN ends and the first probe may run.
    open_count : int
        Consecutive opens without a close in between (drives the growing wait).
    window_start : float
        Outcomes from buckets that started earlier belong to a previous period and are ignored.
    probe_successes : int
        Successful probes in the current half-open period.
    leases : Mapping[int, Lease]
        Probe slots handed out in the current half-open period.
    buckets : Mapping[int, WindowCounts]
        Fleet-wide window buckets, keyed by bucket start.
    """

    name: str
    state: BreakerState = BreakerState.CLOSED
    version: int = 0
    opened_at: float | None = None
    open_until: float | None = None
    open_count: int = 0
    window_start: float = 0.0
    probe_successes: int = 0
    leases: Mapping[int, Lease] = field(default_factory=dict)
    buckets: Mapping[int, WindowCounts] = field(default_factory=dict)

    @classmethod
    def from_attributes(cls, name: str, attributes: Attributes | None) -> BreakerRecord:
        """Parse a store item; ``None`` (no item yet) is a CLOSED breaker at version 0.

        Parameters
        ----------
        name : str
            The breaker's name.
        attributes : Mapping[str, str | int | float] | None
            The item's attributes.

        Returns
        -------
        BreakerRecord
            The parsed record.
        """
        if not attributes:
            return cls(name=name)
        raw_buckets: dict[int, list[int]] = {}
        holders: dict[int, str] = {}
        untils: dict[int, float] = {}
        for key, value in attributes.items():
            prefix, rest = key[:1], key[1:]
            if prefix in (_CALLS, _FAILURES, _SLOW) and rest.isdigit():
                counters = raw_buckets.setdefault(int(rest), [0, 0, 0])
                counters[(_CALLS, _FAILURES, _SLOW).index(prefix)] = int(value)
            elif key.startswith("lease") and key.endswith("_until") and key[5:-6].isdigit():
                untils[int(key[5:-6])] = float(value)
            elif key.startswith("lease") and key[5:].isdigit():
                holders[int(key[5:])] = str(value)
        leases = {slot: Lease(slot, holder, untils.get(slot, 0.0)) for slot, holder in holders.items()}
        return cls(
            name=name,
            state=BreakerState(str(attributes.get(STATE, BreakerState.CLOSED))),
            version=int(attributes.get(VERSION, 0)),
            opened_at=_optional_float(attributes.get(OPENED_AT)),
            open_until=_optional_float(attributes.get(OPEN_UNTIL)),
            open_count=int(attributes.get(OPEN_COUNT, 0)),
            window_start=float(attributes.get(WINDOW_START, 0.0)),
            probe_successes=int(attributes.get(PROBE_SUCCESSES, 0)),
            leases=leases,
            buckets={start: WindowCounts(*counters) for start, counters in raw_buckets.items()},
        )

    def window(self, now: float, window_seconds: float, bucket_seconds: float) -> WindowCounts:
        """The fleet-wide counts inside the sliding window ending at ``now``."""
        return WindowCounts.total(
            counts
            for start, counts in self.buckets.items()
            if in_window(start, now, window_seconds, bucket_seconds, self.window_start)
        )

    def stale_buckets(self, now: float, window_seconds: float, bucket_seconds: float) -> list[int]:
        """Buckets that no longer count (outside the window, or before the last close): safe to delete."""
        return [
            start
            for start in self.buckets
            if not in_window(start, now, window_seconds, bucket_seconds, self.window_start)
        ]

    def claimable_slots(self, now: float, permits: int) -> list[int]:
        """Probe slots (1-based) free or held by an expired lease, in slot order."""
        return [slot for slot in range(1, permits + 1) if slot not in self.leases or self.leases[slot].claimable(now)]


def _optional_float(value: AttributeValue | None) -> float | None:
    return None if value is None else float(value)
