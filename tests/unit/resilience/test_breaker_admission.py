"""Admission (``Admission``) alone, on the in-memory store: who may call, and what a probe's outcome settles.

SMALL: half_open_permits=3, success_threshold=2, probe_lease_seconds=10, wait_open_seconds=30.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

from resilience import BreakerState, CircuitOpenError, ErrorClass, InMemoryBreakerStore, Permit, PermitKind
from resilience.breaker import BreakerRecord, ItemUpdate, transitions
from resilience.breaker.admission import Admission
from resilience.breaker.permit import CallOutcome, Denied
from resilience.breaker.snapshot import Snapshot
from resilience.breaker.state import OPEN_UNTIL, STATE, VERSION, lease_attribute, lease_until_attribute
from resilience.breaker.status import Reason
from resilience.breaker.store import AtMost, StateIs, VersionIs
from resilience.breaker.transitions import WriteResult
from resilience.classification import default_classifier
from tests.support.breaker_fakes import SMALL
from tests.support.clock import START

if TYPE_CHECKING:
    from collections.abc import Callable

NAME = "provider:test"
WAIT_OVER = START + SMALL.wait_open_seconds


@dataclass
class Breaker:
    """What admission reports to: the permits' recorder, the transition maker and the rejection counter."""

    snapshot: Snapshot
    name: str = NAME
    classifier: Callable[[BaseException], ErrorClass] = default_classifier
    transitions: list[tuple[transitions.Write, Reason, WriteResult]] = field(default_factory=list)
    rejections: int = 0

    def record_outcome(self, permit: Permit, outcome: CallOutcome, duration: float | None) -> None:
        raise AssertionError("admission never records an outcome itself")

    def transition(self, record: BreakerRecord, write: transitions.Write, now: float, reason: Reason) -> WriteResult:
        result = self.snapshot.send(write, now, "transition")
        self.transitions.append((write, reason, result))
        return result

    def rejected(self) -> None:
        self.rejections += 1


@dataclass
class Setup:
    store: InMemoryBreakerStore
    breaker: Breaker
    admission: Admission

    def read(self, now: float = START) -> BreakerRecord:
        """Refresh the snapshot from the store, as the breaker does before admitting."""
        self.breaker.snapshot.read(now)
        return self.breaker.snapshot.record


@pytest.fixture
def setup(store: InMemoryBreakerStore) -> Setup:
    snapshot = Snapshot(NAME, SMALL, lambda: store, on_new_period=lambda: None, on_store_error=lambda *_: None)
    breaker = Breaker(snapshot)
    return Setup(store, breaker, Admission(breaker, SMALL, snapshot, breaker.transition, breaker.rejected))


def put(store: InMemoryBreakerStore, state: BreakerState, version: int, **extra: float | str) -> None:
    store.update(NAME, ItemUpdate(set={STATE: str(state), VERSION: version, **extra}))


def lease(slot: int, holder: str, until: float) -> dict[str, float | str]:
    return {lease_attribute(slot): holder, lease_until_attribute(slot): until}


def item(store: InMemoryBreakerStore) -> BreakerRecord:
    return BreakerRecord.from_attributes(NAME, store.load(NAME))


# ---------------------------------------------------------------------------- CLOSED, DISABLED, FORCED_OPEN
@pytest.mark.parametrize(
    ("state", "kind"), [(BreakerState.CLOSED, PermitKind.NORMAL), (BreakerState.DISABLED, PermitKind.UNTRACKED)]
)
def test_a_closed_or_disabled_breaker_admits_without_a_store_request(
    setup: Setup, state: BreakerState, kind: PermitKind
) -> None:
    # Given a breaker item in ``state`` at version 4, already read
    put(setup.store, state, 4)
    record = setup.read()
    requests = (setup.store.reads, setup.store.writes)

    # When a call asks to go ahead
    admitted = setup.admission.admit(record, START)

    # Then it gets a permit of that period, and the store heard nothing
    assert isinstance(admitted, Permit)
    assert (admitted.kind, admitted.version, admitted.slot) == (kind, 4, None)
    assert (setup.store.reads, setup.store.writes) == requests


def test_a_forced_open_breaker_rejects_with_no_retry_time(setup: Setup) -> None:
    # Given a breaker an operator forced open
    put(setup.store, BreakerState.FORCED_OPEN, 2)
    record = setup.read()

    # When a call asks to go ahead
    with pytest.raises(CircuitOpenError) as rejected:
        setup.admission.allow(record, START + 1000)

    # Then it is rejected, and only an operator can say when calls pass again
    assert (rejected.value.state, rejected.value.retry_after) == ("FORCED_OPEN", None)
    assert setup.breaker.rejections == 1


# ---------------------------------------------------------------------------- OPEN
def test_open_before_its_wait_ends_rejects_with_the_time_left(setup: Setup) -> None:
    # Given an OPEN breaker whose wait ends at WAIT_OVER
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    record = setup.read()
    writes = setup.store.writes

    # When a call asks to go ahead 10 s before that
    with pytest.raises(CircuitOpenError) as rejected:
        setup.admission.allow(record, WAIT_OVER - 10)

    # Then it is rejected with the 10 s left, counted once, and nothing was written
    assert (rejected.value.breaker, rejected.value.state, rejected.value.retry_after) == (NAME, "OPEN", 10)
    assert setup.breaker.rejections == 1
    assert setup.store.writes == writes
    assert setup.breaker.transitions == []


def test_open_after_its_wait_begins_half_open_with_a_conditional_write(setup: Setup) -> None:
    # Given an OPEN breaker at version 1 whose wait is over
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    record = setup.read()

    # When a call asks to go ahead
    admitted = setup.admission.admit(record, WAIT_OVER)

    # Then it probes on slot 1 of the new half-open period, begun by a write that only this OPEN version,
    # with its wait over, lets land
    assert isinstance(admitted, Permit)
    assert (admitted.kind, admitted.version, admitted.slot) == (PermitKind.PROBE, 2, 1)
    [(write, reason, result)] = setup.breaker.transitions
    assert (reason, result) == (Reason.WAIT_ELAPSED, WriteResult.APPLIED)
    assert write.condition == (VersionIs(1), StateIs("OPEN"), AtMost(OPEN_UNTIL, WAIT_OVER))
    stored = item(setup.store)
    assert (stored.state, stored.version, stored.leases[1].holder) == (BreakerState.HALF_OPEN, 2, admitted.lease_id)


def test_open_after_its_wait_fails_open_when_the_store_is_down(setup: Setup) -> None:
    # Given an OPEN breaker whose wait is over, and a store that then goes down
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    record = setup.read()
    setup.store.available = False

    # When a call asks to go ahead
    admitted = setup.admission.admit(record, WAIT_OVER)

    # Then the call goes through as a normal one: the store never stops a call
    assert isinstance(admitted, Permit)
    assert admitted.kind is PermitKind.NORMAL


# ---------------------------------------------------------------------------- HALF_OPEN
def test_half_open_claims_a_free_slot(setup: Setup) -> None:
    # Given a half-open period at version 2 whose slot 1 another environment holds
    put(setup.store, BreakerState.HALF_OPEN, 2, **lease(1, "other-1", START + 10))
    record = setup.read()

    # When a call asks to go ahead
    admitted = setup.admission.admit(record, START)

    # Then it probes on slot 2, which the store now says it holds
    assert isinstance(admitted, Permit)
    assert (admitted.kind, admitted.version, admitted.slot) == (PermitKind.PROBE, 2, 2)
    assert item(setup.store).leases[2].holder == admitted.lease_id
    assert setup.breaker.transitions == []


def test_half_open_with_every_slot_taken_rejects_until_the_first_lease_ends(setup: Setup) -> None:
    # Given a half-open period whose three slots are held, the first lease ending at START + 4
    leases = {**lease(1, "a-1", START + 6), **lease(2, "b-1", START + 4), **lease(3, "done", START + 9)}
    put(setup.store, BreakerState.HALF_OPEN, 2, **leases)
    record = setup.read()

    # When a call asks to go ahead
    with pytest.raises(CircuitOpenError) as rejected:
        setup.admission.allow(record, START)

    # Then it is rejected, told to come back when a live lease ends
    assert (rejected.value.state, rejected.value.retry_after) == ("HALF_OPEN", 4)


# ---------------------------------------------------------------------------- lost races
def test_beginning_half_open_after_another_environment_did_names_the_lost_race(setup: Setup) -> None:
    # Given a cached OPEN version 1 whose wait is over, while another environment already began half-open
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    stale = setup.read()
    put(setup.store, BreakerState.HALF_OPEN, 2, **lease(1, "other-1", WAIT_OVER + 10))

    # When this environment tries to begin it too
    outcome = setup.admission.begin_half_open(stale, WAIT_OVER)

    # Then the write lost, says so, and the snapshot holds the winner's item: admit again on it
    assert outcome is Denied.MOVED_ON
    assert setup.breaker.transitions[0][2] is WriteResult.RACE_LOST
    assert (setup.breaker.snapshot.record.state, setup.breaker.snapshot.record.version) == (BreakerState.HALF_OPEN, 2)


def test_a_lost_race_is_admitted_again_on_the_newer_item(setup: Setup) -> None:
    # Given the same stale OPEN and a half-open period another environment began
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    stale = setup.read()
    put(setup.store, BreakerState.HALF_OPEN, 2, **lease(1, "other-1", WAIT_OVER + 10))

    # When a call asks to go ahead on the stale item
    admitted = setup.admission.admit(stale, WAIT_OVER)

    # Then it competes for the next slot of the winner's period, and gets it
    assert isinstance(admitted, Permit)
    assert (admitted.kind, admitted.version, admitted.slot) == (PermitKind.PROBE, 2, 2)


def test_claiming_a_slot_of_a_period_that_ended_names_the_lost_race(setup: Setup) -> None:
    # Given a cached half-open period at version 2, which a failed probe has since reopened
    put(setup.store, BreakerState.HALF_OPEN, 2)
    stale = setup.read()
    put(setup.store, BreakerState.OPEN, 3, **{OPEN_UNTIL: START + 60})

    # When this environment claims a slot of the period it saw
    outcome = setup.admission.claim_slot(stale, START)

    # Then the claim lost, and says the breaker moved on
    assert outcome is Denied.MOVED_ON
    assert (setup.breaker.snapshot.record.state, setup.breaker.snapshot.record.version) == (BreakerState.OPEN, 3)


def test_a_slot_taken_meanwhile_in_the_same_period_is_passed_for_the_next_free_one(setup: Setup) -> None:
    # Given a cached half-open period with every slot free, whose slot 1 another environment then takes
    put(setup.store, BreakerState.HALF_OPEN, 2)
    stale = setup.read()
    setup.store.update(NAME, ItemUpdate(set=lease(1, "other-1", START + 10)))

    # When this environment claims a slot
    outcome = setup.admission.claim_slot(stale, START)

    # Then it lost slot 1 and took slot 2 in the same period
    assert isinstance(outcome, Permit)
    assert (outcome.slot, outcome.version) == (2, 2)


# ---------------------------------------------------------------------------- what a probe settles
def probe(setup: Setup) -> Permit:
    """Begin a half-open period at version 2 and return its first probe."""
    put(setup.store, BreakerState.OPEN, 1, **{OPEN_UNTIL: WAIT_OVER})
    admitted = setup.admission.admit(setup.read(), WAIT_OVER)
    assert isinstance(admitted, Permit)
    return admitted


def test_an_ignored_probe_gives_its_slot_back(setup: Setup) -> None:
    # Given a probe holding slot 1
    permit = probe(setup)

    # When its call says nothing about the dependency
    setup.admission.settle_probe(permit, CallOutcome.IGNORED, WAIT_OVER + 1)

    # Then slot 1 is free again, and the breaker is still half-open
    stored = item(setup.store)
    assert (stored.state, stored.leases) == (BreakerState.HALF_OPEN, {})


def test_a_failed_probe_reopens_its_period(setup: Setup) -> None:
    # Given a probe of the half-open period at version 2
    permit = probe(setup)

    # When its call fails
    setup.admission.settle_probe(permit, CallOutcome.FAILURE, WAIT_OVER + 1)

    # Then the breaker is OPEN again, through a transition the breaker made
    assert item(setup.store).state is BreakerState.OPEN
    assert setup.breaker.transitions[-1][1:] == (Reason.PROBE_FAILED, WriteResult.APPLIED)


def test_a_probe_of_an_earlier_period_decides_nothing(setup: Setup) -> None:
    # Given a probe of version 2, after which an operator reset the breaker
    permit = probe(setup)
    put(setup.store, BreakerState.CLOSED, 3)
    setup.read(WAIT_OVER + 1)

    # When that probe's call fails
    setup.admission.settle_probe(permit, CallOutcome.FAILURE, WAIT_OVER + 2)

    # Then the breaker stays closed
    assert item(setup.store).state is BreakerState.CLOSED
    assert [reason for _, reason, _ in setup.breaker.transitions] == [Reason.WAIT_ELAPSED]


def test_the_probe_success_that_reaches_the_threshold_closes_the_breaker(setup: Setup) -> None:
    # Given two probes of the same half-open period (success_threshold=2)
    first = probe(setup)
    second = setup.admission.admit(setup.breaker.snapshot.record, WAIT_OVER)
    assert isinstance(second, Permit)

    # When both succeed
    setup.admission.settle_probe(first, CallOutcome.SUCCESS, WAIT_OVER + 1)
    counted = item(setup.store).probe_successes
    setup.admission.settle_probe(second, CallOutcome.SUCCESS, WAIT_OVER + 2)

    # Then the first is counted, and the second closes the breaker
    assert counted == 1
    assert item(setup.store).state is BreakerState.CLOSED
    assert setup.breaker.transitions[-1][1:] == (Reason.PROBES_SUCCEEDED, WriteResult.APPLIED)


def test_a_success_from_a_lease_no_longer_held_is_not_counted(setup: Setup) -> None:
    # Given a probe on slot 1 whose lease expired and was re-granted to another environment
    permit = probe(setup)
    setup.store.update(NAME, ItemUpdate(set=lease(1, "other-9", WAIT_OVER + 30)))

    # When the first probe reports success late
    setup.admission.settle_probe(permit, CallOutcome.SUCCESS, WAIT_OVER + 12)

    # Then it counts for nothing, and the slot stays with its new holder
    stored = item(setup.store)
    assert (stored.probe_successes, stored.leases[1].holder) == (0, "other-9")
