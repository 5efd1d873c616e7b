"""What a dead letter is, told from its notification's status record, and the filters an operator picks them by.

The message in the dead-letter queue holds only the notification id; the record says why it is there
(`DeadLetterClass`): the exception that dead-lettered it is gone by then, and a notification reaches the DLQ only
after `notifications.failures.delivery_classifier` judged its failures TRANSIENT (a PERMANENT verdict ends it
`failed`), so its history says which way it got there. First and last failure times are the history's failure
entries (the history keeps the first entry and the newest 29, so on a long one "first" is the oldest kept).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, model_validator

from notifications.clock import epoch
from notifications.models import Channel, Status

if TYPE_CHECKING:
    from notifications.dead_letter_queue import PeekedMessage
    from notifications.models import HistoryEntry, NotificationRecord

# The reason reconciliation gives a pending record whose message reached the dead-letter queue.
ABANDONED_REASON = (
    "its message reached the dead-letter queue without an outcome "
    "(the sender handling it stopped, or could not claim it, on its last receive)"
)
# How `notifications.delivery` words what dead-lettered a notification (its tests hold these to it).
_INTERNAL_ERROR_PREFIX = "internal error ("  # `_unexpected`: an exception nobody expected, retried until exhausted
_NO_CHANNEL_MARK = "without a channel"  # `_wait`: deferred past the horizon, "gave up after 24 h without a channel"
_RETRY_DETAIL_PREFIX = "attempt "  # `records.record_retry`: "attempt 2 failed, will retry: ..."


class DeadLetterClass(StrEnum):
    """Why a notification's message rests in the dead-letter queue (the `error_class` of a dead letter)."""

    TRANSIENT = "transient"  # retries exhausted: every attempt failed transiently (5xx, 429, timeouts...)
    INTERNAL = "internal"  # retries exhausted on an error in Herald's own code (transient by the classifier)
    NO_CHANNEL = "no_channel"  # no channel could be tried until the deferral horizon (24 h)
    ABANDONED = "abandoned"  # its sender stopped (or never claimed it) on the last receive; reconciled or not yet
    PERMANENT = "permanent"  # the notification ended `failed` since: a permanent failure (a stale copy)
    FINISHED = "finished"  # the notification was sent or delivered since: a stale copy
    UNKNOWN = "unknown"  # no record (never accepted, expired, erased) or not a Herald message


# ---------------------------------------------------------------------- what a dead letter is
class DeadLetter(BaseModel):
    """One message of the dead-letter queue, as the notification's record explains it."""

    notification_id: str | None  # None: the body is not a Herald message
    message_id: str
    channel: Channel | None
    provider: str | None
    error_class: DeadLetterClass
    error: str | None
    attempts: int | None
    first_failure_at: str | None
    last_failure_at: str | None
    status: Status | None


def describe(message: PeekedMessage, record: NotificationRecord | None) -> DeadLetter:
    """The dead letter `message` is, given its notification's record (None when there is none)."""
    if record is None:
        return DeadLetter(
            notification_id=message.notification_id,
            message_id=message.message_id,
            channel=None,
            provider=None,
            error_class=DeadLetterClass.UNKNOWN,
            error=None,
            attempts=None,
            first_failure_at=None,
            last_failure_at=None,
            status=None,
        )
    failures = [entry.at for entry in record.history if _is_failure(entry)]
    return DeadLetter(
        notification_id=record.id,
        message_id=message.message_id,
        channel=record.channel,
        provider=record.provider,
        error_class=classify(record),
        error=record.error,
        attempts=record.attempts,
        first_failure_at=failures[0] if failures else None,
        last_failure_at=failures[-1] if failures else None,
        status=record.status,
    )


def classify(record: NotificationRecord) -> DeadLetterClass:
    """Why the record's message is in the DLQ, from its status, error and history (see the module docstring)."""
    by_status = _CLASS_BY_STATUS.get(record.status)
    return by_status if by_status is not None else _dead_lettered_class(record)


# A record no longer (or not yet) dead-lettered: its status says it all.
_CLASS_BY_STATUS = {
    Status.SENT: DeadLetterClass.FINISHED,
    Status.DELIVERED: DeadLetterClass.FINISHED,
    Status.FAILED: DeadLetterClass.PERMANENT,
    Status.QUEUED: DeadLetterClass.ABANDONED,  # reconciliation has not marked it yet
    Status.DEFERRED: DeadLetterClass.ABANDONED,
}


def _dead_lettered_class(record: NotificationRecord) -> DeadLetterClass:
    """How a `dead_lettered` record got there: its last dead-lettering entry, else its reason and error."""
    dead_lettered = [entry for entry in record.history if entry.status is Status.DEAD_LETTERED]
    detail = (dead_lettered[-1].detail if dead_lettered else None) or record.reason or ""
    if detail == ABANDONED_REASON:
        return DeadLetterClass.ABANDONED
    if _NO_CHANNEL_MARK in detail:
        return DeadLetterClass.NO_CHANNEL
    if (record.error or "").startswith(_INTERNAL_ERROR_PREFIX):
        return DeadLetterClass.INTERNAL
    return DeadLetterClass.TRANSIENT


def _is_failure(entry: HistoryEntry) -> bool:
    """A history entry that records a failure: a retry, a deferral, the dead-lettering or the failure."""
    if entry.status in {Status.DEAD_LETTERED, Status.FAILED, Status.DEFERRED}:
        return True
    return entry.status is Status.QUEUED and (entry.detail or "").startswith(_RETRY_DETAIL_PREFIX)


# ---------------------------------------------------------------------- filters
def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_utc)]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]


class DeadLetterFilter(BaseModel):
    """Which dead letters: by channel, provider, error class, and bounds on the last failure time (ISO 8601,
    UTC when no offset is given; `since` inclusive, `until` exclusive). No field: every dead letter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel | None = None
    provider: ProviderName | None = None
    error_class: DeadLetterClass | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    @property
    def is_empty(self) -> bool:
        """True when no field filters: every message matches."""
        return all(getattr(self, name) is None for name in DeadLetterFilter.model_fields)

    def matches(self, letter: DeadLetter) -> bool:
        return (
            self.channel in {None, letter.channel}
            and self.provider in {None, letter.provider}
            and self.error_class in {None, letter.error_class}
            and self._in_time(letter.last_failure_at)
        )

    def _in_time(self, last_failure_at: str | None) -> bool:
        if self.since is None and self.until is None:
            return True
        if last_failure_at is None:
            return False
        moment = epoch(last_failure_at)
        after_since = self.since is None or moment >= self.since.timestamp()
        return after_since and (self.until is None or moment < self.until.timestamp())
