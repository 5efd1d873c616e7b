"""Every transition and edge of the circuit breaker, on the in-memory store with an injected clock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    InMemoryBreakerStore,
    PermanentError,
    PermitAlreadyRecordedError,
    PermitKind,
    TransientError,
)
from resilience.observability import (
    METRIC_FAILURE,
    METRIC_OPEN,
    METRIC_REJECTED,
    METRIC_STATE,
    METRIC_STORE_ERROR,
    METRIC_SUCCESS,
)
from tests.support.clock import START, FakeClock

if TYPE_CHECKING:
    from breaker_fakes import RecordingMetrics

    from resilience.breaker.circuit import Transition

MakeBreaker = Callable[..., CircuitBreaker]


def outcomes(breaker: CircuitBreaker, pattern: str, duration: float = 0.0) -> None:
    """Record one call per character: ``S`` success, ``F`` transient failure, ``P`` permanent error."""
    for char in pattern:
        permit = breaker.allow()
        if char == "S":
            permit.record_success(duration)
        elif char == "F":
            permit.record_failure(TransientError("provider down"), duration)
        else:
            permit.record_failure(PermanentError("invalid address"), duration)


def open_breaker(breaker: CircuitBreaker) -> None:
    outcomes(breaker, "FFFFF")
    assert breaker.state is BreakerState.OPEN


# ---------------------------------------------------------------------------- CLOSED -> OPEN
def test_opens_when_failure_rate_exactly_meets_threshold(
    make_breaker: MakeBreaker, transitions: list[Transition]
) -> None:
    # Given a breaker with minimum_calls=10 and failure_rate_threshold=0.5, after 9 calls (5 ok, 4 failed)
    breaker = make_breaker()
    outcomes(breaker, "SSSSSFFFF")
    assert breaker.state is BreakerState.CLOSED

    # When the 10th call fails: 5 of 10, exactly the threshold
    outcomes(breaker, "F")

    # Then it opens on the failure rate, in one transition
    assert breaker.state is BreakerState.OPEN
    assert [(t.from_state, t.to_state, t.reason) for t in transitions] == [
        (BreakerState.CLOSED, BreakerState.OPEN, "failure_rate")
    ]


def test_stays_closed_just_below_the_threshold(make_breaker: MakeBreaker, store: InMemoryBreakerStore) -> None:
    # Given a breaker with failure_rate_threshold=0.5
    breaker = make_breaker()

    # When 10 calls see 4 failures (0.4)
    outcomes(breaker, "SSSSSSFFFF")

    # Then it stays closed and has written nothing yet (outcomes wait for the flush)
    assert breaker.state is BreakerState.CLOSED
    assert store.writes == 0


def test_stays_closed_while_minimum_calls_not_met(make_breaker: MakeBreaker) -> None:
    # Given a breaker with minimum_calls=10
    breaker = make_breaker()

    # When 9 calls see 8 failures (one success keeps the local dead-provider rule out of it)
    outcomes(breaker, "SFFFFFFFF")

    # Then the rate is not judged yet: still closed, and the next call is permitted
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow().kind is PermitKind.NORMAL


def test_dead_provider_opens_locally_after_local_minimum_calls(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, transitions: list[Transition]
) -> None:
    # Given a breaker with local_minimum_calls=5 and minimum_calls=10, after 4 failures
    breaker = make_breaker()
    outcomes(breaker, "FFFF")
    assert breaker.state is BreakerState.CLOSED

    # When the 5th consecutive failure comes in, long before the fleet's minimum
    outcomes(breaker, "F")

    # Then this environment opens the breaker at once, writing the evidence with the transition
    assert breaker.state is BreakerState.OPEN
    assert transitions[-1].reason == "local_failures"
    assert store.writes == 1
    assert breaker.describe().failures_in_window == 5


def test_slow_call_rate_opens(make_breaker: MakeBreaker, transitions: list[Transition]) -> None:
    # Given a breaker with slow_call_seconds=2 and slow_call_rate_threshold=0.8
    breaker = make_breaker()

    # When 10 successful calls include 8 that took 3 s
    outcomes(breaker, "SS", duration=0.1)
    outcomes(breaker, "SSSSSSSS", duration=3.0)

    # Then the breaker opens on the slow-call rate
    assert breaker.state is BreakerState.OPEN
    assert transitions[-1].reason == "slow_call_rate"


@pytest.mark.parametrize(("later", "expected"), [(10.5, BreakerState.OPEN), (11.0, BreakerState.CLOSED)])
def test_bucket_expiry_at_the_window_edge(
    make_breaker: MakeBreaker, clock: FakeClock, later: float, expected: BreakerState
) -> None:
    # Given a 10 s window of 1 s buckets, and 5 calls (4 failed) in the bucket starting at START
    breaker = make_breaker()
    outcomes(breaker, "SFFFF")

    # When 5 more calls (4 failed) arrive `later` seconds on: the first bucket covers [START, START+1)
    clock.advance(later)
    outcomes(breaker, "SFFFF")

    # Then the first bucket still counts at +10.5 (10 calls, 8 failed: open) and is gone at +11 (5 calls: closed)
    assert breaker.state is expected


def test_fleet_window_adds_up_the_environments(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given two environments, each with 5 calls of which 3 failed: below minimum_calls=10 on its own
    first, second = make_breaker(), make_breaker()
    outcomes(first, "SSFFF")
    outcomes(second, "SSFFF")
    assert first.state is BreakerState.CLOSED and second.state is BreakerState.CLOSED

    # When both flush at the end of their batch, a cache lifetime (suspect_cache_ttl_seconds=1) after their read
    clock.advance(1)
    first.flush()
    second.flush()

    # Then the second flush reads back 10 calls with 6 failures from the same request, and opens
    assert second.state is BreakerState.OPEN
    assert second.describe().calls_in_window == 10


def test_a_stale_environment_loses_the_open_race(
    make_breaker: MakeBreaker, clock: FakeClock, transitions: list[Transition]
) -> None:
    # Given two environments that both read the breaker CLOSED at version 0
    first, second = make_breaker(), make_breaker()
    assert first.allow().kind is PermitKind.NORMAL
    assert second.allow().kind is PermitKind.NORMAL

    # When both see a dead provider and both judge it should open
    outcomes(first, "FFFFF")
    outcomes(second, "FFFFF")

    # Then only one transition lands; the other environment adopts the OPEN it lost to
    assert [(t.from_version, t.to_version) for t in transitions] == [(0, 1)]
    assert first.state is BreakerState.OPEN
    assert second.state is BreakerState.OPEN


def test_other_environments_see_open_after_their_cache_ttl(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given an environment that cached CLOSED (cache_ttl_seconds=5) and another that opens the breaker
    watcher, opener = make_breaker(), make_breaker()
    assert watcher.allow().kind is PermitKind.NORMAL
    open_breaker(opener)

    # When the watcher asks again within its cache lifetime, and after it
    clock.advance(4.9)
    within = watcher.allow().kind
    clock.advance(0.2)

    # Then it permits from its cache first, and rejects once it re-reads
    assert within is PermitKind.NORMAL
    with pytest.raises(CircuitOpenError):
        watcher.allow()


# ---------------------------------------------------------------------------- OPEN and HALF_OPEN
def test_open_rejects_without_calling_until_the_wait_ends(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given an open breaker with wait_open_seconds=30
    breaker = make_breaker()
    open_breaker(breaker)
    called: list[int] = []

    # When calls arrive before the wait ends
    clock.advance(29.9)
    with pytest.raises(CircuitOpenError) as rejected:
        breaker.call(lambda: called.append(1))

    # Then the function is never called and the error says when to come back
    assert called == []
    assert rejected.value.retry_after == pytest.approx(0.1)
    assert breaker.seconds_until_permitted() == pytest.approx(0.1)
    assert breaker.permits_call() is False

    # And when the wait is over, the next call is a half-open probe
    clock.advance(0.1)
    assert breaker.allow().kind is PermitKind.PROBE
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_hands_out_at_most_the_permits_across_the_fleet(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given an open breaker whose wait has ended, and four environments
    environments = [make_breaker() for _ in range(4)]
    open_breaker(environments[0])
    clock.advance(30)

    # When each environment asks for a call
    permits = [env.allow() for env in environments[:3]]
    with pytest.raises(CircuitOpenError) as rejected:
        environments[3].allow()

    # Then three probes (half_open_permits=3) hold distinct slots and the fourth is rejected
    assert [p.kind for p in permits] == [PermitKind.PROBE] * 3
    assert sorted(p.slot for p in permits) == [1, 2, 3]
    assert rejected.value.state == "HALF_OPEN"


def test_success_threshold_closes_and_starts_a_fresh_window(
    make_breaker: MakeBreaker, clock: FakeClock, transitions: list[Transition]
) -> None:
    # Given a half-open breaker with success_threshold=2 and two probes out
    first, second = make_breaker(), make_breaker()
    open_breaker(first)
    clock.advance(30)
    probe_a, probe_b = first.allow(), second.allow()

    # When the first probe succeeds the breaker is still half-open; when the second does, it closes
    probe_a.record_success()
    after_one = first.state
    probe_b.record_success()

    # Then it is CLOSED with an empty window, and the transitions form one unbroken version chain
    assert after_one is BreakerState.HALF_OPEN
    assert second.state is BreakerState.CLOSED
    assert second.describe().calls_in_window == 0
    assert [(t.to_state, t.to_version) for t in transitions] == [
        (BreakerState.OPEN, 1),
        (BreakerState.HALF_OPEN, 2),
        (BreakerState.CLOSED, 3),
    ]


def test_a_probe_failure_reopens_with_a_growing_capped_wait(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given wait_open_seconds=30, wait_open_multiplier=2, wait_open_max_seconds=100
    breaker = make_breaker()
    open_breaker(breaker)
    waits = []

    # When three probes in a row fail
    for _ in range(3):
        clock.advance(breaker.seconds_until_permitted() or 0)
        breaker.allow().record_failure(TimeoutError())
        status = breaker.describe()
        assert status.state is BreakerState.OPEN
        waits.append((status.next_probe_at or 0) - clock.now)

    # Then each reopen waits twice as long, up to the cap
    assert waits == [60, 100, 100]
    assert breaker.describe().open_count == 4


def test_an_expired_lease_is_granted_again_and_its_late_result_does_not_count(
    make_breaker: MakeBreaker, clock: FakeClock
) -> None:
    # Given three probes out (every permit taken) whose holders die silently
    environments = [make_breaker() for _ in range(4)]
    open_breaker(environments[0])
    clock.advance(30)
    dead = [env.allow() for env in environments[:3]]
    with pytest.raises(CircuitOpenError):
        environments[3].allow()

    # When their leases (probe_lease_seconds=10) expire
    clock.advance(10)
    replacement = environments[3].allow()

    # Then a fourth environment gets a slot again, and the dead holder of that slot cannot count a success
    assert replacement.kind is PermitKind.PROBE
    stale = next(p for p in dead if p.slot == replacement.slot)
    stale.record_success()
    assert environments[3].describe().probes_in_flight == 1
    assert environments[0].describe().state is BreakerState.HALF_OPEN


def test_ignored_errors_count_neither_way(make_breaker: MakeBreaker, metrics: RecordingMetrics) -> None:
    # Given a closed breaker
    breaker = make_breaker()

    # When 20 calls fail with a permanent error (an invalid address) and a call is marked ignored
    outcomes(breaker, "P" * 20)
    breaker.allow().record_ignored()
    breaker.flush()

    # Then nothing counted: still closed, no failures nor successes
    assert breaker.state is BreakerState.CLOSED
    assert breaker.describe().calls_in_window == 0
    assert metrics.total(METRIC_FAILURE) == 0
    assert metrics.total(METRIC_SUCCESS) == 0


def test_an_ignored_probe_gives_its_permit_back(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given a half-open breaker with all three permits taken
    environments = [make_breaker() for _ in range(4)]
    open_breaker(environments[0])
    clock.advance(30)
    permits = [env.allow() for env in environments[:3]]

    # When one probe ends in a permanent error (says nothing about the provider)
    verdict = permits[0].record_failure(PermanentError("invalid address"))

    # Then the breaker stays half-open and the freed slot goes to the next caller
    assert verdict.value == "permanent"
    assert environments[3].allow().slot == permits[0].slot
    assert environments[3].state is BreakerState.HALF_OPEN


# ---------------------------------------------------------------------------- operator states
def test_forced_open_rejects_until_reset(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given an operator forces the breaker open
    breaker, other = make_breaker(), make_breaker()
    transition = breaker.force_open()
    assert transition is not None and transition.to_state is BreakerState.FORCED_OPEN

    # When calls arrive long after any wait would have ended
    clock.advance(3600)

    # Then every environment rejects them, with no known retry time
    with pytest.raises(CircuitOpenError) as rejected:
        other.allow()
    assert rejected.value.retry_after is None
    assert other.permits_call() is False

    # And after a reset calls flow again
    breaker.reset()
    clock.advance(5)
    assert other.allow().kind is PermitKind.NORMAL


def test_disabled_permits_everything_and_records_nothing(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given an operator disables the breaker
    breaker = make_breaker()
    breaker.disable()
    writes = store.writes

    # When every call fails
    outcomes(breaker, "F" * 30)
    breaker.flush()

    # Then nothing opens it and nothing is written
    assert breaker.state is BreakerState.DISABLED
    assert store.writes == writes
    assert breaker.allow().kind is PermitKind.UNTRACKED


def test_reset_closes_an_open_breaker(make_breaker: MakeBreaker, transitions: list[Transition]) -> None:
    # Given an open breaker
    breaker = make_breaker()
    open_breaker(breaker)

    # When an operator resets it
    breaker.reset()

    # Then it is closed, with an empty window, at the next version
    assert breaker.state is BreakerState.CLOSED
    assert breaker.describe().calls_in_window == 0
    assert (transitions[-1].from_state, transitions[-1].to_state, transitions[-1].to_version) == (
        BreakerState.OPEN,
        BreakerState.CLOSED,
        2,
    )


# ---------------------------------------------------------------------------- cost and failure of the store
def test_a_healthy_path_writes_nothing_and_reads_once_per_cache_ttl(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given a breaker with cache_ttl_seconds=5
    breaker = make_breaker()

    # When 20 s of successful calls go through, 10 per second, flushed once per second
    for _ in range(20):
        outcomes(breaker, "S" * 10)
        breaker.flush()
        clock.advance(1)

    # Then it wrote nothing and read the store once per 5 s
    assert store.writes == 0
    assert store.reads == 4


def test_a_flush_with_trouble_writes_every_pending_bucket_with_its_successes_in_one_update(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given one bucket with 3 successes and a failure, and a later bucket of 4 successes, all within
    # one cache lifetime (suspect_cache_ttl_seconds=1) of the environment's read
    clock.advance(0.5)
    breaker = make_breaker()
    outcomes(breaker, "SSSF")
    clock.advance(0.6)
    outcomes(breaker, "SSSS")

    # When the batch ends, a cache lifetime after the read
    clock.advance(0.4)
    breaker.flush()

    # Then one update carried both buckets, the successes of the healthy one included
    assert store.writes == 1
    status = breaker.describe()
    assert (status.calls_in_window, status.failures_in_window) == (8, 1)


def test_an_unreachable_store_fails_open_logs_and_counts(
    make_breaker: MakeBreaker,
    store: InMemoryBreakerStore,
    metrics: RecordingMetrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the store cannot be reached
    breaker = make_breaker()
    store.available = False

    # When calls go through the breaker
    with caplog.at_level(logging.WARNING, logger="tests.resilience"):
        results = [breaker.call(lambda: "sent") for _ in range(3)]
    errors = breaker.store_errors
    breaker.flush()

    # Then they are all made, the failure is logged with structured fields, and counted in a metric
    assert results == ["sent"] * 3
    assert errors == 1  # retried only after suspect_cache_ttl_seconds, not on every call
    assert any(getattr(r, "operation", None) == "read" for r in caplog.records)
    assert metrics.total(METRIC_STORE_ERROR) == 1


def test_while_the_store_is_down_a_dead_provider_is_still_cut_off_locally(
    make_breaker: MakeBreaker, store: InMemoryBreakerStore, clock: FakeClock
) -> None:
    # Given the store cannot be reached and the provider fails every call
    breaker = make_breaker()
    store.available = False

    # When 5 calls fail
    outcomes(breaker, "FFFFF")

    # Then this environment stops calling until the wait ends, even though the store never heard of it
    clock.advance(10)
    with pytest.raises(CircuitOpenError):
        breaker.allow()

    # And once the store answers again, the environment follows the store (closed: nobody recorded an open)
    store.available = True
    clock.advance(21)
    assert breaker.allow().kind is PermitKind.NORMAL


# ---------------------------------------------------------------------------- API details and observability
def test_transitions_emit_state_and_open_metrics_and_one_structured_log_line(
    make_breaker: MakeBreaker, metrics: RecordingMetrics, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a breaker about to open
    breaker = make_breaker()

    # When it opens and a later call is rejected, then the batch flushes
    with caplog.at_level(logging.INFO, logger="tests.resilience"):
        outcomes(breaker, "FFFFF")
    with pytest.raises(CircuitOpenError):
        breaker.allow()
    breaker.flush()

    # Then the transition emitted CircuitBreakerState=2 and CircuitBreakerOpen=1, and the flush the counts
    assert ("provider:test", {METRIC_STATE: 2, METRIC_OPEN: 1}) in metrics.emitted
    assert metrics.total(METRIC_FAILURE) == 5
    assert metrics.total(METRIC_REJECTED) == 1
    lines = [r for r in caplog.records if r.getMessage() == "circuit breaker transition"]
    assert len(lines) == 1
    assert (lines[0].breaker, lines[0].from_state, lines[0].to_state) == ("provider:test", "CLOSED", "OPEN")


def test_a_permit_records_exactly_once(make_breaker: MakeBreaker) -> None:
    # Given a permit whose success was recorded
    permit = make_breaker().allow()
    permit.record_success()

    # When its outcome is recorded again
    # Then the second record is refused
    with pytest.raises(PermitAlreadyRecordedError):
        permit.record_failure(TimeoutError())


def test_the_permit_context_manager_records_the_exception(make_breaker: MakeBreaker) -> None:
    # Given a breaker
    breaker = make_breaker()

    # When five calls fail inside `with breaker.allow():`
    for _ in range(5):
        with pytest.raises(ConnectionResetError), breaker.allow():
            raise ConnectionResetError

    # Then they counted as failures and opened it
    assert breaker.state is BreakerState.OPEN


def test_protect_decorates_and_passes_arguments_and_errors(make_breaker: MakeBreaker) -> None:
    # Given a protected function
    breaker = make_breaker()

    @breaker.protect
    def send(to: str, *, subject: str) -> str:
        if to == "bad":
            raise PermanentError("invalid address")
        return f"{to}:{subject}"

    # When it is called with arguments, and with a bad address
    result = send("ada", subject="hi")
    with pytest.raises(PermanentError):
        send("bad", subject="hi")

    # Then the result and the error pass through, and the permanent error did not count
    breaker.flush()
    assert result == "ada:hi"
    assert breaker.describe().calls_in_window == 0


def test_describe_reports_state_rate_window_and_next_probe(make_breaker: MakeBreaker, clock: FakeClock) -> None:
    # Given a breaker that opened after 5 failures at START
    breaker = make_breaker()
    open_breaker(breaker)

    # When it is described 10 s later
    clock.advance(10)
    status = breaker.describe().as_dict()

    # Then the health endpoints get everything they show
    assert status == {
        "name": "provider:test",
        "state": "OPEN",
        "version": 1,
        "failure_rate": 1.0,
        "slow_call_rate": 0.0,
        "calls_in_window": 5,
        "failures_in_window": 5,
        "slow_calls_in_window": 0,
        "opened_at": START,
        "next_probe_at": START + 30,
        "open_count": 1,
        "probes_in_flight": 0,
    }
