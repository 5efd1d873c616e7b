"""The rules a delivery receipt follows, and the write that applies one: pure, no I/O.

- `delivered` applies only to a `sent` record.
- `failed` applies to a `sent` or a `delivered` record: a bounce or a complaint that comes after a
  delivery report is more authoritative than it (the mailbox accepted the mail, then bounced it or
  its owner reported it as spam).
- Nothing else ever changes a record. A late `delivered` never undoes a bounce, a duplicate report
  finds its status already reached and changes nothing, and a `failed` or `dead_lettered` record stays
  as it is.
- A report about a record that is still `queued` or `deferred` arrived before the sender recorded
  its own `sent` (the provider's callback outran the status write): it must be tried again later,
  not dropped.

`ReceiptStore` renders `change` to one conditional `UpdateItem`; tests apply the same objects to a
dict with `resilience.conditional.apply_update` and `holds_all`, so both decide alike.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from notifications.clock import iso
from notifications.models import PENDING_STATUSES, HistoryEntry, Status
from notifications.ports import bounded_history
from notifications.receipts.events import ReceiptOutcome
from notifications.records import HISTORY, STATUS, UPDATED_AT, VERSION
from resilience.conditional import Equals, In, ItemUpdate

if TYPE_CHECKING:
    from notifications.models import NotificationRecord
    from notifications.receipts.events import ReceiptEvent
    from resilience.conditional import Condition, Value


class Verdict(StrEnum):
    """What a receipt does to a record in a given status."""

    APPLY = "apply"  # move the record to the receipt's status
    IGNORE = "ignore"  # already there or past it, or the receipt changes nothing: drop the report
    NOT_YET = "not_yet"  # the record is still pending: keep the report and try again later


class ReceiptResult(StrEnum):
    """What applying one receipt did."""

    APPLIED = "applied"
    IGNORED = "ignored"  # a duplicate, a report overtaken by a more authoritative one, or no status change
    NOT_YET = "not_yet"  # the record is still queued or deferred: the caller retries later
    UNKNOWN = "unknown"  # no such record (never Herald's, or expired)


TARGET_STATUS: dict[ReceiptOutcome, Status] = {
    ReceiptOutcome.DELIVERED: Status.DELIVERED,
    ReceiptOutcome.FAILED: Status.FAILED,
}

APPLIES_FROM: dict[ReceiptOutcome, frozenset[Status]] = {
    ReceiptOutcome.DELIVERED: frozenset({Status.SENT}),
    ReceiptOutcome.FAILED: frozenset({Status.SENT, Status.DELIVERED}),
}


def judge(current: Status, outcome: ReceiptOutcome) -> Verdict:
    """What a receipt with `outcome` does to a record whose status is `current`."""
    if outcome is ReceiptOutcome.NOTHING:
        return Verdict.IGNORE
    if current in APPLIES_FROM[outcome]:
        return Verdict.APPLY
    if current in PENDING_STATUSES:
        return Verdict.NOT_YET
    return Verdict.IGNORE


def change(record: NotificationRecord, event: ReceiptEvent, *, now: float) -> tuple[ItemUpdate, Condition]:
    """The write that applies `event` to `record` (which `judge` allowed), and its condition.

    The new status, `updated_at`, `reason` (and `error` for a failure), the bounded history with one new
    entry, and `version` + 1. Only the receipt's plain words are written: no address, no provider text.

    Raises
    ------
    ValueError
        `judge` does not allow the receipt on this record.
    """
    if judge(record.status, event.outcome) is not Verdict.APPLY:
        raise ValueError(f"a {event.outcome} receipt does not apply to a {record.status} record")
    status = TARGET_STATUS[event.outcome]
    entry = HistoryEntry(status=status, at=iso(now), detail=f"{event.detail} at {iso(event.occurred_at)}")
    history = bounded_history([*record.history, entry])
    fields: dict[str, Value] = {
        STATUS: status.value,
        UPDATED_AT: iso(now),
        HISTORY: [item.model_dump(mode="json", exclude_none=True) for item in history],
    }
    if status is Status.FAILED:
        fields["error"] = event.detail
        fields["reason"] = f"failed after the provider accepted it: {event.detail}"
    else:
        fields["reason"] = f"delivered: {event.detail}"
    # Races prevented: two receipts for one notification applied at once (a delivery report and a
    # bounce from two invocations), each rewriting the history from its own read, the later write
    # losing the earlier one's entry or moving the status backwards. Only the write made from the
    # version it read lands; the other re-reads and judges again. The status condition states the
    # rule itself, so no write ever lands on a record outside the statuses the receipt applies from.
    condition: Condition = (
        Equals(VERSION, record.version),
        In(STATUS, tuple(sorted(allowed.value for allowed in APPLIES_FROM[event.outcome]))),
    )
    return ItemUpdate(set=fields, add={VERSION: 1}), condition


def result_of(verdict: Verdict) -> ReceiptResult:
    """The result of a receipt that was not applied (`IGNORE` or `NOT_YET`)."""
    if verdict is Verdict.APPLY:
        raise ValueError("an applicable receipt's result is known only once its write lands")
    return ReceiptResult.NOT_YET if verdict is Verdict.NOT_YET else ReceiptResult.IGNORED
