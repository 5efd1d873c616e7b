"""Admission: whether one call may go ahead, and what the half-open probes it let through settle.

CLOSED and DISABLED admit without a request; OPEN and FORCED_OPEN reject, saying when to retry; an
OPEN breaker whose wait is over begins half-open, and a HALF_OPEN one lets a call through only once
it claims a probe slot. A probe's outcome gives its slot back, reopens the breaker, or counts towards
closing it. Each write is conditional (see :mod:`~resilience.breaker.transitions` for the race each
condition prevents); a lost race hands back the current item, on which admission judges again.
Transitions go through the breaker, which makes and reports them.

Not thread-safe on its own: the breaker holds its lock around every call.
"""

from __future__ import annotations

import itertools
import uuid
from typing import TYPE_CHECKING

from resilience.breaker import transitions
from resilience.breaker.permit import CallOutcome, Denied, Permit, PermitKind
from resilience.breaker.state import BreakerState
from resilience.breaker.status import Reason, retry_after
from resilience.breaker.transitions import WriteResult
from resilience.errors import CircuitOpenError

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.breaker.permit import OutcomeRecorder
    from resilience.breaker.snapshot import Snapshot
    from resilience.breaker.state import BreakerRecord
    from resilience.config import BreakerConfig

    TransitionWrite = Callable[[BreakerRecord, transitions.Write, float, Reason], WriteResult]

ADMIT_ATTEMPTS = 3
"""How often one call is judged again on the newer item a lost race handed back before it is rejected."""


class Admission:
    """Hands out the permits of one breaker in one execution environment.

    Parameters
    ----------
    recorder : OutcomeRecorder
        Where the permits handed out report their outcome (the breaker).
    config : BreakerConfig
        ``half_open_permits``, ``probe_lease_seconds`` and ``success_threshold``.
    snapshot : Snapshot
        The breaker's cached item; it sends the probe-slot claims and adopts what the store answers.
    transition : Callable[[BreakerRecord, Write, float, Reason], WriteResult]
        Makes a transition write and reports it (the breaker's): begin half-open, reopen, close.
    on_rejected : Callable[[], None]
        Called for each call :meth:`allow` rejects (to count it).
    """

    def __init__(
        self,
        recorder: OutcomeRecorder,
        config: BreakerConfig,
        snapshot: Snapshot,
        transition: TransitionWrite,
        on_rejected: Callable[[], None],
    ) -> None:
        self._recorder = recorder
        self._config = config
        self._snapshot = snapshot
        self._transition = transition
        self._on_rejected = on_rejected
        self._environment = uuid.uuid4().hex[:12]
        self._sequence = itertools.count(1)

    def allow(self, record: BreakerRecord, now: float) -> Permit:
        """Admit one call on ``record`` (the current item), or reject it.

        Returns
        -------
        Permit
            What :meth:`admit` handed out.

        Raises
        ------
        CircuitOpenError
            :meth:`admit` rejected the call; it carries the state and the seconds until a retry may pass.
        """
        admitted = self.admit(record, now)
        if isinstance(admitted, Permit):
            return admitted
        self._on_rejected()
        record = self._snapshot.record
        raise CircuitOpenError(self._recorder.name, str(record.state), retry_after(record, self._config, now))

    def admit(self, record: BreakerRecord, now: float) -> Permit | Denied:
        """Admit one call on ``record`` (the current item).

        Returns
        -------
        Permit | Denied
            A permit (NORMAL, PROBE, or UNTRACKED while DISABLED; NORMAL while the store is unreachable),
            or :attr:`Denied.REJECTED`. Never :attr:`Denied.MOVED_ON`: a lost race is judged again.
        """
        for _ in range(ADMIT_ATTEMPTS):  # a lost race hands back the current item: judge again on it
            admitted: Permit | Denied
            match record.state:
                case BreakerState.DISABLED:
                    return Permit(self._recorder, PermitKind.UNTRACKED, record.version, now)
                case BreakerState.CLOSED:
                    return Permit(self._recorder, PermitKind.NORMAL, record.version, now)
                case BreakerState.FORCED_OPEN:
                    return Denied.REJECTED
                case BreakerState.OPEN:
                    if record.open_until is not None and now < record.open_until:
                        return Denied.REJECTED
                    admitted = self.begin_half_open(record, now)
                case BreakerState.HALF_OPEN:
                    admitted = self.claim_slot(record, now)
            if admitted is not Denied.MOVED_ON:
                return admitted
            record = self._snapshot.record
        return Denied.REJECTED

    def begin_half_open(self, record: BreakerRecord, now: float) -> Permit | Denied:
        """OPEN -> HALF_OPEN, holding probe slot 1: a PROBE permit, or :attr:`Denied.MOVED_ON` when another won."""
        lease_id = self._new_lease_id()
        write = transitions.begin_half_open(record, self._snapshot.attributes, now, self._config, lease_id=lease_id)
        match self._transition(record, write, now, Reason.WAIT_ELAPSED):
            case WriteResult.APPLIED:
                return Permit(self._recorder, PermitKind.PROBE, record.version + 1, now, slot=1, lease_id=lease_id)
            case WriteResult.STORE_DOWN:  # fail open
                return Permit(self._recorder, PermitKind.NORMAL, record.version, now)
        return Denied.MOVED_ON

    def claim_slot(self, record: BreakerRecord, now: float) -> Permit | Denied:
        """Claim a free probe slot of the half-open period at ``record.version``.

        Returns
        -------
        Permit | Denied
            A PROBE permit; :attr:`Denied.REJECTED` when every slot is taken; :attr:`Denied.MOVED_ON`
            when a lost race showed the period is over.
        """
        tried: set[int] = set()
        while slots := [s for s in record.claimable_slots(now, self._config.half_open_permits) if s not in tried]:
            tried.add(slots[0])
            lease_id = self._new_lease_id()
            write = transitions.claim_probe_slot(record.version, slots[0], lease_id, now, self._config)
            match self._snapshot.send(write, now, "claim_probe"):
                case WriteResult.APPLIED:
                    return Permit(
                        self._recorder, PermitKind.PROBE, record.version, now, slot=slots[0], lease_id=lease_id
                    )
                case WriteResult.STORE_DOWN:  # fail open
                    return Permit(self._recorder, PermitKind.NORMAL, record.version, now)
            if self._snapshot.record.version != record.version:
                return Denied.MOVED_ON
            record = self._snapshot.record  # same period, another slot taken meanwhile: try the next free one
        return Denied.REJECTED

    def settle_probe(self, permit: Permit, outcome: CallOutcome, now: float) -> None:
        """Apply a probe's outcome: give its slot back, reopen the breaker, or count it and close once enough did.

        Parameters
        ----------
        permit : Permit
            The PROBE permit :meth:`admit` handed out, with its slot and lease.
        outcome : CallOutcome
            IGNORED frees the slot; FAILURE reopens the half-open period it was admitted in (a probe of
            an earlier period decides nothing); SUCCESS uses the slot up, and the ``success_threshold``-th
            success closes the breaker.
        now : float
            The time.
        """
        assert permit.slot is not None and permit.lease_id is not None  # probes always carry both
        record = self._snapshot.record
        match outcome:
            case CallOutcome.IGNORED:
                self._snapshot.send(
                    transitions.release_probe(permit.version, permit.slot, permit.lease_id), now, "probe_release"
                )
            case CallOutcome.FAILURE if record.version == permit.version:  # else its period is over: it decides nothing
                write = transitions.probe_failure(record, self._snapshot.attributes, now, self._config)
                self._transition(record, write, now, Reason.PROBE_FAILED)
            case CallOutcome.SUCCESS:
                write = transitions.probe_success(permit.version, permit.slot, permit.lease_id)
                if self._snapshot.send(write, now, "probe_success") is not WriteResult.APPLIED:
                    return
                record = self._snapshot.record
                if record.state is BreakerState.HALF_OPEN and record.probe_successes >= self._config.success_threshold:
                    write = transitions.close_breaker(record, self._snapshot.attributes, now, self._config)
                    self._transition(record, write, now, Reason.PROBES_SUCCEEDED)

    def _new_lease_id(self) -> str:
        return f"{self._environment}-{next(self._sequence)}"
