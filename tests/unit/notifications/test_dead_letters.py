"""Dead letters over in-memory fakes: reading the DLQ takes nothing, each dead letter is explained by its record,
a redrive moves message by message (or hands the queue to a move task) and never loses or doubles a
notification, and reconciliation dead-letters a pending record whose message rests in the DLQ."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from notifications.budget import UNBOUNDED, TimeBudget
from notifications.clock import iso
from notifications.dead_letter_queue import SqsDeadLetterQueue
from notifications.dead_letters import (
    ABANDONED_REASON,
    REDRIVEN_BY_OPERATOR,
    DeadLetterClass,
    DeadLetterFilter,
    DeadLetterReconciler,
    DeadLetters,
    Peek,
    PeekedMessage,
    RedriveMethod,
    RedriveOrder,
)
from notifications.delivery import REDRIVEN_FROM_DLQ, Deliverer, DeliveryPolicy, Outcome
from notifications.errors import StoreUnavailable
from notifications.failures import delivery_classifier
from notifications.models import Channel, HistoryEntry, Priority, QueueMessage, Recipient, Status
from notifications.monitor import HealthMonitor
from notifications.probes import ProbeResults
from resilience import BreakerRegistry, InMemoryBreakerStore, NullBreakerMetrics, ResilienceSettings, RetryPolicy
from resilience.health import HealthThresholds
from resilience.mode import Mode
from tests.support.clock import FakeClock
from tests.support.fakes import FakeDeadLetterQueue, FakeEnqueuer, FakeProvider, FakeQueues, FakeStatusStore, http_error
from tests.support.records import make_record

if TYPE_CHECKING:
    from notifications.delivery import DeliveryResult
    from notifications.health_snapshot import Snapshot
    from notifications.models import NotificationRecord

MAX_RECEIVES = 5
HOOK = "https://hooks.example.com/x"


class Crash(BaseException):
    """The process dying mid-way (a timeout, a lost execution environment): no handler catches it."""


class World:
    """The DLQ, the status store, the work queues and a sender over them, on one clock."""

    def __init__(self, clock: FakeClock, *, move_task: bool = False) -> None:
        self.clock = clock
        self.store = FakeStatusStore(clock)
        self.dlq = FakeDeadLetterQueue(clock)
        self.enqueuer = FakeEnqueuer()
        self.dead_letters = DeadLetters(self.dlq, self.store, self.enqueuer, move_task=move_task, wait_seconds=0)
        self.webhook = FakeProvider("webhook", Channel.WEBHOOK, per_destination=True)
        self.sms = FakeProvider("twilio", Channel.SMS)
        self.breakers = BreakerRegistry(
            settings=ResilienceSettings(),
            store=InMemoryBreakerStore(),
            clock=clock,
            classifier=delivery_classifier,
            metrics=NullBreakerMetrics(),
            logger=logging.getLogger("tests.dead_letters"),
        )
        self.queues = FakeQueues()
        self.deliverer = Deliverer(
            self.store,
            {Channel.WEBHOOK: [self.webhook], Channel.SMS: [self.sms]},
            self.breakers,
            self.queues,
            DeliveryPolicy(
                max_receive_count=MAX_RECEIVES,
                backoff=RetryPolicy(base_seconds=5, cap_seconds=900, max_attempts=MAX_RECEIVES),
                deferral_horizon_seconds=24 * 3600.0,
            ),
            clock=clock,
            random=lambda: 0.5,
            requeue_dead_lettered=self.store.requeue_dead_lettered,
        )
        self._count = 0
        self._deliveries = 0

    def accept(self, **overrides: Any) -> NotificationRecord:
        self._count += 1
        now = iso(self.clock())
        fields: dict[str, Any] = {
            "id": f"n-{self._count}",
            "created_at": now,
            "updated_at": now,
            "recipient": Recipient(webhook_url=HOOK, phone="+447700900123"),
            "history": [HistoryEntry(status=Status.QUEUED, at=now, detail="accepted")],
        }
        record = make_record(**(fields | overrides))
        self.store.put(record)
        return record

    def deliver(self, notification_id: str, *, receive_count: int = 1) -> DeliveryResult:
        self._deliveries += 1
        return self.deliverer.deliver(
            QueueMessage(id=notification_id),
            owner=f"sender/{self._deliveries}",
            receive_count=receive_count,
            lease_seconds=55.0,
        )

    def dead_letter(self, provider: FakeProvider | None = None, **overrides: Any) -> NotificationRecord:
        """A notification whose retries ran out as the sender runs them: 4 transient failures, then the last
        receive's (a minute apart); SQS then moves its message to the DLQ."""
        failing = provider or self.webhook
        record = self.accept(**overrides)
        for receive in range(1, MAX_RECEIVES + 1):
            failing.failures.append(http_error(503))
            self.deliver(record.id, receive_count=receive)
            self.clock.advance(60)
        self.dlq.put(record.id)
        return self.view(record.id)

    def view(self, notification_id: str) -> NotificationRecord:
        found = self.store.get(notification_id)
        assert found is not None
        return found


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


def budget_of(calls: int) -> TimeBudget:
    """A budget that allows `calls` AWS calls, then none (the invocation's deadline is near)."""
    left = iter([100.0] * calls)
    return TimeBudget(lambda: next(left, 0.0), call_seconds=1.0, margin_seconds=0.0)


# ---------------------------------------------------------------------- reading takes nothing
def test_listing_reads_every_dead_letter_and_leaves_each_visible_at_once(world: World) -> None:
    # Given: 23 dead letters (three receives of 10, the last one short)
    dead = [world.dead_letter() for _ in range(23)]

    # When
    listing = world.dead_letters.find(DeadLetterFilter(), limit=100, budget=UNBOUNDED)

    # Then: each listed once, every message still in the queue and visible now (not after 30 s)
    assert sorted(letter.notification_id or "" for letter in listing.dead_letters) == sorted(r.id for r in dead)
    assert (listing.scanned, listing.truncated) == (23, False)
    assert world.dlq.visible_ids() == [record.id for record in dead]
    assert all(world.view(record.id).status is Status.DEAD_LETTERED for record in dead)


def test_a_listing_that_fails_half_way_still_makes_every_message_visible_again(world: World) -> None:
    # Given: dead letters, and a status store that stops answering
    dead = [world.dead_letter() for _ in range(3)]
    world.store.unavailable = True

    # When
    with pytest.raises(StoreUnavailable):
        world.dead_letters.find(DeadLetterFilter(), limit=100, budget=UNBOUNDED)

    # Then
    assert world.dlq.visible_ids() == [record.id for record in dead]


def test_a_reader_whose_release_fails_delays_the_messages_only_by_their_short_visibility(
    world: World, clock: FakeClock
) -> None:
    # Given: a DLQ that cannot make messages visible again
    dead = world.dead_letter()
    world.dlq.fail_releases = RuntimeError("SQS unreachable")

    # When
    listing = world.dead_letters.find(DeadLetterFilter(), limit=10, budget=UNBOUNDED)

    # Then: the reading still answers; the message comes back on its own within 30 s, never lost
    assert [letter.notification_id for letter in listing.dead_letters] == [dead.id]
    assert world.dlq.visible_ids() == []
    clock.advance(30)
    assert world.dlq.visible_ids() == [dead.id]


def test_a_listing_stops_at_its_limit_and_says_more_may_match(world: World) -> None:
    # Given
    for _ in range(15):
        world.dead_letter()

    # When
    listing = world.dead_letters.find(DeadLetterFilter(), limit=5, budget=UNBOUNDED)

    # Then: the newest failures first, and all 15 still visible
    assert len(listing.dead_letters) == 5 and listing.truncated
    assert [letter.last_failure_at for letter in listing.dead_letters] == sorted(
        (letter.last_failure_at for letter in listing.dead_letters), reverse=True
    )
    assert len(world.dlq.visible_ids()) == 15


def test_a_peek_holds_a_message_received_twice_once_and_releases_its_newest_receipt(clock: FakeClock) -> None:
    # Given: SQS handing one message out twice in one reading (at-least-once), with a new receipt each time
    first = PeekedMessage("m-1", "receipt-1", "n-1")
    again = PeekedMessage("m-1", "receipt-2", "n-1")
    answers = [[first], [again], []]
    released: list[PeekedMessage] = []

    class TwiceQueue(FakeDeadLetterQueue):
        def receive(self, count: int, *, visibility_seconds: int, wait_seconds: int) -> list[PeekedMessage]:
            return answers.pop(0)

        def release(self, messages: Any) -> None:
            released.extend(messages)

    # When
    with Peek(TwiceQueue(clock), allows_call=lambda: True, max_messages=100, wait_seconds=0) as peek:
        batches = list(peek.batches())

    # Then
    assert batches == [[first]]
    assert (peek.scanned, peek.exhausted) == (1, True)
    assert released == [again]


# ---------------------------------------------------------------------- what a dead letter is
def test_each_dead_letter_says_why_it_is_there_from_its_record(world: World, clock: FakeClock) -> None:
    # Given: retries exhausted on a provider's 503s
    transient = world.dead_letter()
    # ... on an error in Herald's own code (reading the mode fails after the claim), on the last receive
    internal = world.accept()

    def broken_mode() -> Any:
        raise KeyError("mode")

    world.deliverer._mode = broken_mode
    world.deliver(internal.id, receive_count=MAX_RECEIVES)
    world.dlq.put(internal.id)
    world.deliverer._mode = lambda: Mode.NORMAL
    # ... deferred past the horizon (its endpoint's breaker forced open for a day)
    no_channel = world.accept(created_at=iso(clock() - 25 * 3600))
    world.breakers.force_open(f"webhook:{HOOK}")
    world.deliver(no_channel.id)
    world.breakers.reset(f"webhook:{HOOK}")
    world.dlq.put(no_channel.id)
    # ... a sender that died holding the lease (the record still queued), one delivered since, and no record at all
    abandoned = world.accept()
    world.store.claim(abandoned.id, "died", 55.0)
    world.dlq.put(abandoned.id)
    finished = world.accept()
    world.deliver(finished.id)
    world.dlq.put(finished.id)
    world.dlq.put("never-accepted")
    world.dlq.put(body="not a Herald message")

    # When
    listing = world.dead_letters.find(DeadLetterFilter(), limit=100, budget=UNBOUNDED)

    # Then
    by_id = {letter.notification_id: letter for letter in listing.dead_letters}
    assert by_id[transient.id].error_class is DeadLetterClass.TRANSIENT
    assert by_id[internal.id].error_class is DeadLetterClass.INTERNAL
    assert by_id[no_channel.id].error_class is DeadLetterClass.NO_CHANNEL
    assert by_id[abandoned.id].error_class is DeadLetterClass.ABANDONED
    assert by_id[finished.id].error_class is DeadLetterClass.FINISHED
    assert by_id["never-accepted"].error_class is DeadLetterClass.UNKNOWN
    assert by_id[None].error_class is DeadLetterClass.UNKNOWN
    # ... with its channel, provider, last error, attempts, status, and its first and last failure
    letter = by_id[transient.id]
    assert (letter.channel, letter.provider, letter.error, letter.attempts, letter.status) == (
        Channel.WEBHOOK,
        "webhook",
        "provider answered HTTP 503",
        MAX_RECEIVES,
        Status.DEAD_LETTERED,
    )
    failures = [entry.at for entry in transient.history[1:]]
    assert (letter.first_failure_at, letter.last_failure_at) == (failures[0], failures[-1])
    assert by_id["never-accepted"].status is None and by_id["never-accepted"].channel is None


def test_filters_pick_dead_letters_by_channel_provider_class_and_last_failure_time(
    world: World, clock: FakeClock
) -> None:
    # Given: a webhook dead-lettered early, an SMS one an hour later, and one deferred past the horizon
    early = world.dead_letter()
    clock.advance(3600)
    sms = world.dead_letter(world.sms, channel=Channel.SMS)
    later = world.accept(created_at=iso(clock() - 25 * 3600))
    world.breakers.force_open(f"webhook:{HOOK}")
    world.deliver(later.id)
    world.dlq.put(later.id)
    middle = iso(clock() - 1800)

    def found(**filters: Any) -> set[str | None]:
        listing = world.dead_letters.find(DeadLetterFilter(**filters), limit=100, budget=UNBOUNDED)
        return {letter.notification_id for letter in listing.dead_letters}

    # When / Then
    assert found(channel="sms") == {sms.id}
    assert found(provider="webhook") == {early.id}
    assert found(error_class="no_channel") == {later.id}
    assert found(error_class="transient") == {early.id, sms.id}
    assert found(until=middle) == {early.id}
    assert found(since=middle) == {sms.id, later.id}
    assert found(since=middle, channel="webhook") == {later.id}


@pytest.mark.parametrize(
    "filters",
    [
        {"channel": "fax"},
        {"error_class": "bad"},
        {"since": "yesterday"},
        {"since": "2026-11-29T10:00:00Z", "until": "2026-11-29T09:00:00Z"},
        {"provider": "Not A Provider!"},
        {"colour": "red"},
    ],
)
def test_a_bad_filter_is_refused(filters: dict[str, str]) -> None:
    with pytest.raises(ValueError):  # pydantic's ValidationError: the admin API answers 422 naming the field
        DeadLetterFilter.model_validate(filters)


# ---------------------------------------------------------------------- redrive, message by message
def test_a_redrive_requeues_the_record_sends_the_message_to_its_queue_then_deletes_it(world: World) -> None:
    # Given: a normal and a high-priority webhook dead-lettered, and an SMS one the filter leaves
    normal = world.dead_letter()
    high = world.dead_letter(priority=Priority.HIGH, queue="priority")
    sms = world.dead_letter(world.sms, channel=Channel.SMS)
    steps: list[str] = []
    world.store.requeue_dead_lettered = _spy(world.store.requeue_dead_lettered, steps, "requeue")  # type: ignore[method-assign]
    world.enqueuer.send_many = _spy(world.enqueuer.send_many, steps, "send")  # type: ignore[method-assign]
    world.dlq.delete = _spy(world.dlq.delete, steps, "delete")  # type: ignore[method-assign]

    # When
    result = world.dead_letters.redrive(
        RedriveOrder(filters=DeadLetterFilter(channel=Channel.WEBHOOK)), budget=UNBOUNDED
    )

    # Then: both webhooks moved, each record queued with the redrive in its history, each message on its queue
    assert (result.method, result.matched, result.moved, result.truncated) == (
        RedriveMethod.MESSAGE_BY_MESSAGE,
        2,
        2,
        False,
    )
    assert set(result.notification_ids) == {normal.id, high.id}
    assert steps == ["requeue", "requeue", "send", "delete"]
    for record in (normal, high):
        after = world.view(record.id)
        assert (after.status, after.history[-1].detail, after.reason) == (
            Status.QUEUED,
            REDRIVEN_BY_OPERATOR,
            REDRIVEN_BY_OPERATOR,
        )
        assert after.id == record.id
    assert world.enqueuer.on("standard") == [normal.id] and world.enqueuer.on("priority") == [high.id]
    # ... and only the SMS one is left in the DLQ, visible
    assert world.dlq.visible_ids() == [sms.id] == world.dlq.ids()
    # ... and the sender delivers them (each once)
    assert [world.deliver(record.id).outcome for record in (normal, high)] == [Outcome.SENT, Outcome.SENT]


def test_a_copy_that_fails_again_within_the_same_redrive_is_left_for_the_next_one(world: World) -> None:
    # Given: a dead letter whose redriven copy fails again at once (the receiver is still down), so its
    # notification is dead-lettered again and a new message reaches the DLQ while the redrive is still reading
    dead = world.dead_letter()
    send_many = world.enqueuer.send_many

    def send_and_fail_again(outgoing: Any, budget: Any) -> Any:
        refused = send_many(outgoing, budget)
        for item in outgoing:
            world.store.put(world.view(item.message.id).model_copy(update={"status": Status.DEAD_LETTERED}))
            world.dlq.put(item.message.id)
        return refused

    world.enqueuer.send_many = send_and_fail_again  # type: ignore[method-assign]

    # When
    result = world.dead_letters.redrive(
        RedriveOrder(filters=DeadLetterFilter(channel=Channel.WEBHOOK)), budget=UNBOUNDED
    )

    # Then: the notification was moved once in this call, and its new dead letter waits, visible
    assert (result.matched, result.moved, result.notification_ids) == (1, 1, [dead.id])
    assert world.dlq.visible_ids() == [dead.id]


def test_a_dry_run_changes_nothing_and_answers_what_would_move(world: World) -> None:
    # Given
    dead = [world.dead_letter() for _ in range(3)]
    before = [world.view(record.id) for record in dead]

    # When
    result = world.dead_letters.redrive(RedriveOrder(dry_run=True), budget=UNBOUNDED)

    # Then
    assert (result.dry_run, result.matched, result.moved) == (True, 3, 0)
    assert result.notification_ids == [record.id for record in dead]
    assert [world.view(record.id) for record in dead] == before
    assert world.enqueuer.sent == []
    assert world.dlq.visible_ids() == [record.id for record in dead]


def test_a_redrive_that_dies_between_sending_and_deleting_loses_nothing_and_delivers_once(world: World) -> None:
    # Given: a dead letter, and a redrive that dies after sending the copy, before deleting the DLQ message
    dead = world.dead_letter()
    world.dlq.fail_deletes = Crash()

    # When
    with pytest.raises(Crash):
        world.dead_letters.redrive(RedriveOrder(), budget=UNBOUNDED)
    world.dlq.fail_deletes = None

    # Then: both copies exist (the one sent, the one still in the DLQ, visible again), and the sender run over
    # both delivers the notification once: the second copy finds it sent and is dropped
    assert world.enqueuer.on("standard") == [dead.id]
    assert world.dlq.visible_ids() == [dead.id]
    outcomes = [world.deliver(dead.id).outcome, world.deliver(dead.id).outcome]
    assert outcomes == [Outcome.SENT, Outcome.DUPLICATE]
    assert [call[0] for call in world.webhook.calls].count(dead.id) == MAX_RECEIVES + 1  # 5 failed, 1 delivered
    # ... and a later redrive leaves the stale copy (its notification is no longer dead-lettered)
    again = world.dead_letters.redrive(RedriveOrder(), budget=UNBOUNDED)
    assert (again.matched, again.moved) == (0, 0)


def test_a_redrive_that_dies_before_sending_leaves_the_message_and_reconciliation_restores_the_record(
    world: World,
) -> None:
    # Given: a redrive that puts the record back to queued, then dies before the copy is sent
    dead = world.dead_letter()
    world.enqueuer.send_many = _raises(Crash())  # type: ignore[method-assign]
    with pytest.raises(Crash):
        world.dead_letters.redrive(RedriveOrder(), budget=UNBOUNDED)
    assert world.view(dead.id).status is Status.QUEUED

    # When: the health monitor's next reconciliation
    reconciled = DeadLetterReconciler(world.dlq, world.store, clock=world.clock, wait_seconds=0).run()

    # Then: dead-lettered again, its message still in the DLQ, redrivable
    assert reconciled == 1
    assert world.view(dead.id).status is Status.DEAD_LETTERED
    assert world.dlq.visible_ids() == [dead.id]


def test_a_redrive_stops_before_its_deadline_and_says_how_far_it_got(world: World) -> None:
    # Given: 10 dead letters, and time for only a few calls
    dead = [world.dead_letter() for _ in range(10)]

    # When: time for the receive and four records, then no more
    result = world.dead_letters.redrive(RedriveOrder(), budget=budget_of(5))

    # Then: it matched the batch it read, moved four of it (each record, its copy, its deletion), and says so
    assert (result.matched, result.moved, result.truncated) == (10, 4, True)
    moved = [record.id for record in dead[:4]]
    assert world.enqueuer.on("standard") == moved
    assert [world.view(record.id).status for record in dead] == [Status.QUEUED] * 4 + [Status.DEAD_LETTERED] * 6
    assert world.dlq.visible_ids() == [record.id for record in dead[4:]] == world.dlq.ids()


def test_max_bounds_a_redrive_and_a_record_changed_meanwhile_is_left(world: World) -> None:
    # Given: 5 dead letters; a redrive of at most 3, and one record redriven by someone else meanwhile
    dead = [world.dead_letter() for _ in range(5)]
    raced = dead[1]
    real = world.store.get_many

    def read_then_race(ids: Any) -> Any:
        found = real(ids)
        world.store.requeue_dead_lettered(world.view(raced.id), "another redrive")
        return found

    world.store.get_many = read_then_race  # type: ignore[method-assign]

    # When
    result = world.dead_letters.redrive(RedriveOrder(max_messages=3), budget=UNBOUNDED)

    # Then: 3 matched, 2 moved; the raced one is not sent twice and its message stays in the DLQ
    assert (result.matched, result.moved, result.truncated) == (3, 2, True)
    assert world.enqueuer.on("standard") == [dead[0].id, dead[2].id]
    assert world.dlq.ids() == [raced.id, dead[3].id, dead[4].id]
    assert world.view(raced.id).history[-1].detail == "another redrive"


def test_a_queue_that_refuses_stops_the_redrive_and_loses_nothing(world: World) -> None:
    # Given
    dead = world.dead_letter()
    world.enqueuer.unavailable = True

    # When
    result = world.dead_letters.redrive(RedriveOrder(), budget=UNBOUNDED)
    reconciled = DeadLetterReconciler(world.dlq, world.store, clock=world.clock, wait_seconds=0).run()

    # Then: nothing moved, the message is still in the DLQ, and reconciliation dead-letters the record again
    assert (result.matched, result.moved, result.truncated) == (1, 0, True)
    assert world.dlq.visible_ids() == [dead.id]
    assert reconciled == 1 and world.view(dead.id).status is Status.DEAD_LETTERED


# ---------------------------------------------------------------------- redrive by a move task
class StubSqs:
    """An SQS client with only what the move-task path calls, answering as SQS does and recording each call."""

    def __init__(self, bodies: list[str]) -> None:
        self.bodies = bodies
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._received = False

    def get_queue_attributes(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("GetQueueAttributes", params))
        visible = "0" if self._received else str(len(self.bodies))
        return {"Attributes": {"ApproximateNumberOfMessages": visible, "ApproximateNumberOfMessagesNotVisible": "0"}}

    def receive_message(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("ReceiveMessage", params))
        if self._received:
            return {}
        self._received = True
        messages = [
            {"MessageId": f"m-{n}", "ReceiptHandle": f"r-{n}", "Body": body}
            for n, body in enumerate(self.bodies[: params["MaxNumberOfMessages"]])
        ]
        return {"Messages": messages}

    def change_message_visibility_batch(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("ChangeMessageVisibilityBatch", params))
        return {"Successful": [{"Id": entry["Id"]} for entry in params["Entries"]], "Failed": []}

    def start_message_move_task(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("StartMessageMoveTask", params))
        return {"TaskHandle": "task-handle-1"}

    def named(self, action: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == action]


DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:herald-DeadLetterQueue"
STANDARD_ARN = "arn:aws:sqs:us-east-1:123456789012:herald-StandardQueue"


def test_an_unfiltered_redrive_hands_the_queue_to_a_move_task_and_the_sender_requeues_each_record(
    world: World,
) -> None:
    # Given: two dead letters, and a DLQ on an SQS that has move tasks
    dead = [world.dead_letter(), world.dead_letter()]
    sqs = StubSqs([QueueMessage(id=record.id).model_dump_json() for record in dead])
    queue = SqsDeadLetterQueue("https://sqs/dlq", sqs, arn=DLQ_ARN, move_to_arn=STANDARD_ARN)  # type: ignore[arg-type]
    dead_letters = DeadLetters(queue, world.store, world.enqueuer, move_task=True, wait_seconds=0)

    # When
    result = dead_letters.redrive(RedriveOrder(), budget=UNBOUNDED)

    # Then: one move task from the DLQ to the standard queue, started after the peek released what it read
    assert (result.method, result.matched, result.moved, result.task_handle) == (
        RedriveMethod.MOVE_TASK,
        2,
        2,
        "task-handle-1",
    )
    assert result.notification_ids == [record.id for record in dead]
    assert sqs.named("StartMessageMoveTask") == [{"SourceArn": DLQ_ARN, "DestinationArn": STANDARD_ARN}]
    actions = [name for name, _ in sqs.calls]
    assert actions.index("ChangeMessageVisibilityBatch") < actions.index("StartMessageMoveTask")
    [release] = sqs.named("ChangeMessageVisibilityBatch")
    assert {(e["ReceiptHandle"], e["VisibilityTimeout"]) for e in release["Entries"]} == {("r-0", 0), ("r-1", 0)}
    # ... the task changes no record, and Herald sends nothing itself
    assert all(world.view(record.id).status is Status.DEAD_LETTERED for record in dead)
    assert world.enqueuer.sent == []

    # When: SQS moves the messages and the sender receives them
    outcomes = [world.deliver(record.id).outcome for record in dead]

    # Then: each record went back to queued (redriven) and was delivered, once
    assert outcomes == [Outcome.SENT, Outcome.SENT]
    for record in dead:
        statuses = [(entry.status, entry.detail) for entry in world.view(record.id).history[-2:]]
        assert statuses[0] == (Status.QUEUED, REDRIVEN_FROM_DLQ) and statuses[1][0] is Status.SENT
    assert [world.deliver(record.id).outcome for record in dead] == [Outcome.DUPLICATE, Outcome.DUPLICATE]


def test_a_dry_run_or_a_filtered_redrive_starts_no_move_task(world: World) -> None:
    # Given
    world.dead_letter()
    webhook = world.dead_letter()
    sqs = StubSqs([QueueMessage(id=webhook.id).model_dump_json()])
    dry = DeadLetters(
        SqsDeadLetterQueue("https://sqs/dlq", sqs, arn=DLQ_ARN, move_to_arn=STANDARD_ARN),  # type: ignore[arg-type]
        world.store,
        world.enqueuer,
        move_task=True,
        wait_seconds=0,
    )
    filtered = DeadLetters(world.dlq, world.store, world.enqueuer, move_task=True, wait_seconds=0)

    # When
    planned = dry.redrive(RedriveOrder(dry_run=True), budget=UNBOUNDED)
    bounded = filtered.redrive(RedriveOrder(max_messages=1), budget=UNBOUNDED)

    # Then
    assert (planned.method, planned.moved, planned.task_handle) == (RedriveMethod.MOVE_TASK, 0, None)
    assert sqs.named("StartMessageMoveTask") == []
    assert (bounded.method, bounded.moved) == (RedriveMethod.MESSAGE_BY_MESSAGE, 1)
    assert world.dlq.move_tasks == []


def test_without_the_requeue_hook_a_message_back_from_the_dlq_is_dropped_as_before(world: World) -> None:
    # Given: a sender built without the hook
    dead = world.dead_letter()
    world.deliverer._requeue_dead_lettered = None

    # When
    result = world.deliver(dead.id)

    # Then
    assert result.outcome is Outcome.DUPLICATE
    assert world.view(dead.id).status is Status.DEAD_LETTERED


# ---------------------------------------------------------------------- reconciliation
def test_reconciliation_dead_letters_pending_records_whose_messages_rest_in_the_dlq(
    world: World, clock: FakeClock
) -> None:
    # Given: one already dead-lettered, a sender died holding the lease (expired now), a record never claimed (the
    # table was down on every receive), and one being delivered right now by another copy (a live lease)
    dead = world.dead_letter()
    died = world.accept()
    world.store.claim(died.id, "died", 30.0)
    never_claimed = world.accept()
    clock.advance(60)
    in_delivery = world.accept()
    world.store.claim(in_delivery.id, "alive", 55.0)
    for record in (died, never_claimed, in_delivery):
        world.dlq.put(record.id)
    before = world.view(dead.id)

    # When
    reconciled = DeadLetterReconciler(world.dlq, world.store, clock=clock, wait_seconds=0).run()

    # Then
    assert reconciled == 2
    for record in (died, never_claimed):
        after = world.view(record.id)
        assert (after.status, after.reason, after.history[-1].detail) == (
            Status.DEAD_LETTERED,
            ABANDONED_REASON,
            ABANDONED_REASON,
        )
        assert not world.store.leased(record.id)
    assert world.view(in_delivery.id).status is Status.QUEUED and world.store.leased(in_delivery.id)
    assert world.view(dead.id) == before
    # ... it took nothing from the DLQ, and the reconciled ones are redrivable
    assert len(world.dlq.visible_ids()) == 4
    abandoned = DeadLetterFilter(error_class=DeadLetterClass.ABANDONED)
    listed = world.dead_letters.find(abandoned, limit=10, budget=UNBOUNDED)
    assert {letter.notification_id for letter in listed.dead_letters} == {died.id, never_claimed.id, in_delivery.id}
    redriven = world.dead_letters.redrive(RedriveOrder(filters=abandoned), budget=UNBOUNDED)
    assert (redriven.matched, redriven.moved) == (2, 2)


def test_reconciliation_reads_at_most_its_bound_per_run(world: World, clock: FakeClock) -> None:
    # Given: 30 records whose senders died, their messages in the DLQ
    records = [world.accept() for _ in range(30)]
    for record in records:
        world.dlq.put(record.id)

    # When: a run that reads at most 20 messages
    reconciled = DeadLetterReconciler(world.dlq, world.store, clock=clock, max_messages=20, wait_seconds=0).run()

    # Then: 20 read (two receives) and reconciled; the rest wait for a run that SQS hands them to; all visible
    assert (reconciled, world.dlq.receive_calls) == (20, 2)
    statuses = [world.view(record.id).status for record in records]
    assert statuses.count(Status.DEAD_LETTERED) == 20 and statuses.count(Status.QUEUED) == 10
    assert len(world.dlq.visible_ids()) == 30


class _Snapshots:
    def __init__(self) -> None:
        self.stored: Snapshot | None = None

    def read(self) -> Snapshot | None:
        return self.stored

    def write(self, snapshot: Snapshot) -> bool:
        self.stored = snapshot
        return True


class _NoProbes:
    def run(self) -> ProbeResults:
        return ProbeResults([], [])


@pytest.mark.parametrize("fails", [False, True], ids=["reconciles", "fails"])
def test_reconciliation_is_a_step_of_the_monitor_run_that_never_fails_it(clock: FakeClock, fails: bool) -> None:
    # Given: a monitor whose reconciliation step reconciles 3, or fails
    def reconcile() -> int:
        if fails:
            raise RuntimeError("DLQ unreachable")
        return 3

    snapshots = _Snapshots()
    monitor = HealthMonitor(
        _NoProbes(),  # type: ignore[arg-type]
        list,
        snapshots,  # type: ignore[arg-type]
        {},
        HealthThresholds(),
        clock=clock,
        reconcile=reconcile,
    )

    # When
    result = monitor.run()

    # Then: the snapshot is stored either way; the result says how many were reconciled (None: the step failed)
    assert result.written and snapshots.stored is not None
    assert result.reconciled == (None if fails else 3)


# ---------------------------------------------------------------------- helpers
def _spy(call: Any, steps: list[str], name: str) -> Any:
    def spied(*args: Any, **kwargs: Any) -> Any:
        steps.append(name)
        return call(*args, **kwargs)

    return spied


def _raises(error: BaseException) -> Any:
    def raising(*args: Any, **kwargs: Any) -> Any:
        raise error

    return raising
