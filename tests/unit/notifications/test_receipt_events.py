"""Providers' documented report payloads, parsed and normalised to one `ReceiptEvent` each, keeping no personal data."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from notifications.receipts.events import (
    MalformedReceipt,
    ReceiptOutcome,
    ReceiptProvider,
    SendGridEvent,
    SendGridReceipts,
    TwilioReceipt,
    TwilioStatusCallback,
    parse_message,
    parse_sendgrid_batch,
)
from tests.support.events import load_event

SAMPLE_ID = "0b8f1e3c-5a7d-4e2b-9c6f-1d2e3f4a5b6c"
PERSONAL = (
    "example@test.com",
    "recipient@example.com",
    "255.255.255.255",
    "Mozilla",
    "+1501",
    "+1555",
    "unknown recipient",
)


def _sendgrid_sample() -> bytes:
    body: str = load_event("api_post_provider_event_sendgrid.json")["body"]
    return body.encode()


def _batch_bodies() -> list[str]:
    return [record["body"] for record in load_event("sqs_provider_events_batch.json")["Records"]]


# ---------------------------------------------------------------------- SendGrid
def test_every_documented_sendgrid_event_maps_to_its_outcome() -> None:
    # Given SendGrid's documented example batch: one event of each type, all about one notification
    events, malformed = parse_sendgrid_batch(_sendgrid_sample())

    # When each is normalised
    receipts = {event.event: event.receipt() for event in events}
    outcomes = {name: receipt.outcome for name, receipt in receipts.items() if receipt is not None}

    # Then delivered delivers; bounce, dropped and spamreport fail; progress and engagement change nothing
    assert malformed == 0
    assert len(outcomes) == len(events)
    assert outcomes == {
        "processed": ReceiptOutcome.NOTHING,
        "deferred": ReceiptOutcome.NOTHING,
        "delivered": ReceiptOutcome.DELIVERED,
        "open": ReceiptOutcome.NOTHING,
        "click": ReceiptOutcome.NOTHING,
        "bounce": ReceiptOutcome.FAILED,
        "dropped": ReceiptOutcome.FAILED,
        "spamreport": ReceiptOutcome.FAILED,
        "unsubscribe": ReceiptOutcome.NOTHING,
        "group_unsubscribe": ReceiptOutcome.NOTHING,
        "group_resubscribe": ReceiptOutcome.NOTHING,
    }


def test_a_sendgrid_bounce_keeps_its_smtp_status_and_type_but_not_its_reason_text() -> None:
    # Given the documented bounce event (its reason text could quote the address)
    events, _ = parse_sendgrid_batch(_sendgrid_sample())
    bounce = next(event for event in events if event.event == "bounce")

    # When it is normalised
    receipt = bounce.receipt()

    # Then it names the notification, SendGrid's event id and time, and only enumerated facts
    assert receipt is not None
    assert receipt.notification_id == SAMPLE_ID
    assert receipt.provider is ReceiptProvider.SENDGRID
    assert receipt.event_id == "9b1QJHnN2VV2ZKpGR7nRxA=="
    assert receipt.occurred_at == 1_795_922_125.0
    assert receipt.detail == "sendgrid reported bounce (type bounce, SMTP status 5.0.0)"


def test_nothing_personal_in_a_sendgrid_event_is_kept() -> None:
    # Given the documented batch, whose events carry the address, IP, user agent, URL and reasons
    events, _ = parse_sendgrid_batch(_sendgrid_sample())

    # When they are dumped as the API queues them
    dumped = json.dumps([event.model_dump(mode="json") for event in events])

    # Then none of that personal data survives
    for value in PERSONAL:
        assert value not in dumped


def test_a_sendgrid_event_without_a_notification_id_is_not_heralds() -> None:
    # Given an event about mail sent through the same SendGrid account by something else
    event = SendGridEvent.model_validate({"event": "bounce", "sg_event_id": "x", "timestamp": 1, "email": "a@b.c"})

    # When / Then there is no receipt to apply
    assert event.receipt() is None


def test_an_event_type_sendgrid_adds_later_changes_nothing() -> None:
    # Given an event type this code does not know
    event = SendGridEvent.model_validate(
        {"event": "machine_opened", "sg_event_id": "x", "timestamp": 1, "notification_id": "n-1"}
    )

    # When / Then it is parsed and changes nothing, rather than failing the batch
    assert event.outcome is ReceiptOutcome.NOTHING


def test_free_text_in_sendgrid_status_or_type_is_dropped() -> None:
    # Given a bounce whose status and type are not the documented enumerations
    event = SendGridEvent.model_validate(
        {
            "event": "bounce",
            "sg_event_id": "x",
            "timestamp": 1,
            "notification_id": "n-1",
            "status": "550 mailbox ada@example.com unknown",
            "type": "ada@example.com",
        }
    )

    # When / Then only the plain event name remains
    assert event.status is None
    assert event.type is None
    receipt = event.receipt()
    assert receipt is not None
    assert receipt.detail == "sendgrid reported bounce"


def test_a_sendgrid_batch_with_one_bad_event_keeps_the_good_ones() -> None:
    # Given a batch in which one item lacks SendGrid's event id and another is not an object
    body = json.dumps(
        [
            {"event": "delivered", "sg_event_id": "a", "timestamp": 1, "notification_id": "n-1"},
            {"event": "delivered", "timestamp": 1, "notification_id": "n-2"},
            "delivered",
        ]
    ).encode()

    # When the batch is parsed
    events, malformed = parse_sendgrid_batch(body)

    # Then the good event is kept and the two others are counted as malformed
    assert [event.notification_id for event in events] == ["n-1"]
    assert malformed == 2


@pytest.mark.parametrize("body", [b"not json", b'{"event": "delivered"}', b"[NaN]", b"\xff\xfe"])
def test_a_sendgrid_body_that_is_not_a_json_array_is_malformed(body: bytes) -> None:
    # Given / When / Then a body that is not a JSON array of events is refused (HTTP 400)
    with pytest.raises(MalformedReceipt):
        parse_sendgrid_batch(body)


# ---------------------------------------------------------------------- Twilio
def test_the_documented_undelivered_status_callback_fails_with_its_error_code() -> None:
    # Given the sample status callback: undelivered, ErrorCode 30003
    fields = dict(parse_qsl(load_event("api_post_provider_event_twilio.json")["body"]))
    callback = TwilioStatusCallback.model_validate(fields)

    # When it is normalised for the notification named in its URL, as received now
    receipt = callback.receipt(SAMPLE_ID, received_at=1_795_922_135.5)

    # Then it is a failure with Twilio's error code, identified by the message and its status
    assert receipt.outcome is ReceiptOutcome.FAILED
    assert receipt.provider is ReceiptProvider.TWILIO
    assert receipt.detail == "twilio reported undelivered (error 30003)"
    assert receipt.event_id == "SM5e0f1d2c3b4a59687766554433221100/undelivered"
    assert receipt.occurred_at == 1_795_922_135.5
    dumped = callback.model_dump_json(by_alias=True)
    assert "+1501" not in dumped
    assert "+1555" not in dumped


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("delivered", ReceiptOutcome.DELIVERED),
        ("undelivered", ReceiptOutcome.FAILED),
        ("failed", ReceiptOutcome.FAILED),
        ("queued", ReceiptOutcome.NOTHING),
        ("sending", ReceiptOutcome.NOTHING),
        ("sent", ReceiptOutcome.NOTHING),
    ],
)
def test_twilio_message_statuses_map_to_outcomes(status: str, outcome: ReceiptOutcome) -> None:
    # Given a callback with this MessageStatus (and SmsStatus, as Twilio sends both)
    fields = {"MessageSid": "SM" + "0" * 32, "MessageStatus": status, "SmsStatus": status}

    # When / Then it maps to the documented outcome
    assert TwilioStatusCallback.model_validate(fields).outcome is outcome


def test_a_twilio_error_code_that_is_not_a_number_is_dropped() -> None:
    # Given / When / Then an ErrorCode that is not Twilio's numeric code is not carried into the detail
    callback = TwilioStatusCallback.model_validate(
        {"MessageSid": "SM" + "0" * 32, "MessageStatus": "failed", "ErrorCode": "+447700900123"}
    )
    assert callback.error_code is None


# ---------------------------------------------------------------------- SES through SNS
def test_the_documented_ses_events_arrive_through_their_sns_envelopes() -> None:
    # Given the sample batch's SES records: Delivery, Bounce, Complaint, Reject and Send through SNS
    bodies = _batch_bodies()[2:]

    # When each message is parsed
    receipts = [parse_message(body) for body in bodies]

    # Then each names the tagged notification, the SNS message id, and the event's outcome
    flat = [items[0] for items in receipts]
    assert all(len(items) == 1 for items in receipts)
    assert {receipt.notification_id for receipt in flat} == {"2d7e9f1a-3b5c-4d6e-8f0a-1b2c3d4e5f60"}
    assert [receipt.outcome for receipt in flat] == [
        ReceiptOutcome.DELIVERED,
        ReceiptOutcome.FAILED,
        ReceiptOutcome.FAILED,
        ReceiptOutcome.FAILED,
        ReceiptOutcome.NOTHING,
    ]
    assert flat[0].event_id == json.loads(bodies[0])["MessageId"]
    assert [receipt.detail for receipt in flat[1:3]] == [
        "ses reported Bounce (Permanent, General)",
        "ses reported Complaint (abuse)",
    ]


def test_an_ses_bounce_happened_when_the_bounce_says() -> None:
    # Given the sample bounce, whose bounce.timestamp is later than its mail.timestamp
    receipt = parse_message(_batch_bodies()[3])[0]

    # When / Then its time is the bounce's (2026-11-29T03:15:38.669Z)
    assert receipt.occurred_at == pytest.approx(1_795_922_138.669)


def test_an_ses_event_without_the_notification_tag_is_not_heralds() -> None:
    # Given an SES event whose mail carries no notification_id tag
    envelope = json.loads(_batch_bodies()[3])
    event = json.loads(envelope["Message"])
    del event["mail"]["tags"]["notification_id"]
    envelope["Message"] = json.dumps(event)

    # When / Then there is nothing to apply
    assert parse_message(json.dumps(envelope)) == []


def test_a_bare_ses_event_is_read_too_should_the_subscription_deliver_raw_messages() -> None:
    # Given the SES bounce JSON without its SNS envelope
    bare = json.loads(_batch_bodies()[3])["Message"]

    # When / Then it is the same failure, identified by SES's message id
    [receipt] = parse_message(bare)
    assert receipt.outcome is ReceiptOutcome.FAILED
    assert receipt.event_id == json.loads(bare)["mail"]["messageId"]


# ---------------------------------------------------------------------- queued messages
def test_the_sample_queued_sendgrid_and_twilio_messages_parse() -> None:
    # Given the sample batch's first two records: a SendGrid and a Twilio message as the API queues them
    sendgrid, twilio = _batch_bodies()[:2]

    # When / Then they hold the receipts the API verified
    assert [r.outcome for r in parse_message(sendgrid)] == [ReceiptOutcome.DELIVERED, ReceiptOutcome.FAILED]
    [failed] = parse_message(twilio)
    assert failed.notification_id == "1c9a2f4d-6b8e-4c0a-9e2f-4a6c8e0b2d4f"
    assert failed.detail == "twilio reported undelivered (error 30003)"


def test_what_the_api_queues_reads_back_as_the_same_receipts() -> None:
    # Given SendGrid events and a Twilio callback dumped as the intake queues them
    events, _ = parse_sendgrid_batch(_sendgrid_sample())
    sendgrid = SendGridReceipts(provider=ReceiptProvider.SENDGRID, events=events)
    callback = TwilioStatusCallback.model_validate({"MessageSid": "SM" + "1" * 32, "MessageStatus": "delivered"})
    twilio = TwilioReceipt(provider=ReceiptProvider.TWILIO, notification_id="n-9", received_at=5.0, callback=callback)

    # When the queue messages are parsed by the consumer
    from_sendgrid = parse_message(sendgrid.model_dump_json(exclude_none=True))
    from_twilio = parse_message(twilio.model_dump_json(by_alias=True, exclude_none=True))

    # Then they are the receipts the producer saw
    assert from_sendgrid == [event.receipt() for event in events]
    assert from_twilio == [callback.receipt("n-9", received_at=5.0)]


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"hello": "world"}',
        '{"provider": "pigeon", "events": []}',
        '{"provider": "sendgrid", "events": []}',
        '{"Type": "SubscriptionConfirmation", "MessageId": "m", "TopicArn": "t", "Message": "{}"}',
        '{"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "not json"}',
        '{"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Message": "{\\"eventType\\": \\"Bounce\\"}"}',
    ],
)
def test_a_message_in_no_known_shape_is_malformed(body: str) -> None:
    # Given / When / Then a message neither the API nor SNS wrote is refused (it is kept for the DLQ)
    with pytest.raises(MalformedReceipt):
        parse_message(body)


def test_a_malformed_message_is_described_without_quoting_its_content() -> None:
    # Given a queued message holding an address where a notification id should be a string
    body = json.dumps({"provider": "twilio", "notification_id": ["ada@example.com"], "received_at": 1, "callback": {}})

    # When it is refused
    with pytest.raises(MalformedReceipt) as refused:
        parse_message(body)

    # Then the message counts the problems but does not repeat the address
    assert "ada@example.com" not in refused.value.message


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_report_with_a_number_beyond_a_float_is_malformed_not_a_crash(number: str) -> None:
    # Given: a body whose timestamp is no finite number
    body = f'[{{"event": "delivered", "timestamp": {number}, "notification_id": "n-1", "sg_event_id": "e"}}]'

    # When / Then: refused as malformed (400), never carried on as infinity
    with pytest.raises(MalformedReceipt):
        parse_sendgrid_batch(body.encode())
