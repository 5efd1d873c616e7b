"""The health monitor against moto: probes, breakers through the by-kind index, the mode by the layer's rules,
one stored snapshot the senders read, hanging probes timed out, and every AWS call allowed by its policy."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from health_monitor.app import build_dependencies, handle
from health_monitor.settings import HealthMonitorSettings
from notifications.dead_letters import ABANDONED_REASON
from notifications.health_snapshot import SnapshotStore
from notifications.models import Status
from notifications.observability import logger
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from resilience import BreakerRegistry, DynamoDBBreakerStore
from resilience.mode import Mode, ModeReader
from tests.integration.notifications.conftest import context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.iam import AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.notifications.conftest import Herald

NOW = 1_800_000_000.0


def settings_of(herald: Herald, **overrides: str) -> HealthMonitorSettings:
    # The local runtime's provider lists (sendgrid,ses for email...) are configured by the local runtime only;
    # here email has SES (needs nothing) and SendGrid when its secret is named.
    env = {**herald.env, "QUEUE_AGE_FROM_CLOUDWATCH": "false", **overrides}
    return load_settings(HealthMonitorSettings, env)


def run(herald: Herald, settings: HealthMonitorSettings, **clients: Any) -> dict[str, Any]:
    deps = build_dependencies(
        settings,
        dynamodb=clients.get("dynamodb") or herald.session.client("dynamodb"),
        sqs=clients.get("sqs") or herald.session.client("sqs"),
        clock=clients.get("clock") or FakeClock(NOW),
    )
    return handle({}, context("monitor", 30), deps)


def breakers(herald: Herald) -> BreakerRegistry:
    table = herald.env["RESILIENCE_TABLE"]
    return BreakerRegistry(store=DynamoDBBreakerStore(table, client=herald.session.client("dynamodb")))


def stored(herald: Herald) -> Any:
    return SnapshotStore(herald.env["RESILIENCE_TABLE"], herald.session.client("dynamodb")).read()


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[union-attr]
    yield stream
    logger.registered_handler.setStream(previous)  # type: ignore[union-attr]


def test_all_well_is_normal_and_the_snapshot_is_what_senders_read(herald: Herald) -> None:
    # When
    answer = run(herald, settings_of(herald))

    # Then: NORMAL, with every table and queue probed, and the mode readable where the senders read it
    assert answer == {"mode": "NORMAL", "reason": answer["reason"], "written": True}
    snapshot = stored(herald)
    assert snapshot.mode is Mode.NORMAL and snapshot.taken_at == NOW
    assert {check.name for check in snapshot.checks} >= {
        "dynamodb:notifications",
        "dynamodb:resilience",
        "sqs:priority",
        "sqs:standard",
        "sqs:batch",
        "sqs:retry",
        "sqs:dead_letter",
        "sqs:inbound",
        "sqs:provider_events",
    }
    assert all(check.ok for check in snapshot.checks)
    assert {queue.name for queue in snapshot.queues if queue.dead_letter} == {
        "dead_letter",
        "inbound_dead_letter",
        "provider_events_dead_letter",
    }
    assert ModeReader(herald.env["RESILIENCE_TABLE"], herald.session.client("dynamodb")).current() is Mode.NORMAL


def test_one_email_provider_down_is_partial_and_both_degraded_with_a_notice(herald: Herald) -> None:
    # Given: email served by SES then SendGrid (SendGrid configured by naming its secret)
    settings = settings_of(herald, EMAIL_PROVIDERS="ses,sendgrid", SENDGRID_SECRET="herald/sendgrid")
    registry = breakers(herald)

    # When: SES's breaker is forced open, then SendGrid's too
    registry.force_open("provider:ses")
    partial = run(herald, settings, clock=FakeClock(NOW))
    registry.force_open("provider:sendgrid")
    degraded = run(herald, settings, clock=FakeClock(NOW + 60))

    # Then
    assert partial["mode"] == "PARTIAL"
    assert degraded["mode"] == "DEGRADED"
    snapshot = stored(herald)
    assert {(p.name, p.up) for p in snapshot.providers if p.channel == "email"} == {("ses", False), ("sendgrid", False)}
    assert "email" in snapshot.notices
    assert {breaker.name for breaker in snapshot.breakers} >= {"provider:ses", "provider:sendgrid"}


def test_a_hanging_probe_is_timed_out_and_counted_unhealthy(herald: Herald) -> None:
    # Given: SQS that never answers one queue within the deadline
    release = threading.Event()
    real = herald.session.client("sqs")

    class HangingSqs:
        def get_queue_attributes(self, **kwargs: Any) -> Any:
            if kwargs["QueueUrl"].endswith("StandardQueue"):
                release.wait(10)
            return real.get_queue_attributes(**kwargs)

    settings = settings_of(herald, PROBE_TIMEOUT_SECONDS="0.5")

    # When
    started = time.monotonic()
    try:
        answer = run(herald, settings, sqs=HangingSqs())
    finally:
        release.set()
    took = time.monotonic() - started

    # Then: the run finished about at the deadline; the hung queue is a failed check, so SQS is CRITICAL
    assert took < 3
    snapshot = stored(herald)
    [standard] = [check for check in snapshot.checks if check.name == "sqs:standard"]
    assert (standard.ok, standard.error) == (False, "timed out")
    assert answer["mode"] == "CRITICAL"
    assert "standard" not in {queue.name for queue in snapshot.queues}


def test_a_mode_change_is_logged_once_and_a_late_run_never_replaces_a_newer_snapshot(
    herald: Herald, logged: io.StringIO
) -> None:
    # Given / When: two runs in the same state, then a run whose clock is behind the stored snapshot
    settings = settings_of(herald)
    run(herald, settings, clock=FakeClock(NOW))
    run(herald, settings, clock=FakeClock(NOW + 60))
    late = run(herald, settings, clock=FakeClock(NOW + 30))

    # Then
    changes = [json.loads(line) for line in logged.getvalue().splitlines() if "degradation mode changed" in line]
    assert [(change["mode"], change.get("previous_mode")) for change in changes] == [("NORMAL", None)]
    assert late["written"] is False
    assert stored(herald).taken_at == NOW + 60


def test_every_aws_call_the_monitor_makes_is_allowed_by_its_policy(herald: Herald) -> None:
    # Given: a session recording every call, and a breaker with an item (so the index is read and its items)
    breakers(herald).force_open("provider:ses")
    recorder = AwsCallRecorder(herald.stack)
    session = recorder.attach(boto3.Session(region_name="us-east-1"))

    # When: a run with CloudWatch queue ages on
    deps = build_dependencies(
        settings_of(herald, QUEUE_AGE_FROM_CLOUDWATCH="true"),
        dynamodb=session.client("dynamodb"),
        sqs=session.client("sqs"),
        cloudwatch=session.client("cloudwatch"),
        clock=FakeClock(NOW),
    )
    handle({}, context("monitor", 30), deps)

    # Then
    assert {
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "sqs:GetQueueAttributes",
        "cloudwatch:GetMetricData",
    } <= recorder.actions()
    assert denied_calls(herald.stack, "HealthMonitorFunction", recorder.calls) == []


def abandoned_in_the_dlq(herald: Herald) -> str:
    """A notification whose sender claimed it on its last receive and died holding the lease: SQS's redrive moved
    its message to the DLQ while the record stayed `queued`."""
    response = herald.api(
        events.post_notification({"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "b"})
    )
    notification_id: str = json.loads(response["body"])["id"]
    sqs, url = herald.session.client("sqs"), herald.queue_url("StandardQueue")
    for _ in range(int(herald.env["MAX_RECEIVE_COUNT"])):
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    store = DynamoDBStatusStore(herald.env["NOTIFICATIONS_TABLE"], client=herald.session.client("dynamodb"))
    assert store.claim(notification_id, "sender-that-died", 1.0).granted  # ... and nothing after it
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # this receive moved it to the DLQ
    return notification_id


def test_a_queued_notification_whose_message_reached_the_dlq_is_dead_lettered_within_one_run(
    herald: Herald, logged: io.StringIO
) -> None:
    # Given
    notification_id = abandoned_in_the_dlq(herald)
    store = DynamoDBStatusStore(herald.env["NOTIFICATIONS_TABLE"], client=herald.session.client("dynamodb"))
    assert store.get(notification_id).status is Status.QUEUED  # type: ignore[union-attr]

    # When: one run (its clock is past the dead sender's lease)
    run(herald, settings_of(herald, DEAD_LETTER_WAIT_SECONDS="0"))

    # Then: dead-lettered with the reason, its message still in the DLQ (visible, redrivable); the run says so
    record = store.get(notification_id)
    assert record is not None
    assert (record.status, record.reason, record.history[-1].detail) == (
        Status.DEAD_LETTERED,
        ABANDONED_REASON,
        ABANDONED_REASON,
    )
    [message] = herald.receive_all("DeadLetterQueue")
    assert json.loads(message["Body"]) == {"id": notification_id}
    [report] = [json.loads(line) for line in logged.getvalue().splitlines() if '"health snapshot"' in line]
    assert report["reconciled"] == 1


def test_every_aws_call_of_the_reconciliation_is_allowed_by_the_monitor_s_policy(herald: Herald) -> None:
    # Given: a queued notification whose message is in the DLQ, and a session recording every call
    abandoned_in_the_dlq(herald)
    recorder = AwsCallRecorder(herald.stack)
    session = recorder.attach(boto3.Session(region_name="us-east-1"))

    # When
    deps = build_dependencies(
        settings_of(herald, DEAD_LETTER_WAIT_SECONDS="0"),
        dynamodb=session.client("dynamodb"),
        sqs=session.client("sqs"),
        clock=FakeClock(NOW),
    )
    handle({}, context("monitor", 30), deps)

    # Then
    assert {
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "dynamodb:BatchGetItem",
        "dynamodb:UpdateItem",
    } <= recorder.actions()
    assert denied_calls(herald.stack, "HealthMonitorFunction", recorder.calls) == []
