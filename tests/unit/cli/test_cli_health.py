"""`herald health`: the detailed view with a key, readiness without one, and exit 1 on a 503."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.unit.cli.conftest import FakeHerald, Herald

DETAILED = {
    "mode": "PARTIAL",
    "reason": "sendgrid is down; email goes through ses",
    "snapshot_age_seconds": 4.2,
    "taken_at": 1795971530.7,
    "duration_ms": 48.2,
    "version": "local",
    "checks": [
        {"name": "dynamodb:notifications", "ok": True, "latency_ms": 15.3, "error": None, "checked_at": 1795971530.7},
        {"name": "sqs:standard", "ok": False, "latency_ms": 5000.0, "error": "timed out", "checked_at": 1795971530.7},
    ],
    "queues": [
        {
            "name": "standard",
            "visible": 3,
            "in_flight": 1,
            "delayed": 0,
            "oldest_age_seconds": 12.5,
            "dead_letter": False,
        },
        {
            "name": "dead_letter",
            "visible": 7,
            "in_flight": 0,
            "delayed": 0,
            "oldest_age_seconds": None,
            "dead_letter": True,
        },
    ],
    "providers": [
        {"name": "sendgrid", "channel": "email", "state": "OPEN", "up": False},
        {"name": "ses", "channel": "email", "state": "CLOSED", "up": True},
    ],
    "breakers": [
        {
            "name": "provider:sendgrid",
            "kind": "provider",
            "state": "OPEN",
            "permits_calls": False,
            "open_until": 1795971560.0,
            "failure_rate": 1.0,
            "calls": 20,
        }
    ],
    "webhook_breakers_open": 0,
    "notices": {"email": "Email may be slower than usual"},
}
READY = {
    "status": "ready",
    "mode": "NORMAL",
    "reason": "all dependencies reachable",
    "snapshot_age_seconds": 1.0,
    "checked_seconds_ago": 0.0,
    "checks": {"dynamodb:notifications": {"ok": True, "latency_ms": 8.7, "error": None}},
}


def test_health_shows_mode_checks_providers_queues_breakers_and_notices(herald: Herald, fake: FakeHerald) -> None:
    # Given
    fake.answer("GET", "/health/detailed", body=DETAILED)

    # When
    result = herald("health")

    # Then: the client key was sent, and every part of the snapshot is on screen
    assert result.exit_code == 0, result.output
    assert fake.seen("GET", "/health/detailed")[0].headers["x-api-key"] == herald.client_key
    out = result.stdout
    assert "Mode: PARTIAL  sendgrid is down; email goes through ses" in out
    assert "2026-11-29T16:58:50Z" in out  # taken_at, in UTC
    for expected in ["sqs:standard", "timed out", "sendgrid", "OPEN", "dead_letter", "provider:sendgrid", "12.5"]:
        assert expected in out
    assert "Notice for email: Email may be slower than usual" in out


def test_health_json_is_the_report(herald: Herald, fake: FakeHerald) -> None:
    fake.answer("GET", "/health/detailed", body=DETAILED)
    result = herald("health", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == DETAILED


def test_without_a_key_health_falls_back_to_readiness_and_sends_no_key(herald: Herald, fake: FakeHerald) -> None:
    # Given: a URL and no client key
    fake.answer("GET", "/health/ready", body=READY)

    # When
    result = herald("health", target=["--url", fake.url])

    # Then: /health/ready, keyless, its checks shown, and a note saying why
    assert result.exit_code == 0, result.output
    [request] = fake.requests
    assert request.path == "/health/ready"
    assert "x-api-key" not in request.headers
    assert "dynamodb:notifications" in result.stdout
    assert "showing /health/ready" in result.stderr


def test_not_ready_is_shown_and_exits_1(herald: Herald, fake: FakeHerald) -> None:
    # Given: readiness answering 503 with its report
    not_ready = {**READY, "status": "not_ready", "mode": "CRITICAL", "reason": "the queues are unreachable"}
    fake.answer("GET", "/health/ready", 503, not_ready, headers={"Retry-After": "5"})

    # When
    result = herald("health", target=["--url", fake.url])

    # Then
    assert result.exit_code == 1
    assert "Mode: CRITICAL  the queues are unreachable" in result.stdout


def test_no_fresh_snapshot_is_an_error_with_exit_1(herald: Herald, fake: FakeHerald) -> None:
    # Given: the detailed view has no fresh snapshot (503 in Herald's error shape)
    fake.answer(
        "GET",
        "/health/detailed",
        503,
        {"error": {"code": "service_unavailable", "message": "Herald has no fresh health snapshot"}},
    )

    # When
    result = herald("health")

    # Then
    assert result.exit_code == 1
    assert "Herald has no fresh health snapshot (HTTP 503 service_unavailable)" in result.stderr
