"""The resilience library's exceptions: one base class and a subclass per failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping


class ResilienceError(Exception):
    """Base class of every exception this library raises."""


class ConfigurationError(ResilienceError, ValueError):
    """A breaker, retry policy or settings value is invalid."""


class CircuitOpenError(ResilienceError):
    """The breaker rejected a call without running it.

    Parameters
    ----------
    breaker : str
        The breaker's name.
    state : str
        The state that caused the rejection (``OPEN``, ``HALF_OPEN`` with every probe permit
        taken, or ``FORCED_OPEN``).
    retry_after : float | None
        Seconds until the breaker may permit a call again, when known.
    """

    def __init__(self, breaker: str, state: str, retry_after: float | None = None) -> None:
        super().__init__(f"circuit breaker {breaker!r} is {state}; the call was not made")
        self.breaker = breaker
        self.state = state
        self.retry_after = retry_after


class PermitAlreadyRecordedError(ResilienceError):
    """A permit's outcome was recorded twice; each permit records exactly one outcome."""


class StoreError(ResilienceError):
    """Base class of breaker store failures."""


class StoreUnavailableError(StoreError):
    """The breaker store could not be reached or refused the request (throttling, network, permissions)."""


class ConditionFailedError(StoreError):
    """A conditional write lost a race: the item no longer matched what the writer had seen.

    Parameters
    ----------
    current : Mapping[str, str | int | float] | None
        The item's attributes as they were when the condition failed (``None`` when there is no item).
    """

    def __init__(self, current: Mapping[str, str | int | float] | None) -> None:
        super().__init__("conditional write failed: the breaker item changed since it was read")
        self.current = current


class TransientError(ResilienceError):
    """Raised by adapters for a failure worth retrying later (provider outage, throttling, timeout).

    Parameters
    ----------
    message : str
        What failed.
    status_code : int | None
        The HTTP status the provider answered with, if any.
    retry_after : float | None
        Seconds the provider asked us to wait (its ``Retry-After``), if any.
    """

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class PermanentError(ResilienceError):
    """Raised by adapters for a failure that retrying cannot fix (invalid address, rejected content).

    Parameters
    ----------
    message : str
        What failed.
    status_code : int | None
        The HTTP status the provider answered with, if any.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
