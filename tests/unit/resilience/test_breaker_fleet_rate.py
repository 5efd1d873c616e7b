"""The fleet-wide failure rate stays unbiased whatever the batch size, and a healthy path still writes nothing.

Each environment keeps its unwritten outcomes pending and writes them, successes included, once per
cache lifetime while it sees trouble. Writing each failure at once but its successes only with the
next failure left every environment's successes since its last failure out of the fleet's counters:
with a flush after every call, the fleet's rate read close to 100 % whatever the provider did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    NullBreakerMetrics,
    PermitKind,
    TransientError,
)
from resilience.breaker.state import bucket_attributes
from tests.support.clock import START

if TYPE_CHECKING:
    from resilience import InMemoryBreakerStore
    from tests.support.clock import FakeClock

MakeBreaker = Callable[..., CircuitBreaker]
ENVIRONMENTS = 8
CALLS_PER_SECOND = 10


def record(breaker: CircuitBreaker, pattern: str) -> None:
    """One call per character, each followed by a flush (batch size 1): ``S`` success, ``F`` failure."""
    for char in pattern:
        permit = breaker.allow()
        if char == "F":
            permit.record_failure(TransientError("provider down"), 0.05)
        else:
            permit.record_success(0.05)
        breaker.flush()


def run_fleet(fleet: list[CircuitBreaker], clock: FakeClock, fails: Callable[[int, int], bool], seconds: float) -> int:
    """Each environment calls 10 times a second, a flush after every call; returns the calls rejected.

    ``fails(environment, call)`` says whether that environment's call number ``call`` fails.
    """
    rejected = 0
    for tick in range(int(seconds * CALLS_PER_SECOND)):
        clock.now = START + tick / CALLS_PER_SECOND
        for index, breaker in enumerate(fleet):
            try:
                permit = breaker.allow()
            except CircuitOpenError:
                rejected += 1
                continue
            if fails(index, tick):
                permit.record_failure(TransientError("provider down"), 0.05)
            else:
                permit.record_success(0.05)
            breaker.flush()
    return rejected


@pytest.fixture
def default_fleet(store: InMemoryBreakerStore, clock: FakeClock) -> list[CircuitBreaker]:
    """Eight environments with the library's default configuration on one store."""
    quiet = logging.getLogger("tests.resilience.fleet_rate")
    return [
        CircuitBreaker(
            "provider:fleet", store, BreakerConfig(), clock=clock, metrics=NullBreakerMetrics(), logger=quiet
        )
        for _ in range(ENVIRONMENTS)
    ]


@pytest.mark.parametrize(
    ("failing", "share"),
    [
        ({0}, 0.2),  # call k of environment i fails when (k + i) % 5 == 0
        ({0, 3, 6}, 0.3),  # ... when (k + i) % 10 is 0, 3 or 6
    ],
)
def test_with_a_flush_after_every_call_a_fleet_below_the_threshold_never_opens_and_reads_its_true_rate(
    default_fleet: list[CircuitBreaker], clock: FakeClock, failing: set[int], share: float
) -> None:
    # Given 8 environments with the default configuration, each flushing after every call (batch size 1)
    period = 5 if share == 0.2 else 10

    # When each calls 10 times a second for 20 s and a fixed 20 % (or 30 %) of the calls fail
    rejected = run_fleet(default_fleet, clock, lambda env, call: (call + env) % period in failing, 20)

    # Then no call was ever rejected, and the fleet's counters hold the true rate, not one biased towards 100 %
    assert rejected == 0
    status = default_fleet[0].describe()
    assert status.calls_in_window >= 1400  # 1,600 calls made; at most a cache lifetime of each still pending
    assert status.failure_rate == pytest.approx(share, abs=0.02)


def test_a_suspect_environment_writes_once_per_cache_lifetime_whatever_its_batch_size(
    default_fleet: list[CircuitBreaker], store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given 8 environments flushing after every call, with suspect_cache_ttl_seconds=0.5
    # When each calls 10 times a second for 10 s and 30 % of the calls fail
    rejected = run_fleet(default_fleet, clock, lambda env, call: (call + env) % 10 in {0, 3, 6}, 10)

    # Then, every call permitted, each environment wrote its window about twice a second, not once per
    # failure (240 failures), and read only when it had nothing to write
    assert rejected == 0
    assert store.writes <= ENVIRONMENTS * (10 / 0.5 + 1)
    assert store.reads + store.writes <= ENVIRONMENTS * (10 / 0.5 + 2)


def test_successes_are_written_with_the_next_troubled_flush(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an environment flushing after every call, whose three successes wrote nothing
    breaker = make_breaker()
    record(breaker, "SSS")
    assert store.writes == 0

    # When a call fails a cache lifetime (suspect_cache_ttl_seconds=1) after its read, and the batch flushes
    clock.advance(1)
    record(breaker, "F")

    # Then one update carried the failure and the three successes before it
    assert store.writes == 1
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (4, 1)


def test_trouble_flushed_within_a_cache_lifetime_goes_out_with_the_next_refresh_instead_of_a_read(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an environment that read the store at START and saw a failure right after
    breaker = make_breaker()
    record(breaker, "FS")
    assert (store.reads, store.writes) == (1, 0)  # flushed within suspect_cache_ttl_seconds=1 of the read

    # When its cache is due again and it asks for a permit
    clock.advance(1)
    breaker.allow()

    # Then that refresh wrote the pending window (one request, which also returned the item) and read nothing
    assert (store.reads, store.writes) == (1, 1)
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (2, 1)


def test_the_successes_that_follow_trouble_are_written_once_then_a_healthy_path_writes_nothing(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an environment whose failure was written
    breaker = make_breaker()
    record(breaker, "F")
    clock.advance(1)
    breaker.flush()
    assert store.writes == 1

    # When only successes follow, for three cache lifetimes (suspect_cache_ttl_seconds=1)
    for _ in range(3):
        record(breaker, "SSSS")
        clock.advance(1)
    record(breaker, "S")

    # Then the successes right after the failure were written once; later ones stayed pending, unwritten
    assert store.writes == 2
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (5, 1)


def test_pending_successes_older_than_the_window_are_dropped_never_written(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an environment whose three successes at START were never written (window_seconds=10)
    breaker = make_breaker()
    record(breaker, "SSS")

    # When a call fails after they left the window, and its flush writes a cache lifetime later
    clock.advance(11)
    record(breaker, "F")
    clock.advance(1)
    breaker.flush()

    # Then the write carried the failure alone: the old successes left no counter behind
    assert store.writes == 1
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (1, 1)
    item = store.load("provider:test") or {}
    assert not set(bucket_attributes(int(START))) & set(item)


def test_outcomes_a_write_could_not_deliver_stay_pending_and_go_out_once_the_store_answers(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an environment with a failure and a success pending, and a store that cannot be reached
    breaker = make_breaker()
    record(breaker, "FS")
    store.available = False

    # When its refresh comes due, it asks for a permit; then the store answers again and the next one is due
    clock.advance(1)
    permitted = breaker.allow()
    failed = breaker.store_errors
    store.available = True
    clock.advance(1)
    breaker.allow()

    # Then the call was permitted (failing open), and the second refresh wrote what the first could not
    assert permitted.kind is PermitKind.NORMAL
    assert failed == 1
    assert store.writes == 1
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (2, 1)
