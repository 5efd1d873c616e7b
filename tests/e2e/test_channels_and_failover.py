"""Every channel over the local runtime, through the sandbox providers, with receipts and failover.

Locally email goes to SendGrid first and SES second, SMS to Twilio first and SNS second, push to FCM
first and SNS second (`local.provider_setup`). The sandboxes answer like the real APIs, record what
they were sent (`GET /_messages`), take faults (`POST /_faults`) and send signed delivery receipts back.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from resilience import BreakerState
from tests.e2e.test_notification_flow import call, wait_for_status
from tests.e2e.test_resilient_delivery import breakers

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def sandbox(herald: RunningHerald, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{herald.sandbox_url}{path}", data=data, method=method)  # noqa: S310
    request.add_header("content-type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
        raw = response.read()
    return json.loads(raw) if raw else None


def accept(herald: RunningHerald, body: dict[str, Any]) -> str:
    status, _, answer = call(herald, "POST", "/notifications", body)
    assert status == 202, answer
    notification_id: str = answer["id"]
    return notification_id


def sent_to(herald: RunningHerald, provider: str, notification_id: str) -> list[dict[str, Any]]:
    answer = sandbox(herald, "GET", f"/_messages?provider={provider}&notification_id={notification_id}")
    messages: list[dict[str, Any]] = answer["messages"]
    return messages


def wait_until_out(herald: RunningHerald, notification_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The view once the notification went out: `sent`, or already `delivered` by a receipt."""
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, _, view = call(herald, "GET", f"/notifications/{notification_id}")
        if view.get("status") in {"sent", "delivered"}:
            return view
        time.sleep(0.1)
    raise AssertionError(f"{notification_id} did not go out within {timeout} s: {view}")


def email(to: str = "ada@example.com") -> dict[str, Any]:
    return {"channel": "email", "recipient": {"email": to}, "subject": "Your code", "body": "Your code is 123456"}


@pytest.fixture
def faults(herald: RunningHerald) -> Iterator[None]:
    """Faults injected by a test are cleared after it, whatever happens."""
    yield
    sandbox(herald, "DELETE", "/_faults")


def test_a_bounce_reported_by_sendgrid_marks_the_email_failed(herald: RunningHerald) -> None:
    # When
    notification_id = accept(herald, email("bounce@example.com"))

    # Then: sent by SendGrid, then its signed bounce event moved it to failed
    view = wait_for_status(herald, notification_id, "failed")
    assert view["provider"] == "sendgrid"
    assert [entry["status"] for entry in view["history"]][-2:] == ["sent", "failed"]


def test_an_sms_goes_through_twilio_and_its_status_callback_marks_it_delivered(herald: RunningHerald) -> None:
    # When
    notification_id = accept(herald, {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "Code 42"})

    # Then
    view = wait_for_status(herald, notification_id, "delivered")
    assert (view["channel_used"], view["provider"]) == ("sms", "twilio")
    assert [message["to"] for message in sent_to(herald, "twilio", notification_id)] == ["+447700900123"]


def test_an_undelivered_report_from_twilio_marks_the_sms_failed(herald: RunningHerald) -> None:
    # When: the sandbox's number whose messages are accepted and then reported undelivered (30003)
    notification_id = accept(herald, {"channel": "sms", "recipient": {"phone": "+15005550010"}, "body": "Code 42"})

    # Then
    view = wait_for_status(herald, notification_id, "failed")
    assert view["provider"] == "twilio"


def test_an_invalid_number_fails_at_once_without_a_retry(herald: RunningHerald) -> None:
    # When: Twilio's documented test number that it refuses as invalid (error 21211)
    notification_id = accept(herald, {"channel": "sms", "recipient": {"phone": "+15005550001"}, "body": "Code 42"})

    # Then
    view = wait_for_status(herald, notification_id, "failed")
    assert view["attempts"] == 1


def test_a_push_notification_goes_through_fcm(herald: RunningHerald) -> None:
    # When
    body = {"channel": "push", "recipient": {"device_token": "device-token-1"}, "subject": "Hi", "body": "Code 42"}
    notification_id = accept(herald, {**body, "data": {"screen": "codes"}})

    # Then
    view = wait_for_status(herald, notification_id, "sent")
    assert view["provider"] == "fcm"
    assert len(sent_to(herald, "fcm", notification_id)) == 1


@pytest.mark.usefixtures("faults")
def test_push_fails_over_to_sns_while_fcm_refuses(herald: RunningHerald) -> None:
    # Given: FCM answers 503 to every message
    sandbox(herald, "POST", "/_faults", {"provider": "fcm", "error_rate": 1.0, "status": 503})

    # When
    notification_id = accept(herald, {"channel": "push", "recipient": {"device_token": "device-token-2"}, "body": "Hi"})

    # Then: SNS mobile push delivered it in the same attempt, and the status says why
    view = wait_for_status(herald, notification_id, "sent")
    assert view["provider"] == "sns-push"
    assert view["attempts"] == 1
    assert "failover: fcm" in view["reason"]


# A breaker that opened is OPEN, or HALF_OPEN once its open period (3 s here) is over and probes may go.
OPENED = {BreakerState.OPEN, BreakerState.HALF_OPEN}


def accept_batch(herald: RunningHerald, notifications: list[dict[str, Any]]) -> list[str]:
    status, _, answer = call(herald, "POST", "/notifications/batch", {"notifications": notifications})
    assert status == 202, answer
    return [result["id"] for result in answer["results"]]


@pytest.mark.usefixtures("faults")
def test_email_fails_over_to_ses_during_a_sendgrid_outage_and_comes_back_when_it_recovers(
    herald: RunningHerald,
) -> None:
    # Given: SendGrid is down
    sandbox(herald, "POST", "/_faults", {"provider": "sendgrid", "error_rate": 1.0, "status": 503})

    # When: an email is sent
    first = wait_until_out(herald, accept(herald, email("first@example.com")))

    # Then: SES delivered it in the same attempt, and the status says why
    assert (first["provider"], first["attempts"]) == ("ses", 1)
    assert first["reason"] == "delivered by ses via email (failover: sendgrid: sendgrid answered HTTP 503)"

    # When: the outage goes on, batches of email keep coming (SendGrid's breaker judges the fleet's calls)
    registry = breakers(herald)
    ids: list[str] = []
    for _ in range(4):
        ids += accept_batch(herald, [email(f"user{n}@example.com") for n in range(50)])
        views = [wait_until_out(herald, notification_id) for notification_id in ids]
        if registry.get("provider:sendgrid").state in OPENED:
            break

    # Then: every one went out through SES, and the breaker opened. (That an open breaker then spares
    # SendGrid the calls, and the reason says "skipped: provider:sendgrid OPEN", the engine's unit tests
    # show with an injected clock: here the sender's 1 s breaker cache and the 3 s open period race it.)
    assert {view["provider"] for view in views} == {"ses"}
    assert registry.get("provider:sendgrid").state in OPENED

    # When: SendGrid recovers (the runtime's breakers wait 3 s before probing)
    sandbox(herald, "DELETE", "/_faults")
    deadline = time.monotonic() + 30
    providers: list[str] = []
    while time.monotonic() < deadline:
        notification_id = accept(herald, email("back@example.com"))
        providers.append(wait_until_out(herald, notification_id)["provider"])
        if providers[-1] == "sendgrid":
            break
        time.sleep(0.5)

    # Then: new email goes through SendGrid again
    assert providers[-1] == "sendgrid", providers
