"""The API's nine health routes over fakes: what each reports, from the monitor's snapshot or live, who sees
webhook breakers, when each answers 503 and in what words, and what each costs in reads and probes."""

from __future__ import annotations

import json
import platform
from typing import TYPE_CHECKING, Any

import pytest

from notifications.health import NEVER_READ, NONE_STORED
from notifications.health_snapshot import BreakerView
from tests.support import events
from tests.support.fakes import health_snapshot
from tests.unit.notifications.conftest import ADMIN_KEY_ID

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

DETAILED_VIEWS = ["/health/detailed", "/health/db", "/health/queues", "/health/providers", "/health/circuit-breakers"]
BREAKERS = [
    BreakerView(name="provider:ses", kind="provider", state="OPEN", permits_calls=False, open_until=1.0),
    BreakerView(name="provider:sendgrid", kind="provider", state="CLOSED", permits_calls=True),
    BreakerView(name="webhook:https://a.example:443", kind="webhook", state="OPEN", permits_calls=False),
    BreakerView(name="webhook:https://b.example:443", kind="webhook", state="HALF_OPEN", permits_calls=True),
    BreakerView(name="webhook:https://c.example:443", kind="webhook", state="CLOSED", permits_calls=True),
]


def get(path: str, *, key_id: str | None = events.CLIENT_KEY_ID, query: dict[str, str] | None = None) -> dict[str, Any]:
    """`GET path`, with the API key whose id is `key_id` (None: keyless) and a query string."""
    event = events.get_route(path)
    event["requestContext"]["identity"]["apiKeyId"] = key_id
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in (query or {}).items()} or None
    return event


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def store_snapshot(herald: Herald, *, age: float = 30.0, **fields: Any) -> None:
    herald.health.snapshots.stored = health_snapshot(herald.health.clock() - age, **fields)


# ---------------------------------------------------------------------- /health and /health/live
@pytest.mark.parametrize(("path", "status"), [("/health", "ok"), ("/health/live", "alive")])
def test_health_and_live_make_no_read_and_say_no_snapshot_was_read_yet(herald: Herald, path: str, status: str) -> None:
    # Given a snapshot stored, but never read by this execution environment
    store_snapshot(herald, mode="DEGRADED")

    # When the keyless route is called
    response = herald.api(get(path, key_id=None))

    # Then it answers at once, having read nothing and probed nothing
    assert response["statusCode"] == 200
    assert body_of(response) == {
        "status": status,
        "mode": "UNKNOWN",
        "reason": NEVER_READ,
        "snapshot_age_seconds": None,
    }
    assert herald.health.snapshots.reads == 0
    assert herald.health.ready.runs == herald.health.db.runs == herald.health.queues.runs == 0


@pytest.mark.parametrize("path", ["/health", "/health/live"])
def test_health_and_live_report_the_snapshot_this_environment_last_read(herald: Herald, path: str) -> None:
    # Given a degraded snapshot taken 30 s ago, read once by another route
    store_snapshot(herald, age=30.0, mode="DEGRADED", reason="SMS has no provider left")
    herald.api(get("/health/detailed"))
    reads = herald.health.snapshots.reads

    # When the keyless route is called 15 s later
    herald.health.clock.advance(15)
    report = body_of(herald.api(get(path, key_id=None)))

    # Then it reports that snapshot's mode, reason and age, with no read of its own
    assert (report["mode"], report["reason"], report["snapshot_age_seconds"]) == (
        "DEGRADED",
        "SMS has no provider left",
        45.0,
    )
    assert herald.health.snapshots.reads == reads


# ---------------------------------------------------------------------- /health/ready
def test_ready_checks_live_once_per_cache_period(herald: Herald) -> None:
    # Given every dependency reachable
    # When ready is asked three times within 5 s (READY_CACHE_SECONDS' default), then once after
    first = herald.api(get("/health/ready", key_id=None))
    herald.health.clock.advance(4.9)
    second = herald.api(get("/health/ready", key_id=None))
    runs_within = herald.health.ready.runs
    herald.health.clock.advance(0.1)
    herald.api(get("/health/ready", key_id=None))

    # Then each says ready, naming the table and the three queues accepting sends to; the live check ran once
    # for the first three and once more after the period
    assert first["statusCode"] == second["statusCode"] == 200
    report = body_of(second)
    assert report["status"] == "ready"
    assert set(report["checks"]) == {"dynamodb:notifications", "sqs:priority", "sqs:standard", "sqs:batch"}
    assert report["checked_seconds_ago"] == 4.9
    assert runs_within == 1
    assert herald.health.ready.runs == 2


def test_ready_reports_the_mode_of_the_snapshot_it_reads(herald: Herald) -> None:
    # Given a partial snapshot 20 s old
    store_snapshot(herald, age=20.0, mode="PARTIAL", reason="SES is failing; SendGrid carries email")

    # When ready is asked
    report = body_of(herald.api(get("/health/ready", key_id=None)))

    # Then it is ready, and says the mode and why
    assert (report["status"], report["mode"], report["reason"]) == (
        "ready",
        "PARTIAL",
        "SES is failing; SendGrid carries email",
    )
    assert report["snapshot_age_seconds"] == 20.0


def test_ready_is_503_with_retry_after_naming_what_is_unreachable(herald: Herald) -> None:
    # Given the standard queue unreachable
    herald.health.ready.down = {"sqs:standard"}

    # When ready is asked
    response = herald.api(get("/health/ready", key_id=None))

    # Then 503, retry after the cache period, CRITICAL, in plain words
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    report = body_of(response)
    assert (report["status"], report["mode"]) == ("not_ready", "CRITICAL")
    assert report["reason"] == "new notifications cannot be accepted: the standard queue (SQS) is unreachable"
    assert report["checks"]["sqs:standard"] == {"ok": False, "latency_ms": 1.0, "error": "EndpointConnectionError"}


# ---------------------------------------------------------------------- the snapshot's views
@pytest.mark.parametrize("path", DETAILED_VIEWS)
def test_detailed_views_are_503_in_plain_words_without_a_snapshot(herald: Herald, path: str) -> None:
    # Given no snapshot stored
    # When a detailed view is asked
    response = herald.api(get(path))

    # Then 503 with Retry-After a minute, saying there is none and why there may be none
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["60"]
    error = body_of(response)["error"]
    assert error["code"] == "service_unavailable"
    assert error["message"].startswith("No health snapshot to report: the health monitor")
    assert "retry in 60 seconds" in error["message"]


@pytest.mark.parametrize("path", DETAILED_VIEWS)
def test_detailed_views_are_503_when_the_snapshot_is_stale(herald: Herald, path: str) -> None:
    # Given a snapshot 181 s old (stale after SNAPSHOT_STALE_SECONDS' default, 180)
    store_snapshot(herald, age=181.0)

    # When a detailed view is asked
    response = herald.api(get(path))

    # Then 503, saying how old it is and what that may mean
    assert response["statusCode"] == 503
    message = body_of(response)["error"]["message"]
    assert message.startswith("The latest health snapshot is 181 seconds old, older than the 180 seconds")
    assert "the health monitor, which stores one every minute, may not be running" in message


def test_detailed_is_the_whole_snapshot_with_its_age(herald: Herald) -> None:
    # Given a snapshot 42 s old with a notice for email
    notices = {"email": "Email is slower than usual: SES is failing and SendGrid carries it"}
    store_snapshot(herald, age=42.0, mode="PARTIAL", reason="SES is failing", notices=notices, queue_depth=7)

    # When the detailed view is asked
    response = herald.api(get("/health/detailed"))

    # Then every part of the snapshot is there, with its age
    assert response["statusCode"] == 200
    report = body_of(response)
    assert (report["mode"], report["reason"], report["snapshot_age_seconds"]) == ("PARTIAL", "SES is failing", 42.0)
    assert report["notices"] == notices
    assert report["version"] == "7"
    assert {check["name"] for check in report["checks"]} >= {"dynamodb:notifications", "sqs:dead_letter"}
    assert {queue["name"]: queue["visible"] for queue in report["queues"]}["standard"] == 7
    assert [provider["name"] for provider in report["providers"]] == ["ses", "sendgrid"]


@pytest.mark.parametrize("path", ["/health/detailed", "/health/circuit-breakers"])
def test_a_client_sees_provider_breakers_and_only_how_many_webhook_breakers_are_open(herald: Herald, path: str) -> None:
    # Given provider breakers and three webhook breakers (clients' endpoints), two of them not closed
    store_snapshot(herald, breakers=BREAKERS)

    # When a client's key asks
    report = body_of(herald.api(get(path)))

    # Then it sees the provider breakers, and a count of the webhook breakers open, but not their names
    assert [breaker["name"] for breaker in report["breakers"]] == ["provider:ses", "provider:sendgrid"]
    assert report["webhook_breakers_open"] == 2
    assert "example" not in json.dumps(report)


@pytest.mark.parametrize("path", ["/health/detailed", "/health/circuit-breakers"])
def test_the_admin_key_sees_every_breaker(herald: Herald, path: str) -> None:
    # Given the same breakers
    store_snapshot(herald, breakers=BREAKERS)

    # When the admin key asks
    report = body_of(herald.api(get(path, key_id=ADMIN_KEY_ID)))

    # Then every breaker is listed
    assert [breaker["name"] for breaker in report["breakers"]] == [breaker.name for breaker in BREAKERS]
    assert report["webhook_breakers_open"] == 2


def test_db_and_queues_serve_the_snapshot_unless_asked_live(herald: Herald) -> None:
    # Given a fresh snapshot
    store_snapshot(herald, queue_depth=3)

    # When the db and queues views are asked without ?live
    db = body_of(herald.api(get("/health/db")))
    queues = body_of(herald.api(get("/health/queues", query={"live": "false"})))

    # Then they are the snapshot's parts, and nothing was probed
    assert (db["status"], db["source"]) == ("ok", "snapshot")
    assert [check["name"] for check in db["checks"]] == ["dynamodb:notifications", "dynamodb:resilience"]
    assert (queues["status"], queues["source"]) == ("ok", "snapshot")
    assert all(check["name"].startswith("sqs:") for check in queues["checks"])
    assert {queue["visible"] for queue in queues["queues"]} == {3}
    assert herald.health.db.runs == herald.health.queues.runs == 0


def test_live_db_and_queues_probe_on_the_request_even_without_a_snapshot(herald: Herald) -> None:
    # Given no snapshot, and 4 messages on every queue
    herald.health.queues.depth = 4

    # When the views are asked live
    db = herald.api(get("/health/db", query={"live": "true"}))
    queues = herald.api(get("/health/queues", query={"live": "true"}))

    # Then each probed once, and reports what it found, with the mode unknown
    assert db["statusCode"] == queues["statusCode"] == 200
    assert body_of(db)["source"] == "live"
    assert body_of(db)["mode"] == "UNKNOWN"
    assert body_of(db)["reason"] == NONE_STORED
    report = body_of(queues)
    assert [(queue["name"], queue["visible"]) for queue in report["queues"]][:2] == [("priority", 4), ("standard", 4)]
    assert [queue["dead_letter"] for queue in report["queues"]][-1] is True
    assert herald.health.db.runs == herald.health.queues.runs == 1


@pytest.mark.parametrize(
    ("path", "probes", "down"),
    [("/health/db", "db", "dynamodb:notifications"), ("/health/queues", "queues", "sqs:retry")],
)
def test_live_db_and_queues_are_503_with_the_report_when_a_check_fails(
    herald: Herald, path: str, probes: str, down: str
) -> None:
    # Given one dependency down
    getattr(herald.health, probes).down = {down}

    # When the view is asked live
    response = herald.api(get(path, query={"live": "true"}))

    # Then 503 with Retry-After, the report saying which
    assert response["statusCode"] == 503
    assert "Retry-After" in response["multiValueHeaders"]
    report = body_of(response)
    assert report["status"] == "down"
    assert [check["ok"] for check in report["checks"] if check["name"] == down] == [False]


def test_a_snapshot_that_saw_dynamodb_down_makes_db_503(herald: Herald) -> None:
    # Given a fresh snapshot whose DynamoDB probe failed
    snapshot = health_snapshot(herald.health.clock() - 10, mode="CRITICAL", reason="DynamoDB is unreachable")
    checks = [check.model_copy(update={"ok": check.name != "dynamodb:notifications"}) for check in snapshot.checks]
    herald.health.snapshots.stored = snapshot.model_copy(update={"checks": checks})

    # When the db view is asked
    response = herald.api(get("/health/db"))

    # Then 503, the report itself (not an error), in CRITICAL mode
    assert response["statusCode"] == 503
    assert (body_of(response)["status"], body_of(response)["mode"]) == ("down", "CRITICAL")


@pytest.mark.parametrize("value", ["yes", "1", ""])
def test_live_takes_only_true_or_false(herald: Herald, value: str) -> None:
    # When
    response = herald.api(get("/health/db", query={"live": value}))

    # Then
    assert response["statusCode"] == 422
    assert body_of(response)["error"]["details"] == [{"field": "live", "message": "must be true or false"}]


def test_providers_view_lists_each_provider_with_its_state(herald: Herald) -> None:
    # Given
    store_snapshot(herald)

    # When
    report = body_of(herald.api(get("/health/providers")))

    # Then
    assert report["providers"] == [
        {"name": "ses", "channel": "email", "state": "CLOSED", "up": True},
        {"name": "sendgrid", "channel": "email", "state": "CLOSED", "up": True},
    ]
    assert report["mode"] == "NORMAL"


# ---------------------------------------------------------------------- /health/system
def test_system_describes_the_environment_and_its_cold_start(herald: Herald) -> None:
    # Given a fresh execution environment (the fixture's), with no snapshot stored
    # When system is asked twice
    first = herald.api(get("/health/system"))
    second = body_of(herald.api(get("/health/system")))

    # Then 200 both times (it needs no snapshot), the first a cold start and the second not
    assert first["statusCode"] == 200
    report = body_of(first)
    assert report["runtime"] == f"python {platform.python_version()}"
    assert report["memory_limit_mb"] == 512
    assert (report["version"], report["function_name"]) == ("local", "api")
    assert report["mode"] == "UNKNOWN"
    assert (report["cold_start"], second["cold_start"]) == (True, False)
