"""The circuit breaker: one per name, its state shared by every execution environment through a store.

:class:`CircuitBreaker` coordinates and does the store's I/O, under one lock; the rules live in small
parts: :mod:`~resilience.breaker.admission` (who may call, and what the half-open probes settle),
:mod:`~resilience.breaker.snapshot` (the cached item, failing open), :mod:`~resilience.breaker.window`
(unwritten outcomes, :func:`~resilience.breaker.window.judge`), :mod:`~resilience.breaker.transitions`
(every write and its condition), :mod:`~resilience.breaker.permit`, :mod:`~resilience.breaker.status`
and :mod:`~resilience.breaker.reporting` (logs and metrics).
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from resilience.breaker import transitions
from resilience.breaker.admission import Admission
from resilience.breaker.permit import CallOutcome, Permit, PermitKind
from resilience.breaker.reporting import Reporter
from resilience.breaker.snapshot import Snapshot
from resilience.breaker.state import BreakerRecord, BreakerState, WindowCounts
from resilience.breaker.status import BreakerStatus, Reason, Transition, retry_after
from resilience.breaker.store import BreakerStore
from resilience.breaker.transitions import WriteResult
from resilience.breaker.window import OutcomeWindow, judge
from resilience.classification import ErrorClass, default_classifier
from resilience.clock import system_clock
from resilience.config import BreakerConfig
from resilience.errors import ConditionFailedError, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from resilience.breaker.state import Attributes
    from resilience.clock import Clock
    from resilience.observability import BreakerMetrics, StructuredLogger

    AdminWrite = Callable[[BreakerRecord, Attributes, float, BreakerConfig], transitions.Write]

__all__ = ["BreakerStatus", "CircuitBreaker", "Permit", "PermitKind", "Transition"]  # the names imported from here

P = ParamSpec("P")
T = TypeVar("T")

ADMIN_ATTEMPTS = 5


class CircuitBreaker:
    """A circuit breaker whose state lives in a :class:`BreakerStore`, shared by every environment.

    Usually obtained from a :class:`~resilience.breaker.registry.BreakerRegistry`. One instance
    stands for one execution environment: it caches state and aggregates outcomes in memory.
    It is thread-safe (one lock per breaker).

    Parameters
    ----------
    name : str
        The breaker's name, e.g. ``provider:sendgrid``.
    store : BreakerStore | Callable[[], BreakerStore]
        The store, or a factory called on first use.
    config : BreakerConfig | None
        Tunables; the library defaults when omitted.
    clock : Callable[[], float]
        Epoch seconds (``time.time``).
    classifier : Callable[[BaseException], ErrorClass] | None
        Decides which exceptions count as failures (default :data:`default_classifier`).
    metrics : BreakerMetrics | None
        Metrics sink (none when omitted; the registry passes the Powertools EMF sink).
    logger : logging.Logger | aws_lambda_powertools.Logger | None
        Structured logger for transitions and store errors.
    on_transition : Callable[[Transition], None] | None
        Called after each transition this environment performs (errors in it are logged, not raised).
    """

    def __init__(
        self,
        name: str,
        store: BreakerStore | Callable[[], BreakerStore],
        config: BreakerConfig | None = None,
        *,
        clock: Clock = system_clock,
        classifier: Callable[[BaseException], ErrorClass] | None = None,
        metrics: BreakerMetrics | None = None,
        logger: StructuredLogger | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.classifier: Callable[[BaseException], ErrorClass] = classifier or default_classifier
        self._store_or_factory = store
        self._store_instance: BreakerStore | None = store if isinstance(store, BreakerStore) else None
        self._clock = clock
        self._reporter = Reporter(name, self.config, metrics, logger, on_transition)
        self._lock = threading.RLock()
        self._window = OutcomeWindow(self.config)
        self._snapshot = Snapshot(
            name,
            self.config,
            lambda: self.store,
            on_new_period=self._window.forget,
            on_store_error=self._reporter.store_failed,
        )
        self._admission = Admission(self, self.config, self._snapshot, self._transition, self._reporter.rejected)

    # ------------------------------------------------------------------ public API
    @property
    def store(self) -> BreakerStore:
        """The store (created on first use when a factory was given)."""
        if self._store_instance is None:
            factory = self._store_or_factory
            self._store_instance = factory if isinstance(factory, BreakerStore) else factory()
        return self._store_instance

    @property
    def state(self) -> BreakerState:
        """The state this environment currently believes (cached; may read the store)."""
        with self._lock:
            return self._current(self._clock()).state

    @property
    def store_errors(self) -> int:
        """Store requests that failed since the last flush (each one also logged)."""
        return self._reporter.store_errors

    def allow(self) -> Permit:
        """Ask for permission to make one call.

        Returns
        -------
        Permit
            Record the call's outcome on it exactly once.

        Raises
        ------
        CircuitOpenError
            The breaker is OPEN, FORCED_OPEN, or HALF_OPEN with every probe permit taken.
        """
        with self._lock:
            now = self._clock()
            return self._admission.allow(self._current(now), now)

    def permits_call(self) -> bool:
        """Whether :meth:`allow` would hand out a permit now, without taking one.

        Returns
        -------
        bool
            ``True`` for CLOSED and DISABLED, for OPEN once its wait is over, for HALF_OPEN with a
            free probe slot, and while failing open; ``False`` otherwise. No probe slot is claimed;
            a due refresh may read, or write the pending window, as :meth:`allow` would.
        """
        return self.seconds_until_permitted() == 0.0

    def seconds_until_permitted(self) -> float | None:
        """Seconds until a call may be permitted: 0 now, ``None`` when only an operator can reopen it."""
        with self._lock:
            now = self._clock()
            return retry_after(self._current(now), self.config, now)

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call ``fn(*args, **kwargs)`` through the breaker.

        Parameters
        ----------
        fn : Callable
            The protected function.
        *args, **kwargs
            Its arguments.

        Returns
        -------
        T
            What ``fn`` returned.

        Raises
        ------
        CircuitOpenError
            The breaker rejected the call; ``fn`` was not called.
        """
        permit = self.allow()
        started = self._clock()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            permit.record_failure(exc, self._clock() - started)
            raise
        permit.record_success(self._clock() - started)
        return result

    def protect(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Decorate ``fn`` so every call goes through :meth:`call`."""

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return wrapper

    def flush(self) -> None:
        """Write the pending window if it holds trouble and a refresh is due, judge it, emit metrics.

        Call once per batch (:meth:`BreakerRegistry.flush` does it for every breaker). At most one
        ``UpdateItem``, carrying every pending in-window bucket, successes included; none when every
        pending call succeeded quickly, nor when this environment exchanged its window (or read)
        less than a cache lifetime ago: its outcomes then go out with the next due refresh or flush.
        A transition write follows only when the judged window trips the breaker.
        """
        with self._lock:
            now = self._clock()
            start = self._snapshot.record.window_start
            self._window.prune(now, start)  # pending successes older than the window are dropped, never written
            batch = self._window.flushable(now, start)
            # Quick successes alone are never written by a flush (a healthy path writes nothing), and a
            # flush within a cache lifetime of the last exchange keeps its trouble pending too: writing
            # each failure at once, but successes only with the next one, left every environment's
            # successes since its last failure out of the fleet's counters, and the rate biased upwards.
            if batch and self._refresh_due(now):
                self._publish(now, batch, "flush")
            # Written or not, judge: the window slid (old successes may have left it) and the counters
            # just read back may trip the breaker. Judging costs no request.
            if self._snapshot.record.state is BreakerState.CLOSED:
                self._judge(now)
            self._reporter.emit_tally(self._snapshot.record.state)

    def describe(self) -> BreakerStatus:
        """The breaker as stored now (one read, bypassing the cache).

        Returns
        -------
        BreakerStatus
            State, rates, window counters, ``opened_at`` and the next probe time.

        Raises
        ------
        StoreUnavailableError
            The store could not be read.
        """
        record = BreakerRecord.from_attributes(self.name, self.store.load(self.name))
        return BreakerStatus.from_record(record, self.config, self._clock())

    def reset(self) -> Transition | None:
        """Operator action: close the breaker and start a fresh window (from any state)."""
        return self._admin(BreakerState.CLOSED, Reason.RESET, transitions.reset)

    def force_open(self) -> Transition | None:
        """Operator action: reject every call until :meth:`reset`."""
        return self._admin(BreakerState.FORCED_OPEN, Reason.FORCE_OPEN, transitions.force_open)

    def disable(self) -> Transition | None:
        """Operator action: let every call through, record nothing, until :meth:`reset`."""
        return self._admin(BreakerState.DISABLED, Reason.DISABLE, transitions.disable)

    def record_outcome(self, permit: Permit, outcome: CallOutcome, duration: float | None) -> None:
        """Apply the outcome of a call this breaker permitted (what :class:`Permit` reports to)."""
        with self._lock:
            now = self._clock()
            if permit.kind is PermitKind.UNTRACKED:
                return
            if outcome is not CallOutcome.IGNORED:
                self._reporter.outcome(failed=outcome is CallOutcome.FAILURE)
            if permit.kind is PermitKind.PROBE:
                self._admission.settle_probe(permit, outcome, now)
                return
            record = self._snapshot.record
            if outcome is CallOutcome.IGNORED or permit.version != record.version:
                return  # ignored errors count neither way; outcomes of a finished period are dropped
            elapsed = now - permit.started_at if duration is None else duration
            slow = elapsed >= self.config.slow_call_seconds
            self._window.add(WindowCounts(1, int(outcome is CallOutcome.FAILURE), int(slow)), now, record.window_start)
            if record.state is BreakerState.CLOSED:
                self._judge(now)

    # ------------------------------------------------------------------ reading
    def _refresh_due(self, now: float) -> bool:
        troubled = self._window.local_trouble(now, self._snapshot.record.window_start)
        return self._snapshot.refresh_due(now, troubled=troubled)

    def _current(self, now: float) -> BreakerRecord:
        record = self._snapshot.record
        if not self._refresh_due(now):
            return record
        batch = self._window.publishable(now, record.window_start) if record.state is BreakerState.CLOSED else {}
        if batch:
            # A due refresh with outcomes to publish writes them instead of reading: the ADD returns
            # the item, so it is the same one request, and the fleet hears from this environment
            # once per cache lifetime, whatever its batch size.
            self._publish(now, batch, "refresh")  # an unreachable store fails open, as for a read
        else:
            self._snapshot.read(now)
        return self._snapshot.record

    # ------------------------------------------------------------------ judging and transitions
    def _judge(self, now: float) -> None:
        record = self._snapshot.record
        reason = judge(
            self._window.fleet(record, now), self._window.local_counts(now, record.window_start), self.config
        )
        if reason is None:
            return
        batch = self._window.unwritten(now, record.window_start)
        write = transitions.open_breaker(
            record, self._snapshot.attributes, now, self.config, reason=reason, batch=batch
        )
        self._window.pending.clear()  # the open carries them, whether it lands or not
        self._transition(record, write, now, reason)

    def _publish(self, now: float, batch: Mapping[int, WindowCounts], operation: str) -> None:
        """Write ``batch`` (unwritten window buckets) in one ADD and adopt the item it returns.

        When the store cannot be reached the outcomes stay pending, for the next write.
        """
        write = transitions.publish_window(
            self._snapshot.record, self._snapshot.attributes, now, self.config, batch=batch
        )
        # Marked written before the item is adopted: a new period then forgets them with the rest.
        self._snapshot.send(write, now, operation, on_applied=functools.partial(self._window.written, batch))

    def _transition(self, record: BreakerRecord, write: transitions.Write, now: float, reason: Reason) -> WriteResult:
        """Apply a transition from ``record``; when the store is unreachable it applies to this environment only."""
        result = self._snapshot.send(write, now, "transition")
        if result is WriteResult.STORE_DOWN:
            self._snapshot.apply_locally(write.update, now)
        if result is not WriteResult.RACE_LOST:
            self._reporter.transition(record, self._snapshot.record, now, reason, stored=result is WriteResult.APPLIED)
        return result

    def _admin(self, target: BreakerState, reason: Reason, build: AdminWrite) -> Transition | None:
        with self._lock:
            for _ in range(ADMIN_ATTEMPTS):
                now = self._clock()
                self._snapshot.adopt(self.store.load(self.name, consistent=True), now, authoritative=True)
                record = self._snapshot.record
                if record.state is target and target is not BreakerState.CLOSED:
                    return None
                write = build(record, self._snapshot.attributes, now, self.config)
                try:
                    attributes = self.store.update(self.name, write.update, write.condition)
                except ConditionFailedError:
                    continue  # the race its condition names: re-read, apply the intent to the newest state
                self._snapshot.adopt(attributes, now, authoritative=True)
                self._reporter.transition(record, self._snapshot.record, now, reason)
                return Transition(self.name, record.state, target, record.version, record.version + 1, now, reason)
            raise StoreError(f"breaker {self.name!r} kept changing; {reason} gave up after {ADMIN_ATTEMPTS} attempts")
