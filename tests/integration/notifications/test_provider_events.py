"""Delivery receipts over moto: signed provider request -> API route -> provider-events queue -> status record.

The route runs in a resolver that includes `api.receipts.router` (as `api.app` does), with the
`ReceiptIntake` built by `build_receipt_intake` from the API's settings; the queue is the template's
ProviderEventsQueue, and `provider_events.app.handle` consumes it as the event source mapping would.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import boto3
import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from api.errors import error_response
from api.receipts import router
from api.settings import ApiSettings
from local.lambda_.pollers import sqs_record
from notifications.errors import HeraldError
from notifications.models import Channel, HistoryEntry, Recipient, Status
from notifications.receipts.events import ReceiptEvent, ReceiptOutcome, ReceiptProvider, parse_message
from notifications.receipts.intake import SQS_MAX_MESSAGE_BYTES, ReceiptIntake, build_receipt_intake
from notifications.receipts.signatures import twilio_signature
from notifications.receipts.store import ReceiptStore
from notifications.receipts.transitions import ReceiptResult
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from provider_events.app import build_dependencies
from provider_events.app import handle as handle_provider_events
from provider_events.settings import ProviderEventsSettings
from tests.integration.notifications.conftest import REGION, context
from tests.support.clock import FakeClock
from tests.support.events import load_event
from tests.support.iam import AwsCall, AwsCallRecorder
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_sqs import SQSClient

    from notifications.models import NotificationRecord
    from tests.integration.notifications.conftest import Herald

BASE_URL = "https://abc123defg.execute-api.us-east-1.amazonaws.com/v1"  # PROVIDER_EVENTS_URL
SAMPLE_ID = "0b8f1e3c-5a7d-4e2b-9c6f-1d2e3f4a5b6c"  # the notification the sample events are about
SAMPLE_TWILIO_TOKEN = "a3f9c2e1d4b5a6978877665544332211"  # the auth token the sample callback is signed with
NOW = 1_795_922_135.0  # the sample SendGrid request's signed timestamp
QUEUE = "ProviderEventsQueue"


@dataclass
class Receipts:
    """The receipt route and the provider-events function wired to one moto account."""

    herald: Herald
    key: ec.EllipticCurvePrivateKey
    clock: FakeClock
    intake: ReceiptIntake
    resolver: APIGatewayRestResolver
    store: DynamoDBStatusStore
    api_calls: AwsCallRecorder
    function_calls: AwsCallRecorder
    function_session: boto3.Session

    def post(self, event: dict[str, Any], intake: ReceiptIntake | None = None) -> dict[str, Any]:
        """The API handler's route for one API Gateway event (the context is cleared after each)."""
        self.resolver.append_context(receipts=intake or self.intake)  # type: ignore[no-untyped-call]
        return self.resolver.resolve(event, context("api", 25))

    def sendgrid(self, events: list[dict[str, Any]], *, timestamp: int | None = None) -> dict[str, Any]:
        """The sample SendGrid request carrying `events`, signed with this test's verification key."""
        event = load_event("api_post_provider_event_sendgrid.json")
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        body = json.dumps(events)
        signature = self.key.sign(stamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
        event["body"] = body
        _set_header(event, "X-Twilio-Email-Event-Webhook-Timestamp", stamp)
        _set_header(event, "X-Twilio-Email-Event-Webhook-Signature", base64.b64encode(signature).decode())
        return event

    def process(self, dynamodb: Any = None) -> tuple[list[dict[str, Any]], set[str]]:
        """Receive every message of the provider-events queue, run the function over them in batches of
        ten, delete those it did not report failed. Returns (records, failed message ids)."""
        sqs = self.herald.session.client("sqs")
        deps = build_dependencies(
            load_settings(ProviderEventsSettings, self.herald.env),
            dynamodb=dynamodb or self.function_session.client("dynamodb"),
            clock=self.clock,
        )
        records: list[dict[str, Any]] = []
        failed: set[str] = set()
        while messages := self.herald.receive_all(QUEUE):
            batch = [sqs_record(message, self.herald.stack.arns[QUEUE], REGION) for message in messages]
            response = handle_provider_events({"Records": batch}, context("provider-events", 10), deps)
            reported = {item["itemIdentifier"] for item in response["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in reported:
                    sqs.delete_message(QueueUrl=self.herald.queue_url(QUEUE), ReceiptHandle=message["ReceiptHandle"])
            records += batch
            failed |= reported
        return records, failed

    def sent(self, notification_id: str, **overrides: Any) -> NotificationRecord:
        """A status record as the sender leaves it after the provider accepted the notification."""
        fields: dict[str, Any] = {
            "id": notification_id,
            "status": Status.SENT,
            "channel": Channel.EMAIL,
            "recipient": Recipient(email="ada@example.com"),
            "subject": "Your code",
            "provider": "sendgrid",
            "channel_used": Channel.EMAIL,
            "history": [
                HistoryEntry(status=Status.QUEUED, at="2026-11-29T03:15:30.000Z", detail="accepted"),
                HistoryEntry(status=Status.SENT, at="2026-11-29T03:15:31.000Z", detail="sent via sendgrid"),
            ],
            "version": 3,
        }
        record = make_record(**(fields | overrides))
        self.store.create(record)
        return record

    def status_of(self, notification_id: str) -> NotificationRecord:
        record = self.store.get(notification_id)
        assert record is not None
        return record


def _set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for key in [key for key in event["headers"] if key.lower() == name.lower()]:
        del event["headers"][key]
        event["multiValueHeaders"].pop(key, None)
    if value is not None:
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]


def _public_b64(key: ec.EllipticCurvePrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).decode()


def _delivered(notification_id: str, *, event_id: str | None = None, at: int = 1_795_922_110) -> dict[str, Any]:
    return {
        "email": "ada@example.com",
        "timestamp": at,
        "event": "delivered",
        "sg_event_id": event_id or uuid.uuid4().hex,
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "notification_id": notification_id,
        "response": "250 OK",
    }


def _twilio(
    notification_id: str, status: str, *, token: str = SAMPLE_TWILIO_TOKEN, url: str | None = None
) -> dict[str, Any]:
    """The sample Twilio callback for `notification_id` with `status`, signed for `url` (by default the URL the
    Twilio provider gives as StatusCallback)."""
    event = load_event("api_post_provider_event_twilio.json")
    fields = [
        ("AccountSid", "AC1f8e2d3c4b5a69788796a5b4c3d2e1f0"),
        ("ApiVersion", "2010-04-01"),
        ("From", "+15017122661"),
        ("MessageSid", "SM" + uuid.uuid4().hex),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("To", "+15558675310"),
    ]
    event["body"] = urlencode(fields)
    event["queryStringParameters"] = {"notification_id": notification_id}
    event["multiValueQueryStringParameters"] = {"notification_id": [notification_id]}
    signed_url = url or f"{BASE_URL}/provider-events/twilio?notification_id={notification_id}"
    _set_header(event, "X-Twilio-Signature", twilio_signature(token, signed_url, fields))
    return event


@pytest.fixture
def receipts(herald: Herald) -> Iterator[Receipts]:
    key = ec.generate_private_key(ec.SECP256R1())
    settings = load_settings(
        ApiSettings,
        {
            **herald.env,
            "PROVIDER_EVENTS_QUEUE_URL": herald.queue_url(QUEUE),
            "PROVIDER_EVENTS_URL": BASE_URL,
            "SENDGRID_EVENT_PUBLIC_KEY": _public_b64(key),
            "RECEIPT_TOLERANCE_SECONDS": "300",
        },
    )
    clock = FakeClock(NOW)
    api_calls, function_calls = AwsCallRecorder(herald.stack), AwsCallRecorder(herald.stack)
    api_session = api_calls.attach(boto3.Session(region_name=REGION))
    function_session = function_calls.attach(boto3.Session(region_name=REGION))
    intake = build_receipt_intake(
        settings,
        sqs=api_session.client("sqs"),
        twilio_credentials=lambda: {
            "account_sid": "AC1f8e2d3c4b5a69788796a5b4c3d2e1f0",
            "auth_token": SAMPLE_TWILIO_TOKEN,
        },
        clock=clock,
    )
    resolver = APIGatewayRestResolver()
    included_in = router.api_resolver  # api.app's resolver, once it includes the router: given back below
    resolver.include_router(router)
    resolver.exception_handler(HeraldError)(error_response)
    try:
        yield Receipts(
            herald=herald,
            key=key,
            clock=clock,
            intake=intake,
            resolver=resolver,
            store=DynamoDBStatusStore(settings.notifications_table, client=herald.session.client("dynamodb")),
            api_calls=api_calls,
            function_calls=function_calls,
            function_session=function_session,
        )
    finally:
        router.api_resolver = included_in
        api_calls.detach(api_session)
        function_calls.detach(function_session)


# ---------------------------------------------------------------------- the whole path
def test_a_signed_sendgrid_delivery_report_moves_a_sent_notification_to_delivered(receipts: Receipts) -> None:
    # Given a notification SendGrid accepted
    notification = receipts.sent(str(uuid.uuid4()))

    # When SendGrid posts its signed delivery report, and the provider-events function runs
    answer = receipts.post(receipts.sendgrid([_delivered(notification.id)]))
    _, failed = receipts.process()

    # Then the API queued it, the function applied it, and the record says delivered
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"]) == {"queued": 1}
    assert failed == set()
    record = receipts.status_of(notification.id)
    assert record.status is Status.DELIVERED
    assert record.version == notification.version + 1
    assert record.history[-1].status is Status.DELIVERED
    assert record.history[-1].detail == "sendgrid reported delivered at 2026-11-29T03:15:10.000Z"
    assert receipts.herald.receive_all(QUEUE) == []


def test_the_documented_sendgrid_batch_ends_in_failed_and_queues_no_personal_data(receipts: Receipts) -> None:
    # Given a sent notification, and SendGrid's documented batch about it (delivered, then a bounce...)
    receipts.sent(SAMPLE_ID)
    sample = json.loads(load_event("api_post_provider_event_sendgrid.json")["body"])

    # When the batch is posted
    answer = receipts.post(receipts.sendgrid(sample))
    queued = receipts.herald.receive_all(QUEUE, visibility=0)

    # Then only the four reports that change a status were queued, without the address, IP or reasons
    assert json.loads(answer["body"]) == {"queued": 4}
    assert len(queued) == 1
    for personal in ("example@test.com", "255.255.255.255", "unknown recipient", "Bounced Address"):
        assert personal not in queued[0]["Body"]

    # When the function applies them
    _, failed = receipts.process()

    # Then the bounce, coming after the delivery, leaves the notification failed; dropped and spamreport
    # found it failed already and changed nothing
    record = receipts.status_of(SAMPLE_ID)
    assert failed == set()
    assert record.status is Status.FAILED
    assert record.error == "sendgrid reported bounce (type bounce, SMTP status 5.0.0)"
    assert [entry.status for entry in record.history[-3:]] == [Status.SENT, Status.DELIVERED, Status.FAILED]


def test_the_sample_twilio_callback_fails_the_notification_with_twilios_error_code(receipts: Receipts) -> None:
    # Given a sent SMS, and Twilio's sample undelivered callback for it, signed with the account's token
    receipts.sent(SAMPLE_ID, channel=Channel.SMS, recipient=Recipient(phone="+15558675310"), provider="twilio")
    event = load_event("api_post_provider_event_twilio.json")

    # When Twilio posts it (the URL is rebuilt from PROVIDER_EVENTS_URL) and the function runs
    answer = receipts.post(event)
    _, failed = receipts.process()

    # Then it is failed with Twilio's error code and nothing personal
    assert answer["statusCode"] == 200, answer["body"]
    assert failed == set()
    record = receipts.status_of(SAMPLE_ID)
    assert record.status is Status.FAILED
    assert record.error == "twilio reported undelivered (error 30003)"
    assert "+1555" not in json.dumps(record.history[-1].model_dump())


def test_a_twilio_delivered_callback_delivers_and_a_progress_callback_queues_nothing(receipts: Receipts) -> None:
    # Given a sent SMS
    notification = receipts.sent(str(uuid.uuid4()), channel=Channel.SMS, recipient=Recipient(phone="+15558675310"))

    # When Twilio reports it sent (progress) and then delivered
    progress = receipts.post(_twilio(notification.id, "sent"))
    progress_queued = receipts.herald.receive_all(QUEUE, visibility=0)
    delivered = receipts.post(_twilio(notification.id, "delivered"))
    _, failed = receipts.process()

    # Then the progress report was answered but not queued, and the delivery was applied
    assert json.loads(progress["body"]) == {"queued": 0}
    assert progress_queued == []
    assert json.loads(delivered["body"]) == {"queued": 1}
    assert failed == set()
    assert receipts.status_of(notification.id).status is Status.DELIVERED


def test_an_ses_event_arrives_through_its_sns_topic(receipts: Receipts) -> None:
    # Given a sent email, and an SNS topic subscribed to the provider-events queue (raw delivery off), as
    # the SES configuration set's destination is
    notification = receipts.sent(str(uuid.uuid4()), provider="ses")
    sns = receipts.herald.session.client("sns")
    topic = sns.create_topic(Name="ses-events")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=receipts.herald.stack.arns[QUEUE])
    bounce_record = load_event("sqs_provider_events_batch.json")["Records"][3]
    bounce = json.loads(json.loads(bounce_record["body"])["Message"])
    bounce["mail"]["tags"]["notification_id"] = [notification.id]

    # When SES publishes the bounce and the function runs
    sns.publish(TopicArn=topic, Message=json.dumps(bounce))
    records, failed = receipts.process()

    # Then the SNS envelope was read and the notification failed with the bounce's type
    assert json.loads(records[0]["body"])["Type"] == "Notification"
    assert failed == set()
    record = receipts.status_of(notification.id)
    assert record.status is Status.FAILED
    assert record.error == "ses reported Bounce (Permanent, General)"


def test_every_record_of_the_sample_batch_is_read(receipts: Receipts) -> None:
    # Given the notifications the sample provider-events batch is about, all sent
    batch = load_event("sqs_provider_events_batch.json")
    for record in batch["Records"]:
        for receipt in parse_message(record["body"]):
            if receipts.store.get(receipt.notification_id) is None:
                receipts.sent(receipt.notification_id)
    deps = build_dependencies(
        load_settings(ProviderEventsSettings, receipts.herald.env),
        dynamodb=receipts.function_session.client("dynamodb"),
        clock=receipts.clock,
    )

    # When the function gets the sample batch
    response = handle_provider_events(batch, context("provider-events", 10), deps)

    # Then every message is done with, and every notification ends failed (each has a later failure)
    assert response == {"batchItemFailures": []}
    for notification_id in (SAMPLE_ID, "1c9a2f4d-6b8e-4c0a-9e2f-4a6c8e0b2d4f", "2d7e9f1a-3b5c-4d6e-8f0a-1b2c3d4e5f60"):
        assert receipts.status_of(notification_id).status is Status.FAILED


# ---------------------------------------------------------------------- idempotent, never backwards
def test_a_duplicate_report_is_dropped_without_a_second_write(receipts: Receipts) -> None:
    # Given a notification delivered by a report
    notification = receipts.sent(str(uuid.uuid4()))
    report = _delivered(notification.id, event_id="dup-1")
    receipts.post(receipts.sendgrid([report]))
    receipts.process()
    delivered = receipts.status_of(notification.id)

    # When SendGrid posts the same report again
    receipts.post(receipts.sendgrid([report]))
    _, failed = receipts.process()

    # Then the message is deleted and the record is exactly as the first report left it
    assert failed == set()
    assert receipts.status_of(notification.id) == delivered
    assert receipts.herald.receive_all(QUEUE) == []


def test_a_late_delivery_report_never_undoes_a_bounce(receipts: Receipts) -> None:
    # Given a notification failed by a bounce
    notification = receipts.sent(str(uuid.uuid4()))
    bounce = {**_delivered(notification.id), "event": "bounce", "status": "5.1.1", "type": "bounce"}
    receipts.post(receipts.sendgrid([bounce]))
    receipts.process()

    # When the earlier delivery report arrives afterwards
    receipts.post(receipts.sendgrid([_delivered(notification.id)]))
    _, failed = receipts.process()

    # Then it is dropped and the notification stays failed
    assert failed == set()
    assert receipts.status_of(notification.id).status is Status.FAILED


def test_a_report_about_a_still_queued_notification_is_kept_and_applies_once_it_is_sent(receipts: Receipts) -> None:
    # Given a notification the sender has not yet recorded as sent (the callback outran its write)
    notification = receipts.sent(str(uuid.uuid4()), status=Status.QUEUED)
    receipts.post(receipts.sendgrid([_delivered(notification.id)]))

    # When the function runs
    records, failed = receipts.process()

    # Then the message is kept for a retry and the record is untouched
    assert failed == {records[0]["messageId"]}
    assert receipts.status_of(notification.id) == notification

    # When the sender records sent, and the message comes back after its visibility timeout
    sqs: SQSClient = receipts.herald.session.client("sqs")
    receipts.herald.session.client("dynamodb").update_item(
        TableName=receipts.herald.env["NOTIFICATIONS_TABLE"],
        Key={"id": {"S": notification.id}},
        UpdateExpression="SET #s = :sent ADD #v :one",
        ExpressionAttributeNames={"#s": "status", "#v": "version"},
        ExpressionAttributeValues={":sent": {"S": "sent"}, ":one": {"N": "1"}},
    )
    sqs.change_message_visibility(
        QueueUrl=receipts.herald.queue_url(QUEUE), ReceiptHandle=records[0]["receiptHandle"], VisibilityTimeout=0
    )
    _, failed_again = receipts.process()

    # Then it applies and the message is gone
    assert failed_again == set()
    assert receipts.status_of(notification.id).status is Status.DELIVERED
    assert receipts.herald.receive_all(QUEUE, visibility=0) == []


def test_a_report_about_an_unknown_notification_is_dropped(receipts: Receipts) -> None:
    # Given no notification with this id (never Herald's, or expired)
    unknown = str(uuid.uuid4())

    # When its report is posted and processed
    answer = receipts.post(receipts.sendgrid([_delivered(unknown)]))
    _, failed = receipts.process()

    # Then it was queued, then deleted without creating a record
    assert json.loads(answer["body"]) == {"queued": 1}
    assert failed == set()
    assert receipts.store.get(unknown) is None
    assert receipts.herald.receive_all(QUEUE, visibility=0) == []


def test_a_malformed_message_is_kept_for_the_dead_letter_queue(receipts: Receipts) -> None:
    # Given a message on the provider-events queue that neither the API nor SNS wrote
    sqs = receipts.herald.session.client("sqs")
    sqs.send_message(QueueUrl=receipts.herald.queue_url(QUEUE), MessageBody='{"hello": "world"}')

    # When the function runs
    records, failed = receipts.process()

    # Then it is reported failed, so SQS moves it to the DLQ after its receives
    assert failed == {records[0]["messageId"]}


def test_a_report_is_kept_when_the_status_table_cannot_be_reached(receipts: Receipts) -> None:
    # Given a sent notification and its delivery report on the queue
    notification = receipts.sent(str(uuid.uuid4()))
    receipts.post(receipts.sendgrid([_delivered(notification.id)]))
    deps = build_dependencies(
        ProviderEventsSettings(NOTIFICATIONS_TABLE="no-such-table"),
        dynamodb=receipts.herald.session.client("dynamodb"),
        clock=receipts.clock,
    )
    message = receipts.herald.receive_all(QUEUE)[0]
    event = {"Records": [sqs_record(message, receipts.herald.stack.arns[QUEUE], REGION)]}

    # When the function cannot read the table
    response = handle_provider_events(event, context("provider-events", 10), deps)

    # Then the message is kept for a retry, and the record is unchanged
    assert response == {"batchItemFailures": [{"itemIdentifier": message["MessageId"]}]}
    assert receipts.status_of(notification.id).status is Status.SENT


@pytest.mark.parametrize(
    ("landed_first", "outcome", "result", "final"),
    [
        ("delivered", ReceiptOutcome.FAILED, ReceiptResult.APPLIED, Status.FAILED),
        ("failed", ReceiptOutcome.DELIVERED, ReceiptResult.IGNORED, Status.FAILED),
    ],
)
def test_a_receipt_that_loses_a_race_is_judged_again_on_the_record_as_it_now_is(
    receipts: Receipts, landed_first: str, outcome: ReceiptOutcome, result: ReceiptResult, final: Status
) -> None:
    # Given a sent notification, and another receipt that lands between this one's read and its write
    notification = receipts.sent(str(uuid.uuid4()))
    table = receipts.herald.env["NOTIFICATIONS_TABLE"]
    other = receipts.herald.session.client("dynamodb")
    client = boto3.Session(region_name=REGION).client("dynamodb")
    raced: list[bool] = []

    def land_another_receipt_first(**_: Any) -> None:
        if not raced:
            raced.append(True)
            other.update_item(
                TableName=table,
                Key={"id": {"S": notification.id}},
                UpdateExpression="SET #s = :status ADD #v :one",
                ExpressionAttributeNames={"#s": "status", "#v": "version"},
                ExpressionAttributeValues={":status": {"S": landed_first}, ":one": {"N": "1"}},
            )

    client.meta.events.register("before-call.dynamodb.UpdateItem", land_another_receipt_first)
    receipt = ReceiptEvent(
        notification_id=notification.id,
        provider=ReceiptProvider.SENDGRID,
        outcome=outcome,
        event_id="race-1",
        occurred_at=NOW,
        detail=f"sendgrid reported {outcome}",
    )

    # When the receipt is applied
    applied = ReceiptStore(table, client=client, clock=receipts.clock).apply(receipt)

    # Then its first write did not land on the changed record; judged again, it did what the rules say
    record = receipts.status_of(notification.id)
    assert raced == [True]
    assert applied is result
    assert record.status is final
    assert record.version == notification.version + (2 if result is ReceiptResult.APPLIED else 1)


# ---------------------------------------------------------------------- what the route answers
def test_an_unsigned_request_is_401_and_a_bad_signature_403_and_neither_is_queued(receipts: Receipts) -> None:
    # Given a delivery report with no signature, one signed by another key, and one with a stale timestamp
    notification_id = str(uuid.uuid4())
    unsigned = receipts.sendgrid([_delivered(notification_id)])
    _set_header(unsigned, "X-Twilio-Email-Event-Webhook-Signature", None)
    stale = receipts.sendgrid([_delivered(notification_id)], timestamp=int(NOW) - 3600)
    genuine, receipts.key = receipts.key, ec.generate_private_key(ec.SECP256R1())
    forged = receipts.sendgrid([_delivered(notification_id)])
    receipts.key = genuine

    # When each is posted
    answers = [receipts.post(event) for event in (unsigned, forged, stale)]

    # Then 401, 403, 403, with JSON errors, and nothing reached the queue
    assert [answer["statusCode"] for answer in answers] == [401, 403, 403]
    codes = [json.loads(answer["body"])["error"]["code"] for answer in answers]
    assert codes == ["signature_missing", "signature_invalid", "signature_invalid"]
    assert receipts.herald.receive_all(QUEUE, visibility=0) == []


def test_a_tampered_sendgrid_body_is_403(receipts: Receipts) -> None:
    # Given a genuine request whose body is changed after signing
    event = receipts.sendgrid([_delivered(str(uuid.uuid4()))])
    event["body"] = event["body"].replace('"delivered"', '"bounce"')

    # When / Then it is refused
    assert receipts.post(event)["statusCode"] == 403


def test_a_twilio_callback_signed_for_the_host_header_is_refused(receipts: Receipts) -> None:
    # Given a callback signed for the URL its Host header names, not the configured PROVIDER_EVENTS_URL
    notification_id = str(uuid.uuid4())
    spoofed = f"https://evil.example.com/v1/provider-events/twilio?notification_id={notification_id}"
    event = _twilio(notification_id, "delivered", url=spoofed)
    _set_header(event, "Host", "evil.example.com")

    # When / Then it is refused: the URL is rebuilt from configuration
    assert receipts.post(event)["statusCode"] == 403


def test_without_a_configured_url_twilio_is_checked_against_the_url_api_gateway_names(receipts: Receipts) -> None:
    # Given an API that cannot name its own URL in the template (PROVIDER_EVENTS_URL unset: it would be a
    # circular reference), and callbacks signed for the API's execute-api URL, or for a spoofed Host
    intake = ReceiptIntake(
        receipts.herald.queue_url(QUEUE),
        twilio_credentials=lambda: {
            "account_sid": "AC1f8e2d3c4b5a69788796a5b4c3d2e1f0",
            "auth_token": SAMPLE_TWILIO_TOKEN,
        },
        sqs=receipts.herald.session.client("sqs"),
    )
    notification_id = str(uuid.uuid4())
    spoofed = _twilio(
        notification_id,
        "delivered",
        url=f"https://evil.example.com/v1/provider-events/twilio?notification_id={notification_id}",
    )
    _set_header(spoofed, "Host", "evil.example.com")

    # When / Then: the URL comes from the request context API Gateway fills in (domain and stage), never Host
    assert receipts.post(_twilio(notification_id, "delivered"), intake)["statusCode"] == 200
    assert receipts.post(spoofed, intake)["statusCode"] == 403


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda event: _set_header(event, "X-Twilio-Signature", None), 401),
        (lambda event: event.update(body=event["body"].replace("delivered", "failed")), 403),
        (lambda event: event["multiValueQueryStringParameters"].update(notification_id=["another"]), 403),
    ],
)
def test_a_twilio_callback_without_a_valid_signature_is_refused(receipts: Receipts, change: Any, status: int) -> None:
    # Given a genuine Twilio callback, then unsigned, with its status changed, or for another notification
    event = _twilio(str(uuid.uuid4()), "delivered")
    change(event)

    # When / Then it is refused with the status of its fault
    assert receipts.post(event)["statusCode"] == status


@pytest.mark.parametrize("body", ["not json", '{"event": "delivered"}'])
def test_a_signed_body_that_is_not_an_array_of_events_is_400(receipts: Receipts, body: str) -> None:
    # Given a correctly signed request whose body is not SendGrid's JSON array
    stamp = str(int(NOW))
    signature = receipts.key.sign(stamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
    event = receipts.sendgrid([])
    event["body"] = body
    _set_header(event, "X-Twilio-Email-Event-Webhook-Signature", base64.b64encode(signature).decode())

    # When / Then it is a malformed body
    answer = receipts.post(event)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "malformed_body"


def test_an_unknown_provider_is_404(receipts: Receipts) -> None:
    # Given a post to a provider Herald takes no reports from
    event = receipts.sendgrid([_delivered(str(uuid.uuid4()))])
    event["path"] = "/provider-events/pigeon"

    # When / Then it is not found, as JSON
    answer = receipts.post(event)
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"]["code"] == "not_found"


def test_a_provider_without_its_configuration_is_404(receipts: Receipts) -> None:
    # Given an intake with no SendGrid verification key (SendGrid receipts not enabled)
    unconfigured = ReceiptIntake(receipts.herald.queue_url(QUEUE), sqs=receipts.herald.session.client("sqs"))

    # When / Then a SendGrid report is not found, whatever its signature
    assert receipts.post(receipts.sendgrid([_delivered(str(uuid.uuid4()))]), unconfigured)["statusCode"] == 404


def test_an_unreachable_queue_is_503_so_the_provider_retries(receipts: Receipts) -> None:
    # Given an intake whose queue does not exist
    missing = receipts.herald.queue_url(QUEUE) + "-gone"
    broken = ReceiptIntake(
        missing, sendgrid_key=_public_b64(receipts.key), sqs=receipts.herald.session.client("sqs"), clock=receipts.clock
    )

    # When a genuine report is posted
    answer = receipts.post(receipts.sendgrid([_delivered(str(uuid.uuid4()))]), broken)

    # Then the service is unavailable, with Retry-After
    assert answer["statusCode"] == 503
    assert "Retry-After" in answer["multiValueHeaders"]


def test_an_unreadable_twilio_secret_is_503(receipts: Receipts) -> None:
    # Given an intake whose Twilio secret cannot be read
    def unreadable() -> dict[str, str]:
        raise RuntimeError("secret herald/twilio unreadable (ClientError)")

    broken = ReceiptIntake(
        receipts.herald.queue_url(QUEUE),
        twilio_credentials=unreadable,
        callback_base_url=BASE_URL,
        sqs=receipts.herald.session.client("sqs"),
    )

    # When a Twilio callback is posted
    answer = receipts.post(_twilio(str(uuid.uuid4()), "delivered"), broken)

    # Then the service is unavailable (the signature could not be checked), and nothing was queued
    assert answer["statusCode"] == 503
    assert receipts.herald.receive_all(QUEUE, visibility=0) == []


# ---------------------------------------------------------------------- big batches
def test_a_sendgrid_batch_too_big_for_one_message_is_split_across_several(receipts: Receipts) -> None:
    # Given a signed batch of 2,500 delivery reports (about 700 KB; SQS takes 256 KiB a message)
    ids = [str(uuid.uuid4()) for _ in range(2_500)]
    event = receipts.sendgrid([_delivered(notification_id) for notification_id in ids])
    assert len(event["body"]) > 2 * SQS_MAX_MESSAGE_BYTES

    # When it is posted
    answer = receipts.post(event)

    # Then every report was queued, across several messages that each fit SQS
    assert json.loads(answer["body"]) == {"queued": 2_500}
    bodies = []
    while messages := receipts.herald.receive_all(QUEUE):
        bodies += [message["Body"] for message in messages]
    assert len(bodies) >= 2
    assert all(len(body.encode()) <= SQS_MAX_MESSAGE_BYTES for body in bodies)
    assert sorted(receipt.notification_id for body in bodies for receipt in parse_message(body)) == sorted(ids)


# ---------------------------------------------------------------------- IAM
def test_the_route_and_the_function_make_only_the_calls_their_roles_allow(receipts: Receipts) -> None:
    # Given a sent notification
    notification = receipts.sent(str(uuid.uuid4()))

    # When its report is posted and applied
    receipts.post(receipts.sendgrid([_delivered(notification.id)]))
    receipts.process()

    # Then the API only sent to the provider-events queue, and the function only read and updated the table
    stack = receipts.herald.stack
    queue_arn = stack.arns[QUEUE]
    table_arn = f"arn:aws:dynamodb:{stack.region}:{stack.account_id}:table/{receipts.herald.env['NOTIFICATIONS_TABLE']}"
    assert receipts.api_calls.calls == {AwsCall("sqs:SendMessage", queue_arn)}
    assert receipts.function_calls.calls == {
        AwsCall("dynamodb:GetItem", table_arn),
        AwsCall("dynamodb:UpdateItem", table_arn),
    }
