"""In-memory fakes of the domain's ports (`notifications.ports`): the status store, the queues and providers.

The fake store keeps the real store's contract (tests/integration/notifications/test_store.py checks the
DynamoDB one): a claim is a lease that counts an attempt, only the lease holder writes an outcome, and
every outcome releases the lease. Unit tests of the engine run on these in milliseconds, with no AWS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from notifications.clock import iso
from notifications.errors import DeliveryError, QueueUnavailable, StoreUnavailable
from notifications.models import PENDING_STATUSES, Channel, HistoryEntry, NotificationRecord, Status
from notifications.ports import AlreadyExists, Claim, ClaimRefusal, bounded_history
from notifications.providers import ProviderReceipt
from notifications.queues import QueueUrls

if TYPE_CHECKING:
    from notifications.models import Priority, QueueMessage
    from tests.support.clock import FakeClock


@dataclass
class _Row:
    record: NotificationRecord
    lease_owner: str | None = None
    lease_until: float = 0.0


class FakeStatusStore:
    """The status store's delivery side, in memory."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self.unavailable = False  # set True to make every request fail as DynamoDB being down would

    def put(self, record: NotificationRecord) -> None:
        """Store a record as it is (test set-up)."""
        self._rows[record.id] = _Row(record)

    def create(self, record: NotificationRecord) -> None:
        self._check()
        with self._lock:
            existing = self._rows.get(record.id)
            if existing is not None:
                raise AlreadyExists(existing.record)
            self._rows[record.id] = _Row(record)

    def get(self, notification_id: str) -> NotificationRecord | None:
        self._check()
        row = self._rows.get(notification_id)
        return None if row is None else row.record

    def delete_unqueued(self, record: NotificationRecord) -> None:
        self._check()
        with self._lock:
            row = self._rows.get(record.id)
            if row is not None and row.record.version == record.version and row.record.status is Status.QUEUED:
                del self._rows[record.id]

    def count(self) -> int:
        """Records stored."""
        return len(self._rows)

    def leased(self, notification_id: str) -> bool:
        row = self._rows[notification_id]
        return row.lease_owner is not None and row.lease_until > self._clock()

    def claim(self, notification_id: str, owner: str, lease_seconds: float) -> Claim:
        self._check()
        with self._lock:
            row = self._rows.get(notification_id)
            if row is None:
                return Claim(record=None, refusal=ClaimRefusal.MISSING)
            now = self._clock()
            if row.record.status not in PENDING_STATUSES:
                return Claim(record=row.record, refusal=ClaimRefusal.TERMINAL)
            if row.lease_owner is not None and row.lease_until >= now:
                return Claim(record=row.record, refusal=ClaimRefusal.LEASED)
            row.record = row.record.model_copy(
                update={"attempts": row.record.attempts + 1, "version": row.record.version + 1}
            )
            row.lease_owner, row.lease_until = owner, now + lease_seconds
            return Claim(record=row.record)

    def mark_sent(
        self,
        record: NotificationRecord,
        owner: str,
        *,
        channel: Channel,
        provider: str,
        provider_message_id: str | None,
        reason: str,
    ) -> bool:
        fields = {"channel_used": channel, "provider": provider, "provider_message_id": provider_message_id}
        return self._write(record, owner, Status.SENT, reason, {**fields, "reason": reason, "error": None})

    def mark_failed(self, record: NotificationRecord, owner: str, error: str, *, provider: str | None = None) -> bool:
        fields: dict[str, Any] = {"error": error, "reason": f"failed permanently: {error}", "next_attempt_at": None}
        if provider:
            fields["provider"] = provider
        return self._write(record, owner, Status.FAILED, error, fields)

    def mark_dead_lettered(self, record: NotificationRecord, owner: str, error: str, *, reason: str) -> bool:
        fields = {"error": error, "reason": reason, "next_attempt_at": None}
        return self._write(record, owner, Status.DEAD_LETTERED, reason, fields)

    def record_retry(
        self, record: NotificationRecord, owner: str, error: str, *, next_attempt_at: float, provider: str | None
    ) -> bool:
        fields: dict[str, Any] = {"error": error, "reason": f"retrying: {error}"}
        fields["next_attempt_at"] = iso(next_attempt_at)
        if provider:
            fields["provider"] = provider
        return self._write(record, owner, Status.QUEUED, f"attempt failed, will retry: {error}", fields)

    def defer(
        self, record: NotificationRecord, owner: str, reason: str, *, next_attempt_at: float, error: str | None = None
    ) -> bool:
        fields: dict[str, Any] = {"reason": reason, "next_attempt_at": iso(next_attempt_at)}
        if error is not None:
            fields["error"] = error
        return self._write(record, owner, Status.DEFERRED, reason, fields, attempts_delta=0 if error else -1)

    def release(self, record: NotificationRecord, owner: str) -> bool:
        return self._write(record, owner, None, None, {}, attempts_delta=-1)

    def _write(  # noqa: PLR0917 - mirrors the real store's one owned write
        self,
        record: NotificationRecord,
        owner: str,
        status: Status | None,
        detail: str | None,
        fields: dict[str, Any],
        attempts_delta: int = 0,
    ) -> bool:
        self._check()
        with self._lock:
            row = self._rows[record.id]
            if row.lease_owner != owner:
                return False
            update = {**fields, "attempts": row.record.attempts + attempts_delta, "version": row.record.version + 1}
            if status is not None:
                entry = HistoryEntry(status=status, at=iso(self._clock()), detail=detail)
                update |= {"status": status, "history": bounded_history([*row.record.history, entry])}
            row.record = row.record.model_copy(update=update)
            row.lease_owner, row.lease_until = None, 0.0
            return True

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("status store unavailable (EndpointConnectionError)")


@dataclass
class FakeEnqueuer:
    """The accept side's queues: what was sent where, by queue name (`priority`, `standard`, `batch`)."""

    urls: QueueUrls = field(
        default_factory=lambda: QueueUrls(priority="fake://priority", standard="fake://standard", batch="fake://batch")
    )
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (queue name, notification id, priority)
    unavailable: bool = False

    def send(self, queue_url: str, message: QueueMessage, priority: Priority) -> str:
        if self.unavailable:
            raise QueueUnavailable("queue unavailable (QueueDoesNotExist)")
        self.sent.append((queue_url.removeprefix("fake://"), message.id, priority.value))
        return f"m-{len(self.sent)}"

    def on(self, queue: str) -> list[str]:
        """Ids sent to one queue, in order."""
        return [notification_id for name, notification_id, _ in self.sent if name == queue]


@dataclass
class FakeQueues:
    """The retry queue and the DLQ: what was deferred (with its delay) and what was dead-lettered."""

    deferred: list[tuple[str, int]] = field(default_factory=list)
    dead_lettered: list[tuple[str, str]] = field(default_factory=list)
    unavailable: bool = False

    def defer(self, message: QueueMessage, delay_seconds: int) -> None:
        if self.unavailable:
            raise QueueUnavailable("queue unavailable (EndpointConnectionError)")
        self.deferred.append((message.id, delay_seconds))

    def dead_letter(self, message: QueueMessage, reason: str) -> None:
        if self.unavailable:
            raise QueueUnavailable("queue unavailable (EndpointConnectionError)")
        self.dead_lettered.append((message.id, reason))


@dataclass
class FakeProvider:
    """A provider whose answers the test scripts: each call pops the next failure, else succeeds.

    `failures` holds exceptions to raise (one per call); `always` is raised on every call when set.
    """

    name: str
    channel: Channel
    failures: list[BaseException] = field(default_factory=list)
    always: BaseException | None = None
    per_destination: bool = False  # one breaker per webhook URL origin, like the webhook provider
    calls: list[tuple[str, float]] = field(default_factory=list)  # (notification id, timeout)

    def breaker_name(self, record: NotificationRecord) -> str:
        if self.per_destination:
            return f"webhook:{record.recipient.webhook_url}"
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        self.calls.append((record.id, timeout))
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        return ProviderReceipt(provider=self.name, message_id=f"{self.name}-{len(self.calls)}")


def http_error(status: int, retry_after: float | None = None) -> DeliveryError:
    """What a provider raises when it answered `status`."""
    return DeliveryError(f"provider answered HTTP {status}", status_code=status, retry_after=retry_after)
