"""Over the local runtime: a sandbox provider fails, the health monitor (run every few seconds by the runtime)
sees its breaker open and the mode go PARTIAL, and both come back when it recovers."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.test_channels_and_failover import OPENED, accept, accept_batch, email, sandbox, wait_until_out
from tests.e2e.test_notification_flow import call
from tests.e2e.test_resilient_delivery import breakers

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def admin_view(herald: RunningHerald, path: str) -> tuple[int, dict[str, Any]]:
    status, _, body = call(herald, "GET", path, headers={"x-api-key": herald.admin_api_key})
    return status, body


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s: {what}")


def sendgrid_state(herald: RunningHerald) -> str | None:
    status, body = admin_view(herald, "/health/circuit-breakers")
    if status != 200:
        return None
    states = {breaker["name"]: breaker["state"] for breaker in body["breakers"]}
    return states.get("provider:sendgrid")


def mode(herald: RunningHerald) -> str | None:
    status, body = admin_view(herald, "/health/detailed")
    return str(body["mode"]) if status == 200 else None


def test_a_provider_outage_shows_in_the_health_views_and_clears(herald: RunningHerald) -> None:
    # Given: all well
    wait_for(lambda: mode(herald) == "NORMAL", "mode NORMAL before the outage")

    # When: SendGrid fails every call while email keeps coming, until its breaker opens
    sandbox(herald, "POST", "/_faults", {"provider": "sendgrid", "error_rate": 1.0, "status": 503})
    try:
        registry = breakers(herald)
        for _ in range(4):
            for notification_id in accept_batch(herald, [email(f"user{n}@example.com") for n in range(50)]):
                wait_until_out(herald, notification_id)
            if registry.get("provider:sendgrid").state in OPENED:
                break

        # Then: the monitor's snapshot shows the breaker open and the mode PARTIAL (SES still delivers email)
        wait_for(lambda: sendgrid_state(herald) in {"OPEN", "HALF_OPEN"}, "provider:sendgrid open in the views")
        wait_for(lambda: mode(herald) == "PARTIAL", "mode PARTIAL")
        _, detailed = admin_view(herald, "/health/detailed")
        assert "sendgrid" in detailed["reason"]
        _, providers = admin_view(herald, "/health/providers")
        up = {(p["name"], p["up"]) for p in providers["providers"] if p["channel"] == "email"}
        assert up == {("sendgrid", False), ("ses", True)}
    finally:
        # When: SendGrid recovers, and email goes through it again (its breaker's probes succeed)
        sandbox(herald, "DELETE", "/_faults")

    def sendgrid_delivers() -> bool:
        return wait_until_out(herald, accept(herald, email("back@example.com")))["provider"] == "sendgrid"

    def closed_after_more_email() -> bool:
        sendgrid_delivers()  # the half-open breaker closes after enough probe calls succeed
        return sendgrid_state(herald) in {None, "CLOSED"}

    wait_for(sendgrid_delivers, "SendGrid delivering again")

    # Then: the views come back to CLOSED and NORMAL
    wait_for(closed_after_more_email, "provider:sendgrid closed in the views", timeout=60)
    wait_for(lambda: mode(herald) == "NORMAL", "mode NORMAL after recovery")
