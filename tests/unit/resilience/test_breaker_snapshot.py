"""The cached item (``Snapshot``) and the permit's recording interface, each alone, on the in-memory store.

SMALL: cache_ttl_seconds=5, suspect_cache_ttl_seconds=1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from resilience import BreakerState, ErrorClass, InMemoryBreakerStore, Permit, PermitKind, TransientError
from resilience.breaker import ItemUpdate, transitions
from resilience.breaker.permit import CallOutcome
from resilience.breaker.snapshot import Snapshot
from resilience.breaker.state import OPEN_UNTIL, STATE, VERSION
from resilience.breaker.status import Reason
from resilience.breaker.transitions import WriteResult
from tests.support.breaker_fakes import SMALL
from tests.support.clock import START

NAME = "provider:test"


@dataclass
class Events:
    """What the snapshot told its breaker."""

    new_periods: int = 0
    store_errors: list[str] = field(default_factory=list)

    def new_period(self) -> None:
        self.new_periods += 1

    def store_error(self, operation: str, error: Exception) -> None:
        self.store_errors.append(operation)


MakeSnapshot = Callable[[], Snapshot]


@pytest.fixture
def events() -> Events:
    return Events()


@pytest.fixture
def make_snapshot(store: InMemoryBreakerStore, events: Events) -> MakeSnapshot:
    def build() -> Snapshot:
        return Snapshot(NAME, SMALL, lambda: store, on_new_period=events.new_period, on_store_error=events.store_error)

    return build


def put(store: InMemoryBreakerStore, state: BreakerState, version: int, **extra: float) -> None:
    store.update(NAME, ItemUpdate(set={STATE: str(state), VERSION: version, **extra}))


# ---------------------------------------------------------------------------- the cache lifetime
@pytest.mark.parametrize(
    ("state", "troubled", "failing_open", "ttl"),
    [
        (BreakerState.CLOSED, False, False, 5),  # all looks well
        (BreakerState.CLOSED, True, False, 1),  # this environment saw trouble
        (BreakerState.OPEN, True, False, 5),  # local trouble matters only while CLOSED
        (BreakerState.HALF_OPEN, False, False, 1),  # probes decide soon
        (BreakerState.OPEN, False, True, 1),  # the store is failing: retry it soon
    ],
)
def test_the_cache_is_trusted_briefly_when_something_is_suspect(
    make_snapshot: MakeSnapshot, state: BreakerState, troubled: bool, failing_open: bool, ttl: float
) -> None:
    # Given a snapshot of an item in ``state``, read at START
    snapshot = make_snapshot()
    snapshot.adopt({STATE: str(state), VERSION: 1}, START)
    snapshot.failing_open = failing_open

    # When its lifetime is asked
    lifetime = snapshot.ttl(troubled=troubled)

    # Then it is the suspect TTL exactly when something is suspect
    assert lifetime == ttl
    assert snapshot.refresh_due(START + ttl, troubled=troubled)
    assert not snapshot.refresh_due(START + ttl - 0.1, troubled=troubled)


# ---------------------------------------------------------------------------- adopting what the store answers
def test_an_older_eventually_consistent_read_does_not_replace_a_newer_snapshot(
    make_snapshot: MakeSnapshot, events: Events
) -> None:
    # Given a snapshot that adopted version 3 (e.g. its own write)
    snapshot = make_snapshot()
    snapshot.adopt({STATE: "OPEN", VERSION: 3}, START)

    # When a read within the cache lifetime returns version 2, then one after it does
    snapshot.adopt({STATE: "CLOSED", VERSION: 2}, START + 1)
    kept = snapshot.record.version
    snapshot.adopt({STATE: "CLOSED", VERSION: 2}, START + 7)

    # Then the stale read is ignored (but counts as a read), the later one accepted: the store went back
    assert kept == 3
    assert snapshot.record.version == 2
    assert snapshot.read_at == START + 7
    assert events.new_periods == 2  # version 0 -> 3, then 3 -> 2


def test_a_strongly_consistent_read_is_adopted_even_when_older(make_snapshot: MakeSnapshot) -> None:
    # Given a snapshot at version 3
    snapshot = make_snapshot()
    snapshot.adopt({STATE: "OPEN", VERSION: 3}, START)

    # When an authoritative read returns version 2
    snapshot.adopt({STATE: "CLOSED", VERSION: 2}, START + 1, authoritative=True)

    # Then it is taken at once
    assert (snapshot.record.state, snapshot.record.version) == (BreakerState.CLOSED, 2)


def test_a_write_that_loses_its_race_adopts_the_winner(
    make_snapshot: MakeSnapshot, store: InMemoryBreakerStore
) -> None:
    # Given a snapshot of a CLOSED item at version 1, which another environment then opens
    put(store, BreakerState.CLOSED, 1)
    snapshot = make_snapshot()
    snapshot.read(START)
    put(store, BreakerState.OPEN, 2)

    # When this environment's open, built on its stale snapshot, is sent
    write = transitions.open_breaker(
        snapshot.record, snapshot.attributes, START, SMALL, reason=Reason.FAILURE_RATE, batch={}
    )
    result = snapshot.send(write, START, "transition")

    # Then it lost, and the snapshot now holds the winner's item
    assert result is WriteResult.RACE_LOST
    assert (snapshot.record.state, snapshot.record.version) == (BreakerState.OPEN, 2)


# ---------------------------------------------------------------------------- failing open
def test_an_unreachable_store_fails_open_as_closed(
    make_snapshot: MakeSnapshot, store: InMemoryBreakerStore, events: Events
) -> None:
    # Given a snapshot of an OPEN item, and a store that then becomes unreachable
    put(store, BreakerState.OPEN, 4, **{OPEN_UNTIL: START + 30})
    snapshot = make_snapshot()
    snapshot.read(START)
    store.available = False

    # When the snapshot is refreshed
    snapshot.read(START + 6)

    # Then calls are permitted (CLOSED at the same version, local only), the error is reported, retried soon
    assert (snapshot.record.state, snapshot.record.version) == (BreakerState.CLOSED, 4)
    assert snapshot.failing_open and snapshot.local_only
    assert events.store_errors == ["read"]
    assert snapshot.ttl(troubled=False) == SMALL.suspect_cache_ttl_seconds


def test_a_breaker_opened_while_the_store_was_down_stays_open_until_its_wait_ends(
    make_snapshot: MakeSnapshot, store: InMemoryBreakerStore
) -> None:
    # Given a store that is down, and a snapshot that opened the breaker on its own
    store.available = False
    snapshot = make_snapshot()
    write = transitions.open_breaker(
        snapshot.record, snapshot.attributes, START, SMALL, reason=Reason.LOCAL_FAILURES, batch={}
    )
    assert snapshot.send(write, START, "transition") is WriteResult.STORE_DOWN
    snapshot.apply_locally(write.update, START)

    # When reads keep failing, before and after the 30 s wait
    snapshot.read(START + 10)
    during = snapshot.record.state
    snapshot.read(START + 31)

    # Then the dead provider is not called during the wait, and is again once it is over
    assert during is BreakerState.OPEN
    assert snapshot.record.state is BreakerState.CLOSED


# ---------------------------------------------------------------------------- the permit's recorder
@dataclass
class RecordingRecorder:
    """An OutcomeRecorder with no breaker behind it."""

    name: str = NAME
    outcomes: list[tuple[CallOutcome, float | None]] = field(default_factory=list)

    def classifier(self, error: BaseException) -> ErrorClass:
        return ErrorClass.TRANSIENT if isinstance(error, TransientError) else ErrorClass.PERMANENT

    def record_outcome(self, permit: Permit, outcome: CallOutcome, duration: float | None) -> None:
        self.outcomes.append((outcome, duration))


@pytest.mark.parametrize(
    ("error", "outcome", "verdict"),
    [
        (None, CallOutcome.FAILURE, ErrorClass.TRANSIENT),
        (TransientError("down"), CallOutcome.FAILURE, ErrorClass.TRANSIENT),
        (ValueError("bad address"), CallOutcome.IGNORED, ErrorClass.PERMANENT),
    ],
)
def test_a_permit_reports_a_classified_outcome_to_its_recorder(
    error: BaseException | None, outcome: CallOutcome, verdict: ErrorClass
) -> None:
    # Given a permit issued by a recorder that is not a breaker
    recorder = RecordingRecorder()
    permit = Permit(recorder, PermitKind.NORMAL, 0, START)

    # When the call's failure is recorded
    classified = permit.record_failure(error, 0.2)

    # Then the recorder hears the outcome once, classified with its own classifier
    assert classified is verdict
    assert recorder.outcomes == [(outcome, 0.2)]
    assert permit.recorded


def test_a_permit_used_as_a_context_manager_reports_success() -> None:
    # Given a permit
    recorder = RecordingRecorder()

    # When a block runs under it without raising
    with Permit(recorder, PermitKind.NORMAL, 0, START):
        pass

    # Then one success is reported, its duration measured by the recorder
    assert recorder.outcomes == [(CallOutcome.SUCCESS, None)]
