"""Every write the breaker makes, as the pure functions of ``resilience.breaker.transitions``: no store.

Each test checks a write's update and its condition, and evaluates the condition with the same
predicate semantics both stores use (``holds``) on plain dictionaries, to show which race it loses.
SMALL: success_threshold=2, half_open_permits=3, wait_open_seconds=30 (x2 per reopen, at most 100),
probe_lease_seconds=10, window 10 s in 1 s buckets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from resilience.breaker import BreakerRecord, BreakerState, WindowCounts, transitions
from resilience.breaker.state import (
    EXPIRES_AT,
    LEASE_DONE,
    OPEN_COUNT,
    OPEN_UNTIL,
    OPENED_AT,
    PROBE_SUCCESSES,
    STATE,
    TRANSITION_REASON,
    VERSION,
    WINDOW_START,
    bucket_attributes,
)
from resilience.breaker.status import Reason
from resilience.breaker.store import (
    AtLeast,
    AtMost,
    Equals,
    SlotClaimable,
    StateIs,
    VersionIs,
    apply_update,
    holds,
)
from tests.support.breaker_fakes import SMALL
from tests.support.clock import START

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.breaker.state import AttributeValue

NOW = START + 100
OLD_BUCKET, NEW_BUCKET = int(NOW) - 60, int(NOW) - 2


def lands(write: transitions.Write, item: dict[str, AttributeValue]) -> bool:
    """Whether ``write``'s condition holds on ``item``, as either store would decide."""
    return all(holds(item, predicate) for predicate in write.condition)


def item_of(state: BreakerState, version: int, **extra: AttributeValue) -> dict[str, AttributeValue]:
    return {"name": "b", STATE: str(state), VERSION: version, **extra}


def record_of(item: dict[str, AttributeValue]) -> BreakerRecord:
    return BreakerRecord.from_attributes("b", item)


# ---------------------------------------------------------------------------- CLOSED -> OPEN
def test_open_carries_the_evidence_and_lands_only_on_the_closed_version_it_judged() -> None:
    # Given a CLOSED item at version 4 with a stale bucket and a live one, and one unwritten bucket
    calls, failures, _ = bucket_attributes(OLD_BUCKET)
    item = item_of(BreakerState.CLOSED, 4, **{calls: 9, failures: 1}, **dict.fromkeys(bucket_attributes(NEW_BUCKET), 1))
    record = record_of(item)
    batch = {NEW_BUCKET: WindowCounts(3, 2, 0)}

    # When the open is built
    write = transitions.open_breaker(record, item, NOW, SMALL, reason=Reason.FAILURE_RATE, batch=batch)

    # Then it moves to OPEN at version 5 for the first wait, adds the batch, drops the stale bucket
    update = write.update
    assert (update.set[STATE], update.set[VERSION], update.set[TRANSITION_REASON]) == ("OPEN", 5, "failure_rate")
    assert (update.set[OPENED_AT], update.set[OPEN_UNTIL], update.set[OPEN_COUNT]) == (NOW, NOW + 30, 1)
    assert update.set[EXPIRES_AT] == int(NOW + SMALL.item_ttl_seconds)
    new_calls, new_failures, _ = bucket_attributes(NEW_BUCKET)
    assert update.add == {new_calls: 3, new_failures: 2}
    assert {calls, failures, PROBE_SUCCESSES, "lease1", "lease3_until"} <= update.remove
    assert not update.remove & set(update.add)
    # And its condition is the version it judged, still CLOSED: the first opener wins, stale ones fail
    assert write.condition == (VersionIs(4), StateIs(BreakerState.CLOSED))
    assert lands(write, item)
    assert not lands(write, item_of(BreakerState.CLOSED, 5))  # someone else opened and closed it since
    assert not lands(write, item_of(BreakerState.FORCED_OPEN, 4))


def test_reopening_waits_longer_each_time() -> None:
    # Given a CLOSED record that already opened twice without a clean close
    record = BreakerRecord(name="b", version=8, open_count=2)

    # When it opens again
    write = transitions.open_breaker(record, {}, NOW, SMALL, reason=Reason.LOCAL_FAILURES, batch={})

    # Then the wait is 30 x 2 x 2 = 120 s, capped at 100 s
    assert (write.update.set[OPEN_COUNT], write.update.set[OPEN_UNTIL]) == (3, NOW + 100)


# ---------------------------------------------------------------------------- OPEN -> HALF_OPEN
def test_begin_half_open_takes_the_first_probe_slot_once_the_wait_is_over() -> None:
    # Given an OPEN item at version 5 whose wait ends at NOW
    item = item_of(BreakerState.OPEN, 5, **{OPEN_UNTIL: NOW, OPEN_COUNT: 1})

    # When the half-open period is begun for lease "env-1"
    write = transitions.begin_half_open(record_of(item), item, NOW, SMALL, lease_id="env-1")

    # Then it is HALF_OPEN at version 6, no success yet, slot 1 leased until NOW + probe_lease_seconds
    assert (write.update.set[STATE], write.update.set[VERSION], write.update.set[TRANSITION_REASON]) == (
        "HALF_OPEN",
        6,
        "wait_elapsed",
    )
    assert (write.update.set[PROBE_SUCCESSES], write.update.set["lease1"], write.update.set["lease1_until"]) == (
        0,
        "env-1",
        NOW + 10,
    )
    assert {"lease2", "lease3_until"} <= write.update.remove
    # And only the first writer that still finds this OPEN version past its wait begins the period
    assert write.condition == (VersionIs(5), StateIs(BreakerState.OPEN), AtMost(OPEN_UNTIL, NOW))
    assert lands(write, item)
    assert not lands(write, apply_update(item, write.update))  # the second environment loses
    assert not lands(write, {**item, OPEN_UNTIL: NOW + 1})  # the wait is not over


# ---------------------------------------------------------------------------- probe slots
def test_claiming_a_probe_slot_is_pinned_to_the_period_and_the_slot_being_free() -> None:
    # Given a HALF_OPEN item at version 6 whose slot 1 is leased and slot 2 free
    item = item_of(BreakerState.HALF_OPEN, 6, lease1="env-1", lease1_until=NOW + 5)

    # When slot 2, then slot 1, are claimed
    write = transitions.claim_probe_slot(6, 2, "env-2", NOW, SMALL)
    taken = transitions.claim_probe_slot(6, 1, "env-3", NOW, SMALL)

    # Then the claim leases the slot, and lands only on a free (or expired) slot of that period
    assert write.update.set == {"lease2": "env-2", "lease2_until": NOW + 10}
    assert write.condition == (VersionIs(6), StateIs(BreakerState.HALF_OPEN), SlotClaimable(2, NOW))
    assert lands(write, item)
    assert not lands(taken, item)  # slot 1's lease is live
    assert lands(taken, {**item, "lease1_until": NOW})  # expired without a result: granted again
    assert not lands(write, apply_update(item, write.update))  # another environment took it first
    assert not lands(write, {**item, VERSION: 7})


def test_a_probe_success_counts_once_for_the_live_holder_and_uses_the_slot_up() -> None:
    # Given a HALF_OPEN item at version 6 whose slot 2 is held by "env-2"
    item = item_of(BreakerState.HALF_OPEN, 6, lease2="env-2", lease2_until=NOW + 5)

    # When env-2's success is built
    write = transitions.probe_success(6, 2, "env-2")

    # Then it marks the slot done and adds one success, only for the live holder in that period
    assert write.update.set == {"lease2": LEASE_DONE}
    assert write.update.add == {PROBE_SUCCESSES: 1}
    assert write.condition == (VersionIs(6), StateIs(BreakerState.HALF_OPEN), Equals("lease2", "env-2"))
    assert lands(write, item)
    assert not lands(write, apply_update(item, write.update))  # a second report of the same probe
    assert not lands(write, {**item, "lease2": "env-9"})  # the lease expired and was re-granted


def test_releasing_a_probe_frees_the_slot_only_for_its_holder() -> None:
    # Given a HALF_OPEN item at version 6 whose slot 3 is held by "env-3"
    item = item_of(BreakerState.HALF_OPEN, 6, lease3="env-3", lease3_until=NOW + 5)

    # When env-3 gives its slot back (an ignored outcome)
    write = transitions.release_probe(6, 3, "env-3")

    # Then the lease goes, unless it was re-granted meanwhile
    assert write.update.remove == {"lease3", "lease3_until"}
    assert write.condition == (VersionIs(6), Equals("lease3", "env-3"))
    assert lands(write, item)
    assert not lands(write, {**item, "lease3": "env-7"})


# ---------------------------------------------------------------------------- HALF_OPEN -> CLOSED / OPEN
def test_close_needs_success_threshold_successes_and_starts_a_fresh_window() -> None:
    # Given a HALF_OPEN item at version 6 with two successes, leases, and an old bucket
    item = item_of(
        BreakerState.HALF_OPEN,
        6,
        **{PROBE_SUCCESSES: 2, "lease1": LEASE_DONE, OPENED_AT: NOW - 40, OPEN_UNTIL: NOW - 10, OPEN_COUNT: 1},
        **dict.fromkeys(bucket_attributes(OLD_BUCKET), 1),
    )

    # When the close is built
    write = transitions.close_breaker(record_of(item), item, NOW, SMALL)

    # Then it is CLOSED at version 7 with a window starting now, no open count, nothing left of the period
    assert (write.update.set[STATE], write.update.set[VERSION], write.update.set[TRANSITION_REASON]) == (
        "CLOSED",
        7,
        "probes_succeeded",
    )
    assert (write.update.set[WINDOW_START], write.update.set[OPEN_COUNT]) == (NOW, 0)
    assert {PROBE_SUCCESSES, "lease1", OPENED_AT, OPEN_UNTIL, *bucket_attributes(OLD_BUCKET)} <= write.update.remove
    # And it requires the version, HALF_OPEN, and at least success_threshold successes
    assert write.condition == (
        VersionIs(6),
        StateIs(BreakerState.HALF_OPEN),
        AtLeast(PROBE_SUCCESSES, SMALL.success_threshold),
    )
    assert lands(write, item)
    assert not lands(write, {**item, PROBE_SUCCESSES: 1})
    assert not lands(write, apply_update(item, write.update))  # the second probe to reach the threshold


def test_a_probe_failure_reopens_its_own_period_only_for_a_longer_wait() -> None:
    # Given a HALF_OPEN item at version 6 after one open
    item = item_of(BreakerState.HALF_OPEN, 6, **{OPEN_COUNT: 1, "lease1": "env-1", "lease1_until": NOW + 5})

    # When the failure of a probe of that period is built
    write = transitions.probe_failure(record_of(item), item, NOW, SMALL)

    # Then it is OPEN at version 7 for twice the first wait, and the probe bookkeeping goes
    assert (write.update.set[STATE], write.update.set[VERSION], write.update.set[TRANSITION_REASON]) == (
        "OPEN",
        7,
        "probe_failed",
    )
    assert (write.update.set[OPEN_COUNT], write.update.set[OPEN_UNTIL]) == (2, NOW + 60)
    assert {PROBE_SUCCESSES, "lease1", "lease1_until"} <= write.update.remove
    # And it lands only on that HALF_OPEN version: never over a close, nor from an earlier period
    assert write.condition == (VersionIs(6), StateIs(BreakerState.HALF_OPEN))
    assert lands(write, item)
    assert not lands(write, item_of(BreakerState.CLOSED, 7))


# ---------------------------------------------------------------------------- operator actions
@pytest.mark.parametrize(
    ("build", "state", "reason", "expires"),
    [
        (transitions.reset, "CLOSED", "reset", True),
        (transitions.force_open, "FORCED_OPEN", "force_open", False),
        (transitions.disable, "DISABLED", "disable", False),
    ],
)
def test_admin_actions_apply_to_the_version_the_operator_read(
    build: Callable[..., transitions.Write], state: str, reason: str, expires: bool
) -> None:
    # Given an OPEN item at version 9 with a probe lease of a larger past configuration
    item = item_of(BreakerState.OPEN, 9, **{OPEN_UNTIL: NOW + 5, "lease7": "x", EXPIRES_AT: 1})

    # When the admin write is built
    write = build(record_of(item), item, NOW, SMALL)

    # Then it sets the target state at version 10 and only an operator-set state stops the item expiring
    assert (write.update.set[STATE], write.update.set[VERSION], write.update.set[TRANSITION_REASON]) == (
        state,
        10,
        reason,
    )
    assert (EXPIRES_AT in write.update.set) is expires
    assert (EXPIRES_AT in write.update.remove) is not expires
    assert "lease7" in write.update.remove
    # And its only condition is the version read: an automatic transition in between makes it retry
    assert write.condition == (VersionIs(9),)
    assert lands(write, item)
    assert not lands(write, item_of(BreakerState.HALF_OPEN, 10))


def test_reset_starts_a_fresh_window_like_a_close() -> None:
    # Given a FORCED_OPEN item with old counters
    item = item_of(BreakerState.FORCED_OPEN, 3, **dict.fromkeys(bucket_attributes(NEW_BUCKET), 2))

    # When it is reset
    update = transitions.reset(record_of(item), item, NOW, SMALL).update

    # Then the window starts now and every counter goes
    assert (update.set[WINDOW_START], update.set[OPEN_COUNT]) == (NOW, 0)
    assert set(bucket_attributes(NEW_BUCKET)) <= update.remove


# ---------------------------------------------------------------------------- the window write
def test_publishing_the_window_is_an_unconditional_add_that_drops_stale_counters() -> None:
    # Given a CLOSED item with a stale bucket and a batch of two unwritten buckets
    item = item_of(BreakerState.CLOSED, 2, **dict.fromkeys(bucket_attributes(OLD_BUCKET), 4))
    batch = {NEW_BUCKET: WindowCounts(4, 1, 0), NEW_BUCKET + 1: WindowCounts(2, 0, 0)}

    # When the publish is built
    write = transitions.publish_window(record_of(item), item, NOW, SMALL, batch=batch)

    # Then it adds calls always and failures or slow calls when any, with no condition: every flush lands
    calls, failures, _ = bucket_attributes(NEW_BUCKET)
    later_calls, _, _ = bucket_attributes(NEW_BUCKET + 1)
    assert write.update.add == {calls: 4, failures: 1, later_calls: 2}
    assert write.update.remove == set(bucket_attributes(OLD_BUCKET))
    assert write.update.set == {"name": "b", EXPIRES_AT: int(NOW + SMALL.item_ttl_seconds)}
    assert write.condition == ()


def test_publishing_on_an_operator_state_keeps_the_item_from_expiring() -> None:
    # Given a DISABLED record
    record = BreakerRecord(name="b", state=BreakerState.DISABLED, version=3)

    # When a window write is built on it
    write = transitions.publish_window(record, {}, NOW, SMALL, batch={NEW_BUCKET: WindowCounts(1, 1, 0)})

    # Then it sets no expiry
    assert EXPIRES_AT not in write.update.set
