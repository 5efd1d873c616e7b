"""In-process retries of idempotent calls, sharing :class:`~resilience.backoff.RetryPolicy` objects.

Two forms, one behaviour::

    result = retry.call(lambda: client.get_item(...), RetryPolicy(max_attempts=3))

    @retry(RetryPolicy(max_attempts=3))
    def fetch() -> dict: ...

Only TRANSIENT errors (per the classifier) are retried; the last error is re-raised unchanged. A
``Retry-After`` longer than the policy's cap ends the retries at once: short in-process retries are
the wrong tool for it, and the queue-level backoff will honour it.
"""

from __future__ import annotations

import functools
import random as _random
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from resilience.backoff import RetryPolicy
from resilience.classification import ErrorClass, default_classifier, retry_after_of
from resilience.clock import system_clock, system_sleep

if TYPE_CHECKING:
    from resilience.clock import Clock, Random, Sleep

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_POLICY = RetryPolicy()
"""3 attempts, 0.2 s doubling up to 5 s, full jitter."""

OnRetry = Callable[[int, BaseException, float], None]
"""Called before each retry with the failed attempt number, its error and the chosen delay."""


class Retry:
    """The retry helper: call :meth:`call` directly, or use the instance as a decorator factory.

    Parameters
    ----------
    sleep : Callable[[float], None]
        How to wait (``time.sleep``); tests inject a recorder.
    clock : Callable[[], float]
        Epoch seconds, for ``Retry-After`` dates.
    random : Callable[[], float]
        Jitter source.
    """

    def __init__(
        self, *, sleep: Sleep = system_sleep, clock: Clock = system_clock, random: Random = _random.random
    ) -> None:
        self.sleep = sleep
        self.clock = clock
        self.random = random

    def call(
        self,
        fn: Callable[[], T],
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        classifier: Callable[[BaseException], ErrorClass] = default_classifier,
        sleep: Sleep | None = None,
        on_retry: OnRetry | None = None,
    ) -> T:
        """Call ``fn()`` until it succeeds, fails for good, or the attempts run out.

        Parameters
        ----------
        fn : Callable[[], T]
            An idempotent call without arguments (use a lambda or ``functools.partial``).
        policy : RetryPolicy
            Attempts and delays.
        classifier : Callable[[BaseException], ErrorClass]
            Which errors are worth a retry (TRANSIENT ones).
        sleep : Callable[[float], None] | None
            Overrides this helper's sleep for one call.
        on_retry : Callable[[int, BaseException, float], None] | None
            Observer called before each retry.

        Returns
        -------
        T
            What ``fn`` returned.

        Raises
        ------
        Exception
            The last error, when it is not transient or no attempt is left.
        """
        wait = sleep or self.sleep
        previous: float | None = None
        attempt = 1
        while True:
            try:
                return fn()
            except Exception as exc:
                if classifier(exc) is not ErrorClass.TRANSIENT or not policy.allows_another(attempt):
                    raise
                delay = policy.delay(attempt, previous=previous, random=self.random)
                asked = retry_after_of(exc, self.clock())
                if asked is not None:
                    if asked > policy.cap_seconds:
                        raise
                    delay = max(delay, asked)
                if on_retry is not None:
                    on_retry(attempt, exc, delay)
                wait(delay)
                previous = delay
                attempt += 1

    def __call__(
        self,
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        classifier: Callable[[BaseException], ErrorClass] = default_classifier,
        sleep: Sleep | None = None,
        on_retry: OnRetry | None = None,
    ) -> Callable[[Callable[P, T]], Callable[P, T]]:
        """Decorator factory: ``@retry(policy)`` retries every call of the decorated function.

        Parameters
        ----------
        policy, classifier, sleep, on_retry
            As for :meth:`call`.

        Returns
        -------
        Callable
            The decorator.
        """

        def decorator(fn: Callable[P, T]) -> Callable[P, T]:
            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return self.call(
                    functools.partial(fn, *args, **kwargs),
                    policy,
                    classifier=classifier,
                    sleep=sleep,
                    on_retry=on_retry,
                )

            return wrapper

        return decorator


retry = Retry()
"""The default helper (real sleep and clock): ``retry.call(fn, policy)`` or ``@retry(policy)``."""
