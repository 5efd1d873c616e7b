"""The domain's ports: what accepting and delivering need from storage, queues and providers.

The logic (`accept`, `delivery`) depends on these protocols only. AWS adapters implement them
(`store.DynamoDBStatusStore`, `queues.SqsEnqueuer`, `queues.SqsDeliveryQueues`, `providers.*`), and
`tests/support/fakes.py` holds in-memory fakes with the same conditional semantics, so the domain is
tested in milliseconds; `tests/integration/notifications/test_store.py` runs one contract against both.
Adapters wrap every failure of their client in `errors.DependencyUnavailable` (a `StoreUnavailable` or
a `QueueUnavailable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from notifications.providers import Provider, ProviderReceipt

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from notifications.budget import TimeBudget
    from notifications.models import Channel, HistoryEntry, NotificationRecord, Priority, QueueMessage
    from notifications.queues import QueueUrls

MAX_HISTORY = 30  # entries kept per record: a notification deferred for a day stays a small item


class AlreadyExists(Exception):
    """A record with this id exists already (an idempotent replay or a key conflict)."""

    def __init__(self, existing: NotificationRecord) -> None:
        super().__init__(existing.id)
        self.existing = existing


class ClaimRefusal(StrEnum):
    TERMINAL = "terminal"  # already sent, delivered, failed or dead-lettered: a duplicate message
    LEASED = "leased"  # another sender holds a live lease: it is being delivered right now
    MISSING = "missing"  # no such record


@dataclass(frozen=True)
class Claim:
    """The outcome of trying to claim a notification for one delivery attempt."""

    record: NotificationRecord | None
    refusal: ClaimRefusal | None = None

    @property
    def granted(self) -> bool:
        return self.refusal is None


@dataclass(frozen=True)
class Creation:
    """What a batch create did with each record it was given, by id.

    Every id given lands in exactly one of the three: `created` (written now: its message is still to be
    sent), `existing` (a record had this id already: an idempotent replay or a key conflict, decided by
    the caller from the stored record) or `failed` (not written: the store was unavailable or throttled
    beyond its retries, or the time budget ran out). Nothing of a failed fresh id is left stored; a failed
    keyed record whose write was in doubt may be, and its key's replay finds it never attempted and queues it.
    """

    created: frozenset[str] = frozenset()
    existing: Mapping[str, NotificationRecord] = field(default_factory=dict)
    failed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Outgoing:
    """One message for `Enqueuer.send_many`: the queue it goes to, the message and its priority attribute."""

    queue_url: str
    message: QueueMessage
    priority: Priority


def bounded_history(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """The first entry (`accepted`) and the newest ones, at most `MAX_HISTORY` in all."""
    if len(history) <= MAX_HISTORY:
        return history
    return [history[0], *history[-(MAX_HISTORY - 1) :]]


class StatusStore(Protocol):
    """Status records, changed only by conditional writes.

    Accept side: `create` is the idempotency check (`AlreadyExists` carries the stored record);
    `create_many` is the same check for many records at once, and `create_fresh` writes records whose
    ids are fresh uuid4s (no request can share them, so no check is needed). Neither batch method raises
    for the store being unavailable: they report what was and was not written (`Creation`), and neither
    sends a request its `TimeBudget` does not allow. `delete_unqueued_many` takes back, in one request,
    records whose messages could not be queued (`delete_unqueued`'s condition) and returns the ids it
    could not take back.
    Delivery side: `claim` takes a lease that counts an attempt; only the lease holder writes an
    outcome, and every outcome releases the lease (a write by anyone else returns False).
    """

    def create(self, record: NotificationRecord) -> None: ...

    def create_many(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = ...) -> Creation: ...

    def create_fresh(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = ...) -> Creation: ...

    def get(self, notification_id: str) -> NotificationRecord | None: ...

    def delete_unqueued(self, record: NotificationRecord) -> None: ...

    def delete_unqueued_many(self, unqueued: Sequence[NotificationRecord], budget: TimeBudget = ...) -> list[str]: ...

    def claim(self, notification_id: str, owner: str, lease_seconds: float) -> Claim: ...

    def mark_sent(
        self,
        record: NotificationRecord,
        owner: str,
        *,
        channel: Channel,
        provider: str,
        provider_message_id: str | None,
        reason: str,
    ) -> bool: ...

    def mark_failed(
        self, record: NotificationRecord, owner: str, error: str, *, provider: str | None = None
    ) -> bool: ...

    def mark_dead_lettered(self, record: NotificationRecord, owner: str, error: str, *, reason: str) -> bool: ...

    def record_retry(
        self, record: NotificationRecord, owner: str, error: str, *, next_attempt_at: float, provider: str | None
    ) -> bool: ...

    def defer(
        self, record: NotificationRecord, owner: str, reason: str, *, next_attempt_at: float, error: str | None = None
    ) -> bool: ...

    def release(self, record: NotificationRecord, owner: str) -> bool: ...


class Enqueuer(Protocol):
    """Puts accepted notifications on their queue.

    `send` raises `QueueUnavailable` when the message could not be queued. `send_many` never raises for
    that: it returns the messages it could not queue (after its own retry, or because its `TimeBudget`
    allowed no more requests), so the caller can take back exactly their records.
    """

    urls: QueueUrls

    def send(self, queue_url: str, message: QueueMessage, priority: Priority) -> str: ...

    def send_many(self, messages: Sequence[Outgoing], budget: TimeBudget = ...) -> list[Outgoing]: ...


class DeliveryQueue(Protocol):
    """What the delivery engine asks of the queues besides consuming them."""

    def defer(self, message: QueueMessage, delay_seconds: int) -> None:
        """Put a copy of the message on the retry queue, delivered after `delay_seconds` (<= 900)."""
        ...

    def dead_letter(self, message: QueueMessage, reason: str) -> None:
        """Put a copy of the message on the dead-letter queue."""
        ...


__all__ = [
    "MAX_HISTORY",
    "AlreadyExists",
    "Claim",
    "ClaimRefusal",
    "Creation",
    "DeliveryQueue",
    "Enqueuer",
    "Outgoing",
    "Provider",
    "ProviderReceipt",
    "StatusStore",
    "bounded_history",
]
