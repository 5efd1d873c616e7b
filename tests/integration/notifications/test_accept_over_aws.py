"""The API handler against moto's DynamoDB and SQS: a real message on a real queue, and the health probes.

The accepting rules (idempotency, validation, errors) are unit tests over fakes, in
tests/unit/notifications/test_accept_api.py.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from notifications.health_snapshot import SnapshotStore
from tests.support import events
from tests.support.fakes import health_snapshot

if TYPE_CHECKING:
    from tests.integration.notifications.conftest import Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def test_accepted_notification_gets_202_a_location_and_one_message_on_its_queue(herald: Herald) -> None:
    # When
    response = herald.api(events.post_notification(EMAIL))

    # Then
    assert response["statusCode"] == 202
    accepted = body_of(response)
    assert accepted["status"] == "queued"
    assert response["multiValueHeaders"]["Location"] == [f"/notifications/{accepted['id']}"]
    messages = herald.receive_all("StandardQueue")
    assert [json.loads(m["Body"])["id"] for m in messages] == [accepted["id"]]


def test_health_ready_reports_each_dependency_and_the_mode(herald: Herald) -> None:
    # Given the health monitor's snapshot: all well
    SnapshotStore(herald.env["RESILIENCE_TABLE"], herald.session.client("dynamodb")).write(health_snapshot(time.time()))

    # When
    response = herald.api(events.get_route("/health/ready"))

    # Then: the table and each queue an accept sends to were checked, and the mode is the snapshot's
    assert response["statusCode"] == 200
    report = body_of(response)
    assert report["mode"] == "NORMAL"
    assert set(report["checks"]) == {"dynamodb:notifications", "sqs:priority", "sqs:standard", "sqs:batch"}


def test_health_ready_is_503_when_a_queue_is_unreachable(herald: Herald) -> None:
    # Given (readiness checks the queues accepting sends to: the retry queue is the sender's)
    herald.session.client("sqs").delete_queue(QueueUrl=herald.queue_url("StandardQueue"))

    # When
    response = herald.api(events.get_route("/health/ready"))

    # Then
    assert response["statusCode"] == 503
    assert body_of(response)["mode"] == "CRITICAL"
    assert body_of(response)["checks"]["sqs:standard"]["ok"] is False
