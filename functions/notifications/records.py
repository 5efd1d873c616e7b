"""The status record as plain attributes, and every write to it as data: an `ItemUpdate` and its `Condition`.

Pure functions, one per store operation. `store.DynamoDBStatusStore` renders what they return to
DynamoDB requests (`resilience.conditional.dynamodb.render`); the unit tests' in-memory fake
(`tests/support/fakes.py`) applies the very same objects to a dict (`resilience.conditional.apply_update`
and `holds_all`). So the fake and the real store cannot drift: only the storage differs.

A record's item is its JSON form (`data` kept as a JSON string, so floats survive unchanged) plus the
lease of the sender delivering it (`lease_owner`, `lease_until` in epoch seconds), which is not part
of the record.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from notifications.clock import iso
from notifications.models import PENDING_STATUSES, HistoryEntry, NotificationRecord, Status
from notifications.ports import Claim, ClaimRefusal, bounded_history
from resilience.conditional import AnyOf, Equals, In, ItemUpdate, LessThan, NotExists

if TYPE_CHECKING:
    from collections.abc import Mapping

    from notifications.models import Channel
    from resilience.conditional import Condition, Value

ID = "id"
STATUS = "status"
VERSION = "version"
ATTEMPTS = "attempts"
UPDATED_AT = "updated_at"
HISTORY = "history"
LEASE_OWNER = "lease_owner"
LEASE_UNTIL = "lease_until"
DATA_JSON = "data_json"


# ---------------------------------------------------------------------- the record as attributes
def to_attributes(record: NotificationRecord) -> dict[str, Value]:
    """A record as plain item attributes (no `None`s; `data` as a JSON string in `data_json`)."""
    plain: dict[str, Value] = record.model_dump(mode="json", exclude_none=True, exclude={"data"})
    if record.data is not None:
        plain[DATA_JSON] = json.dumps(record.data, separators=(",", ":"))
    return plain


def from_attributes(attributes: Mapping[str, Any]) -> NotificationRecord:
    """The record an item holds (its lease attributes are not part of the record and are ignored)."""
    plain = dict(attributes)
    if DATA_JSON in plain:
        plain["data"] = json.loads(plain.pop(DATA_JSON))
    return NotificationRecord.model_validate(plain, strict=False)


# ---------------------------------------------------------------------- accept side
def create(record: NotificationRecord) -> tuple[dict[str, Value], Condition]:
    """The item a new record is put as, and the condition of the put."""
    # Race prevented: two requests with one idempotency key (same derived id) both creating
    # a notification. Exactly one put wins; the other sees the winner's record.
    condition: Condition = (NotExists(ID),)
    return to_attributes(record), condition


def create_fresh(record: NotificationRecord) -> dict[str, Value]:
    """The item a record with a fresh random id (`ids.new_id`) is put as, with no condition.

    No race to prevent: a uuid4 is new to the table and known to no other request. Only ids derived
    from an idempotency key can be shared, and those always go through `create`'s condition. Without a
    condition the put can travel in a `BatchWriteItem`, 25 records a request.
    """
    return to_attributes(record)


def delete_unqueued(record: NotificationRecord) -> Condition:
    """The condition of taking back a record whose message never reached SQS."""
    # Race prevented: deleting a record that something has already moved on (a replay that
    # re-enqueued it and a sender that claimed it); then it is no longer ours to take back.
    return (Equals(VERSION, record.version), Equals(STATUS, Status.QUEUED.value))


# ---------------------------------------------------------------------- delivery side
def claim(owner: str, lease_seconds: float, *, now: float) -> tuple[ItemUpdate, Condition]:
    """A lease on a pending record for one delivery attempt, counting the attempt."""
    update = ItemUpdate(
        set={LEASE_OWNER: owner, LEASE_UNTIL: _seconds(now + lease_seconds), UPDATED_AT: iso(now)},
        add={ATTEMPTS: 1, VERSION: 1},
    )
    # Race prevented: two copies of one message (or a replay's re-enqueue) delivering the
    # same notification at once, and any delivery after a terminal status was written.
    condition: Condition = (
        In(STATUS, tuple(status.value for status in sorted(PENDING_STATUSES))),
        AnyOf(NotExists(LEASE_UNTIL), LessThan(LEASE_UNTIL, _seconds(now))),
    )
    return update, condition


def refused_claim(current: NotificationRecord | None) -> Claim:
    """Why a claim's condition failed, from the record as it was (`None`: there was none)."""
    if current is None:
        return Claim(record=None, refusal=ClaimRefusal.MISSING)
    refusal = ClaimRefusal.LEASED if current.status in PENDING_STATUSES else ClaimRefusal.TERMINAL
    return Claim(record=current, refusal=refusal)


def mark_sent(  # noqa: PLR0913 - the store method's arguments and the time
    record: NotificationRecord,
    owner: str,
    *,
    channel: Channel,
    provider: str,
    provider_message_id: str | None,
    reason: str,
    now: float,
) -> tuple[ItemUpdate, Condition]:
    """A delivery the provider accepted."""
    fields: dict[str, Value] = {"channel_used": channel.value, "provider": provider, "reason": reason}
    if provider_message_id:
        fields["provider_message_id"] = provider_message_id
    return _owned(record, owner, now, Status.SENT, reason, fields=fields, remove=("error", "next_attempt_at"))


def mark_failed(
    record: NotificationRecord, owner: str, error: str, *, provider: str | None = None, now: float
) -> tuple[ItemUpdate, Condition]:
    """A permanent failure: not retried."""
    fields: dict[str, Value] = {"error": error, "reason": f"failed permanently: {error}"}
    if provider:
        fields["provider"] = provider
    return _owned(record, owner, now, Status.FAILED, error, fields=fields, remove=("next_attempt_at",))


def mark_dead_lettered(
    record: NotificationRecord, owner: str, error: str, *, reason: str, now: float
) -> tuple[ItemUpdate, Condition]:
    """Retries (or deferrals) are exhausted; the message rests in the dead-letter queue, redrivable."""
    fields: dict[str, Value] = {"error": error, "reason": reason}
    return _owned(record, owner, now, Status.DEAD_LETTERED, reason, fields=fields, remove=("next_attempt_at",))


def record_retry(  # noqa: PLR0913 - the store method's arguments and the time
    record: NotificationRecord,
    owner: str,
    error: str,
    *,
    next_attempt_at: float,
    provider: str | None,
    now: float,
) -> tuple[ItemUpdate, Condition]:
    """A transient failure: back to `queued` with the attempt in history; the lease is released."""
    detail = f"attempt {record.attempts} failed, will retry: {error}"
    fields: dict[str, Value] = {
        "error": error,
        "reason": f"retrying after a transient failure: {error}",
        "next_attempt_at": iso(next_attempt_at),
    }
    if provider:
        fields["provider"] = provider
    return _owned(record, owner, now, Status.QUEUED, detail, fields=fields)


def defer(  # noqa: PLR0913 - the store method's arguments and the time
    record: NotificationRecord,
    owner: str,
    reason: str,
    *,
    next_attempt_at: float,
    error: str | None = None,
    now: float,
) -> tuple[ItemUpdate, Condition]:
    """ "Queue for later": no channel can be tried now.

    `error` is the failure of an attempt made before the breaker opened; without one nothing was
    tried, and the claim's attempt is given back.
    """
    detail = f"{reason}; next attempt at {iso(next_attempt_at)}"
    fields: dict[str, Value] = {"reason": reason, "next_attempt_at": iso(next_attempt_at)}
    if error is not None:
        fields["error"] = error
    return _owned(record, owner, now, Status.DEFERRED, detail, fields=fields, attempts_delta=0 if error else -1)


def release(record: NotificationRecord, owner: str, *, now: float) -> tuple[ItemUpdate, Condition]:
    """Give the lease back untouched (nothing was tried): the claim's attempt is not counted."""
    return _owned(record, owner, now, None, None, fields={}, attempts_delta=-1)


# ---------------------------------------------------------------------- dead letters
def requeue_dead_lettered(record: NotificationRecord, detail: str, *, now: float) -> tuple[ItemUpdate, Condition]:
    """A dead-lettered notification back to `queued` (a redrive), with `detail` in its history.

    Written by no lease holder: by the admin's redrive before it sends the message again, or by a sender
    whose message came back from the dead-letter queue (an SQS move task). `record` is the copy just read.
    """
    update = _transition(record, now, Status.QUEUED, detail, fields={"reason": detail}, remove=("next_attempt_at",))
    # Race prevented: two redrives of one notification (two operators, a redrive and a move task, two
    # copies of one message) both sending it again, and a redrive of a record that changed since it was
    # read. Only `dead_lettered` is redriven, and only the version read: the first writer wins, the others
    # find it queued (and a sender's claim drops or retries their copies); the history rewritten whole is
    # the current one.
    condition: Condition = (Equals(STATUS, Status.DEAD_LETTERED.value), Equals(VERSION, record.version))
    return update, condition


def mark_abandoned(record: NotificationRecord, reason: str, *, now: float) -> tuple[ItemUpdate, Condition]:
    """A pending record whose message reached the dead-letter queue without an outcome: `dead_lettered`.

    The health monitor's reconciliation writes it, as no lease holder: a sender that died holding the
    lease (or could not claim the notification at all) on its last receive left the record `queued` or
    `deferred` while SQS moved the message to the DLQ.
    """
    update = _transition(
        record, now, Status.DEAD_LETTERED, reason, fields={"reason": reason}, remove=("next_attempt_at",)
    )
    # Race prevented: dead-lettering a notification that is being delivered right now by another copy of
    # its message (a live lease: its sender's outcome write would otherwise land on a record whose lease
    # we removed, or be overwritten by ours), or one that moved on since it was read (delivered, redriven,
    # claimed). Only a pending record, unleased or with an expired lease, at the version read.
    condition: Condition = (
        In(STATUS, tuple(status.value for status in sorted(PENDING_STATUSES))),
        AnyOf(NotExists(LEASE_UNTIL), LessThan(LEASE_UNTIL, _seconds(now))),
        Equals(VERSION, record.version),
    )
    return update, condition


def _owned(  # noqa: PLR0913, PLR0917 - one owned write: who, when, what status, and its fields
    record: NotificationRecord,
    owner: str,
    now: float,
    status: Status | None,
    detail: str | None,
    *,
    fields: Mapping[str, Value],
    remove: tuple[str, ...] = (),
    attempts_delta: int = 0,
) -> tuple[ItemUpdate, Condition]:
    """One write by the lease holder: new status, history entry, fields; the lease released."""
    update = _transition(record, now, status, detail, fields=fields, remove=remove, attempts_delta=attempts_delta)
    # Race prevented: a sender whose lease expired (it was too slow) overwriting the outcome
    # of the sender that claimed the notification after it. Only the lease holder writes,
    # which is also why the history can be rewritten whole from the claimed copy.
    condition: Condition = (Equals(LEASE_OWNER, owner),)
    return update, condition


def _transition(  # noqa: PLR0913, PLR0917 - one change: when, what status, and its fields
    record: NotificationRecord,
    now: float,
    status: Status | None,
    detail: str | None,
    *,
    fields: Mapping[str, Value],
    remove: tuple[str, ...] = (),
    attempts_delta: int = 0,
) -> ItemUpdate:
    """The update of one change: new status with its history entry (the history rewritten whole from `record`),
    fields, the version bumped, the lease released. The caller's condition says who may write it."""
    changes: dict[str, Value] = {UPDATED_AT: iso(now)}
    if status is not None:
        history = bounded_history([*record.history, HistoryEntry(status=status, at=iso(now), detail=detail)])
        changes[STATUS] = status.value
        changes[HISTORY] = [entry.model_dump(mode="json", exclude_none=True) for entry in history]
    changes.update(fields)
    adds = {VERSION: 1} | ({ATTEMPTS: attempts_delta} if attempts_delta else {})
    return ItemUpdate(set=changes, add=adds, remove=frozenset({LEASE_OWNER, LEASE_UNTIL, *remove}))


def _seconds(value: float) -> float:
    """Epoch seconds to the millisecond, as leases are stored and compared."""
    return round(value, 3)
