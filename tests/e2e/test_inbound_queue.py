"""A producer drops a notification on the inbound queue over the local runtime, and finds it by its key."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_channels_and_failover import sent_to
from tests.e2e.test_notification_flow import call

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def find(herald: RunningHerald, key: str, wanted: set[str], timeout: float = 20.0) -> dict[str, Any]:
    """`GET /notifications?idempotency_key=` until the notification is in one of `wanted`."""
    deadline = time.monotonic() + timeout
    answer: Any = None
    while time.monotonic() < deadline:
        status, _, answer = call(herald, "GET", f"/notifications?idempotency_key={key}")
        if status == 200 and answer["status"] in wanted:
            view: dict[str, Any] = answer
            return view
        time.sleep(0.1)
    raise AssertionError(f"no notification for key {key} in {wanted} within {timeout} s: {answer}")


def test_a_producer_sends_one_message_and_the_notification_is_delivered(herald: RunningHerald) -> None:
    # Given: a backend service that speaks SQS
    sqs = herald.client("sqs")
    key = f"order-{time.time_ns()}-code"
    notification = {
        "channel": "email",
        "recipient": {"email": "ada@example.com"},
        "subject": "Your code",
        "body": "Your code is 123456",
        "idempotency_key": key,
    }

    # When: it sends the notification twice (a producer's retry), and a batch envelope
    for _ in range(2):
        sqs.send_message(QueueUrl=herald.queue_url("InboundQueue"), MessageBody=json.dumps(notification))
    batch_key = f"{key}-batch"
    envelope = {"notifications": [{**notification, "idempotency_key": batch_key}]}
    sqs.send_message(QueueUrl=herald.queue_url("InboundQueue"), MessageBody=json.dumps(envelope))

    # Then: the ready client finds each by its key, delivered once
    view = find(herald, key, {"sent", "delivered"})
    assert view["provider"] == "sendgrid"
    assert find(herald, batch_key, {"sent", "delivered"})["channel_used"] == "email"
    assert len(sent_to(herald, "sendgrid", view["id"])) == 1


def test_a_message_that_can_never_be_accepted_goes_to_the_inbound_dead_letter_queue(herald: RunningHerald) -> None:
    # When: a producer sends something that is not a notification
    sqs = herald.client("sqs")
    sent = sqs.send_message(QueueUrl=herald.queue_url("InboundQueue"), MessageBody='{"channel": "fax", "body": "hi"}')

    # Then: it rests in the inbound DLQ at once, with the reasons
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=herald.queue_url("InboundDeadLetterQueue"), MessageAttributeNames=["All"], WaitTimeSeconds=1
        ).get("Messages", [])
        mine = [m for m in messages if m["MessageAttributes"]["source_message_id"]["StringValue"] == sent["MessageId"]]
        if mine:
            assert "channel" in mine[0]["MessageAttributes"]["fields"]["StringValue"]
            return
    raise AssertionError("the rejected message did not reach the inbound dead-letter queue")
