"""What a breaker tells the outside: a log line, metrics and a hook call per transition, a log line per
store error, and the outcome counts it emits once per flush. Nothing here changes the breaker's state."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from resilience.breaker.state import STATE_CODES, BreakerState
from resilience.breaker.status import Transition
from resilience.config import DEFAULT_SERVICE
from resilience.observability import (
    METRIC_FAILURE,
    METRIC_OPEN,
    METRIC_REJECTED,
    METRIC_STATE,
    METRIC_STORE_ERROR,
    METRIC_SUCCESS,
    NullBreakerMetrics,
    get_logger,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.breaker.state import BreakerRecord
    from resilience.breaker.status import Reason
    from resilience.config import BreakerConfig
    from resilience.observability import BreakerMetrics, StructuredLogger


class Reporter:
    """The logs, metrics and ``on_transition`` hook of one breaker (not thread-safe: the breaker locks).

    Parameters
    ----------
    name : str
        The breaker's name (the ``breaker`` log field and metric dimension).
    config : BreakerConfig
        The window a transition's log line summarises.
    metrics : BreakerMetrics | None
        Metrics sink (none when omitted).
    logger : StructuredLogger | None
        Structured logger (the library's when omitted).
    on_transition : Callable[[Transition], None] | None
        Called after each transition; its errors are logged, never raised.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        metrics: BreakerMetrics | None = None,
        logger: StructuredLogger | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self._name = name
        self._config = config
        self._metrics: BreakerMetrics = metrics or NullBreakerMetrics()
        self._logger: StructuredLogger = logger or get_logger(DEFAULT_SERVICE)
        self._on_transition = on_transition
        self._tally: Counter[str] = Counter()

    @property
    def store_errors(self) -> int:
        """Store requests that failed since the last :meth:`emit_tally`."""
        return self._tally[METRIC_STORE_ERROR]

    def outcome(self, *, failed: bool) -> None:
        """Count one recorded call."""
        self._tally[METRIC_FAILURE if failed else METRIC_SUCCESS] += 1

    def rejected(self) -> None:
        """Count one call the breaker rejected."""
        self._tally[METRIC_REJECTED] += 1

    def store_failed(self, operation: str, error: Exception) -> None:
        """Count and log a store request that failed."""
        self._tally[METRIC_STORE_ERROR] += 1
        self._logger.warning(
            "circuit breaker store unavailable; failing open",
            extra={"breaker": self._name, "operation": operation, "error": str(error)},
        )

    def emit_tally(self, state: BreakerState) -> None:
        """Emit the counts since the last call (nothing when there are none), with the current state."""
        counts = {name: float(value) for name, value in self._tally.items() if value}
        self._tally.clear()
        if not counts:
            return
        counts[METRIC_STATE] = STATE_CODES[state]
        self._metrics.emit(self._name, counts)

    def transition(
        self, previous: BreakerRecord, current: BreakerRecord, now: float, reason: Reason, *, stored: bool = True
    ) -> Transition:
        """Log, emit and hand on the transition from ``previous`` to ``current``.

        Parameters
        ----------
        previous, current : BreakerRecord
            The record before and after (the log line shows the window ``previous`` judged).
        now : float
            When it happened.
        reason : Reason
            Why.
        stored : bool
            Whether the store received it (``False``: it applies to this environment only).

        Returns
        -------
        Transition
            What was handed to ``on_transition``.
        """
        transition = Transition(
            self._name, previous.state, current.state, previous.version, current.version, now, reason
        )
        window = previous.window(now, self._config.window_seconds, self._config.bucket_seconds)
        self._logger.info(
            "circuit breaker transition",
            extra={
                "breaker": self._name,
                "from_state": str(transition.from_state),
                "to_state": str(transition.to_state),
                "version": transition.to_version,
                "reason": str(reason),
                "failure_rate": round(window.failure_rate, 4),
                "calls_in_window": window.calls,
                "open_until": current.open_until,
                "store_reachable": stored,
            },
        )
        values: dict[str, float] = {METRIC_STATE: STATE_CODES[current.state]}
        if current.state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            values[METRIC_OPEN] = 1
        self._metrics.emit(self._name, values)
        if self._on_transition is not None:
            try:
                self._on_transition(transition)
            except Exception:  # an observer must never break the protected call
                self._logger.exception("circuit breaker on_transition hook failed", extra={"breaker": self._name})
        return transition
