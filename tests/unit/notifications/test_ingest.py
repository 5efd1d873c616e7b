"""The ingest path over in-memory fakes: inbound SQS messages -> notifications, as the API accepts them.

The rules under test are `notifications.ingest`'s: a message is one notification or the envelope
`{"notifications": [...]}`; its idempotency key is the notification's own, else the SQS message id
(`<message id>:<index>` in an envelope), all in the inbound client's scope; a message that can never be
accepted goes to the inbound dead-letter queue at once (only the rejected notifications of an envelope,
each with the key it was given) and is done; a failure that can pass keeps the message for SQS to hand
out again, leaving no record without its message.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ingest.app import Dependencies, handle
from local.lambda_.context import LambdaContext
from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.errors import DependencyUnavailable, QueueUnavailable, StoreUnavailable
from notifications.ingest import Ingested, Ingestor
from notifications.models import Channel, Priority
from notifications.observability import metrics
from notifications.requests import SQS_MAX_MESSAGE_BYTES
from tests.support.clock import FakeClock
from tests.support.events import load_event
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeStatusStore

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

CLIENT = "k7v2n4p8q1"  # INBOUND_CLIENT_ID: the client the inbound queue belongs to
MESSAGE_ID = "3f2a9c1e-7b4d-4e8a-9f60-2d1c5b7a8e94"
EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}
PUSH = {"channel": "push", "recipient": {"device_token": "d3v1c3"}, "body": "Hello"}  # no push provider here
BAD_EMAIL = {**EMAIL, "recipient": {"email": "nope"}}


@dataclass(frozen=True)
class Rejected:
    """One message put on the inbound dead-letter queue, with its attributes."""

    body: str
    reason: str
    fields: tuple[str, ...]
    source_message_id: str


@dataclass
class FakeRejectQueue:
    """The inbound dead-letter queue (`notifications.ingest.RejectQueue`) in memory."""

    rejected: list[Rejected] = field(default_factory=list)
    unavailable: bool = False

    def reject(self, body: str, *, reason: str, fields: Sequence[str], source_message_id: str) -> None:
        if self.unavailable:
            raise QueueUnavailable("inbound dead-letter queue unavailable (EndpointConnectionError)")
        self.rejected.append(Rejected(body, reason, tuple(fields), source_message_id))


@dataclass
class Inbound:
    """The Ingestor for the inbound client, over the fake store, queues and dead-letter queue."""

    clock: FakeClock
    store: FakeStatusStore
    enqueuer: FakeEnqueuer
    rejects: FakeRejectQueue
    ingestor: Ingestor

    def ingest(self, body: Any, message_id: str = MESSAGE_ID) -> Ingested:
        """One inbound message: `body` as sent if a string, else JSON-encoded."""
        return self.ingestor.ingest(message_id, body if isinstance(body, str) else json.dumps(body))

    def nothing_kept(self) -> bool:
        """No record, no message on a queue, nothing dead-lettered."""
        return self.store.count() == 0 and self.enqueuer.sent == [] and self.rejects.rejected == []


def id_of(key: str) -> str:
    """The notification id an idempotency key gives in the inbound client's scope."""
    return TEST_IDS.for_key(CLIENT, key)


def keyed(notification: dict[str, Any], key: str) -> dict[str, Any]:
    return {**notification, "idempotency_key": key}


def build(max_item_bytes: int = 256 * 1024) -> Inbound:
    clock = FakeClock()
    store, enqueuer, rejects = FakeStatusStore(clock), FakeEnqueuer(), FakeRejectQueue()
    policy = AcceptPolicy(
        enabled_channels=frozenset({Channel.EMAIL, Channel.SMS, Channel.WEBHOOK}),
        allow_private_webhook_targets=False,
        retention_seconds=30 * 86_400,
    )
    acceptor = NotificationAcceptor(store, enqueuer, policy, clock=clock, ids=TEST_IDS)
    ingestor = Ingestor(acceptor, rejects, scope=CLIENT, max_item_bytes=max_item_bytes)
    return Inbound(clock, store, enqueuer, rejects, ingestor)


@pytest.fixture
def inbound() -> Inbound:
    return build()


@pytest.fixture
def fresh_metrics() -> Iterator[None]:
    """No metric left over from another test, and none left for the next."""
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def metric_values() -> dict[str, list[float]]:
    """The metrics the handler added, by name, with their values in order."""
    return {name: list(metric["Value"]) for name, metric in metrics.metric_set.items()}


def context() -> LambdaContext:
    return LambdaContext.for_invocation("ingest", "arn:aws:lambda:us-east-1:123456789012:function:ingest", 512, 10)


def sqs_event(*messages: tuple[str, Any]) -> dict[str, Any]:
    """An SQS event from the inbound queue: the sample's record shape with these (message id, body) pairs."""
    template = load_event("sqs_inbound_batch.json")["Records"][0]
    return {
        "Records": [
            {**template, "messageId": message_id, "body": body if isinstance(body, str) else json.dumps(body)}
            for message_id, body in messages
        ]
    }


# ---------------------------------------------------------------------- one notification
def test_a_message_becomes_one_queued_notification_keyed_by_its_message_id(inbound: Inbound) -> None:
    # Given a notification with no idempotency key of its own

    # When
    ingested = inbound.ingest(EMAIL)

    # Then one record, in the inbound client's scope under the message id, and one message on its queue
    assert ingested == Ingested(accepted=1)
    notification_id = id_of(MESSAGE_ID)
    record = inbound.store.get(notification_id)
    assert record is not None
    assert (record.idempotency_key, record.channel, record.queue) == (MESSAGE_ID, Channel.EMAIL, "standard")
    assert inbound.enqueuer.sent == [("standard", notification_id, "normal")]
    assert inbound.store.count() == 1 and inbound.rejects.rejected == []


def test_a_notifications_own_idempotency_key_is_used_rather_than_the_message_id(inbound: Inbound) -> None:
    # When
    ingested = inbound.ingest(keyed(EMAIL, "order-1"))

    # Then
    assert ingested == Ingested(accepted=1)
    assert inbound.store.get(id_of("order-1")) is not None
    assert inbound.store.get(id_of(MESSAGE_ID)) is None
    assert inbound.enqueuer.sent == [("standard", id_of("order-1"), "normal")]


@pytest.mark.parametrize(
    ("priority", "queue"),
    [("low", "standard"), ("normal", "standard"), ("high", "priority"), ("critical", "priority")],
)
def test_high_and_critical_notifications_go_to_the_priority_queue(inbound: Inbound, priority: str, queue: str) -> None:
    # When
    inbound.ingest({**EMAIL, "priority": priority})

    # Then
    assert inbound.enqueuer.sent == [(queue, id_of(MESSAGE_ID), priority)]


# ---------------------------------------------------------------------- the batch envelope
def test_an_envelope_is_accepted_through_the_batch_queue_and_keyless_items_get_message_id_and_index(
    inbound: Inbound,
) -> None:
    # Given an envelope: a keyless and a keyed notification, and a critical one
    envelope = {"notifications": [EMAIL, keyed(WEBHOOK, "order-2"), {**EMAIL, "priority": "critical"}]}

    # When
    ingested = inbound.ingest(envelope)

    # Then all three accepted, keyed `<message id>:<index>` unless they had a key; normal ones on the batch queue
    assert ingested == Ingested(accepted=3)
    ids = [id_of(f"{MESSAGE_ID}:0"), id_of("order-2"), id_of(f"{MESSAGE_ID}:2")]
    assert inbound.enqueuer.on("batch") == ids[:2]
    assert inbound.enqueuer.on("priority") == [ids[2]]
    assert inbound.enqueuer.batches == 1
    keys = []
    for notification_id in ids:
        record = inbound.store.get(notification_id)
        assert record is not None
        keys.append(record.idempotency_key)
    assert keys == [f"{MESSAGE_ID}:0", "order-2", f"{MESSAGE_ID}:2"]
    assert inbound.store.count() == 3 and inbound.rejects.rejected == []


def test_an_envelope_of_exactly_100_notifications_is_accepted(inbound: Inbound) -> None:
    # When
    ingested = inbound.ingest({"notifications": [EMAIL] * 100})

    # Then
    assert ingested == Ingested(accepted=100)
    assert len(set(inbound.enqueuer.on("batch"))) == 100


# ---------------------------------------------------------------------- duplicates
@pytest.mark.parametrize(
    ("body", "notifications"),
    [(EMAIL, 1), (keyed(EMAIL, "order-3"), 1), ({"notifications": [EMAIL, keyed(WEBHOOK, "order-4"), EMAIL]}, 3)],
    ids=["keyless", "keyed", "envelope"],
)
def test_the_same_message_delivered_twice_makes_its_notifications_once_and_sends_their_messages_again(
    inbound: Inbound, body: dict[str, Any], notifications: int
) -> None:
    # Given the message handled once
    first = inbound.ingest(body)
    sent = list(inbound.enqueuer.sent)

    # When SQS hands it out again (same message id)
    second = inbound.ingest(body)

    # Then the second time replays every notification, makes no record, and sends each message again (none
    # was attempted yet: a first message may have been lost), for a sender to drop as a duplicate
    assert first == Ingested(accepted=notifications)
    assert second == Ingested(replayed=notifications)
    assert len(sent) == notifications
    assert inbound.enqueuer.sent == sent + sent
    assert inbound.store.count() == notifications

    # And once a sender has claimed them, a third delivery replays them and sends nothing
    for _, notification_id, _ in sent:
        assert inbound.store.claim(notification_id, "sender-1", 30.0).granted
    assert inbound.ingest(body) == Ingested(replayed=notifications)
    assert inbound.enqueuer.sent == sent + sent
    assert inbound.store.count() == notifications


def test_one_idempotency_key_under_two_message_ids_is_one_notification(inbound: Inbound) -> None:
    # Given the producer sent the same notification twice (two SQS messages), with one idempotency key
    first = inbound.ingest(keyed(EMAIL, "order-5"), message_id="m-1")

    # When
    second = inbound.ingest(keyed(EMAIL, "order-5"), message_id="m-2")

    # Then one record; the replay, finding it never attempted, sends its message again
    assert (first, second) == (Ingested(accepted=1), Ingested(replayed=1))
    assert inbound.enqueuer.sent == [("standard", id_of("order-5"), "normal")] * 2
    assert inbound.store.count() == 1


def test_a_body_with_a_null_idempotency_key_is_keyed_by_its_message_id(inbound: Inbound) -> None:
    # Given a producer that always writes the field, null when it has no key
    body = {**EMAIL, "idempotency_key": None}

    # When SQS delivers the message twice
    first = inbound.ingest(body)
    second = inbound.ingest(body)

    # Then it is one notification, under the message id, its message sent again by the replay
    assert (first, second) == (Ingested(accepted=1), Ingested(replayed=1))
    assert inbound.enqueuer.sent == [("standard", id_of(MESSAGE_ID), "normal")] * 2
    assert inbound.store.count() == 1


# ---------------------------------------------------------------------- poison messages
OVERSIZED = json.dumps({**EMAIL, "data": {"blob": "z" * SQS_MAX_MESSAGE_BYTES}})


@pytest.mark.parametrize(
    ("body", "reason", "fields"),
    [
        ("{not json", "the request body is not valid JSON (line 1, column 2)", ()),
        ("[1, 2]", "the request body must be a JSON object", ("body",)),
        ('"hello"', "the request body must be a JSON object", ("body",)),
        (json.dumps(BAD_EMAIL), "the request is not a valid notification", ("recipient.email",)),
        (json.dumps({**EMAIL, "colour": "red"}), "the request is not a valid notification", ("colour",)),
        (json.dumps({**EMAIL, "subject": None}), "the request is not a valid notification", ("body",)),
        (json.dumps(keyed(EMAIL, "has space")), "the request is not a valid notification", ("idempotency_key",)),
        (OVERSIZED, f"the request body exceeds {SQS_MAX_MESSAGE_BYTES} bytes", ()),
        (json.dumps(PUSH), "channel not available", ("channel",)),
        (json.dumps({"notifications": []}), "the request is not a valid batch", ("notifications",)),
        (json.dumps({"notifications": [EMAIL] * 101}), "the request is not a valid batch", ("notifications",)),
        (json.dumps({"notifications": EMAIL}), "the request is not a valid batch", ("notifications",)),
        (json.dumps({"notifications": [EMAIL], "extra": 1}), "the request is not a valid batch", ("extra",)),
    ],
    ids=[
        "not-json",
        "array",
        "string",
        "invalid-field",
        "unknown-field",
        "email-without-subject",
        "bad-idempotency-key",
        "over-256-KiB",
        "channel-without-provider",
        "empty-envelope",
        "envelope-of-101",
        "envelope-not-a-list",
        "envelope-unknown-field",
    ],
)
def test_a_message_that_can_never_be_accepted_is_dead_lettered_at_once_with_its_reasons(
    inbound: Inbound, body: str, reason: str, fields: tuple[str, ...]
) -> None:
    # When
    ingested = inbound.ingest(body)

    # Then it is done (no exception: SQS does not hand it out again), kept as sent with why, and nothing else
    assert ingested == Ingested(rejected=1)
    assert inbound.rejects.rejected == [Rejected(body, reason, fields, MESSAGE_ID)]
    assert inbound.store.count() == 0 and inbound.enqueuer.sent == []


def test_a_key_reused_with_another_body_is_dead_lettered_and_the_first_notification_stands(inbound: Inbound) -> None:
    # Given a notification accepted under a key
    inbound.ingest(keyed(EMAIL, "order-6"), message_id="m-1")
    reused = json.dumps(keyed({**EMAIL, "body": "Something else"}, "order-6"))

    # When another message uses the key with another body
    ingested = inbound.ingest(reused, message_id="m-2")

    # Then
    assert ingested == Ingested(rejected=1)
    assert inbound.rejects.rejected == [
        Rejected(reused, "this idempotency key was already used with a different request", ("idempotency_key",), "m-2")
    ]
    assert inbound.enqueuer.sent == [("standard", id_of("order-6"), "normal")]
    record = inbound.store.get(id_of("order-6"))
    assert record is not None and record.body == "Your code is 1"


def test_a_single_notification_over_the_apis_request_limit_is_dead_lettered_as_the_api_refuses_it() -> None:
    # Given an ingestor for an API that takes requests of at most 4 KiB
    inbound = build(max_item_bytes=4096)
    large = {**EMAIL, "body": "x" * 5000}

    # When the same notification comes inside an envelope, and alone
    in_envelope = inbound.ingest({"notifications": [large]}, message_id="m-1")
    alone = inbound.ingest(large, message_id="m-2")

    # Then both are refused as too large, and nothing is queued
    assert in_envelope == Ingested(rejected=1)
    assert alone == Ingested(rejected=1)
    assert [rejected.reason for rejected in inbound.rejects.rejected] == ["the notification exceeds 4096 bytes"] * 2
    assert inbound.enqueuer.sent == []


def test_an_envelope_with_some_bad_notifications_accepts_the_good_and_dead_letters_only_the_bad(
    inbound: Inbound,
) -> None:
    # Given a key already used, and an envelope mixing good notifications with every kind of bad one
    inbound.ingest(keyed(EMAIL, "order-7"), message_id="m-0")
    conflicting = keyed({**EMAIL, "body": "Other"}, "order-7")
    envelope = {
        "notifications": [
            EMAIL,  # good, keyless
            BAD_EMAIL,  # invalid, keyless
            keyed(PUSH, "push-1"),  # no provider for its channel, keyed
            "not an object",
            keyed(WEBHOOK, "order-8"),  # good, keyed
            conflicting,  # its key was used with another body
            {**EMAIL, "idempotency_key": "has space"},  # an invalid key is sent back as it came
        ]
    }

    # When
    ingested = inbound.ingest(envelope)

    # Then the good ones are accepted; one dead-lettered envelope holds only the bad, each with its key
    assert ingested == Ingested(accepted=2, rejected=5)
    assert inbound.enqueuer.on("batch") == [id_of(f"{MESSAGE_ID}:0"), id_of("order-8")]
    assert inbound.store.count() == 3
    [rejected] = inbound.rejects.rejected
    assert json.loads(rejected.body) == {
        "notifications": [
            keyed(BAD_EMAIL, f"{MESSAGE_ID}:1"),
            keyed(PUSH, "push-1"),
            "not an object",
            conflicting,
            {**EMAIL, "idempotency_key": "has space"},
        ]
    }
    assert rejected.fields == (
        "notifications[1].recipient.email",
        "notifications[2].channel",
        "notifications[3]",
        "notifications[5].idempotency_key",
        "notifications[6].idempotency_key",
    )
    assert rejected.source_message_id == MESSAGE_ID
    for reason in (
        "the request is not a valid notification",
        "channel not available",
        "the notification must be a JSON object",
        "this idempotency key was already used with a different request",
    ):
        assert reason in rejected.reason


def test_a_dead_lettered_notification_with_a_null_key_carries_the_key_it_was_given(inbound: Inbound) -> None:
    # Given an envelope whose invalid notification has a null key
    inbound.ingest({"notifications": [EMAIL, {**BAD_EMAIL, "idempotency_key": None}]})

    # When it is dead-lettered
    [rejected] = inbound.rejects.rejected

    # Then it carries the key it was given, as an absent key does
    assert json.loads(rejected.body) == {"notifications": [keyed(BAD_EMAIL, f"{MESSAGE_ID}:1")]}


def test_a_dead_lettered_envelope_sent_again_once_fixed_makes_no_duplicate_notification(inbound: Inbound) -> None:
    # Given an envelope whose second notification was dead-lettered
    inbound.ingest({"notifications": [EMAIL, BAD_EMAIL]})
    [rejected] = inbound.rejects.rejected
    fixed = json.loads(rejected.body)
    fixed["notifications"][0]["recipient"] = {"email": "ada@example.com"}

    # When an operator fixes it and sends it again, twice (two new messages)
    again = inbound.ingest(fixed, message_id="m-redrive-1")
    twice = inbound.ingest(fixed, message_id="m-redrive-2")

    # Then it is accepted once, under the key it was given in the first message; the replay, finding it never
    # attempted, sends its message again
    assert (again, twice) == (Ingested(accepted=1), Ingested(replayed=1))
    fixed_id = id_of(f"{MESSAGE_ID}:1")
    assert inbound.enqueuer.on("batch") == [id_of(f"{MESSAGE_ID}:0"), fixed_id, fixed_id]
    assert inbound.store.count() == 2


# ---------------------------------------------------------------------- transient failures
@pytest.mark.parametrize("body", [keyed(EMAIL, "order-9"), EMAIL, {"notifications": [EMAIL, keyed(WEBHOOK, "o-1")]}])
@pytest.mark.parametrize("down", ["store", "queues"])
def test_an_unreachable_table_or_queue_keeps_the_message_and_it_is_accepted_once_when_back(
    inbound: Inbound, body: dict[str, Any], down: str
) -> None:
    # Given the status table or the queues unreachable
    if down == "store":
        inbound.store.unavailable = True
    else:
        inbound.enqueuer.unavailable = True

    # When the message is handled
    with pytest.raises(DependencyUnavailable) as raised:
        inbound.ingest(body)

    # Then it is kept for SQS to hand out again: not dead-lettered, and no record without its message
    assert isinstance(raised.value, StoreUnavailable if down == "store" else QueueUnavailable)
    assert inbound.nothing_kept()

    # And when the dependency is back, the same message is accepted exactly once (a delivery after that
    # replays it, sending the messages of the notifications never attempted again)
    inbound.store.unavailable = inbound.enqueuer.unavailable = False
    notifications = len(body.get("notifications", [body]))
    assert inbound.ingest(body) == Ingested(accepted=notifications)
    accepted = [notification_id for _, notification_id, _ in inbound.enqueuer.sent]
    assert inbound.ingest(body) == Ingested(replayed=notifications)
    queued = [notification_id for _, notification_id, _ in inbound.enqueuer.sent]
    assert len(accepted) == len(set(accepted)) == inbound.store.count() == notifications
    assert queued == accepted + accepted
    assert inbound.rejects.rejected == []


@pytest.mark.parametrize("limit", ["store", "queues"])
def test_an_envelope_partly_accepted_before_an_outage_is_retried_whole_and_makes_each_notification_once(
    inbound: Inbound, limit: str
) -> None:
    # Given DynamoDB or SQS that takes one notification of the envelope, then fails, and an invalid one beside
    if limit == "store":
        inbound.store.batch_capacity = 1
    else:
        inbound.enqueuer.capacity = 1
    envelope = {"notifications": [keyed(EMAIL, "o-1"), EMAIL, keyed(WEBHOOK, "o-2"), BAD_EMAIL]}

    # When the message is handled
    with pytest.raises(DependencyUnavailable):
        inbound.ingest(envelope)

    # Then it is kept for a retry: only what was queued has a record, nothing is dead-lettered yet
    first = [notification_id for _, notification_id, _ in inbound.enqueuer.sent]
    assert len(first) == inbound.store.count() == 1
    assert inbound.rejects.rejected == []

    # And when SQS hands it out again with the dependency back, what was accepted replays (never attempted:
    # its message is sent again, with the new ones), the rest is new
    inbound.store.batch_capacity = inbound.enqueuer.capacity = None
    assert inbound.ingest(envelope) == Ingested(accepted=2, replayed=1, rejected=1)
    queued = [notification_id for _, notification_id, _ in inbound.enqueuer.sent]
    assert first == [id_of("o-1")]
    assert queued == [id_of("o-1"), id_of("o-1"), id_of(f"{MESSAGE_ID}:1"), id_of("o-2")]
    assert inbound.store.count() == 3
    assert [rejected.fields for rejected in inbound.rejects.rejected] == [("notifications[3].recipient.email",)]


def test_a_poison_message_is_kept_for_a_retry_while_the_dead_letter_queue_is_unreachable(inbound: Inbound) -> None:
    # Given the inbound dead-letter queue unreachable
    inbound.rejects.unavailable = True

    # When a message that can never be accepted is handled
    with pytest.raises(QueueUnavailable):
        inbound.ingest("{not json")

    # Then it is not lost: SQS hands it out again, and once the queue is back it is dead-lettered once
    assert inbound.nothing_kept()
    inbound.rejects.unavailable = False
    assert inbound.ingest("{not json") == Ingested(rejected=1)
    assert [rejected.body for rejected in inbound.rejects.rejected] == ["{not json"]


def test_an_envelope_whose_bad_notifications_cannot_be_dead_lettered_is_retried_without_a_duplicate_notification(
    inbound: Inbound,
) -> None:
    # Given the inbound dead-letter queue unreachable, and an envelope with a good and a bad notification
    inbound.rejects.unavailable = True
    envelope = {"notifications": [EMAIL, BAD_EMAIL]}

    # When it is handled
    with pytest.raises(QueueUnavailable):
        inbound.ingest(envelope)

    # Then the good one is accepted already, the message kept for a retry
    assert inbound.enqueuer.on("batch") == [id_of(f"{MESSAGE_ID}:0")]

    # And when SQS hands it out again with the queue back: the good one replays (never attempted: its message
    # is sent again), the bad one is dead-lettered
    inbound.rejects.unavailable = False
    assert inbound.ingest(envelope) == Ingested(replayed=1, rejected=1)
    assert inbound.enqueuer.on("batch") == [id_of(f"{MESSAGE_ID}:0")] * 2
    assert inbound.store.count() == 1
    [rejected] = inbound.rejects.rejected
    assert json.loads(rejected.body) == {"notifications": [keyed(BAD_EMAIL, f"{MESSAGE_ID}:1")]}


# ---------------------------------------------------------------------- the Lambda handler
@pytest.mark.usefixtures("fresh_metrics")
def test_the_sample_inbound_event_is_accepted_whole(inbound: Inbound) -> None:
    # Given the sample event: a single keyed notification (high), and an envelope of a keyed SMS and a
    # keyless webhook
    event = load_event("sqs_inbound_batch.json")
    envelope_id = event["Records"][1]["messageId"]

    # When
    response = handle(event, context(), Dependencies(inbound.ingestor))  # type: ignore[arg-type]

    # Then nothing is reported failed, and each notification is queued under its key
    assert response == {"batchItemFailures": []}
    assert inbound.enqueuer.on("priority") == [id_of("order-1042-shipped")]
    assert inbound.enqueuer.on("batch") == [id_of("login-7731"), id_of(f"{envelope_id}:1")]
    sms = inbound.store.get(id_of("login-7731"))
    assert sms is not None and sms.channel is Channel.SMS and sms.priority is Priority.NORMAL
    assert metric_values() == {"IngestAccepted": [1.0, 2.0]}


@pytest.mark.usefixtures("fresh_metrics")
def test_only_a_message_that_must_come_back_is_reported_failed(inbound: Inbound) -> None:
    # Given SQS takes one more message only, and a batch of a poison message, a good one, the same
    # notification sent again by the producer (one key), and a good one that will meet the full queue
    inbound.enqueuer.capacity = 1
    event = sqs_event(
        ("m-poison", "{not json"),
        ("m-good", keyed(EMAIL, "order-10")),
        ("m-resent", keyed(EMAIL, "order-10")),
        ("m-later", WEBHOOK),
    )

    # When
    response = handle(event, context(), Dependencies(inbound.ingestor))  # type: ignore[arg-type]

    # Then only the message that met the outage is reported; the poison one is done, dead-lettered
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-later"}]}
    assert [rejected.source_message_id for rejected in inbound.rejects.rejected] == ["m-poison"]
    assert inbound.enqueuer.sent == [("standard", id_of("order-10"), "normal")]
    assert metric_values() == {"IngestRejected": [1.0], "IngestAccepted": [1.0], "IngestReplayed": [1.0]}


def test_ingest_logs_carry_no_personal_data(inbound: Inbound, caplog: pytest.LogCaptureFixture) -> None:
    # When a good message, an envelope with a bad notification and a poison message are handled
    with caplog.at_level(logging.INFO):
        inbound.ingest(EMAIL, message_id="m-1")
        inbound.ingest({"notifications": [EMAIL, {**BAD_EMAIL, "body": "Secret 7"}]}, message_id="m-2")
        inbound.ingest(json.dumps({**EMAIL, "recipient": {"email": "bob@example"}}), message_id="m-3")

    # Then the logs say what happened to which message, without addresses or bodies
    messages = [record.getMessage() for record in caplog.records]
    assert "inbound notification accepted" in messages
    assert "inbound batch accepted" in messages
    assert "inbound message rejected" in messages
    logged = json.dumps([record.__dict__ for record in caplog.records], default=str)
    for personal in ("ada@example.com", "bob@example", "Your code", "Secret 7"):
        assert personal not in logged
