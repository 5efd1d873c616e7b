"""In-memory fakes of the domain's ports (`notifications.ports`): the status store, the queues and providers.

The fake store keeps the real store's contract (tests/integration/notifications/test_store.py checks the
DynamoDB one): a claim is a lease that counts an attempt, only the lease holder writes an outcome, and
every outcome releases the lease. It does so by applying the very writes the DynamoDB store renders
(`notifications.records`: an `ItemUpdate` and its `Condition` per operation) to dict items, so the two
cannot drift. Unit tests of the engine run on it in milliseconds, with no AWS.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notifications import records
from notifications.batch_store import BATCH_WRITE_MAX_ITEMS, TRANSACTION_MAX_ITEMS
from notifications.budget import UNBOUNDED
from notifications.dead_letters import PeekedMessage
from notifications.errors import DeliveryError, QueueUnavailable, StoreUnavailable
from notifications.health_snapshot import BreakerView, CheckView, ProviderView, QueueView, Snapshot
from notifications.ids import KeyedIds
from notifications.models import Channel, QueueMessage
from notifications.ports import AlreadyExists, Claim, Creation
from notifications.probes import ProbeResults
from notifications.providers import ProviderReceipt
from notifications.queues import SEND_BATCH_MAX_ENTRIES, QueueUrls
from resilience.conditional import apply_update, holds_all

if TYPE_CHECKING:
    from collections.abc import Sequence

    from notifications.budget import TimeBudget
    from notifications.models import NotificationRecord, Priority
    from notifications.ports import Outgoing
    from resilience.conditional import Condition, ItemUpdate, Value
    from tests.support.clock import FakeClock

# The idempotency key unit tests derive keyed ids with (a deployment generates its own: IdempotencyKeySecret).
TEST_IDS = KeyedIds(b"herald-test-idempotency-key-0123")


class FakeStatusStore:
    """The status store in memory: one dict item per notification, written as the DynamoDB store writes."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._items: dict[str, dict[str, Value]] = {}
        self._lock = threading.Lock()
        self.unavailable = False  # set True to make every request fail as DynamoDB being down would
        # Records a batch create may still write before DynamoDB refuses the rest (throttling that outlasts
        # the store's retries); None: no limit.
        self.batch_capacity: int | None = None
        self.take_backs = 0  # delete_unqueued_many calls

    def put(self, record: NotificationRecord) -> None:
        """Store a record as it is, unconditionally (test set-up)."""
        self._items[record.id] = records.to_attributes(record)

    def count(self) -> int:
        """Records stored."""
        return len(self._items)

    def leased(self, notification_id: str) -> bool:
        """Whether a sender holds a live lease on the notification."""
        item = self._items[notification_id]
        until = item.get(records.LEASE_UNTIL)
        return item.get(records.LEASE_OWNER) is not None and isinstance(until, float | int) and until > self._clock()

    def create(self, record: NotificationRecord) -> None:
        self._check()
        item, condition = records.create(record)
        with self._lock:
            current = self._items.get(record.id)
            if not holds_all(current, condition):
                raise AlreadyExists(records.from_attributes(current or {}))
            self._items[record.id] = item

    def create_many(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Each record created unless its id exists (`records.create`'s condition), as the transactions do:
        100 to a request, each sent only if the budget allows it (what it stops is failed)."""
        created: set[str] = set()
        existing: dict[str, NotificationRecord] = {}
        failed: set[str] = set()
        with self._lock:
            for position, record in enumerate(new_records):
                if position % TRANSACTION_MAX_ITEMS == 0 and not budget.allows_call():
                    failed.update(later.id for later in new_records[position:])
                    break
                item, condition = records.create(record)
                current = self._items.get(record.id)
                if not holds_all(current, condition):
                    existing[record.id] = records.from_attributes(current or {})
                elif self._refuses_batch_write():
                    failed.add(record.id)
                else:
                    self._items[record.id] = item
                    created.add(record.id)
        return Creation(created=frozenset(created), existing=existing, failed=frozenset(failed))

    def create_fresh(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Each record put unconditionally (`records.create_fresh`), as the batch writes do: 25 to a request,
        each sent only if the budget allows it (what it stops is failed)."""
        created: set[str] = set()
        failed: set[str] = set()
        with self._lock:
            for position, record in enumerate(new_records):
                if position % BATCH_WRITE_MAX_ITEMS == 0 and not budget.allows_call():
                    failed.update(later.id for later in new_records[position:])
                    break
                if self._refuses_batch_write():
                    failed.add(record.id)
                else:
                    self._items[record.id] = records.create_fresh(record)
                    created.add(record.id)
        return Creation(created=frozenset(created), failed=frozenset(failed))

    def get(self, notification_id: str) -> NotificationRecord | None:
        self._check()
        item = self._items.get(notification_id)
        return None if item is None else records.from_attributes(item)

    def delete_unqueued(self, record: NotificationRecord) -> None:
        self._check()
        with self._lock:
            if record.id in self._items and holds_all(self._items[record.id], records.delete_unqueued(record)):
                del self._items[record.id]

    def delete_unqueued_many(self, unqueued: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> list[str]:
        """`delete_unqueued` for each record, in one request: the ids not taken back (all, the store down)."""
        self.take_backs += 1
        if self.unavailable:
            return [record.id for record in unqueued]
        with self._lock:
            for record in unqueued:
                if record.id in self._items and holds_all(self._items[record.id], records.delete_unqueued(record)):
                    del self._items[record.id]
        return []

    def claim(self, notification_id: str, owner: str, lease_seconds: float) -> Claim:
        self._check()
        update, condition = records.claim(owner, lease_seconds, now=self._clock())
        with self._lock:
            current = self._items.get(notification_id)
            if not holds_all(current, condition):
                return records.refused_claim(None if current is None else records.from_attributes(current))
            self._items[notification_id] = apply_update(current, update)
            return Claim(record=records.from_attributes(self._items[notification_id]))

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
        change = records.mark_sent(
            record,
            owner,
            channel=channel,
            provider=provider,
            provider_message_id=provider_message_id,
            reason=reason,
            now=self._clock(),
        )
        return self._write(record, change)

    def mark_failed(self, record: NotificationRecord, owner: str, error: str, *, provider: str | None = None) -> bool:
        return self._write(record, records.mark_failed(record, owner, error, provider=provider, now=self._clock()))

    def mark_dead_lettered(self, record: NotificationRecord, owner: str, error: str, *, reason: str) -> bool:
        return self._write(record, records.mark_dead_lettered(record, owner, error, reason=reason, now=self._clock()))

    def record_retry(
        self, record: NotificationRecord, owner: str, error: str, *, next_attempt_at: float, provider: str | None
    ) -> bool:
        change = records.record_retry(
            record, owner, error, next_attempt_at=next_attempt_at, provider=provider, now=self._clock()
        )
        return self._write(record, change)

    def defer(
        self, record: NotificationRecord, owner: str, reason: str, *, next_attempt_at: float, error: str | None = None
    ) -> bool:
        change = records.defer(record, owner, reason, next_attempt_at=next_attempt_at, error=error, now=self._clock())
        return self._write(record, change)

    def release(self, record: NotificationRecord, owner: str) -> bool:
        return self._write(record, records.release(record, owner, now=self._clock()))

    # ------------------------------------------------------------------ dead letters
    def get_many(self, notification_ids: Sequence[str]) -> dict[str, NotificationRecord]:
        self._check()
        return {i: records.from_attributes(self._items[i]) for i in notification_ids if i in self._items}

    def requeue_dead_lettered(self, record: NotificationRecord, detail: str) -> bool:
        return self._write(record, records.requeue_dead_lettered(record, detail, now=self._clock()))

    def mark_abandoned(self, record: NotificationRecord, reason: str) -> bool:
        return self._write(record, records.mark_abandoned(record, reason, now=self._clock()))

    def _write(self, record: NotificationRecord, change: tuple[ItemUpdate, Condition]) -> bool:
        """One conditional write: applied if its condition holds on the stored item (False otherwise)."""
        self._check()
        update, condition = change
        with self._lock:
            current = self._items.get(record.id)
            if not holds_all(current, condition):
                return False
            self._items[record.id] = apply_update(current, update)
            return True

    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("status store unavailable (EndpointConnectionError)")

    def _refuses_batch_write(self) -> bool:
        """Whether the next record of a batch write is refused (the store down, or its capacity spent)."""
        if self.unavailable or self.batch_capacity == 0:
            return True
        if self.batch_capacity is not None:
            self.batch_capacity -= 1
        return False


@dataclass
class FakeEnqueuer:
    """The accept side's queues: what was sent where, by queue name (`priority`, `standard`, `batch`)."""

    urls: QueueUrls = field(
        default_factory=lambda: QueueUrls(priority="fake://priority", standard="fake://standard", batch="fake://batch")
    )
    sent: list[tuple[str, str, str]] = field(default_factory=list)  # (queue name, notification id, priority)
    unavailable: bool = False
    # Messages SQS still takes before refusing every further one (its `Failed` entries, twice over);
    # None: no limit.
    capacity: int | None = None
    batches: int = 0  # send_many calls

    def send(self, queue_url: str, message: QueueMessage, priority: Priority) -> str:
        if self.unavailable or self.capacity == len(self.sent):
            raise QueueUnavailable("queue unavailable (QueueDoesNotExist)")
        self.sent.append((queue_url.removeprefix("fake://"), message.id, priority.value))
        return f"m-{len(self.sent)}"

    def send_many(self, messages: Sequence[Outgoing], budget: TimeBudget = UNBOUNDED) -> list[Outgoing]:
        """Queue each message, returning those refused (the adapter's contract: after its one retry). As the
        adapter, it sends 10 to a request per queue, each only if the budget allows it, and stops there."""
        self.batches += 1
        refused = []
        by_queue: dict[str, list[Outgoing]] = {}
        for outgoing in messages:
            by_queue.setdefault(outgoing.queue_url, []).append(outgoing)
        stopped = False
        for queued in by_queue.values():
            for position, outgoing in enumerate(queued):
                stopped = stopped or (position % SEND_BATCH_MAX_ENTRIES == 0 and not budget.allows_call())
                if stopped or self.unavailable or self.capacity == len(self.sent):
                    refused.append(outgoing)
                else:
                    self.sent.append(
                        (outgoing.queue_url.removeprefix("fake://"), outgoing.message.id, outgoing.priority.value)
                    )
        return refused

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


@dataclass
class _DeadLetter:
    message_id: str
    body: str
    visible_at: float = 0.0
    receipt: str | None = None  # the newest receipt handle: only it can release or delete the message
    receives: int = 0


@dataclass
class FakeDeadLetterQueue:
    """The dead-letter queue in memory (`notifications.dead_letters.DeadLetterQueue`), with SQS's visibility on the
    test's clock: a received message is invisible until released, deleted or its visibility timeout is over.

    `fail_deletes` makes deletes raise `crash` (a reader dying between sending a copy and deleting);
    `fail_releases` makes releases raise; `unavailable` makes every call raise `QueueUnavailable`.
    """

    clock: FakeClock
    messages: dict[str, _DeadLetter] = field(default_factory=dict)
    unavailable: bool = False
    fail_deletes: BaseException | None = None
    fail_releases: BaseException | None = None
    move_tasks: list[str] = field(default_factory=list)
    receive_calls: int = 0
    _counter: int = 0

    def put(self, notification_id: str | None = None, *, body: str | None = None) -> str:
        """A message (`{"id": notification_id}`, or `body` as given) at the end of the queue; its message id."""
        self._counter += 1
        message_id = f"dlq-{self._counter}"
        text = body if body is not None else QueueMessage(id=str(notification_id)).model_dump_json()
        self.messages[message_id] = _DeadLetter(message_id, text)
        return message_id

    def visible_ids(self) -> list[str]:
        """The notification ids of the messages visible now, in queue order (a body that is not Herald's: '?')."""
        now = self.clock()
        return [_id_of(m.body) for m in self.messages.values() if m.visible_at <= now]

    def ids(self) -> list[str]:
        """Every message's notification id, visible or not."""
        return [_id_of(m.body) for m in self.messages.values()]

    def receive(self, count: int, *, visibility_seconds: int, wait_seconds: int) -> list[PeekedMessage]:
        self._check()
        self.receive_calls += 1
        now = self.clock()
        received = []
        for message in self.messages.values():
            if len(received) == count:
                break
            if message.visible_at > now:
                continue
            message.receives += 1
            message.receipt = f"{message.message_id}/r{message.receives}"
            message.visible_at = now + visibility_seconds
            notification_id = _id_of(message.body)
            received.append(
                PeekedMessage(message.message_id, message.receipt, None if notification_id == "?" else notification_id)
            )
        return received

    def release(self, messages: Sequence[PeekedMessage]) -> None:
        if self.fail_releases is not None:
            raise self.fail_releases
        for peeked in messages:
            message = self.messages.get(peeked.message_id)
            if message is not None and message.receipt == peeked.receipt_handle:
                message.visible_at = self.clock()

    def delete(self, messages: Sequence[PeekedMessage]) -> list[PeekedMessage]:
        if self.fail_deletes is not None:
            raise self.fail_deletes
        kept = []
        for peeked in messages:
            message = self.messages.get(peeked.message_id)
            if message is None or message.receipt != peeked.receipt_handle:
                kept.append(peeked)
            else:
                del self.messages[peeked.message_id]
        return kept

    def depth(self) -> int:
        self._check()
        return len(self.messages)

    def start_move_task(self) -> str:
        self._check()
        self.move_tasks.append(f"task-{len(self.move_tasks) + 1}")
        return self.move_tasks[-1]

    def _check(self) -> None:
        if self.unavailable:
            raise QueueUnavailable("dead-letter queue unavailable (EndpointConnectionError)")


def _id_of(body: str) -> str:
    try:
        return QueueMessage.model_validate_json(body).id
    except ValueError:
        return "?"


def http_error(status: int, retry_after: float | None = None) -> DeliveryError:
    """What a provider raises when it answered `status`."""
    return DeliveryError(f"provider answered HTTP {status}", status_code=status, retry_after=retry_after)


@dataclass
class FakeSnapshots:
    """The health monitor's snapshot as the API's views see it (`notifications.health.SnapshotSource`), with no
    AWS: `stored` is what a read finds; `current()` reads it (counted), `cached()` returns the last read."""

    stored: Snapshot | None = None
    reads: int = 0
    _read: Snapshot | None = None
    _has_read: bool = False

    def current(self) -> Snapshot | None:
        self.reads += 1
        self._has_read, self._read = True, self.stored
        return self._read

    def cached(self) -> Snapshot | None:
        return self._read

    @property
    def has_read(self) -> bool:
        return self._has_read


@dataclass
class FakeProbes:
    """Live checks that answer what the test says (`notifications.health.Probes`): a check per name, failed
    when its name is in `down`, and a depth of `depth` messages for each `sqs:` name; `runs` counts the runs."""

    names: tuple[str, ...]
    clock: FakeClock
    down: set[str] = field(default_factory=set)
    depth: int = 0
    runs: int = 0

    def run(self) -> ProbeResults:
        self.runs += 1
        now = self.clock()
        checks = [
            CheckView(
                name=name,
                ok=name not in self.down,
                latency_ms=1.0,
                error=None if name not in self.down else "EndpointConnectionError",
                checked_at=now,
            )
            for name in self.names
        ]
        queues = [
            QueueView(
                name=name.removeprefix("sqs:"),
                visible=self.depth,
                in_flight=0,
                delayed=0,
                dead_letter=name == "sqs:dead_letter",
            )
            for name in self.names
            if name.startswith("sqs:") and name not in self.down
        ]
        return ProbeResults(checks, queues)


def health_snapshot(
    taken_at: float,
    *,
    mode: str = "NORMAL",
    reason: str = "all dependencies and providers are well",
    notices: dict[str, str] | None = None,
    breakers: list[BreakerView] | None = None,
    queue_depth: int = 0,
) -> Snapshot:
    """A snapshot as the health monitor stores one: the tables and queues probed, SES and SendGrid for email."""
    queues = ("priority", "standard", "batch", "retry", "dead_letter")
    return Snapshot.model_validate(
        {
            "mode": mode,
            "reason": reason,
            "taken_at": taken_at,
            "duration_ms": 42.0,
            "checks": [
                CheckView(name=name, ok=True, latency_ms=3.0, checked_at=taken_at)
                for name in ("dynamodb:notifications", "dynamodb:resilience", *(f"sqs:{queue}" for queue in queues))
            ],
            "queues": [
                QueueView(name=queue, visible=queue_depth, in_flight=1, delayed=0, dead_letter=queue == "dead_letter")
                for queue in queues
            ],
            "providers": [
                ProviderView(name="ses", channel=Channel.EMAIL, state="CLOSED", up=True),
                ProviderView(name="sendgrid", channel=Channel.EMAIL, state="CLOSED", up=True),
            ],
            "breakers": breakers or [],
            "notices": notices or {},
            "version": "7",
        }
    )
