"""The nine health routes against moto: a snapshot the monitor's store wrote, read back through each route; what
each route costs in AWS requests (none for /health and /health/live; the few of /health/ready once per cache
period); live probes of the table and every queue; and the notice of a degraded channel on a real accept."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from api.app import build_dependencies, handle
from api.settings import ApiSettings
from notifications.health_snapshot import BreakerView, SnapshotStore
from notifications.settings import load_settings
from tests.integration.notifications.conftest import _session, context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.fakes import health_snapshot
from tests.support.iam import AwsCallRecorder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from api.app import Dependencies
    from notifications.health_snapshot import Snapshot
    from tests.integration.notifications.conftest import Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
NOTICE = "Email is delayed: both email providers are failing; your message is queued and will be sent when one recovers"
BREAKERS = [
    BreakerView(name="provider:ses", kind="provider", state="OPEN", permits_calls=False, open_until=1.0),
    BreakerView(name="webhook:https://hooks.example.com:443", kind="webhook", state="OPEN", permits_calls=False),
]


@dataclass
class HealthApi:
    """The API handler over moto with its own clock (snapshot ages and cache periods) and its requests recorded."""

    herald: Herald
    clock: FakeClock
    calls: AwsCallRecorder
    deps: Dependencies

    def get(self, path: str, *, key_id: str | None = events.CLIENT_KEY_ID, live: bool = False) -> dict[str, Any]:
        event = events.get_route(path)
        event["requestContext"]["identity"]["apiKeyId"] = key_id
        if live:
            event["queryStringParameters"] = {"live": "true"}
            event["multiValueQueryStringParameters"] = {"live": ["true"]}
        return handle(event, context("api", 25), self.deps)

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        return handle(events.post_notification(body), context("api", 25), self.deps)

    def store(self, snapshot: Snapshot) -> None:
        """What the health monitor does every minute."""
        store = SnapshotStore(self.herald.env["RESILIENCE_TABLE"], self.herald.session.client("dynamodb"))
        assert store.write(snapshot)

    def requests(self) -> list[str]:
        """The AWS requests made so far, by action, in order; then forgets them."""
        made = [action for action, _ in self.calls.requests]
        self.calls.requests.clear()
        return made


@pytest.fixture
def api(herald: Herald) -> Iterator[HealthApi]:
    calls = AwsCallRecorder(herald.stack)
    session = calls.attach(_session("health"))
    clock = FakeClock()
    clients = {name: session.client(name) for name in ("dynamodb", "sqs")}
    deps = build_dependencies(
        load_settings(ApiSettings, {**herald.env, "ADMIN_CLIENT_ID": "admin-key"}),
        **clients,
        probe_dynamodb=clients["dynamodb"],
        probe_sqs=clients["sqs"],
        secretsmanager=herald.session.client("secretsmanager"),
        clock=clock,
    )
    try:
        yield HealthApi(herald, clock, calls, deps)
    finally:
        calls.detach(session)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


# ---------------------------------------------------------------------- what each route costs
def test_health_and_live_make_no_aws_request_at_all(api: HealthApi) -> None:
    # Given a snapshot stored, and the environment having read it once (a detailed view)
    api.store(health_snapshot(api.clock() - 30, mode="PARTIAL", reason="SES is failing; SendGrid carries email"))
    api.get("/health/detailed")
    api.requests()

    # When /health and /health/live are called, keyless, many times over two minutes
    answers = []
    for _ in range(12):
        answers += [api.get("/health", key_id=None), api.get("/health/live", key_id=None)]
        api.clock.advance(10)

    # Then none made an AWS request; each reported the snapshot read, and its age growing
    assert api.requests() == []
    assert {(a["statusCode"], body_of(a)["mode"]) for a in answers} == {(200, "PARTIAL")}
    assert body_of(answers[-1])["snapshot_age_seconds"] == 30 + 110


def test_ready_makes_its_few_requests_once_per_cache_period(api: HealthApi) -> None:
    # Given the monitor's snapshot
    api.store(health_snapshot(api.clock() - 10))

    # When ready is asked 5 times within READY_CACHE_SECONDS (5), then once after it
    within = []
    for _ in range(5):
        within.append(api.get("/health/ready", key_id=None))
        api.clock.advance(0.9)
    first_period = api.requests()
    api.clock.advance(0.5)
    after = api.get("/health/ready", key_id=None)

    # Then the first period cost one DescribeTable, three GetQueueAttributes (the queues accepting sends to) and
    # one read of the snapshot; the next period the same, less the snapshot (its reader keeps it 10 s)
    assert {answer["statusCode"] for answer in [*within, after]} == {200}
    assert sorted(first_period) == [
        "dynamodb:DescribeTable",
        "dynamodb:GetItem",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueAttributes",
    ]
    assert sorted(api.requests()) == ["dynamodb:DescribeTable", *["sqs:GetQueueAttributes"] * 3]
    assert body_of(after)["mode"] == "NORMAL"


def test_ready_is_503_with_retry_after_when_the_table_is_gone(api: HealthApi) -> None:
    # Given
    api.herald.session.client("dynamodb").delete_table(TableName=api.herald.env["NOTIFICATIONS_TABLE"])

    # When
    response = api.get("/health/ready", key_id=None)

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    report = body_of(response)
    assert report["reason"] == "new notifications cannot be accepted: the notifications table (DynamoDB) is unreachable"
    assert report["checks"]["dynamodb:notifications"]["error"] == "ResourceNotFoundException"


# ---------------------------------------------------------------------- the snapshot, through each route
def test_each_detailed_view_serves_the_stored_snapshot(api: HealthApi) -> None:
    # Given a degraded snapshot 42 s old, with a notice for email and two breakers open
    api.store(
        health_snapshot(
            api.clock() - 42,
            mode="DEGRADED",
            reason="email has no provider left",
            notices={"email": NOTICE},
            breakers=BREAKERS,
            queue_depth=3,
        )
    )

    # When each detailed view is asked with a client's key
    views = {
        path: api.get(f"/health/{path}")
        for path in ("detailed", "db", "queues", "providers", "circuit-breakers", "system")
    }
    reports = {path: body_of(response) for path, response in views.items()}

    # Then each answers 200 with its part, the mode, the reason and the snapshot's age; one read served them all
    assert {response["statusCode"] for response in views.values()} == {200}
    assert {(r["mode"], r["reason"], r["snapshot_age_seconds"]) for r in reports.values()} == {
        ("DEGRADED", "email has no provider left", 42.0)
    }
    assert reports["detailed"]["notices"] == {"email": NOTICE}
    assert [check["name"] for check in reports["db"]["checks"]] == ["dynamodb:notifications", "dynamodb:resilience"]
    assert {queue["visible"] for queue in reports["queues"]["queues"]} == {3}
    assert [provider["name"] for provider in reports["providers"]["providers"]] == ["ses", "sendgrid"]
    assert [breaker["name"] for breaker in reports["circuit-breakers"]["breakers"]] == ["provider:ses"]
    assert reports["circuit-breakers"]["webhook_breakers_open"] == 1
    assert reports["system"]["function_name"] == "api"
    assert api.requests() == ["dynamodb:GetItem"]


def test_the_admin_key_sees_the_webhook_breakers(api: HealthApi) -> None:
    # Given
    api.store(health_snapshot(api.clock() - 5, breakers=BREAKERS))

    # When
    report = body_of(api.get("/health/circuit-breakers", key_id="admin-key"))

    # Then
    assert [breaker["name"] for breaker in report["breakers"]] == [breaker.name for breaker in BREAKERS]


def test_a_stale_snapshot_is_a_503_that_says_how_old_it_is(api: HealthApi) -> None:
    # Given a snapshot the monitor wrote 10 minutes ago, and none since
    api.store(health_snapshot(api.clock() - 600))

    # When
    response = api.get("/health/providers")

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["60"]
    assert body_of(response)["error"]["message"].startswith("The latest health snapshot is 600 seconds old")


# ---------------------------------------------------------------------- live
def test_live_db_and_queues_probe_aws_on_the_request(api: HealthApi) -> None:
    # Given two messages waiting on the standard queue, and no snapshot
    for _ in range(2):
        assert api.post(EMAIL)["statusCode"] == 202
    api.requests()

    # When the db and queues views are asked live
    db = api.get("/health/db", live=True)
    queues = api.get("/health/queues", live=True)

    # Then one DescribeTable, and one GetQueueAttributes for every queue the API knows, each depth as SQS says
    assert (db["statusCode"], queues["statusCode"]) == (200, 200)
    assert body_of(db)["checks"][0]["name"] == "dynamodb:notifications"
    depths = {queue["name"]: queue["visible"] for queue in body_of(queues)["queues"]}
    assert depths == {"priority": 0, "standard": 2, "batch": 0, "retry": 0, "dead_letter": 0, "provider_events": 0}
    assert sorted(api.requests()) == ["dynamodb:DescribeTable", *["sqs:GetQueueAttributes"] * 6]


# ---------------------------------------------------------------------- notices
def test_an_accept_while_email_is_degraded_carries_the_monitors_notice(api: HealthApi) -> None:
    # Given the monitor's snapshot: email degraded, with a notice
    api.store(health_snapshot(api.clock() - 20, mode="DEGRADED", reason="no email provider", notices={"email": NOTICE}))

    # When an email notification is accepted
    response = api.post(EMAIL)

    # Then its 202 carries the notice, and the snapshot was read once, from the resilience table
    assert response["statusCode"] == 202
    assert body_of(response)["notice"] == NOTICE
    reads = api.calls.made("dynamodb:GetItem")
    assert [read["TableName"] for read in reads] == [api.herald.env["RESILIENCE_TABLE"]]
