"""Retry policies: exponential backoff with jitter, SQS visibility timeouts and ``Retry-After``.

The same :class:`RetryPolicy` objects drive the in-process retry helper (:mod:`resilience.retrying`)
and the queue-level backoff a consumer applies with ``ChangeMessageVisibility``.
"""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from resilience.errors import ConfigurationError

if TYPE_CHECKING:
    from resilience.clock import Random

SQS_MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200
"""``ChangeMessageVisibility`` accepts at most 12 hours, counted from when the message was received."""


class Jitter(StrEnum):
    """How a delay is randomised around the exponential ceiling ``min(cap, base * 2 ** (attempt - 1))``."""

    FULL = "full"
    """Uniform in ``[0, ceiling]``: the least contention (AWS Architecture Blog's recommendation)."""
    EQUAL = "equal"
    """Half the ceiling plus uniform in ``[0, ceiling / 2]``: never retries immediately."""
    DECORRELATED = "decorrelated"
    """Uniform in ``[base, 3 * previous delay]``, capped: grows from the last delay, not the attempt."""
    NONE = "none"
    """Exactly the ceiling (deterministic; for tests and fixed schedules)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    Parameters
    ----------
    base_seconds : float
        Delay ceiling before the first retry (default 0.2).
    cap_seconds : float
        Largest delay (default 5).
    max_attempts : int
        Attempts in all, the first included (default 3).
    jitter : Jitter
        Randomisation (default :attr:`Jitter.FULL`).

    Examples
    --------
    >>> RetryPolicy(base_seconds=1, cap_seconds=8, jitter=Jitter.NONE).delay(3)
    4.0
    """

    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    max_attempts: int = 3
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        if self.base_seconds <= 0 or self.cap_seconds < self.base_seconds:
            raise ConfigurationError("a retry policy needs 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 1:
            raise ConfigurationError("max_attempts must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay after failed attempt ``attempt`` (1-based): ``min(cap, base * 2**(attempt-1))``."""
        exponent = min(max(attempt - 1, 0), 64)  # bounded: 2**64 times any base is past any sane cap
        return min(self.cap_seconds, self.base_seconds * 2.0**exponent)

    def delay(self, attempt: int, *, previous: float | None = None, random: Random = _random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based).

        Parameters
        ----------
        attempt : int
            The attempt that just failed.
        previous : float | None
            The previous delay, for decorrelated jitter (``base_seconds`` when omitted).
        random : Callable[[], float]
            Source of uniform numbers in ``[0, 1)``; inject a fixed one in tests.

        Returns
        -------
        float
            The delay, in ``[0, cap_seconds]``.
        """
        ceiling = self.ceiling(attempt)
        match self.jitter:
            case Jitter.FULL:
                return random() * ceiling
            case Jitter.EQUAL:
                return ceiling / 2 + random() * ceiling / 2
            case Jitter.DECORRELATED:
                last = self.base_seconds if previous is None else max(previous, self.base_seconds)
                return min(self.cap_seconds, self.base_seconds + random() * (last * 3 - self.base_seconds))
            case Jitter.NONE:
                return ceiling
        raise ConfigurationError(f"unknown jitter {self.jitter!r}")  # pragma: no cover - the match is exhaustive

    def allows_another(self, attempt: int) -> bool:
        """Whether a retry may follow failed attempt ``attempt`` (1-based)."""
        return attempt < self.max_attempts


QUEUE_BACKOFF = RetryPolicy(base_seconds=5.0, cap_seconds=900.0, max_attempts=5, jitter=Jitter.FULL)
"""A policy for queue-level retries: 5 s doubling up to 15 minutes, full jitter."""


def visibility_timeout(
    receive_count: int,
    policy: RetryPolicy = QUEUE_BACKOFF,
    *,
    retry_after: float | None = None,
    seconds_since_received: float = 0.0,
    random: Random = _random.random,
) -> int:
    """The visibility timeout to set on an SQS message whose delivery just failed.

    Parameters
    ----------
    receive_count : int
        The message's ``ApproximateReceiveCount`` (1 on the first delivery): the failed attempt.
    policy : RetryPolicy
        Backoff policy (default :data:`QUEUE_BACKOFF`).
    retry_after : float | None
        Seconds the provider asked us to wait; the result is never shorter.
    seconds_since_received : float
        How long ago this receive happened: SQS caps visibility at 12 hours from the receive, so
        the result never exceeds what is left of that budget.
    random : Callable[[], float]
        Source of uniform numbers in ``[0, 1)``.

    Returns
    -------
    int
        Whole seconds in ``[1, 43200 - seconds_since_received]`` (at least 0 when the budget is spent).
    """
    attempt = max(receive_count, 1)
    previous = policy.ceiling(attempt - 1) if attempt > 1 else None
    delay = policy.delay(attempt, previous=previous, random=random)
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    budget = max(SQS_MAX_VISIBILITY_TIMEOUT_SECONDS - math.ceil(max(seconds_since_received, 0.0)), 0)
    return min(max(math.ceil(delay), 1), budget)


def parse_retry_after(value: str | float | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value: delay-seconds or an HTTP date.

    Parameters
    ----------
    value : str | float | None
        The header value (``"120"`` or ``"Wed, 21 Oct 2015 07:28:00 GMT"``), or a number of seconds.
    now : float
        The current time (epoch seconds), to turn a date into a delay.

    Returns
    -------
    float | None
        Seconds, never negative; ``None`` when the value is missing or unreadable.
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return max(float(value), 0.0) if math.isfinite(value) else None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)
