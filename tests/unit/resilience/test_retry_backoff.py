"""Backoff policies, jitter variants, SQS visibility timeouts and Retry-After parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from resilience import ConfigurationError, Jitter, RetryPolicy, parse_retry_after, visibility_timeout
from resilience.backoff import SQS_MAX_VISIBILITY_TIMEOUT_SECONDS

NOW = 1_700_000_000.0


def test_the_ceiling_doubles_from_base_up_to_the_cap() -> None:
    # Given base 1 s and cap 10 s
    policy = RetryPolicy(base_seconds=1, cap_seconds=10, jitter=Jitter.NONE)

    # When the delays after attempts 1..6 are computed
    delays = [policy.delay(attempt) for attempt in range(1, 7)]

    # Then they double and stop at the cap
    assert delays == [1, 2, 4, 8, 10, 10]


@pytest.mark.parametrize(
    ("jitter", "draw", "expected"),
    [
        (Jitter.FULL, 0.0, 0.0),
        (Jitter.FULL, 0.5, 4.0),
        (Jitter.EQUAL, 0.0, 4.0),
        (Jitter.EQUAL, 0.999, 7.996),
    ],
)
def test_full_and_equal_jitter_stay_inside_their_ranges(jitter: Jitter, draw: float, expected: float) -> None:
    # Given a policy whose 4th-attempt ceiling is 8 s
    policy = RetryPolicy(base_seconds=1, cap_seconds=60, jitter=jitter)

    # When the random draw is fixed
    delay = policy.delay(4, random=lambda: draw)

    # Then full jitter spans [0, 8] and equal jitter [4, 8]
    assert delay == pytest.approx(expected)


def test_decorrelated_jitter_grows_from_the_previous_delay_and_respects_the_cap() -> None:
    # Given decorrelated jitter with base 1 and cap 20
    policy = RetryPolicy(base_seconds=1, cap_seconds=20, jitter=Jitter.DECORRELATED)

    # When the draw is at its top, starting from no previous delay and from a 5 s one
    first = policy.delay(1, random=lambda: 0.999999)
    after_five = policy.delay(2, previous=5.0, random=lambda: 0.999999)
    after_ten = policy.delay(3, previous=10.0, random=lambda: 0.999999)

    # Then the delay tends to 3x the previous one, never above the cap
    assert first == pytest.approx(3.0, rel=1e-5)
    assert after_five == pytest.approx(15.0, rel=1e-5)
    assert after_ten == 20


def test_an_invalid_policy_is_refused() -> None:
    # Given / When a cap below the base, and zero attempts
    # Then both are configuration errors
    with pytest.raises(ConfigurationError):
        RetryPolicy(base_seconds=5, cap_seconds=1)
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)


def test_visibility_timeout_follows_the_receive_count() -> None:
    # Given a deterministic policy: base 10 s, cap 900 s
    policy = RetryPolicy(base_seconds=10, cap_seconds=900, max_attempts=10, jitter=Jitter.NONE)

    # When messages fail on their 1st..8th receive
    timeouts = [visibility_timeout(count, policy) for count in range(1, 9)]

    # Then the timeout doubles per receive up to the cap
    assert timeouts == [10, 20, 40, 80, 160, 320, 640, 900]


def test_visibility_timeout_honours_retry_after_and_the_12_hour_rule() -> None:
    # Given a provider asking for 2 days, on a message received 100 s ago
    policy = RetryPolicy(base_seconds=10, cap_seconds=900, jitter=Jitter.NONE)

    # When the timeout is computed, and again with a short Retry-After
    capped = visibility_timeout(1, policy, retry_after=2 * 86_400, seconds_since_received=100)
    honoured = visibility_timeout(1, policy, retry_after=95.2)

    # Then SQS's 12 hours from the receive bound it, and a longer Retry-After wins over the backoff
    assert capped == SQS_MAX_VISIBILITY_TIMEOUT_SECONDS - 100
    assert honoured == 96


def test_visibility_timeout_with_full_jitter_is_at_least_one_second() -> None:
    # Given full jitter drawing zero
    # When the timeout is computed
    timeout = visibility_timeout(3, random=lambda: 0.0)

    # Then the message still waits a second rather than coming straight back
    assert timeout == 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        (3.5, 3.5),
        ("-4", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, tz=UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, tz=UTC), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(value: str | float | None, expected: float | None) -> None:
    # Given a Retry-After value
    # When it is parsed at NOW
    parsed = parse_retry_after(value, NOW)

    # Then seconds and dates become a non-negative delay, and garbage becomes None
    assert parsed == (pytest.approx(expected) if expected is not None else None)
