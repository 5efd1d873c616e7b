"""What a breaker tells the outside: why it changed state, each change, and the health endpoints' view.

Everything here is a value computed from a :class:`~resilience.breaker.state.BreakerRecord`; nothing
reads or writes the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from resilience.breaker.state import LEASE_DONE, BreakerRecord, BreakerState

if TYPE_CHECKING:
    from resilience.config import BreakerConfig


class Reason(StrEnum):
    """Why a breaker changed state (the ``reason`` of a :class:`Transition` and of the stored item)."""

    FAILURE_RATE = "failure_rate"
    """The fleet-wide window reached ``failure_rate_threshold`` over at least ``minimum_calls``."""
    SLOW_CALL_RATE = "slow_call_rate"
    """The fleet-wide window reached ``slow_call_rate_threshold`` over at least ``minimum_calls``."""
    LOCAL_FAILURES = "local_failures"
    """This environment's last ``local_minimum_calls`` (or more) calls all failed."""
    LOCAL_SLOW_CALLS = "local_slow_calls"
    """This environment's last ``local_minimum_calls`` (or more) calls were all slow."""
    PROBE_FAILED = "probe_failed"
    """A half-open probe failed: back to OPEN, for a longer wait."""
    PROBES_SUCCEEDED = "probes_succeeded"
    """``success_threshold`` probes succeeded: CLOSED, with a fresh window."""
    WAIT_ELAPSED = "wait_elapsed"
    """OPEN's wait ended: HALF_OPEN, the first probe taken by the environment that moved it."""
    RESET = "reset"
    """Operator action: CLOSED, with a fresh window."""
    FORCE_OPEN = "force_open"
    """Operator action: FORCED_OPEN until reset."""
    DISABLE = "disable"
    """Operator action: DISABLED until reset."""


@dataclass(frozen=True)
class Transition:
    """One state change of a breaker, as performed by this environment.

    Parameters
    ----------
    breaker : str
        The breaker's name.
    from_state, to_state : BreakerState
        The states before and after.
    from_version, to_version : int
        The item's version before and after (``to_version == from_version + 1``).
    at : float
        When it happened (epoch seconds).
    reason : Reason
        Why (``failure_rate``, ``local_failures``, ``probe_failed``, ``reset``...); a ``str``.
    """

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    from_version: int
    to_version: int
    at: float
    reason: Reason


def retry_after(record: BreakerRecord, config: BreakerConfig, now: float) -> float | None:
    """Seconds until a call may be permitted: 0 now, ``None`` when only an operator can reopen the breaker."""
    match record.state:
        case BreakerState.CLOSED | BreakerState.DISABLED:
            return 0.0
        case BreakerState.FORCED_OPEN:
            return None
        case BreakerState.OPEN:
            return max((record.open_until or now) - now, 0.0)
        case BreakerState.HALF_OPEN:
            if record.claimable_slots(now, config.half_open_permits):
                return 0.0
            live = [lease.until for lease in record.leases.values() if lease.holder != LEASE_DONE]
            return max(min(live, default=now + config.suspect_cache_ttl_seconds) - now, 0.0)
    return None  # pragma: no cover - the match is exhaustive


@dataclass(frozen=True)
class BreakerStatus:
    """A breaker as the health endpoints show it.

    Parameters
    ----------
    name : str
        The breaker's name.
    state : BreakerState
        Its state.
    version : int
        Transitions so far.
    failure_rate, slow_call_rate : float
        Rates over the fleet-wide window (written outcomes only).
    calls_in_window, failures_in_window, slow_calls_in_window : int
        The window's counters.
    opened_at : float | None
        When it last opened.
    next_probe_at : float | None
        When OPEN ends (OPEN), or when a probe permit is next free (HALF_OPEN).
    open_count : int
        Consecutive opens without a close.
    probes_in_flight : int
        Live probe leases (HALF_OPEN).
    """

    name: str
    state: BreakerState
    version: int
    failure_rate: float
    slow_call_rate: float
    calls_in_window: int
    failures_in_window: int
    slow_calls_in_window: int
    opened_at: float | None
    next_probe_at: float | None
    open_count: int
    probes_in_flight: int

    @classmethod
    def from_record(cls, record: BreakerRecord, config: BreakerConfig, now: float) -> BreakerStatus:
        """Summarise a record at time ``now``."""
        window = record.window(now, config.window_seconds, config.bucket_seconds)
        live = [lease for lease in record.leases.values() if lease.holder != LEASE_DONE and lease.until > now]
        next_probe_at: float | None = None
        if record.state is BreakerState.OPEN:
            next_probe_at = record.open_until
        elif record.state is BreakerState.HALF_OPEN:
            free = record.claimable_slots(now, config.half_open_permits)
            next_probe_at = now if free else min((lease.until for lease in live), default=None)
        return cls(
            name=record.name,
            state=record.state,
            version=record.version,
            failure_rate=window.failure_rate,
            slow_call_rate=window.slow_call_rate,
            calls_in_window=window.calls,
            failures_in_window=window.failures,
            slow_calls_in_window=window.slow,
            opened_at=record.opened_at,
            next_probe_at=next_probe_at,
            open_count=record.open_count,
            probes_in_flight=len(live) if record.state is BreakerState.HALF_OPEN else 0,
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (state as its name)."""
        return {
            "name": self.name,
            "state": str(self.state),
            "version": self.version,
            "failure_rate": round(self.failure_rate, 4),
            "slow_call_rate": round(self.slow_call_rate, 4),
            "calls_in_window": self.calls_in_window,
            "failures_in_window": self.failures_in_window,
            "slow_calls_in_window": self.slow_calls_in_window,
            "opened_at": self.opened_at,
            "next_probe_at": self.next_probe_at,
            "open_count": self.open_count,
            "probes_in_flight": self.probes_in_flight,
        }
