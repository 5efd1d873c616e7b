"""The delivery engine against moto's SQS and DynamoDB: real queues, real breaker items, and the policy.

Each test takes messages off a real queue as the event source mapping would (`Herald.poll`), so the
receipt handles, queue ARNs and receive counts are the ones SQS hands out.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from notifications.clock import iso
from resilience import BreakerRegistry, BreakerState, DynamoDBBreakerStore, ResilienceSettings
from tests.support import events
from tests.support.iam import denied_calls

if TYPE_CHECKING:
    from local.receiver import WebhookReceiver
    from tests.integration.notifications.conftest import Herald


def accept(herald: Herald, body: dict[str, Any]) -> str:
    response = herald.api(events.post_notification(body))
    assert response["statusCode"] == 202, response["body"]
    notification_id: str = json.loads(response["body"])["id"]
    return notification_id


def webhook(url: str) -> dict[str, Any]:
    return {"channel": "webhook", "recipient": {"webhook_url": url}, "body": "Build 7 passed"}


def view(herald: Herald, notification_id: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(herald.api(events.get_notification(notification_id))["body"])
    return body


def breakers(herald: Herald) -> BreakerRegistry:
    """An operator's view of the fleet's breakers: the same DynamoDB items the sender uses."""
    table = herald.env["RESILIENCE_TABLE"]
    return BreakerRegistry(
        settings=ResilienceSettings(table_name=table),
        store=DynamoDBBreakerStore(table, client=herald.session.client("dynamodb")),
    )


def origin(url: str) -> str:
    return "webhook:" + url.rsplit("/", 1)[0]


def retry_now(herald: Herald, event: dict[str, Any], response: dict[str, Any]) -> None:
    """Make the messages the sender kept visible at once, instead of after their backoff."""
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    sqs = herald.session.client("sqs")
    for record in event["Records"]:
        if record["messageId"] in failed:
            sqs.change_message_visibility(
                QueueUrl=herald.queue_url("StandardQueue"), ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )


def queue_counts(herald: Herald, logical_id: str) -> dict[str, int]:
    attributes = herald.session.client("sqs").get_queue_attributes(
        QueueUrl=herald.queue_url(logical_id), AttributeNames=["All"]
    )["Attributes"]
    return {
        "visible": int(attributes["ApproximateNumberOfMessages"]),
        "in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        "delayed": int(attributes["ApproximateNumberOfMessagesDelayed"]),
    }


def test_a_transient_failure_makes_the_message_visible_again_in_seconds(
    herald: Herald, receiver: WebhookReceiver
) -> None:
    # Given: the endpoint answers 503 once
    receiver.responses.append(503)
    notification_id = accept(herald, webhook(receiver.url))

    # When
    event, response = herald.poll("StandardQueue")

    # Then: the message's visibility was set to a backoff of seconds on its own queue, not left at 360 s
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [event["Records"][0]["messageId"]]
    [change] = herald.sender_calls.made("sqs:ChangeMessageVisibility")
    assert change["QueueUrl"] == herald.queue_url("StandardQueue")
    assert change["ReceiptHandle"] == event["Records"][0]["receiptHandle"]
    assert 1 <= change["VisibilityTimeout"] <= 5
    assert view(herald, notification_id)["status"] == "queued"
    assert view(herald, notification_id)["next_attempt_at"] is not None


def test_a_dead_endpoint_opens_its_breaker_in_dynamodb_and_the_rest_waits_on_the_retry_queue(
    herald: Herald, receiver: WebhookReceiver
) -> None:
    # Given: an endpoint that answers 503 to everything, and 10 notifications to it
    receiver.status = 503
    ids = [accept(herald, webhook(receiver.url)) for _ in range(10)]

    # When: one batch, then the retries of what failed, their backoff cut short
    event, response = herald.poll("StandardQueue")
    retry_now(herald, event, response)
    herald.poll("StandardQueue")

    # Then: the breaker item is OPEN, every notification is deferred, the copies wait on the retry queue
    [status] = breakers(herald).describe([origin(receiver.url)])
    assert status.state is BreakerState.OPEN
    statuses = [view(herald, notification_id) for notification_id in ids]
    assert {s["status"] for s in statuses} == {"deferred"}
    assert all(s["reason"].startswith("webhook endpoint unavailable") for s in statuses)
    assert queue_counts(herald, "RetryQueue")["delayed"] == 10
    assert len(receiver.received) <= 10  # at most one call per notification while it was down


def test_a_notification_deferred_past_the_horizon_rests_in_the_dlq_as_dead_lettered(
    herald: Herald, receiver: WebhookReceiver
) -> None:
    # Given: a notification accepted 25 hours ago whose endpoint's breaker is open
    notification_id = accept(herald, webhook(receiver.url))
    herald.session.client("dynamodb").update_item(
        TableName=herald.env["NOTIFICATIONS_TABLE"],
        Key={"id": {"S": notification_id}},
        UpdateExpression="SET created_at = :old",
        ExpressionAttributeValues={":old": {"S": iso(1_000_000_000.0)}},
    )
    breakers(herald).force_open(origin(receiver.url))

    # When
    _, response = herald.poll("StandardQueue")

    # Then: the message is done on its own queue and a copy rests in the DLQ, redrivable
    assert response["batchItemFailures"] == []
    [dead] = herald.receive_all("DeadLetterQueue")
    assert json.loads(dead["Body"]) == {"id": notification_id}
    assert "gave up after 24 h" in dead["MessageAttributes"]["reason"]["StringValue"]
    assert view(herald, notification_id)["status"] == "dead_lettered"


def test_every_aws_call_the_sender_makes_is_allowed_by_its_policy(herald: Herald, receiver: WebhookReceiver) -> None:
    # Given: the sender's paths through AWS: email, a transient failure, a breaker that opens, deferral,
    # the horizon and the degradation-mode read
    accept(herald, {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "s", "body": "b"})
    receiver.status = 503
    for _ in range(6):
        accept(herald, webhook(receiver.url))
    old = accept(herald, webhook(receiver.url.replace("/hook", "/old")))
    herald.session.client("dynamodb").update_item(
        TableName=herald.env["NOTIFICATIONS_TABLE"],
        Key={"id": {"S": old}},
        UpdateExpression="SET created_at = :old",
        ExpressionAttributeValues={":old": {"S": iso(1_000_000_000.0)}},
    )

    # When
    event, response = herald.poll("StandardQueue")
    retry_now(herald, event, response)
    herald.poll("StandardQueue")

    # Then: each path was taken, and the template's policy allows every request it made
    assert {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:ChangeMessageVisibility",
        "sqs:SendMessage",
        "ses:SendEmail",
    } <= herald.sender_calls.actions()
    assert denied_calls(herald.stack, "SenderFunction", herald.sender_calls.calls) == []
