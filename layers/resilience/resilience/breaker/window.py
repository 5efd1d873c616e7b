"""This environment's outcomes, in memory, and the rule that judges them.

* ``pending`` holds the outcomes not yet written, ``local`` this environment's own recent ones; both
  are buckets of :class:`~resilience.breaker.state.WindowCounts` keyed by bucket start, and a bucket
  counts while it lies in the sliding window and started after the last close (``window_start``).
* Pending outcomes are written, successes included, in one atomic ``ADD`` (see
  :func:`resilience.breaker.transitions.publish`): by a flush once they hold a failure or a slow
  call (:meth:`OutcomeWindow.flushable`), and by a due refresh, instead of a read, when they do or
  when the previous write did (:meth:`OutcomeWindow.publishable`: the successes that follow trouble).
  So what the fleet has not heard yet is a span of time, not the successes after the last failure,
  and the fleet's rate stays unbiased. Pending buckets that leave the window are dropped, never written.
* :func:`judge` decides, with no I/O, whether the fleet's window plus the unwritten outcomes, or
  this environment's own window, trips the breaker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from resilience.breaker.state import WindowCounts, bucket_of, in_window
from resilience.breaker.status import Reason

if TYPE_CHECKING:
    from collections.abc import Mapping

    from resilience.breaker.state import BreakerRecord
    from resilience.config import BreakerConfig


def judge(fleet: WindowCounts, local: WindowCounts, config: BreakerConfig) -> Reason | None:
    """Whether a CLOSED breaker should open, and why.

    Parameters
    ----------
    fleet : WindowCounts
        The fleet-wide window as last read, plus this environment's unwritten outcomes.
    local : WindowCounts
        This environment's own outcomes in the window.
    config : BreakerConfig
        ``minimum_calls`` and the rate thresholds for ``fleet``; ``local_minimum_calls`` for ``local``.

    Returns
    -------
    Reason | None
        The fleet rules first (failure rate, then slow-call rate), then the local ones (every call
        failed, then every call slow: a dead provider, cut off without waiting for the fleet);
        ``None`` when the breaker stays closed.
    """
    if fleet.calls >= config.minimum_calls:
        if fleet.failure_rate >= config.failure_rate_threshold:
            return Reason.FAILURE_RATE
        if fleet.slow_call_rate >= config.slow_call_rate_threshold:
            return Reason.SLOW_CALL_RATE
    if local.calls >= config.local_minimum_calls:
        if local.failures == local.calls:
            return Reason.LOCAL_FAILURES
        if local.slow == local.calls:
            return Reason.LOCAL_SLOW_CALLS
    return None


class OutcomeWindow:
    """The pending and local windows of one breaker in one environment (not thread-safe: the breaker locks).

    Every method that looks at the window takes ``window_start``, the start of the current period
    (the last close or reset) from the breaker's cached record: earlier buckets no longer count.

    Parameters
    ----------
    config : BreakerConfig
        ``window_seconds`` and ``bucket_seconds``.
    """

    def __init__(self, config: BreakerConfig) -> None:
        self._config = config
        self.pending: dict[int, WindowCounts] = {}
        self.local: dict[int, WindowCounts] = {}
        self.wrote_trouble = False  # the last window write held a failure or a slow call

    def _counts(self, bucket: int, now: float, window_start: float) -> bool:
        return in_window(bucket, now, self._config.window_seconds, self._config.bucket_seconds, window_start)

    def add(self, counts: WindowCounts, now: float, window_start: float) -> None:
        """Count one outcome in the bucket of ``now``, in both windows (after dropping what left them)."""
        bucket = bucket_of(now, self._config.bucket_seconds)
        self.prune(now, window_start)
        self.pending[bucket] = self.pending.get(bucket, WindowCounts()) + counts
        self.local[bucket] = self.local.get(bucket, WindowCounts()) + counts

    def forget(self) -> None:
        """Drop every outcome: they belong to a period (version or state) that is over."""
        self.pending.clear()
        self.local.clear()
        self.wrote_trouble = False

    def prune(self, now: float, window_start: float) -> None:
        """Drop the buckets that left the window; pending ones are never written then."""
        for buckets in (self.pending, self.local):
            for start in [b for b in buckets if not self._counts(b, now, window_start)]:
                del buckets[start]

    def written(self, batch: Mapping[int, WindowCounts]) -> None:
        """``batch`` reached the store: it is no longer pending."""
        for bucket in batch:
            self.pending.pop(bucket, None)
        self.wrote_trouble = any(counts.has_trouble for counts in batch.values())

    def fleet(self, record: BreakerRecord, now: float) -> WindowCounts:
        """The fleet-wide window of ``record`` plus the unwritten outcomes: what the fleet rules judge."""
        config = self._config
        return record.window(now, config.window_seconds, config.bucket_seconds) + WindowCounts.total(
            c for b, c in self.pending.items() if self._counts(b, now, record.window_start)
        )

    def local_counts(self, now: float, window_start: float) -> WindowCounts:
        """This environment's own outcomes in the window: what the local rules judge."""
        return WindowCounts.total(c for b, c in self.local.items() if self._counts(b, now, window_start))

    def local_trouble(self, now: float, window_start: float) -> bool:
        """Whether this environment saw a failure or a slow call in the window (it is then suspect)."""
        return any(c.has_trouble for b, c in self.local.items() if self._counts(b, now, window_start))

    def unwritten(self, now: float, window_start: float) -> dict[int, WindowCounts]:
        """Every pending bucket still in the window: what the next write carries, successes included."""
        return {b: c for b, c in self.pending.items() if self._counts(b, now, window_start)}

    def flushable(self, now: float, window_start: float) -> dict[int, WindowCounts]:
        """What a flush writes: every unwritten in-window bucket once one holds a failure or a slow call."""
        unwritten = self.unwritten(now, window_start)
        return unwritten if any(c.has_trouble for c in unwritten.values()) else {}

    def publishable(self, now: float, window_start: float) -> dict[int, WindowCounts]:
        """What a due refresh of a CLOSED breaker writes instead of reading: what a flush would, or else
        the successes that follow trouble this environment just wrote, so they are not left behind.
        An environment without trouble in its window never writes."""
        unwritten = self.unwritten(now, window_start)
        if any(c.has_trouble for c in unwritten.values()):
            return unwritten
        if unwritten and self.wrote_trouble and self.local_trouble(now, window_start):
            return unwritten
        return {}
