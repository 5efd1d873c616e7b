"""The ingest function over moto: producers' messages really sent to and received from the InboundQueue.

`ingest.app.handle` runs as the event source mapping runs it: messages received from the template's
InboundQueue become real-shaped SQS records (`local.lambda_.pollers.sqs_record`), the partial batch
response decides which are deleted, and a message reported failed is handed out again (made visible at
once here, as its visibility timeout would). Outages are real botocore clients aimed at a loopback port
nothing listens on, with no retries. Every AWS call the function makes goes through one recorded session,
and is checked against IngestFunction's policy in template.yaml.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ingest.app import Dependencies, build_dependencies, handle
from ingest.settings import IngestSettings
from local.lambda_.pollers import sqs_record
from notifications.accept_settings import build_acceptor
from notifications.ingest import Ingestor
from notifications.models import Channel, Priority, Status
from notifications.observability import metrics
from notifications.queues import SqsRejectQueue
from notifications.requests import SQS_MAX_MESSAGE_BYTES
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from tests.integration.notifications.conftest import REGION, _session, context
from tests.support.iam import AwsCall, AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

    import boto3
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

    from notifications.models import NotificationRecord
    from tests.integration.notifications.conftest import Herald

INBOUND, INBOUND_DLQ = "InboundQueue", "InboundDeadLetterQueue"
EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
SMS = {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "Your code is 2"}
PUSH = {"channel": "push", "recipient": {"device_token": "d3v1c3"}, "body": "Hello"}  # the template configures none
BAD_EMAIL = {**EMAIL, "recipient": {"email": "nope"}}


def keyed(notification: dict[str, Any], key: str) -> dict[str, Any]:
    return {**notification, "idempotency_key": key}


@dataclass(frozen=True)
class DeadLetter:
    """A message of the inbound dead-letter queue: its body and its string attributes."""

    body: str
    attributes: dict[str, str]


@dataclass
class Inbound:
    """The ingest function wired to the moto account, and a producer's view of the queues."""

    herald: Herald
    settings: IngestSettings
    calls: AwsCallRecorder  # every AWS request made through `session`, the function's clients
    session: boto3.Session
    dynamodb: DynamoDBClient  # the function's clients
    sqs: SQSClient
    secretsmanager: SecretsManagerClient
    deps: Dependencies
    dead_endpoint: str  # a loopback URL nothing answers on
    producer: SQSClient  # the test's own client: sends, looks inside; not recorded
    store: DynamoDBStatusStore  # reads records back, unrecorded

    def send(self, body: Any) -> str:
        """A producer puts a message on the inbound queue (`body` JSON-encoded unless a string)."""
        text = body if isinstance(body, str) else json.dumps(body)
        return self.producer.send_message(QueueUrl=self.herald.queue_url(INBOUND), MessageBody=text)["MessageId"]

    def process(self, deps: Dependencies | None = None, *, delete: bool = True) -> tuple[list[str], set[str]]:
        """What the event source mapping does, until the queue is empty: receive up to 10 messages, invoke
        the function, delete those it did not report failed (none when `delete` is False, as when the
        invocation timed out after its work). Every message not deleted is made visible again at once, as
        its visibility timeout would. Returns (message ids handled, failed message ids)."""
        url, arn = self.herald.queue_url(INBOUND), self.herald.stack.arns[INBOUND]
        handled: list[str] = []
        failed: set[str] = set()
        kept: list[str] = []
        while messages := self.herald.receive_all(INBOUND):
            event = {"Records": [sqs_record(message, arn, REGION) for message in messages]}
            response = handle(event, context("ingest", 10), deps or self.deps)  # type: ignore[arg-type]
            reported = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            for message in messages:
                if delete and message["MessageId"] not in reported:
                    self.producer.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    kept.append(message["ReceiptHandle"])
            handled += [message["MessageId"] for message in messages]
            failed |= reported
        for receipt_handle in kept:
            self.producer.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)
        return handled, failed

    def arrived(self, logical_id: str) -> list[tuple[str, str]]:
        """(notification id, priority attribute) of every message on a queue since the last look; consumed."""
        found = []
        for message in self._drain(logical_id):
            attributes = message.get("MessageAttributes", {})
            found.append((json.loads(message["Body"])["id"], attributes["priority"]["StringValue"]))
        return found

    def dead_letters(self) -> list[DeadLetter]:
        """Every message on the inbound dead-letter queue since the last look; consumed."""
        return [
            DeadLetter(
                message["Body"],
                {name: value["StringValue"] for name, value in message.get("MessageAttributes", {}).items()},
            )
            for message in self._drain(INBOUND_DLQ)
        ]

    def record(self, key: str) -> NotificationRecord | None:
        """The notification the inbound client made with this idempotency key."""
        return self.store.get(self.herald.ids.for_key(self.settings.inbound_client_id, key))

    def id_of(self, key: str) -> str:
        return self.herald.ids.for_key(self.settings.inbound_client_id, key)

    def record_count(self) -> int:
        table = self.settings.notifications_table
        return int(self.herald.session.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])

    def inbound_left(self) -> int:
        attributes = self.producer.get_queue_attributes(
            QueueUrl=self.herald.queue_url(INBOUND),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def unreachable(self, service: str) -> Any:
        """A client of the function's session for a dependency that does not answer: no retries."""
        config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=1)
        return self.session.client(service, endpoint_url=self.dead_endpoint, config=config)

    def denied(self) -> list[AwsCall]:
        """The calls made so far that IngestFunction's policy would refuse in AWS."""
        return denied_calls(self.herald.stack, "IngestFunction", self.calls.calls)

    def _drain(self, logical_id: str) -> list[dict[str, Any]]:
        url = self.herald.queue_url(logical_id)
        drained: list[dict[str, Any]] = []
        while messages := self.herald.receive_all(logical_id):
            for message in messages:
                self.producer.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            drained += messages
        return drained


@pytest.fixture
def dead_endpoint() -> Iterator[str]:
    """A loopback port that is bound but never listens: every connection to it is refused at once."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


@pytest.fixture
def inbound(herald: Herald, dead_endpoint: str) -> Iterator[Inbound]:
    settings = load_settings(IngestSettings, herald.env)
    calls = AwsCallRecorder(herald.stack)
    session = calls.attach(_session("ingest"))
    dynamodb, sqs = session.client("dynamodb"), session.client("sqs")
    secretsmanager = session.client("secretsmanager")
    metrics.clear_metrics()
    try:
        yield Inbound(
            herald=herald,
            settings=settings,
            calls=calls,
            session=session,
            dynamodb=dynamodb,
            sqs=sqs,
            secretsmanager=secretsmanager,
            deps=build_dependencies(settings, dynamodb=dynamodb, sqs=sqs, secretsmanager=secretsmanager),
            dead_endpoint=dead_endpoint,
            producer=herald.session.client("sqs"),
            store=DynamoDBStatusStore(settings.notifications_table, client=herald.session.client("dynamodb")),
        )
    finally:
        calls.detach(session)
        metrics.clear_metrics()


def metric_totals() -> dict[str, float]:
    """The ingest metrics added so far, summed by name."""
    return {name: sum(metric["Value"]) for name, metric in metrics.metric_set.items()}


# ---------------------------------------------------------------------- accepted
def test_good_messages_become_queued_notifications_of_the_inbound_client(inbound: Inbound) -> None:
    # Given a producer's keyless notification, a keyed high one, and an envelope of a keyless, a keyed and a
    # critical notification
    keyless = inbound.send(EMAIL)
    inbound.send(keyed({**SMS, "priority": "high"}, "order-1"))
    envelope = inbound.send({"notifications": [EMAIL, keyed(SMS, "order-2"), {**EMAIL, "priority": "critical"}]})

    # When the function consumes the inbound queue
    handled, failed = inbound.process()

    # Then every message is done, and every notification queued once, on its queue, under its key
    assert (len(handled), failed, inbound.inbound_left()) == (3, set(), 0)
    assert inbound.arrived("StandardQueue") == [(inbound.id_of(keyless), "normal")]
    assert sorted(inbound.arrived("PriorityQueue")) == sorted(
        [(inbound.id_of("order-1"), "high"), (inbound.id_of(f"{envelope}:2"), "critical")]
    )
    assert inbound.arrived("BatchQueue") == [
        (inbound.id_of(f"{envelope}:0"), "normal"),
        (inbound.id_of("order-2"), "normal"),
    ]
    single = inbound.record(keyless)
    assert single is not None
    assert (single.status, single.channel, single.queue, single.idempotency_key) == (
        Status.QUEUED,
        Channel.EMAIL,
        "standard",
        keyless,
    )
    high = inbound.record("order-1")
    assert high is not None and (high.priority, high.queue) == (Priority.HIGH, "priority")
    assert inbound.record_count() == 5
    assert inbound.dead_letters() == []
    assert metric_totals() == {"IngestAccepted": 5}
    assert inbound.denied() == []


# ---------------------------------------------------------------------- duplicates
def test_redelivered_messages_and_a_resent_key_make_each_notification_once_and_resend_each_message_once(
    inbound: Inbound,
) -> None:
    # Given a keyless message and an envelope, handled once but not deleted (the invocation timed out after
    # its work), and a producer that sent one keyed notification twice
    keyless = inbound.send(EMAIL)
    envelope = inbound.send({"notifications": [EMAIL, keyed(SMS, "order-3")]})
    first = inbound.send(keyed(EMAIL, "order-4"))
    second = inbound.send(keyed(EMAIL, "order-4"))
    _, failed_once = inbound.process(delete=False)
    queued_once = inbound.arrived("StandardQueue") + inbound.arrived("BatchQueue")

    # When SQS hands the same messages out again
    handled, failed = inbound.process()

    # Then the second time everything replays: no new record, and as none was attempted yet, each
    # notification's message is sent again, once (order-4's two messages came in one invocation)
    assert (failed_once, failed) == (set(), set())
    assert sorted(handled) == sorted([keyless, envelope, first, second])
    expected = sorted(
        [
            (inbound.id_of(keyless), "normal"),
            (inbound.id_of(f"{envelope}:0"), "normal"),
            (inbound.id_of("order-3"), "normal"),
            (inbound.id_of("order-4"), "normal"),
        ]
    )
    assert sorted(queued_once) == expected
    assert sorted(inbound.arrived("StandardQueue") + inbound.arrived("BatchQueue")) == expected
    assert inbound.record_count() == 4
    assert inbound.record(second) is None  # the producer's key, not the second message id, named it
    # first pass: 4 new + order-4's second message replayed; second pass: all 5 notifications replayed
    assert metric_totals() == {"IngestAccepted": 4, "IngestReplayed": 6}
    assert inbound.dead_letters() == []
    assert inbound.denied() == []


# ---------------------------------------------------------------------- poison messages
def test_messages_that_can_never_be_accepted_are_dead_lettered_once_with_their_reasons(inbound: Inbound) -> None:
    # Given a notification accepted under a key, then every kind of message that can never be accepted
    inbound.send(keyed(EMAIL, "order-5"))
    inbound.process()
    poison = {
        "{not json": ("the request body is not valid JSON (line 1, column 2)", None),
        "[1, 2]": ("the request body must be a JSON object", "body"),
        json.dumps(BAD_EMAIL): ("the request is not a valid notification", "recipient.email"),
        json.dumps(PUSH): ("channel not available", "channel"),
        json.dumps(keyed({**EMAIL, "body": "Other"}, "order-5")): (
            "this idempotency key was already used with a different request",
            "idempotency_key",
        ),
        json.dumps({"notifications": []}): ("the request is not a valid batch", "notifications"),
        json.dumps({"notifications": [EMAIL] * 101}): ("the request is not a valid batch", "notifications"),
    }
    sent = {inbound.send(body): body for body in poison}

    # When the function consumes them
    handled, failed = inbound.process()

    # Then none is retried: each is done, and its copy on the dead-letter queue says why
    assert (sorted(handled), failed, inbound.inbound_left()) == (sorted(sent), set(), 0)
    copies = {letter.attributes["source_message_id"]: letter for letter in inbound.dead_letters()}
    assert set(copies) == set(sent)
    for message_id, body in sent.items():
        reason, fields = poison[body]
        expected = {"reason": reason, "source_message_id": message_id} | ({"fields": fields} if fields else {})
        assert copies[message_id] == DeadLetter(body, expected)

    # And nothing of them was stored or queued: only the first notification exists
    assert inbound.record_count() == 1
    assert inbound.arrived("StandardQueue") == [(inbound.id_of("order-5"), "normal")]
    assert inbound.arrived("BatchQueue") + inbound.arrived("PriorityQueue") == []
    assert metric_totals() == {"IngestAccepted": 1, "IngestRejected": 7}
    assert inbound.denied() == []


def test_a_message_over_the_inbound_limit_is_refused_when_the_producer_sends_it(inbound: Inbound) -> None:
    # Given a notification over 256 KiB (SQS's own default limit is 1 MiB; the inbound queue's is lower)
    oversized = json.dumps({**EMAIL, "data": {"blob": "z" * SQS_MAX_MESSAGE_BYTES}})

    # When / Then: the producer learns it at once, from SQS, instead of finding it dead-lettered later
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        inbound.send(oversized)
    assert inbound.inbound_left() == 0


def test_an_envelope_with_some_bad_notifications_dead_letters_only_those_with_their_keys(inbound: Inbound) -> None:
    # Given an envelope of good notifications, an invalid keyless one and a keyed one with no provider
    message_id = inbound.send({"notifications": [EMAIL, BAD_EMAIL, keyed(PUSH, "push-1"), keyed(SMS, "order-6")]})

    # When
    _, failed = inbound.process()

    # Then the message is done: the good ones queued, the bad ones in one dead-lettered envelope
    assert failed == set()
    assert inbound.arrived("BatchQueue") == [
        (inbound.id_of(f"{message_id}:0"), "normal"),
        (inbound.id_of("order-6"), "normal"),
    ]
    [letter] = inbound.dead_letters()
    assert json.loads(letter.body) == {"notifications": [keyed(BAD_EMAIL, f"{message_id}:1"), keyed(PUSH, "push-1")]}
    assert letter.attributes == {
        "reason": "the request is not a valid notification; channel not available",
        "fields": "notifications[1].recipient.email, notifications[2].channel",
        "source_message_id": message_id,
    }

    # And when an operator sends the dead-lettered envelope again once fixed, twice, no notification is
    # duplicated: the second replays the first's, never attempted, and sends their messages again
    fixed = json.loads(letter.body)
    fixed["notifications"][0]["recipient"] = {"email": "ada@example.com"}
    fixed["notifications"][1] = keyed({**SMS, "body": "Hello"}, "push-1")  # the channel a provider serves
    inbound.send(fixed)
    inbound.send(fixed)
    inbound.process()
    assert sorted(inbound.arrived("BatchQueue")) == sorted(
        [(inbound.id_of(f"{message_id}:1"), "normal"), (inbound.id_of("push-1"), "normal")] * 2
    )
    assert inbound.record_count() == 4
    assert inbound.dead_letters() == []
    assert inbound.denied() == []


# ---------------------------------------------------------------------- transient failures
def test_messages_that_meet_an_unreachable_table_are_retried_and_accepted_once_when_it_is_back(
    inbound: Inbound,
) -> None:
    # Given the status table unreachable, and a keyless and an envelope message
    down = build_dependencies(
        inbound.settings,
        dynamodb=inbound.unreachable("dynamodb"),
        sqs=inbound.sqs,
        secretsmanager=inbound.secretsmanager,
    )
    single = inbound.send(EMAIL)
    envelope = inbound.send({"notifications": [keyed(EMAIL, "order-7"), SMS]})

    # When the function consumes them
    _, failed = inbound.process(down)

    # Then both are kept for SQS to hand out again; nothing queued, nothing dead-lettered
    assert failed == {single, envelope}
    assert inbound.inbound_left() == 2
    assert inbound.arrived("StandardQueue") + inbound.arrived("BatchQueue") == []
    assert inbound.dead_letters() == []

    # And when the table is back, each notification is accepted exactly once
    _, failed = inbound.process()
    assert failed == set()
    assert inbound.arrived("StandardQueue") == [(inbound.id_of(single), "normal")]
    assert sorted(inbound.arrived("BatchQueue")) == sorted(
        [(inbound.id_of("order-7"), "normal"), (inbound.id_of(f"{envelope}:1"), "normal")]
    )
    assert (inbound.record_count(), inbound.inbound_left()) == (3, 0)
    assert inbound.denied() == []


def test_messages_that_meet_unreachable_queues_leave_no_record_and_are_accepted_once_when_they_are_back(
    inbound: Inbound,
) -> None:
    # Given SQS unreachable for the function (its queues and the inbound dead-letter queue), and a good
    # message, an envelope and a poison message
    down = build_dependencies(
        inbound.settings,
        dynamodb=inbound.dynamodb,
        sqs=inbound.unreachable("sqs"),
        secretsmanager=inbound.secretsmanager,
    )
    single = inbound.send(keyed(EMAIL, "order-8"))
    envelope = inbound.send({"notifications": [EMAIL, keyed(SMS, "order-9")]})
    poison = inbound.send("{not json")

    # When the function consumes them
    _, failed = inbound.process(down)

    # Then all three are kept for a retry; the records written were taken back, none is left without its
    # message; the poison one is not lost
    assert failed == {single, envelope, poison}
    assert inbound.record_count() == 0
    assert inbound.dead_letters() == []

    # And when SQS is back, each notification is queued once and the poison message dead-lettered once
    _, failed = inbound.process()
    assert failed == set()
    assert inbound.arrived("StandardQueue") == [(inbound.id_of("order-8"), "normal")]
    assert sorted(inbound.arrived("BatchQueue")) == sorted(
        [(inbound.id_of(f"{envelope}:0"), "normal"), (inbound.id_of("order-9"), "normal")]
    )
    assert [(letter.body, letter.attributes["source_message_id"]) for letter in inbound.dead_letters()] == [
        ("{not json", poison)
    ]
    assert (inbound.record_count(), inbound.inbound_left()) == (3, 0)
    assert inbound.denied() == []


def test_an_unreachable_dead_letter_queue_keeps_rejected_messages_for_a_retry(inbound: Inbound) -> None:
    # Given the table and the notification queues up, only the inbound dead-letter queue unreachable, and a
    # poison message and an envelope with a good and a bad notification
    rejects = SqsRejectQueue(inbound.settings.inbound_dead_letter_queue_url, client=inbound.unreachable("sqs"))
    acceptor = build_acceptor(
        inbound.settings, dynamodb=inbound.dynamodb, sqs=inbound.sqs, secretsmanager=inbound.secretsmanager
    )
    ingestor = Ingestor(
        acceptor,
        rejects,
        scope=inbound.settings.inbound_client_id,
        max_item_bytes=inbound.settings.max_request_bytes,
    )
    poison = inbound.send(json.dumps(PUSH))
    envelope = inbound.send({"notifications": [EMAIL, BAD_EMAIL]})

    # When the function consumes them
    _, failed = inbound.process(Dependencies(ingestor))

    # Then both are kept for a retry (not lost); the good notification is accepted already
    assert failed == {poison, envelope}
    assert inbound.arrived("BatchQueue") == [(inbound.id_of(f"{envelope}:0"), "normal")]

    # And when the dead-letter queue is back: the good notification replays (never attempted: its message is
    # sent again), the bad ones are dead-lettered
    _, failed = inbound.process()
    assert failed == set()
    assert inbound.arrived("BatchQueue") == [(inbound.id_of(f"{envelope}:0"), "normal")]
    letters = {letter.attributes["source_message_id"]: letter.body for letter in inbound.dead_letters()}
    assert letters == {
        poison: json.dumps(PUSH),
        envelope: json.dumps({"notifications": [keyed(BAD_EMAIL, f"{envelope}:1")]}, separators=(",", ":")),
    }
    assert (inbound.record_count(), inbound.inbound_left()) == (1, 0)
    assert inbound.denied() == []


def test_a_message_whose_outage_outlasts_its_receives_is_moved_to_the_dead_letter_queue(inbound: Inbound) -> None:
    # Given the status table unreachable for longer than the inbound queue's maxReceiveCount receives
    down = build_dependencies(
        inbound.settings,
        dynamodb=inbound.unreachable("dynamodb"),
        sqs=inbound.sqs,
        secretsmanager=inbound.secretsmanager,
    )
    message_id = inbound.send(keyed(EMAIL, "order-10"))
    receives = int(inbound.herald.env["MAX_RECEIVE_COUNT"])

    # When the function fails it on every receive
    failures = [inbound.process(down)[1] for _ in range(receives)]

    # Then SQS's redrive policy moves it, unchanged, to the inbound dead-letter queue: not lost
    assert failures == [{message_id}] * receives
    assert inbound.process(down) == ([], set())
    assert [letter.body for letter in inbound.dead_letters()] == [json.dumps(keyed(EMAIL, "order-10"))]
    assert inbound.record_count() == 0


# ---------------------------------------------------------------------- IAM
def test_every_call_the_ingest_function_makes_is_allowed_by_its_policy(inbound: Inbound) -> None:
    # Given messages over every path: accepted together and in an envelope (priority and batch queues),
    # replayed (their messages sent again), dead-lettered, taken back when the queues are unreachable, and
    # one alone in its invocation (accepted one by one: a put, refused for a replay, and a single send)
    inbound.send(keyed(EMAIL, "order-11"))
    inbound.send(keyed({**EMAIL, "priority": "high"}, "order-12"))
    inbound.send({"notifications": [EMAIL, {**EMAIL, "priority": "critical"}, BAD_EMAIL]})
    inbound.send("{not json")
    inbound.process()
    inbound.send(keyed(EMAIL, "order-11"))
    inbound.send(keyed(EMAIL, "order-13"))
    inbound.send({"notifications": [keyed(EMAIL, "order-14")]})
    inbound.process(
        build_dependencies(
            inbound.settings,
            dynamodb=inbound.dynamodb,
            sqs=inbound.unreachable("sqs"),
            secretsmanager=inbound.secretsmanager,
        )
    )
    inbound.process()
    inbound.send(keyed(EMAIL, "order-11"))
    inbound.process()

    # Then the function read the idempotency key, wrote, replayed and took back records, and sent to the
    # notification queues and the inbound dead-letter queue, and IngestFunction's policy allows every one of those
    stack = inbound.herald.stack
    table = f"arn:aws:dynamodb:{stack.region}:{stack.account_id}:table/{inbound.settings.notifications_table}"
    queues = {stack.arns[name] for name in ("StandardQueue", "PriorityQueue", "BatchQueue", INBOUND_DLQ)}
    assert inbound.calls.calls == {
        AwsCall("dynamodb:PutItem", table),
        AwsCall("dynamodb:DeleteItem", table),
        *(AwsCall("sqs:SendMessage", queue) for queue in queues),
        AwsCall("secretsmanager:GetSecretValue", stack.physical_ids["IdempotencyKeySecret"]),
    }
    assert {action for action, _ in inbound.calls.requests} >= {
        "dynamodb:PutItem",
        "dynamodb:TransactWriteItems",  # the conditional puts, and the take-backs (authorised as DeleteItem)
        "sqs:SendMessage",
        "sqs:SendMessageBatch",
    }
    assert inbound.denied() == []


# ---------------------------------------------------------------------- one invocation, many messages
def test_the_single_notifications_of_one_invocation_are_accepted_together(inbound: Inbound) -> None:
    # Given ten producer messages of one notification each: eight good ones, one for a channel with no
    # provider and one that reuses a key with another body
    inbound.send(keyed(EMAIL, "order-20"))
    inbound.process()
    good = [inbound.send(EMAIL) for _ in range(8)]
    no_provider = inbound.send(PUSH)
    conflict = inbound.send(keyed({**EMAIL, "body": "Other"}, "order-20"))
    inbound.calls.requests.clear()

    # When one invocation handles them (the event source mapping's batch of ten)
    handled, failed = inbound.process()

    # Then the eight were written together and queued with one SendMessageBatch, each keyed by its own message
    # id, on the standard queue (not the batch queue: they were sent one by one). The reused key's condition
    # cancels the first transaction, as DynamoDB cancels all of one when one condition fails; the second
    # writes the rest ...
    assert (len(handled), failed) == (10, set())
    actions = [action for action, _ in inbound.calls.requests]
    assert actions.count("dynamodb:TransactWriteItems") == 2
    assert actions.count("sqs:SendMessageBatch") == 1
    assert "dynamodb:PutItem" not in actions
    assert sorted(inbound.arrived("StandardQueue")) == sorted(
        [(inbound.id_of("order-20"), "normal")] + [(inbound.id_of(message_id), "normal") for message_id in good]
    )
    assert inbound.arrived("BatchQueue") == []
    # ... and the other two, each judged on its own, rest in the dead-letter queue with their reasons
    reasons = {letter.attributes["source_message_id"]: letter.attributes["reason"] for letter in inbound.dead_letters()}
    assert reasons == {
        no_provider: "channel not available",
        conflict: "this idempotency key was already used with a different request",
    }
    assert inbound.denied() == []
