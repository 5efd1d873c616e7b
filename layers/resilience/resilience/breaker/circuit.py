"""The circuit breaker: one per name, its state shared by every execution environment through a store.

How an environment decides
--------------------------
* Reads are cached: the breaker item is refreshed after ``cache_ttl_seconds`` while all looks well,
  after ``suspect_cache_ttl_seconds`` while this environment sees failures or the breaker is
  half-open. A healthy environment reads once per ``cache_ttl_seconds`` and writes nothing.
* Outcomes go to an in-memory window: ``pending`` (not yet written) and ``local`` (this
  environment's own recent outcomes). Pending outcomes are written, successes included, in one
  atomic ``ADD`` that returns the fleet's counters: by a refresh that is due (instead of a read)
  when they hold a failure or a slow call, or when the environment's previous write did (the
  successes that follow trouble); and by :meth:`CircuitBreaker.flush`, called once per batch, when
  they hold trouble and a refresh is due. So a suspect environment exchanges its window with the
  fleet once per ``suspect_cache_ttl_seconds``, whatever its batch size, and what it has not
  written yet is a span of time, not the successes after its last failure: the fleet's rate stays
  unbiased. A flush or refresh with only quick successes pending (and no trouble just written)
  writes nothing; pending buckets that leave the window are dropped, never written.
* After every outcome the environment judges (a) the fleet window it last read plus its unwritten
  outcomes, against ``minimum_calls`` and the rate thresholds, and (b) its own window: at least
  ``local_minimum_calls`` calls that all failed (or were all slow) means a dead provider, and the
  breaker opens at once, without waiting for the fleet's counters.
* Transitions and probe permits are conditional writes on the item's ``version``; each condition
  is commented with the race it prevents. Probe outcomes and transitions are written when they
  happen: at most ``half_open_permits`` probes per half-open period, so never one write per call.
* The store being unreachable never stops a call: the breaker fails open (permits calls, logs,
  counts the error in ``CircuitBreakerStoreError``), keeps judging locally, and retries the store
  after ``suspect_cache_ttl_seconds``.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
import uuid
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from resilience.breaker.state import (
    CHANGED_AT,
    EXPIRES_AT,
    LEASE_DONE,
    NAME,
    OPEN_COUNT,
    OPEN_UNTIL,
    OPENED_AT,
    PROBE_SUCCESSES,
    STATE,
    STATE_CODES,
    TRANSITION_REASON,
    VERSION,
    WINDOW_START,
    BreakerRecord,
    BreakerState,
    WindowCounts,
    bucket_attributes,
    bucket_of,
    in_window,
    lease_attribute,
    lease_until_attribute,
)
from resilience.breaker.store import (
    AtLeast,
    AtMost,
    BreakerStore,
    Equals,
    ItemUpdate,
    SlotClaimable,
    StateIs,
    VersionIs,
    apply_update,
)
from resilience.classification import ErrorClass, default_classifier
from resilience.clock import system_clock
from resilience.config import DEFAULT_SERVICE, BreakerConfig
from resilience.errors import (
    CircuitOpenError,
    ConditionFailedError,
    PermitAlreadyRecordedError,
    StoreError,
    StoreUnavailableError,
)
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
    from collections.abc import Callable, Mapping
    from types import TracebackType

    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import Condition
    from resilience.clock import Clock
    from resilience.observability import BreakerMetrics, StructuredLogger

P = ParamSpec("P")
T = TypeVar("T")

ADMIN_STATES = frozenset({BreakerState.FORCED_OPEN, BreakerState.DISABLED})
ADMIN_ATTEMPTS = 5
REASON_FAILURE_RATE = "failure_rate"
REASON_SLOW_CALL_RATE = "slow_call_rate"
REASON_LOCAL_FAILURES = "local_failures"
REASON_LOCAL_SLOW_CALLS = "local_slow_calls"
REASON_PROBE_FAILED = "probe_failed"
REASON_PROBES_SUCCEEDED = "probes_succeeded"
REASON_WAIT_ELAPSED = "wait_elapsed"


class PermitKind(StrEnum):
    """What a permit lets its holder do."""

    NORMAL = "normal"
    """A call in CLOSED (or while failing open); its outcome feeds the window."""
    PROBE = "probe"
    """A half-open probe holding one of the fleet's ``half_open_permits`` leases."""
    UNTRACKED = "untracked"
    """A call through a DISABLED breaker; its outcome is not recorded."""


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
    reason : str
        Why (``failure_rate``, ``local_failures``, ``probe_failed``, ``reset``...).
    """

    breaker: str
    from_state: BreakerState
    to_state: BreakerState
    from_version: int
    to_version: int
    at: float
    reason: str


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


class Permit:
    """Permission for one call, returned by :meth:`CircuitBreaker.allow`; record its outcome once.

    Use it directly (batch senders)::

        permit = breaker.allow()
        try:
            provider.send(message)
        except Exception as exc:
            permit.record_failure(exc)
        else:
            permit.record_success()

    or as a context manager, which records success, or the exception, on exit.
    """

    def __init__(
        self,
        breaker: CircuitBreaker,
        kind: PermitKind,
        version: int,
        started_at: float,
        *,
        slot: int | None = None,
        lease_id: str | None = None,
    ) -> None:
        self.breaker = breaker
        self.kind = kind
        self.version = version
        self.started_at = started_at
        self.slot = slot
        self.lease_id = lease_id
        self._recorded = False

    @property
    def is_probe(self) -> bool:
        """Whether this call is a half-open probe."""
        return self.kind is PermitKind.PROBE

    @property
    def recorded(self) -> bool:
        """Whether an outcome was recorded already."""
        return self._recorded

    def _claim(self) -> None:
        if self._recorded:
            raise PermitAlreadyRecordedError(f"a permit of breaker {self.breaker.name!r} was already recorded")
        self._recorded = True

    def record_success(self, duration: float | None = None) -> None:
        """Record that the call succeeded.

        Parameters
        ----------
        duration : float | None
            How long the call took, in seconds; measured from :meth:`CircuitBreaker.allow` when omitted.
            Calls of at least ``slow_call_seconds`` count as slow.
        """
        self._claim()
        self.breaker._record(self, None, duration)

    def record_failure(self, error: BaseException | None = None, duration: float | None = None) -> ErrorClass:
        """Record that the call failed.

        Parameters
        ----------
        error : BaseException | None
            The exception, classified with the breaker's classifier: only TRANSIENT errors count
            as failures; PERMANENT and IGNORED ones (an invalid address, a 4xx) count neither way
            and give a probe permit back. ``None`` counts as a failure.
        duration : float | None
            How long the call took, in seconds (see :meth:`record_success`).

        Returns
        -------
        ErrorClass
            How the error was classified (TRANSIENT when ``error`` is ``None``).
        """
        self._claim()
        verdict = ErrorClass.TRANSIENT if error is None else self.breaker.classifier(error)
        self.breaker._record(self, verdict, duration)
        return verdict

    def record_ignored(self) -> None:
        """Record an outcome that says nothing about the dependency: counts neither way, frees a probe permit."""
        self._claim()
        self.breaker._record(self, ErrorClass.IGNORED, None)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._recorded:
            return
        if exc is None:
            self.record_success()
        else:
            self.record_failure(exc)


class CircuitBreaker:
    """A circuit breaker whose state lives in a :class:`BreakerStore`, shared by every environment.

    Usually obtained from a :class:`~resilience.breaker.registry.BreakerRegistry`. One instance
    stands for one execution environment: it caches state and aggregates outcomes in memory.
    It is thread-safe.

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
        self._metrics: BreakerMetrics = metrics or NullBreakerMetrics()
        self._logger: StructuredLogger = logger or get_logger(DEFAULT_SERVICE)
        self._on_transition = on_transition
        self._lock = threading.RLock()
        self._attributes: dict[str, AttributeValue] = {}
        self._snapshot = BreakerRecord(name=name)
        self._read_at = -math.inf
        self._wrote_trouble = False  # the last window write held a failure or a slow call
        self._failing_open = False  # the last store request failed: permit calls, retry the store soon
        self._local_only = False  # the snapshot holds a transition the store never received
        self._pending: dict[int, WindowCounts] = {}
        self._local: dict[int, WindowCounts] = {}
        self._tally: Counter[str] = Counter()
        self._environment = uuid.uuid4().hex[:12]
        self._sequence = itertools.count(1)

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
        return self._tally[METRIC_STORE_ERROR]

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
            record = self._current(now)
            permit = self._admit(record, now)
            if permit is None:
                self._tally[METRIC_REJECTED] += 1
                record = self._snapshot
                raise CircuitOpenError(self.name, str(record.state), self._retry_after(record, now))
            return permit

    def permits_call(self) -> bool:
        """Whether :meth:`allow` would hand out a permit now, without taking one.

        Returns
        -------
        bool
            ``True`` for CLOSED and DISABLED, for OPEN once its wait is over, for HALF_OPEN with a
            free probe slot, and while failing open; ``False`` otherwise. No probe slot is claimed;
            a due refresh may read, or write the pending window, as :meth:`allow` would.
        """
        with self._lock:
            now = self._clock()
            record = self._current(now)
            return self._retry_after(record, now) == 0.0

    def seconds_until_permitted(self) -> float | None:
        """Seconds until a call may be permitted: 0 now, ``None`` when only an operator can reopen it."""
        with self._lock:
            now = self._clock()
            return self._retry_after(self._current(now), now)

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
            self._flush_window(now)
            self._emit_tally()

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
        return self._admin(
            BreakerState.CLOSED,
            "reset",
            lambda now, record: ItemUpdate(
                set={**self._state_fields(BreakerState.CLOSED, record, now, "reset"), WINDOW_START: now, OPEN_COUNT: 0},
                remove=self._half_open_attributes() | {OPENED_AT, OPEN_UNTIL} | self._bucket_attributes(record),
            ),
        )

    def force_open(self) -> Transition | None:
        """Operator action: reject every call until :meth:`reset`."""
        return self._admin(
            BreakerState.FORCED_OPEN,
            "force_open",
            lambda now, record: ItemUpdate(
                set={**self._state_fields(BreakerState.FORCED_OPEN, record, now, "force_open"), OPENED_AT: now},
                remove=self._half_open_attributes() | {OPEN_UNTIL, EXPIRES_AT},
            ),
        )

    def disable(self) -> Transition | None:
        """Operator action: let every call through, record nothing, until :meth:`reset`."""
        return self._admin(
            BreakerState.DISABLED,
            "disable",
            lambda now, record: ItemUpdate(
                set=self._state_fields(BreakerState.DISABLED, record, now, "disable"),
                remove=self._half_open_attributes() | {OPENED_AT, OPEN_UNTIL, EXPIRES_AT},
            ),
        )

    # ------------------------------------------------------------------ reading
    def _ttl(self, now: float) -> float:
        state = self._snapshot.state
        if self._failing_open or state is BreakerState.HALF_OPEN:
            return self.config.suspect_cache_ttl_seconds
        if state is BreakerState.CLOSED and self._local_trouble(now):
            return self.config.suspect_cache_ttl_seconds
        return self.config.cache_ttl_seconds

    def _refresh_due(self, now: float) -> bool:
        return now - self._read_at >= self._ttl(now)

    def _current(self, now: float) -> BreakerRecord:
        if not self._refresh_due(now):
            return self._snapshot
        batch = self._publishable(now)
        if batch:
            # A due refresh with outcomes to publish writes them instead of reading: the ADD returns
            # the item, so it is the same one request, and the fleet hears from this environment
            # once per cache lifetime, whatever its batch size.
            self._publish(now, batch, "refresh")  # an unreachable store fails open, as for a read
            return self._snapshot
        try:
            attributes = self.store.load(self.name)
        except StoreUnavailableError as exc:
            self._store_failed(now, "read", exc)
            self._fail_open(now)
            return self._snapshot
        self._adopt(attributes, now)
        return self._snapshot

    def _adopt(
        self, attributes: Attributes | None, now: float, *, local_only: bool = False, authoritative: bool = False
    ) -> None:
        record = BreakerRecord.from_attributes(self.name, attributes)
        if (
            record.version < self._snapshot.version
            and not (self._local_only or authoritative)
            and now - self._read_at < self.config.cache_ttl_seconds
        ):
            # An eventually consistent read older than what this environment already saw (e.g. its
            # own write): keep the newer snapshot. A store that really went back (item deleted by
            # an operator) is accepted once the snapshot is older than cache_ttl_seconds.
            self._read_at = now
            self._failing_open = False
            return
        if record.version != self._snapshot.version or record.state is not self._snapshot.state:
            # Outcomes gathered under another version belong to a finished period.
            self._forget_outcomes()
        self._attributes = dict(attributes or {})
        self._snapshot = record
        self._read_at = now
        self._failing_open = False
        self._local_only = local_only

    def _store_failed(self, now: float, operation: str, error: Exception) -> None:
        """Count and log a failed store request; the next request is retried after the suspect TTL."""
        self._tally[METRIC_STORE_ERROR] += 1
        self._logger.warning(
            "circuit breaker store unavailable; failing open",
            extra={"breaker": self.name, "operation": operation, "error": str(error)},
        )
        self._read_at = now
        self._failing_open = True

    def _fail_open(self, now: float) -> None:
        """The state could not be read: permit calls (as CLOSED) until the store answers again.

        A breaker this environment opened itself while the store was down stays open until its
        wait ends, so a dead provider is not hammered in the meantime.
        """
        snapshot = self._snapshot
        if self._local_only and snapshot.state is BreakerState.OPEN and now < (snapshot.open_until or now):
            return
        if snapshot.state is not BreakerState.CLOSED:
            self._snapshot = BreakerRecord(
                name=self.name, version=snapshot.version, window_start=snapshot.window_start, buckets=snapshot.buckets
            )
            self._forget_outcomes()
            self._local_only = True

    # ------------------------------------------------------------------ admission
    def _admit(self, record: BreakerRecord, now: float) -> Permit | None:
        for _ in range(3):  # a lost race hands back the current item: judge again on it
            outcome: Permit | BreakerRecord | None
            match record.state:
                case BreakerState.DISABLED:
                    return Permit(self, PermitKind.UNTRACKED, record.version, now)
                case BreakerState.CLOSED:
                    return Permit(self, PermitKind.NORMAL, record.version, now)
                case BreakerState.FORCED_OPEN:
                    return None
                case BreakerState.OPEN:
                    if record.open_until is not None and now < record.open_until:
                        return None
                    outcome = self._begin_half_open(record, now)
                case BreakerState.HALF_OPEN:
                    outcome = self._claim_slot(record, now)
            if not isinstance(outcome, BreakerRecord):
                return outcome
            record = outcome
        return None

    def _new_lease_id(self) -> str:
        return f"{self._environment}-{next(self._sequence)}"

    def _begin_half_open(self, record: BreakerRecord, now: float) -> Permit | BreakerRecord | None:
        lease_id = self._new_lease_id()
        update = ItemUpdate(
            set={
                **self._state_fields(BreakerState.HALF_OPEN, record, now, REASON_WAIT_ELAPSED),
                PROBE_SUCCESSES: 0,
                lease_attribute(1): lease_id,
                lease_until_attribute(1): now + self.config.probe_lease_seconds,
            },
            remove=self._half_open_attributes() - {PROBE_SUCCESSES, lease_attribute(1), lease_until_attribute(1)},
        )
        # Race: when the wait ends every environment wants to probe at once. Only the first
        # write that still finds this OPEN version whose wait is over starts the half-open period;
        # the others fail, read the new version and compete for the remaining slots. Without it,
        # each would start its own period, bump the version, and invalidate the others' leases.
        condition: Condition = (
            VersionIs(record.version),
            StateIs(BreakerState.OPEN),
            AtMost(OPEN_UNTIL, now),
        )
        result = self._transition(record, update, condition, now, REASON_WAIT_ELAPSED)
        if result is True:
            return Permit(self, PermitKind.PROBE, record.version + 1, now, slot=1, lease_id=lease_id)
        if result is None:  # store unreachable: fail open
            return Permit(self, PermitKind.NORMAL, record.version, now)
        return self._snapshot

    def _claim_slot(self, record: BreakerRecord, now: float) -> Permit | BreakerRecord | None:
        tried: set[int] = set()
        while True:
            slots = [s for s in record.claimable_slots(now, self.config.half_open_permits) if s not in tried]
            if not slots:
                return None
            slot = slots[0]
            tried.add(slot)
            lease_id = self._new_lease_id()
            update = ItemUpdate(
                set={
                    lease_attribute(slot): lease_id,
                    lease_until_attribute(slot): now + self.config.probe_lease_seconds,
                }
            )
            # Race: environments that saw the same free (or expired) slot all try to take it; the
            # condition lets exactly one win, so at most half_open_permits probes run at once
            # across the fleet. The version pins the grant to the half-open period it was seen in.
            condition: Condition = (
                VersionIs(record.version),
                StateIs(BreakerState.HALF_OPEN),
                SlotClaimable(slot, now),
            )
            try:
                attributes = self.store.update(self.name, update, condition)
            except ConditionFailedError as exc:
                self._adopt(exc.current, now)
                if self._snapshot.version != record.version:
                    return self._snapshot
                record = self._snapshot
                continue
            except StoreUnavailableError as exc:
                self._store_failed(now, "claim_probe", exc)
                return Permit(self, PermitKind.NORMAL, record.version, now)
            self._adopt(attributes, now)
            return Permit(self, PermitKind.PROBE, record.version, now, slot=slot, lease_id=lease_id)

    def _retry_after(self, record: BreakerRecord, now: float) -> float | None:
        match record.state:
            case BreakerState.CLOSED | BreakerState.DISABLED:
                return 0.0
            case BreakerState.FORCED_OPEN:
                return None
            case BreakerState.OPEN:
                return max((record.open_until or now) - now, 0.0)
            case BreakerState.HALF_OPEN:
                if record.claimable_slots(now, self.config.half_open_permits):
                    return 0.0
                live = [lease.until for lease in record.leases.values() if lease.holder != LEASE_DONE]
                return max(min(live, default=now + self.config.suspect_cache_ttl_seconds) - now, 0.0)
        return None  # pragma: no cover - the match is exhaustive

    # ------------------------------------------------------------------ outcomes
    def _record(self, permit: Permit, verdict: ErrorClass | None, duration: float | None) -> None:
        """Apply one outcome: ``verdict`` None is a success, TRANSIENT a failure, else ignored."""
        with self._lock:
            now = self._clock()
            if permit.kind is PermitKind.UNTRACKED:
                return
            failed = verdict is ErrorClass.TRANSIENT
            ignored = verdict is not None and not failed
            if not ignored:
                self._tally[METRIC_FAILURE if failed else METRIC_SUCCESS] += 1
            elapsed = now - permit.started_at if duration is None else duration
            if permit.kind is PermitKind.PROBE:
                if ignored:
                    self._release_probe(permit, now)
                elif failed:
                    self._probe_failed(permit, now)
                else:
                    self._probe_succeeded(permit, now)
                return
            if ignored or permit.version != self._snapshot.version:
                return  # ignored errors count neither way; outcomes of a finished period are dropped
            slow = elapsed >= self.config.slow_call_seconds
            counts = WindowCounts(1, int(failed), int(slow))
            bucket = bucket_of(now, self.config.bucket_seconds)
            self._prune(now)
            self._pending[bucket] = self._pending.get(bucket, WindowCounts()) + counts
            self._local[bucket] = self._local.get(bucket, WindowCounts()) + counts
            if self._snapshot.state is BreakerState.CLOSED:
                self._judge(now)

    def _forget_outcomes(self) -> None:
        self._pending.clear()
        self._local.clear()
        self._wrote_trouble = False

    def _prune(self, now: float) -> None:
        for buckets in (self._pending, self._local):
            for start in [b for b in buckets if not self._counts(b, now)]:
                del buckets[start]

    def _counts(self, bucket: int, now: float) -> bool:
        return in_window(
            bucket, now, self.config.window_seconds, self.config.bucket_seconds, self._snapshot.window_start
        )

    def _local_window(self, now: float) -> WindowCounts:
        return WindowCounts.total(c for b, c in self._local.items() if self._counts(b, now))

    def _local_trouble(self, now: float) -> bool:
        return any(c.has_trouble for b, c in self._local.items() if self._counts(b, now))

    def _judge(self, now: float) -> None:
        config = self.config
        fleet = self._snapshot.window(now, config.window_seconds, config.bucket_seconds) + WindowCounts.total(
            c for b, c in self._pending.items() if self._counts(b, now)
        )
        reason: str | None = None
        if fleet.calls >= config.minimum_calls:
            if fleet.failure_rate >= config.failure_rate_threshold:
                reason = REASON_FAILURE_RATE
            elif fleet.slow_call_rate >= config.slow_call_rate_threshold:
                reason = REASON_SLOW_CALL_RATE
        if reason is None:
            local = self._local_window(now)
            if local.calls >= config.local_minimum_calls:
                if local.failures == local.calls:
                    reason = REASON_LOCAL_FAILURES
                elif local.slow == local.calls:
                    reason = REASON_LOCAL_SLOW_CALLS
        if reason is not None:
            self._open(now, reason)

    def _unwritten(self, now: float) -> dict[int, WindowCounts]:
        """Every pending bucket still in the window: what the next write carries, successes included."""
        return {b: c for b, c in self._pending.items() if self._counts(b, now)}

    def _flushable(self, now: float) -> dict[int, WindowCounts]:
        """What a flush writes: every unwritten in-window bucket once one holds a failure or a slow call."""
        unwritten = self._unwritten(now)
        return unwritten if any(c.has_trouble for c in unwritten.values()) else {}

    def _publishable(self, now: float) -> dict[int, WindowCounts]:
        """What a due refresh writes instead of reading (CLOSED only): what a flush would, or else
        the successes that follow trouble this environment just wrote, so they are not left behind.
        An environment without trouble in its window never writes."""
        if self._snapshot.state is not BreakerState.CLOSED:
            return {}
        unwritten = self._unwritten(now)
        if any(c.has_trouble for c in unwritten.values()):
            return unwritten
        if unwritten and self._wrote_trouble and self._local_trouble(now):
            return unwritten
        return {}

    def _counter_adds(self, buckets: Mapping[int, WindowCounts]) -> dict[str, int]:
        adds: dict[str, int] = {}
        for start, counts in buckets.items():
            calls, failures, slow = bucket_attributes(start)
            adds[calls] = counts.calls
            if counts.failures:
                adds[failures] = counts.failures
            if counts.slow:
                adds[slow] = counts.slow
        return adds

    def _stale_attributes(self, now: float, keep: Mapping[str, int]) -> frozenset[str]:
        stale = self._snapshot.stale_buckets(now, self.config.window_seconds, self.config.bucket_seconds)
        return frozenset(a for b in stale for a in bucket_attributes(b) if a in self._attributes and a not in keep)

    def _flush_window(self, now: float) -> None:
        self._prune(now)  # pending successes older than the window are dropped, never written
        batch = self._flushable(now)
        # Quick successes alone are never written by a flush (a healthy path writes nothing), and a
        # flush within a cache lifetime of the last exchange keeps its trouble pending too: writing
        # each failure at once, but successes only with the next one, left every environment's
        # successes since its last failure out of the fleet's counters, and the rate biased upwards.
        if batch and self._refresh_due(now):
            self._publish(now, batch, "flush")
        # Written or not, judge: the window slid (old successes may have left it) and the counters
        # just read back may trip the breaker. Judging costs no request.
        if self._snapshot.state is BreakerState.CLOSED:
            self._judge(now)

    def _publish(self, now: float, batch: Mapping[int, WindowCounts], operation: str) -> None:
        """Write ``batch`` (unwritten window buckets) in one ADD and adopt the item it returns.

        When the store cannot be reached the outcomes stay pending, for the next write.
        """
        adds = self._counter_adds(batch)
        fields: dict[str, AttributeValue] = {NAME: self.name}
        if self._snapshot.state not in ADMIN_STATES:
            fields[EXPIRES_AT] = int(now + self.config.item_ttl_seconds)
        # No condition: ADD is atomic and commutative, so concurrent flushes from every environment
        # all land. Counters that reach a bucket older than the last close's window_start are
        # ignored by every reader, so a flush racing a transition cannot leak into the new period.
        update = ItemUpdate(set=fields, add=adds, remove=self._stale_attributes(now, adds))
        try:
            attributes = self.store.update(self.name, update)
        except StoreUnavailableError as exc:
            self._store_failed(now, operation, exc)
            return
        for bucket in batch:
            self._pending.pop(bucket, None)
        self._wrote_trouble = any(counts.has_trouble for counts in batch.values())
        self._adopt(attributes, now)

    # ------------------------------------------------------------------ transitions
    def _state_fields(
        self, state: BreakerState, record: BreakerRecord, now: float, reason: str
    ) -> dict[str, AttributeValue]:
        fields: dict[str, AttributeValue] = {
            NAME: self.name,
            STATE: str(state),
            VERSION: record.version + 1,
            CHANGED_AT: now,
            TRANSITION_REASON: reason,
        }
        if state not in ADMIN_STATES:
            fields[EXPIRES_AT] = int(now + self.config.item_ttl_seconds)
        return fields

    def _half_open_attributes(self) -> frozenset[str]:
        names = {PROBE_SUCCESSES}
        for slot in range(1, self.config.half_open_permits + 1):
            names.update((lease_attribute(slot), lease_until_attribute(slot)))
        names.update(a for a in self._attributes if a.startswith("lease"))  # slots of a larger past config
        return frozenset(names)

    def _bucket_attributes(self, record: BreakerRecord) -> frozenset[str]:
        return frozenset(a for b in record.buckets for a in bucket_attributes(b))

    def _open(self, now: float, reason: str) -> None:
        record = self._snapshot
        batch = self._unwritten(now)
        adds = self._counter_adds(batch)
        open_count = record.open_count + 1
        update = ItemUpdate(
            set={
                **self._state_fields(BreakerState.OPEN, record, now, reason),
                OPENED_AT: now,
                OPEN_UNTIL: now + self.config.wait_for(open_count),
                OPEN_COUNT: open_count,
            },
            add=adds,  # the evidence goes in with the transition, so the fleet sees why
            remove=(self._half_open_attributes() | self._stale_attributes(now, adds)) - set(adds),
        )
        # Race: several environments judging the same failures open at once, and an environment
        # acting on a stale cached CLOSED (the breaker has since opened, closed again, or been
        # forced open or disabled by an operator). The version and state make the first opener
        # win and every stale one fail, so one outage is one transition, one log line, one wait.
        condition: Condition = (VersionIs(record.version), StateIs(BreakerState.CLOSED))
        self._pending.clear()
        self._transition(record, update, condition, now, reason)

    def _probe_succeeded(self, permit: Permit, now: float) -> None:
        assert permit.slot is not None and permit.lease_id is not None  # probes always carry both
        update = ItemUpdate(set={lease_attribute(permit.slot): LEASE_DONE}, add={PROBE_SUCCESSES: 1})
        # Race: only the live holder of this slot in this half-open period may count a success. A
        # probe whose lease expired and was re-granted, or that finished after the period ended
        # (closed, or reopened by another probe's failure), must not count twice nor towards the
        # next period. The slot stays used ("done"), so a period runs at most half_open_permits probes.
        condition: Condition = (
            VersionIs(permit.version),
            StateIs(BreakerState.HALF_OPEN),
            Equals(lease_attribute(permit.slot), permit.lease_id),
        )
        if not self._write(update, condition, now, "probe_success"):
            return
        record = self._snapshot
        if record.state is BreakerState.HALF_OPEN and record.probe_successes >= self.config.success_threshold:
            self._close(record, now)

    def _close(self, record: BreakerRecord, now: float) -> None:
        update = ItemUpdate(
            set={
                **self._state_fields(BreakerState.CLOSED, record, now, REASON_PROBES_SUCCEEDED),
                WINDOW_START: now,
                OPEN_COUNT: 0,
            },
            remove=self._half_open_attributes() | {OPENED_AT, OPEN_UNTIL} | self._bucket_attributes(record),
        )
        # Race: the probes that reach success_threshold together all try to close; the first wins,
        # the rest fail on the version. The success count guard stops a close on a count that a
        # concurrent reopen has already discarded.
        condition: Condition = (
            VersionIs(record.version),
            StateIs(BreakerState.HALF_OPEN),
            AtLeast(PROBE_SUCCESSES, self.config.success_threshold),
        )
        self._transition(record, update, condition, now, REASON_PROBES_SUCCEEDED)

    def _probe_failed(self, permit: Permit, now: float) -> None:
        record = self._snapshot
        if record.version != permit.version:
            return  # the period this probe belonged to is over; its failure no longer decides anything
        open_count = record.open_count + 1
        update = ItemUpdate(
            set={
                **self._state_fields(BreakerState.OPEN, record, now, REASON_PROBE_FAILED),
                OPENED_AT: now,
                OPEN_UNTIL: now + self.config.wait_for(open_count),
                OPEN_COUNT: open_count,
            },
            remove=self._half_open_attributes(),
        )
        # Race: a failing probe and the success that closes the breaker race each other; the
        # version lets exactly one land, so a close is never overwritten by a late reopen (nor the
        # reverse), and a probe from an earlier period cannot reopen a breaker that moved on.
        condition: Condition = (VersionIs(permit.version), StateIs(BreakerState.HALF_OPEN))
        self._transition(record, update, condition, now, REASON_PROBE_FAILED)

    def _release_probe(self, permit: Permit, now: float) -> None:
        assert permit.slot is not None and permit.lease_id is not None  # probes always carry both
        update = ItemUpdate(remove=frozenset({lease_attribute(permit.slot), lease_until_attribute(permit.slot)}))
        # Race: this lease may have expired and been re-granted to another probe; freeing the
        # slot then would let a (half_open_permits + 1)-th probe run. Only the holder frees it.
        condition: Condition = (VersionIs(permit.version), Equals(lease_attribute(permit.slot), permit.lease_id))
        self._write(update, condition, now, "probe_release")

    def _write(self, update: ItemUpdate, condition: Condition, now: float, operation: str) -> bool:
        """A conditional write that is not a transition; ``True`` when it applied."""
        try:
            attributes = self.store.update(self.name, update, condition)
        except ConditionFailedError as exc:
            self._adopt(exc.current, now)
            return False
        except StoreUnavailableError as exc:
            self._store_failed(now, operation, exc)
            return False
        self._adopt(attributes, now)
        return True

    def _transition(
        self, record: BreakerRecord, update: ItemUpdate, condition: Condition, now: float, reason: str
    ) -> bool | None:
        """Apply a transition: ``True`` when it landed, ``False`` when a race was lost, ``None``
        when the store was unreachable (then it is applied to this environment only)."""
        try:
            attributes = self.store.update(self.name, update, condition)
        except ConditionFailedError as exc:
            self._adopt(exc.current, now)
            return False
        except StoreUnavailableError as exc:
            self._store_failed(now, "transition", exc)
            self._adopt(apply_update(self._attributes, update), now, local_only=True)
            self._failing_open = True
            self._announce(record, reason, now, local_only=True)
            return None
        self._adopt(attributes, now)
        self._announce(record, reason, now)
        return True

    def _announce(self, previous: BreakerRecord, reason: str, now: float, *, local_only: bool = False) -> None:
        current = self._snapshot
        transition = Transition(
            breaker=self.name,
            from_state=previous.state,
            to_state=current.state,
            from_version=previous.version,
            to_version=current.version,
            at=now,
            reason=reason,
        )
        window = previous.window(now, self.config.window_seconds, self.config.bucket_seconds)
        self._logger.info(
            "circuit breaker transition",
            extra={
                "breaker": self.name,
                "from_state": str(transition.from_state),
                "to_state": str(transition.to_state),
                "version": transition.to_version,
                "reason": reason,
                "failure_rate": round(window.failure_rate, 4),
                "calls_in_window": window.calls,
                "open_until": current.open_until,
                "store_reachable": not local_only,
            },
        )
        values: dict[str, float] = {METRIC_STATE: STATE_CODES[current.state]}
        if current.state in (BreakerState.OPEN, BreakerState.FORCED_OPEN):
            values[METRIC_OPEN] = 1
        self._metrics.emit(self.name, values)
        if self._on_transition is not None:
            try:
                self._on_transition(transition)
            except Exception:  # an observer must never break the protected call
                self._logger.exception("circuit breaker on_transition hook failed", extra={"breaker": self.name})

    def _admin(
        self, target: BreakerState, reason: str, build: Callable[[float, BreakerRecord], ItemUpdate]
    ) -> Transition | None:
        with self._lock:
            for _ in range(ADMIN_ATTEMPTS):
                now = self._clock()
                self._adopt(self.store.load(self.name, consistent=True), now, authoritative=True)
                record = self._snapshot
                if record.state is target and target is not BreakerState.CLOSED:
                    return None
                # Race: an automatic transition between the operator's read and write. The version
                # makes the admin write fail instead of silently overwriting it; we re-read and
                # apply the operator's intent to the newest state, so no version is skipped.
                condition: Condition = (VersionIs(record.version),)
                try:
                    attributes = self.store.update(self.name, build(now, record), condition)
                except ConditionFailedError:
                    continue
                self._adopt(attributes, now, authoritative=True)
                self._announce(record, reason, now)
                return Transition(self.name, record.state, target, record.version, record.version + 1, now, reason)
            raise StoreError(f"breaker {self.name!r} kept changing; {reason} gave up after {ADMIN_ATTEMPTS} attempts")

    # ------------------------------------------------------------------ metrics
    def _emit_tally(self) -> None:
        counts = {name: float(value) for name, value in self._tally.items() if value}
        self._tally.clear()
        if not counts:
            return
        counts[METRIC_STATE] = STATE_CODES[self._snapshot.state]
        self._metrics.emit(self.name, counts)
