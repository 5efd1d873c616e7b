"""The sender handler: SQS batch in, provider calls out, status records and the partial batch response."""

from __future__ import annotations

import json
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.ses.models import ses_backends

from local.receiver import WebhookReceiver
from tests.integration.notifications.conftest import REGION, Herald
from tests.support import events


def accept(herald: Herald, body: dict[str, Any]) -> str:
    response = herald.api(events.post_notification(body))
    assert response["statusCode"] == 202, response["body"]
    notification_id: str = json.loads(response["body"])["id"]
    return notification_id


def webhook(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"channel": "webhook", "recipient": {"webhook_url": receiver.url}, "body": "Build 7 passed", **extra}


def status(herald: Herald, notification_id: str) -> dict[str, Any]:
    response = herald.api(events.get_notification(notification_id))
    view: dict[str, Any] = json.loads(response["body"])
    return view


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def test_a_webhook_is_delivered_signed_once_and_the_status_moves_to_sent(
    herald: Herald, receiver: WebhookReceiver
) -> None:
    # Given
    notification_id = accept(herald, webhook(receiver, data={"build": 7}))

    # When
    response = herald.sender(events.sqs_batch([events.queue_message(notification_id)]))

    # Then
    assert failures(response) == []
    [delivery] = receiver.received
    assert delivery.signature_valid
    assert delivery.headers["webhook-id"] == notification_id
    assert delivery.headers["x-notification-id"] == notification_id
    assert json.loads(delivery.body)["data"]["data"] == {"build": 7}
    view = status(herald, notification_id)
    assert (view["status"], view["channel_used"], view["provider"], view["attempts"]) == (
        "sent",
        "webhook",
        "webhook",
        1,
    )
    assert [entry["status"] for entry in view["history"]] == ["queued", "sent"]


def test_a_duplicate_message_is_dropped_without_a_second_delivery(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given: SQS delivered the same message twice (at-least-once)
    notification_id = accept(herald, webhook(receiver))
    herald.sender(events.sqs_batch([events.queue_message(notification_id)]))

    # When
    response = herald.sender(events.sqs_batch([events.queue_message(notification_id)], receive_count=2))

    # Then
    assert failures(response) == []
    assert len(receiver.received) == 1
    assert status(herald, notification_id)["attempts"] == 1


def test_a_transient_failure_is_reported_for_retry_and_the_retry_delivers(
    herald: Herald, receiver: WebhookReceiver
) -> None:
    # Given: the receiver answers 503 once
    receiver.responses.append(503)
    notification_id = accept(herald, webhook(receiver))
    batch = events.sqs_batch([events.queue_message(notification_id)])

    # When
    first = herald.sender(batch)
    after_first = status(herald, notification_id)
    second = herald.sender(events.sqs_batch([events.queue_message(notification_id)], receive_count=2))

    # Then
    assert failures(first) == [batch["Records"][0]["messageId"]]
    assert (after_first["status"], after_first["attempts"]) == ("queued", 1)
    assert "HTTP 503" in after_first["error"]
    assert failures(second) == []
    final = status(herald, notification_id)
    assert (final["status"], final["attempts"], final["error"]) == ("sent", 2, None)
    assert [entry["status"] for entry in final["history"]] == ["queued", "queued", "sent"]


def test_a_permanent_failure_is_final_and_not_retried(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given
    receiver.responses.append(400)
    notification_id = accept(herald, webhook(receiver))

    # When
    response = herald.sender(events.sqs_batch([events.queue_message(notification_id)]))

    # Then
    assert failures(response) == []
    view = status(herald, notification_id)
    assert view["status"] == "failed" and "HTTP 400" in view["error"]


def test_a_transient_failure_on_the_last_receive_dead_letters(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given
    receiver.responses.append(500)
    notification_id = accept(herald, webhook(receiver))
    last = int(herald.env["MAX_RECEIVE_COUNT"])

    # When
    response = herald.sender(events.sqs_batch([events.queue_message(notification_id)], receive_count=last))

    # Then: the message stays so SQS moves it to the DLQ; the status is terminal
    assert len(failures(response)) == 1
    assert status(herald, notification_id)["status"] == "dead_lettered"


def test_only_the_failed_record_of_a_batch_is_reported(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given: the first delivery goes to an endpoint that fails, the second to one that answers
    # (two endpoints, because the deliveries of a batch run concurrently and may reach one in any order)
    with WebhookReceiver(secret=herald.webhook_secret) as failing:
        failing.responses.append(502)
        first = accept(herald, webhook(failing))
        second = accept(herald, webhook(receiver))
        batch = events.sqs_batch([events.queue_message(first), events.queue_message(second)])

        # When
        response = herald.sender(batch)

    # Then
    assert failures(response) == [batch["Records"][0]["messageId"]]
    assert status(herald, second)["status"] == "sent"


def test_malformed_and_unknown_messages(herald: Herald) -> None:
    # Given
    batch = events.sqs_batch(["not json", events.queue_message("11111111-2222-3333-4444-555555555555")])

    # When
    response = herald.sender(batch)

    # Then: the malformed one is kept (it will rest in the DLQ); an unknown id is dropped
    assert failures(response) == [batch["Records"][0]["messageId"]]


def test_an_email_goes_through_ses_tagged_with_the_notification_id(herald: Herald) -> None:
    # Given
    notification_id = accept(
        herald, {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "It is 1"}
    )

    # When
    response = herald.sender(events.sqs_batch([events.queue_message(notification_id)]))

    # Then
    assert failures(response) == []
    view = status(herald, notification_id)
    assert (view["status"], view["provider"]) == ("sent", "ses")
    sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert len(sent) == 1
    assert sent[0].destinations["ToAddresses"] == ["ada@example.com"]


def test_records_left_when_time_runs_short_are_handed_back_untouched(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given: two notifications and an invocation with less time left than one provider call may take
    first = accept(herald, webhook(receiver))
    second = accept(herald, webhook(receiver))
    batch = events.sqs_batch([events.queue_message(first), events.queue_message(second)])

    # When
    response = herald.sender_with_time_left(batch, 20.0)

    # Then: both come back for a later invocation, nothing was called and no attempt was counted
    # (in any order: the batch's records are handled concurrently, and SQS reads the failures as a set)
    assert sorted(failures(response)) == sorted(record["messageId"] for record in batch["Records"])
    assert receiver.received == []
    assert status(herald, first)["attempts"] == status(herald, second)["attempts"] == 0
