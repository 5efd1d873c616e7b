"""The breaker's decision rule and its in-memory windows, with no breaker, store or clock.

``judge()`` is a pure function of two windows and the configuration; ``OutcomeWindow`` decides what a
flush or a due refresh writes. SMALL: minimum_calls=10, failure_rate_threshold=0.5,
slow_call_rate_threshold=0.8, local_minimum_calls=5, window 10 s in 1 s buckets.
"""

from __future__ import annotations

import pytest

from resilience.breaker import BreakerRecord, WindowCounts
from resilience.breaker.status import Reason
from resilience.breaker.window import OutcomeWindow, judge
from tests.support.breaker_fakes import SMALL
from tests.support.clock import START

NOTHING = WindowCounts()
FAILED = WindowCounts(1, 1, 0)
SUCCEEDED = WindowCounts(1, 0, 0)
SLOW = WindowCounts(1, 0, 1)


# ---------------------------------------------------------------------------- judge(): the fleet rules
@pytest.mark.parametrize(
    ("fleet", "expected"),
    [
        (WindowCounts(10, 5, 0), Reason.FAILURE_RATE),  # exactly the threshold, exactly minimum_calls
        (WindowCounts(10, 4, 0), None),  # just below the threshold
        (WindowCounts(9, 9, 0), None),  # every call failed, but one short of minimum_calls
        (WindowCounts(100, 50, 0), Reason.FAILURE_RATE),
        (WindowCounts(10, 0, 8), Reason.SLOW_CALL_RATE),  # slow-call rate exactly at its threshold
        (WindowCounts(10, 0, 7), None),
        (WindowCounts(10, 5, 8), Reason.FAILURE_RATE),  # both tripped: the failure rate is named
    ],
)
def test_fleet_rules_need_minimum_calls_and_a_rate_at_its_threshold(
    fleet: WindowCounts, expected: Reason | None
) -> None:
    # Given a fleet window and nothing seen locally
    # When it is judged
    reason = judge(fleet, NOTHING, SMALL)

    # Then the breaker opens exactly when minimum_calls is reached and a rate meets its threshold
    assert reason == expected


# ---------------------------------------------------------------------------- judge(): the local rules
@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (WindowCounts(5, 5, 0), Reason.LOCAL_FAILURES),  # local_minimum_calls, all failed: a dead provider
        (WindowCounts(4, 4, 0), None),  # one call short
        (WindowCounts(6, 5, 0), None),  # one success among them
        (WindowCounts(5, 0, 5), Reason.LOCAL_SLOW_CALLS),  # all slow
        (WindowCounts(5, 5, 5), Reason.LOCAL_FAILURES),  # all failed and slow: failures are named
        (WindowCounts(5, 0, 4), None),
    ],
)
def test_local_rules_open_when_every_recent_call_failed_or_was_slow(
    local: WindowCounts, expected: Reason | None
) -> None:
    # Given a fleet window far below minimum_calls, and this environment's own window
    fleet = WindowCounts(3, 0, 0)

    # When both are judged
    reason = judge(fleet, local, SMALL)

    # Then only a local window of at least local_minimum_calls calls, all failed (or all slow), opens it
    assert reason == expected


def test_fleet_rules_are_named_before_local_ones() -> None:
    # Given a fleet window over its failure threshold and a local window whose calls all failed
    fleet, local = WindowCounts(20, 12, 0), WindowCounts(5, 5, 0)

    # When both are judged
    reason = judge(fleet, local, SMALL)

    # Then the reason is the fleet's
    assert reason is Reason.FAILURE_RATE


def test_a_quiet_window_keeps_the_breaker_closed() -> None:
    # Given no calls at all
    # When judged
    # Then nothing trips
    assert judge(NOTHING, NOTHING, SMALL) is None


def test_reasons_are_the_strings_logs_and_items_carry() -> None:
    # Given the closed set of reasons
    # When they are read as strings
    names = {str(reason) for reason in Reason}

    # Then they are the names transitions have always been logged and stored with
    assert names == {
        "failure_rate",
        "slow_call_rate",
        "local_failures",
        "local_slow_calls",
        "probe_failed",
        "probes_succeeded",
        "wait_elapsed",
        "reset",
        "force_open",
        "disable",
    }
    assert Reason.FAILURE_RATE == "failure_rate"


# ---------------------------------------------------------------------------- OutcomeWindow
def test_outcomes_land_in_both_windows_and_the_fleet_view_adds_the_unwritten_ones() -> None:
    # Given a record whose fleet window holds 10 calls, 2 failed, and a window with two local outcomes
    record = BreakerRecord(name="b", buckets={int(START) - 2: WindowCounts(10, 2, 0)})
    window = OutcomeWindow(SMALL)
    window.add(FAILED, START, record.window_start)
    window.add(SLOW, START + 0.5, record.window_start)

    # When the fleet and local views are taken
    fleet = window.fleet(record, START + 0.5)
    local = window.local_counts(START + 0.5, record.window_start)

    # Then the fleet view is the record plus the pending outcomes, the local view this environment's own
    assert fleet == WindowCounts(12, 3, 1)
    assert local == WindowCounts(2, 1, 1)
    assert window.local_trouble(START + 0.5, record.window_start)


def test_a_flush_writes_nothing_while_only_quick_successes_are_pending() -> None:
    # Given a window with three quick successes in two buckets
    window = OutcomeWindow(SMALL)
    for offset in (0.0, 0.5, 1.0):
        window.add(SUCCEEDED, START + offset, 0.0)

    # When asked what a flush or a due refresh would write
    flushable = window.flushable(START + 1, 0.0)
    publishable = window.publishable(START + 1, 0.0)

    # Then nothing: a healthy path never writes
    assert flushable == {}
    assert publishable == {}


def test_once_trouble_is_pending_every_unwritten_bucket_goes_successes_included() -> None:
    # Given a success in one bucket and a failure in the next
    window = OutcomeWindow(SMALL)
    window.add(SUCCEEDED, START, 0.0)
    window.add(FAILED, START + 1, 0.0)

    # When asked what a flush would write
    batch = window.flushable(START + 1, 0.0)

    # Then both buckets, so the fleet's rate is not biased towards failures
    assert batch == {int(START): SUCCEEDED, int(START) + 1: FAILED}


def test_the_successes_after_written_trouble_are_published_by_the_next_refresh() -> None:
    # Given trouble that was written, then a success
    window = OutcomeWindow(SMALL)
    window.add(FAILED, START, 0.0)
    window.written(window.flushable(START, 0.0))
    window.add(SUCCEEDED, START + 1, 0.0)

    # When asked what a flush and what a due refresh would write
    flushable = window.flushable(START + 1, 0.0)
    publishable = window.publishable(START + 1, 0.0)

    # Then a flush keeps the lone success pending, a due refresh writes it
    assert window.wrote_trouble
    assert flushable == {}
    assert publishable == {int(START) + 1: SUCCEEDED}


def test_buckets_that_leave_the_window_or_predate_the_period_are_dropped_unwritten() -> None:
    # Given a failure pending at START and a success 5 s later
    window = OutcomeWindow(SMALL)
    window.add(FAILED, START, 0.0)
    window.add(SUCCEEDED, START + 5, 0.0)

    # When the window slides past the failure (10 s), and separately when a close moved window_start
    unwritten_later = window.unwritten(START + 11, 0.0)
    unwritten_after_close = window.unwritten(START + 5, START + 3)
    window.prune(START + 11, 0.0)

    # Then the failure no longer counts, and pruning forgets it in both windows
    assert unwritten_later == {int(START) + 5: SUCCEEDED}
    assert unwritten_after_close == {int(START) + 5: SUCCEEDED}
    assert window.pending == window.local == {int(START) + 5: SUCCEEDED}


def test_forgetting_a_finished_period_clears_everything() -> None:
    # Given a window with written trouble and pending outcomes
    window = OutcomeWindow(SMALL)
    window.add(FAILED, START, 0.0)
    window.written(window.flushable(START, 0.0))
    window.add(FAILED, START + 1, 0.0)

    # When the period ends
    window.forget()

    # Then nothing is pending, nothing local, and no trouble is remembered as written
    assert (window.pending, window.local, window.wrote_trouble) == ({}, {}, False)
