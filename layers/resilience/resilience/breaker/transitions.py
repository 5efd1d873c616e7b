"""Every write a breaker makes, as pure functions: the attribute changes and the condition that guards them.

Each function takes what the breaker last saw (its cached :class:`~resilience.breaker.state.BreakerRecord`
and the raw item it was parsed from) and returns a :class:`Write`; none touches a store, so each can be
tested alone. Transitions and probe permits are conditional writes on the item's ``version``, each
commented with the race it prevents; a probe's outcome and a transition are written when they happen,
at most ``half_open_permits`` probes per half-open period, so never one write per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from resilience.breaker.state import (
    CHANGED_AT,
    EXPIRES_AT,
    LEASE_DONE,
    NAME,
    OPEN_COUNT,
    OPEN_UNTIL,
    OPENED_AT,
    PROBE_SUCCESSES,
    STATE,
    TRANSITION_REASON,
    VERSION,
    WINDOW_START,
    BreakerState,
    bucket_attributes,
    lease_attribute,
    lease_until_attribute,
)
from resilience.breaker.status import Reason
from resilience.breaker.store import AtLeast, AtMost, Equals, ItemUpdate, SlotClaimable, StateIs, VersionIs

if TYPE_CHECKING:
    from collections.abc import Mapping

    from resilience.breaker.state import Attributes, AttributeValue, BreakerRecord, WindowCounts
    from resilience.breaker.store import Condition
    from resilience.config import BreakerConfig

ADMIN_STATES = frozenset({BreakerState.FORCED_OPEN, BreakerState.DISABLED})
"""States only an operator sets and clears: their item never expires."""


@dataclass(frozen=True)
class Write:
    """One write: apply ``update`` if every predicate of ``condition`` holds (no condition: always)."""

    update: ItemUpdate
    condition: Condition = ()


class WriteResult(StrEnum):
    """How a conditional write ended."""

    APPLIED = "applied"
    """Every predicate held; the item the store returned is adopted."""
    RACE_LOST = "race_lost"
    """A predicate failed (another environment or an operator got there first); the current item is adopted."""
    STORE_DOWN = "store_down"
    """The store could not be reached; the breaker fails open."""


# ---------------------------------------------------------------------------- the pieces of an item
def counter_adds(buckets: Mapping[int, WindowCounts]) -> dict[str, int]:
    """The ``ADD`` of window buckets: calls always, failures and slow calls when there are any."""
    adds: dict[str, int] = {}
    for start, counts in buckets.items():
        calls, failures, slow = bucket_attributes(start)
        adds[calls] = counts.calls
        if counts.failures:
            adds[failures] = counts.failures
        if counts.slow:
            adds[slow] = counts.slow
    return adds


def _stale_attributes(
    record: BreakerRecord, attributes: Attributes, now: float, keep: Mapping[str, int], config: BreakerConfig
) -> frozenset[str]:
    """The counters of buckets that no longer count, except those the same write adds to."""
    stale = record.stale_buckets(now, config.window_seconds, config.bucket_seconds)
    return frozenset(a for b in stale for a in bucket_attributes(b) if a in attributes and a not in keep)


def _half_open_attributes(attributes: Attributes, config: BreakerConfig) -> frozenset[str]:
    names = {PROBE_SUCCESSES}
    for slot in range(1, config.half_open_permits + 1):
        names.update((lease_attribute(slot), lease_until_attribute(slot)))
    names.update(a for a in attributes if a.startswith("lease"))  # slots of a larger past config
    return frozenset(names)


def _bucket_attributes(record: BreakerRecord) -> frozenset[str]:
    return frozenset(a for b in record.buckets for a in bucket_attributes(b))


def _state_fields(
    state: BreakerState, record: BreakerRecord, now: float, reason: Reason, config: BreakerConfig
) -> dict[str, AttributeValue]:
    fields: dict[str, AttributeValue] = {
        NAME: record.name,
        STATE: str(state),
        VERSION: record.version + 1,
        CHANGED_AT: now,
        TRANSITION_REASON: str(reason),
    }
    if state not in ADMIN_STATES:
        fields[EXPIRES_AT] = int(now + config.item_ttl_seconds)
    return fields


def _open_fields(record: BreakerRecord, now: float, reason: Reason, config: BreakerConfig) -> dict[str, AttributeValue]:
    """OPEN, for a wait that grows with each consecutive open."""
    open_count = record.open_count + 1
    return {
        **_state_fields(BreakerState.OPEN, record, now, reason, config),
        OPENED_AT: now,
        OPEN_UNTIL: now + config.wait_for(open_count),
        OPEN_COUNT: open_count,
    }


def _closed_update(
    record: BreakerRecord, attributes: Attributes, now: float, reason: Reason, config: BreakerConfig
) -> ItemUpdate:
    """CLOSED with a fresh window: the half-open bookkeeping and every bucket go."""
    return ItemUpdate(
        set={**_state_fields(BreakerState.CLOSED, record, now, reason, config), WINDOW_START: now, OPEN_COUNT: 0},
        remove=_half_open_attributes(attributes, config) | {OPENED_AT, OPEN_UNTIL} | _bucket_attributes(record),
    )


# ---------------------------------------------------------------------------- the window
def publish_window(
    record: BreakerRecord,
    attributes: Attributes,
    now: float,
    config: BreakerConfig,
    *,
    batch: Mapping[int, WindowCounts],
) -> Write:
    """Add ``batch`` (unwritten window buckets) to the fleet's counters, dropping the stale ones."""
    adds = counter_adds(batch)
    fields: dict[str, AttributeValue] = {NAME: record.name}
    if record.state not in ADMIN_STATES:
        fields[EXPIRES_AT] = int(now + config.item_ttl_seconds)
    # No condition: ADD is atomic and commutative, so concurrent flushes from every environment
    # all land. Counters that reach a bucket older than the last close's window_start are
    # ignored by every reader, so a flush racing a transition cannot leak into the new period.
    return Write(ItemUpdate(set=fields, add=adds, remove=_stale_attributes(record, attributes, now, adds, config)))


# ---------------------------------------------------------------------------- automatic transitions
def open_breaker(
    record: BreakerRecord,
    attributes: Attributes,
    now: float,
    config: BreakerConfig,
    *,
    reason: Reason,
    batch: Mapping[int, WindowCounts],
) -> Write:
    """CLOSED -> OPEN because the window tripped (``reason``), carrying the unwritten ``batch`` with it."""
    adds = counter_adds(batch)
    update = ItemUpdate(
        set=_open_fields(record, now, reason, config),
        add=adds,  # the evidence goes in with the transition, so the fleet sees why
        remove=(_half_open_attributes(attributes, config) | _stale_attributes(record, attributes, now, adds, config))
        - set(adds),
    )
    # Race: several environments judging the same failures open at once, and an environment
    # acting on a stale cached CLOSED (the breaker has since opened, closed again, or been
    # forced open or disabled by an operator). The version and state make the first opener
    # win and every stale one fail, so one outage is one transition, one log line, one wait.
    return Write(update, (VersionIs(record.version), StateIs(BreakerState.CLOSED)))


def begin_half_open(
    record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig, *, lease_id: str
) -> Write:
    """OPEN -> HALF_OPEN once the wait is over, taking probe slot 1 for ``lease_id``."""
    update = ItemUpdate(
        set={
            **_state_fields(BreakerState.HALF_OPEN, record, now, Reason.WAIT_ELAPSED, config),
            PROBE_SUCCESSES: 0,
            lease_attribute(1): lease_id,
            lease_until_attribute(1): now + config.probe_lease_seconds,
        },
        remove=_half_open_attributes(attributes, config)
        - {PROBE_SUCCESSES, lease_attribute(1), lease_until_attribute(1)},
    )
    # Race: when the wait ends every environment wants to probe at once. Only the first
    # write that still finds this OPEN version whose wait is over starts the half-open period;
    # the others fail, read the new version and compete for the remaining slots. Without it,
    # each would start its own period, bump the version, and invalidate the others' leases.
    return Write(update, (VersionIs(record.version), StateIs(BreakerState.OPEN), AtMost(OPEN_UNTIL, now)))


def claim_probe_slot(version: int, slot: int, lease_id: str, now: float, config: BreakerConfig) -> Write:
    """Take probe ``slot`` (free, or held by an expired lease) of the half-open period at ``version``."""
    update = ItemUpdate(
        set={lease_attribute(slot): lease_id, lease_until_attribute(slot): now + config.probe_lease_seconds}
    )
    # Race: environments that saw the same free (or expired) slot all try to take it; the
    # condition lets exactly one win, so at most half_open_permits probes run at once
    # across the fleet. The version pins the grant to the half-open period it was seen in.
    return Write(update, (VersionIs(version), StateIs(BreakerState.HALF_OPEN), SlotClaimable(slot, now)))


def probe_success(version: int, slot: int, lease_id: str) -> Write:
    """Count the success of the probe holding ``slot`` under ``lease_id``, and use the slot up."""
    update = ItemUpdate(set={lease_attribute(slot): LEASE_DONE}, add={PROBE_SUCCESSES: 1})
    # Race: only the live holder of this slot in this half-open period may count a success. A
    # probe whose lease expired and was re-granted, or that finished after the period ended
    # (closed, or reopened by another probe's failure), must not count twice nor towards the
    # next period. The slot stays used ("done"), so a period runs at most half_open_permits probes.
    return Write(update, (VersionIs(version), StateIs(BreakerState.HALF_OPEN), Equals(lease_attribute(slot), lease_id)))


def close_breaker(record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig) -> Write:
    """HALF_OPEN -> CLOSED once ``success_threshold`` probes succeeded, with a fresh window."""
    update = _closed_update(record, attributes, now, Reason.PROBES_SUCCEEDED, config)
    # Race: the probes that reach success_threshold together all try to close; the first wins,
    # the rest fail on the version. The success count guard stops a close on a count that a
    # concurrent reopen has already discarded.
    return Write(
        update,
        (
            VersionIs(record.version),
            StateIs(BreakerState.HALF_OPEN),
            AtLeast(PROBE_SUCCESSES, config.success_threshold),
        ),
    )


def probe_failure(record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig) -> Write:
    """HALF_OPEN -> OPEN because a probe of this period (``record.version``) failed; the wait grows."""
    update = ItemUpdate(
        set=_open_fields(record, now, Reason.PROBE_FAILED, config), remove=_half_open_attributes(attributes, config)
    )
    # Race: a failing probe and the success that closes the breaker race each other; the
    # version lets exactly one land, so a close is never overwritten by a late reopen (nor the
    # reverse), and a probe from an earlier period cannot reopen a breaker that moved on.
    return Write(update, (VersionIs(record.version), StateIs(BreakerState.HALF_OPEN)))


def release_probe(version: int, slot: int, lease_id: str) -> Write:
    """Give probe ``slot`` back: its call said nothing about the dependency (an ignored outcome)."""
    update = ItemUpdate(remove=frozenset({lease_attribute(slot), lease_until_attribute(slot)}))
    # Race: this lease may have expired and been re-granted to another probe; freeing the
    # slot then would let a (half_open_permits + 1)-th probe run. Only the holder frees it.
    return Write(update, (VersionIs(version), Equals(lease_attribute(slot), lease_id)))


# ---------------------------------------------------------------------------- operator actions
def _admin(record: BreakerRecord, update: ItemUpdate) -> Write:
    # Race: an automatic transition between the operator's read and write. The version makes the
    # admin write fail instead of silently overwriting it; the breaker re-reads and applies the
    # operator's intent to the newest state, so no version is skipped.
    return Write(update, (VersionIs(record.version),))


def reset(record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig) -> Write:
    """Any state -> CLOSED, with a fresh window."""
    return _admin(record, _closed_update(record, attributes, now, Reason.RESET, config))


def force_open(record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig) -> Write:
    """Any state -> FORCED_OPEN (every call rejected) until reset; the item no longer expires."""
    update = ItemUpdate(
        set={**_state_fields(BreakerState.FORCED_OPEN, record, now, Reason.FORCE_OPEN, config), OPENED_AT: now},
        remove=_half_open_attributes(attributes, config) | {OPEN_UNTIL, EXPIRES_AT},
    )
    return _admin(record, update)


def disable(record: BreakerRecord, attributes: Attributes, now: float, config: BreakerConfig) -> Write:
    """Any state -> DISABLED (every call through, nothing recorded) until reset; the item no longer expires."""
    update = ItemUpdate(
        set=_state_fields(BreakerState.DISABLED, record, now, Reason.DISABLE, config),
        remove=_half_open_attributes(attributes, config) | {OPENED_AT, OPEN_UNTIL, EXPIRES_AT},
    )
    return _admin(record, update)
