"""Permission for one call, and the interface through which it reports the call's outcome.

A :class:`Permit` knows nothing of windows or transitions: it classifies the outcome, makes sure it
is recorded once, and hands it to the :class:`OutcomeRecorder` that issued it (the breaker).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from resilience.classification import ErrorClass
from resilience.errors import PermitAlreadyRecordedError

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType


class PermitKind(StrEnum):
    """What a permit lets its holder do."""

    NORMAL = "normal"
    """A call in CLOSED (or while failing open); its outcome feeds the window."""
    PROBE = "probe"
    """A half-open probe holding one of the fleet's ``half_open_permits`` leases."""
    UNTRACKED = "untracked"
    """A call through a DISABLED breaker; its outcome is not recorded."""


class CallOutcome(StrEnum):
    """What one permitted call says about the dependency."""

    SUCCESS = "success"
    """It worked: counts as a call (slow or not)."""
    FAILURE = "failure"
    """A TRANSIENT error: counts as a failed call."""
    IGNORED = "ignored"
    """A PERMANENT or IGNORED error: counts neither way, and gives a probe lease back."""


class Denied(StrEnum):
    """Why an attempt to admit a call handed out no permit."""

    REJECTED = "rejected"
    """OPEN before its wait ends, FORCED_OPEN, or HALF_OPEN with every probe slot taken."""
    MOVED_ON = "moved_on"
    """A lost race showed a newer item: admit again on it."""


class OutcomeRecorder(Protocol):
    """Where a permit reports its call's outcome: the breaker that issued it."""

    @property
    def name(self) -> str:
        """The breaker's name."""

    @property
    def classifier(self) -> Callable[[BaseException], ErrorClass]:
        """Decides which exceptions count as failures."""

    def record_outcome(self, permit: Permit, outcome: CallOutcome, duration: float | None) -> None:
        """Apply the outcome of the call ``permit`` allowed (``duration`` ``None``: measure it from the permit)."""


class Permit:
    """Permission for one call, returned by :meth:`CircuitBreaker.allow`; record its outcome once.

    Use it directly (batch senders)::

        permit = breaker.allow()
        try:
            provider.send(message)
        except Exception as exc:
            permit.record_failure(exc)
        else:
            permit.record_success()

    or as a context manager, which records success, or the exception, on exit.
    """

    def __init__(
        self,
        breaker: OutcomeRecorder,
        kind: PermitKind,
        version: int,
        started_at: float,
        *,
        slot: int | None = None,
        lease_id: str | None = None,
    ) -> None:
        self.breaker = breaker
        self.kind = kind
        self.version = version
        self.started_at = started_at
        self.slot = slot
        self.lease_id = lease_id
        self._recorded = False

    @property
    def is_probe(self) -> bool:
        """Whether this call is a half-open probe."""
        return self.kind is PermitKind.PROBE

    @property
    def recorded(self) -> bool:
        """Whether an outcome was recorded already."""
        return self._recorded

    def _claim(self) -> None:
        if self._recorded:
            raise PermitAlreadyRecordedError(f"a permit of breaker {self.breaker.name!r} was already recorded")
        self._recorded = True

    def record_success(self, duration: float | None = None) -> None:
        """Record that the call succeeded.

        Parameters
        ----------
        duration : float | None
            How long the call took, in seconds; measured from :meth:`CircuitBreaker.allow` when omitted.
            Calls of at least ``slow_call_seconds`` count as slow.
        """
        self._claim()
        self.breaker.record_outcome(self, CallOutcome.SUCCESS, duration)

    def record_failure(self, error: BaseException | None = None, duration: float | None = None) -> ErrorClass:
        """Record that the call failed.

        Parameters
        ----------
        error : BaseException | None
            The exception, classified with the breaker's classifier: only TRANSIENT errors count
            as failures; PERMANENT and IGNORED ones (an invalid address, a 4xx) count neither way
            and give a probe permit back. ``None`` counts as a failure.
        duration : float | None
            How long the call took, in seconds (see :meth:`record_success`).

        Returns
        -------
        ErrorClass
            How the error was classified (TRANSIENT when ``error`` is ``None``).
        """
        self._claim()
        verdict = ErrorClass.TRANSIENT if error is None else self.breaker.classifier(error)
        outcome = CallOutcome.FAILURE if verdict is ErrorClass.TRANSIENT else CallOutcome.IGNORED
        self.breaker.record_outcome(self, outcome, duration)
        return verdict

    def record_ignored(self) -> None:
        """Record an outcome that says nothing about the dependency: counts neither way, frees a probe permit."""
        self._claim()
        self.breaker.record_outcome(self, CallOutcome.IGNORED, None)

    def __enter__(self) -> Permit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._recorded:
            return
        if exc is None:
            self.record_success()
        else:
            self.record_failure(exc)
