"""The in-process retry helper: call form and decorator, with an injected sleep."""

from __future__ import annotations

import pytest

from resilience import Jitter, PermanentError, Retry, RetryPolicy, TransientError, retry

POLICY = RetryPolicy(base_seconds=0.1, cap_seconds=1.0, max_attempts=4, jitter=Jitter.NONE)


class Flaky:
    """Fails with the given errors, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_transient_errors_are_retried_with_the_policy_delays() -> None:
    # Given a call that times out twice, and a recording sleep
    slept: list[float] = []
    helper = Retry(sleep=slept.append)
    flaky = Flaky(TimeoutError(), ConnectionResetError())

    # When it is called through the helper
    result = helper.call(flaky, POLICY)

    # Then it succeeds on the third attempt after the policy's delays, without sleeping for real
    assert result == "ok"
    assert flaky.calls == 3
    assert slept == [0.1, 0.2]


def test_permanent_errors_are_not_retried() -> None:
    # Given a call rejected as invalid
    slept: list[float] = []
    flaky = Flaky(PermanentError("invalid address"))

    # When it is called through the helper
    with pytest.raises(PermanentError):
        Retry(sleep=slept.append).call(flaky, POLICY)

    # Then it was tried once
    assert flaky.calls == 1
    assert slept == []


def test_the_last_error_is_raised_when_attempts_run_out() -> None:
    # Given a call that always fails transiently
    slept: list[float] = []
    errors = [TransientError(f"attempt {n}") for n in range(1, 6)]
    flaky = Flaky(*errors)

    # When it is called with 4 attempts
    with pytest.raises(TransientError) as raised:
        Retry(sleep=slept.append).call(flaky, POLICY)

    # Then the 4th error surfaces unchanged after three sleeps
    assert raised.value is errors[3]
    assert slept == [0.1, 0.2, 0.4]


def test_retry_after_lengthens_the_delay_and_a_too_long_one_stops_retrying() -> None:
    # Given a provider asking for 0.7 s, then for 30 s (beyond the 1 s cap)
    slept: list[float] = []
    flaky = Flaky(TransientError("busy", retry_after=0.7), TransientError("very busy", retry_after=30))

    # When it is called through the helper
    with pytest.raises(TransientError, match="very busy"):
        Retry(sleep=slept.append).call(flaky, POLICY)

    # Then the first wait honoured Retry-After and the second was left to the queue-level backoff
    assert slept == [0.7]
    assert flaky.calls == 2


def test_the_decorator_retries_with_arguments_and_reports_each_retry() -> None:
    # Given a decorated function that fails once, and an observer
    seen: list[tuple[int, str, float]] = []
    slept: list[float] = []
    failures = [ConnectionResetError("reset")]

    @retry(POLICY, sleep=slept.append, on_retry=lambda n, exc, delay: seen.append((n, str(exc), delay)))
    def fetch(key: str, *, version: int) -> str:
        if failures:
            raise failures.pop()
        return f"{key}@{version}"

    # When it is called
    result = fetch("a", version=2)

    # Then the arguments reach it, and the observer saw the retry
    assert result == "a@2"
    assert seen == [(1, "reset", 0.1)]
    assert slept == [0.1]


def test_keyboard_interrupt_is_never_swallowed() -> None:
    # Given a call interrupted by the user
    flaky = Flaky(KeyboardInterrupt())

    # When / Then it propagates at once
    with pytest.raises(KeyboardInterrupt):
        Retry(sleep=lambda _: None).call(flaky, POLICY)
    assert flaky.calls == 1
