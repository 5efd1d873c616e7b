"""The README's walk-through over HTTP against `python -m local`: accept, queue, deliver, track."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest

from local.receiver import WebhookReceiver
from local.settings import DEFAULT_WEBHOOK_SIGNING_SECRET

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def call(
    herald: RunningHerald, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(f"{herald.base_url}{path}", data=data, method=method)  # noqa: S310
    for name, value in {"x-api-key": herald.api_key, "content-type": "application/json", **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback runtime
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def wait_for_status(herald: RunningHerald, notification_id: str, wanted: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    view: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, _, view = call(herald, "GET", f"/notifications/{notification_id}")
        if view.get("status") == wanted:
            return view
        time.sleep(0.1)
    raise AssertionError(f"{notification_id} did not reach {wanted} within {timeout} s: {view}")


def wait_until_queues_drain(herald: RunningHerald, timeout: float = 20.0) -> None:
    sqs = herald.client("sqs")
    urls = [herald.queue_url(name) for name in ("PriorityQueue", "StandardQueue", "BatchQueue", "RetryQueue")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = [
            sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            )["Attributes"]
            for url in urls
        ]
        if all(
            int(c["ApproximateNumberOfMessages"]) + int(c["ApproximateNumberOfMessagesNotVisible"]) == 0 for c in counts
        ):
            return
        time.sleep(0.1)
    raise AssertionError("queues did not drain")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=DEFAULT_WEBHOOK_SIGNING_SECRET) as running:  # the ready client's secret
        yield running


def test_a_webhook_notification_goes_from_queued_to_sent_signed(
    herald: RunningHerald, receiver: WebhookReceiver
) -> None:
    # Given
    request = {
        "channel": "webhook",
        "recipient": {"webhook_url": receiver.url},
        "body": "Build 7 passed",
        "data": {"b": 7},
    }

    # When
    status, headers, accepted = call(herald, "POST", "/notifications", request)
    view = wait_for_status(herald, accepted["id"], "sent")

    # Then
    assert (status, accepted["status"]) == (202, "queued")
    assert headers["Location"] == f"/notifications/{accepted['id']}"
    [delivery] = receiver.wait_for(1)
    assert delivery.signature_valid and delivery.headers["webhook-id"] == accepted["id"]
    assert [entry["status"] for entry in view["history"]] == ["queued", "sent"]
    assert (view["channel_used"], view["provider"], view["attempts"]) == ("webhook", "webhook", 1)


def test_replaying_an_idempotency_key_returns_the_same_id_and_delivers_once(
    herald: RunningHerald, receiver: WebhookReceiver
) -> None:
    # Given
    request = {"channel": "webhook", "recipient": {"webhook_url": receiver.url}, "body": "Deploy finished"}
    key = {"Idempotency-Key": f"deploy-{time.time_ns()}"}

    # When
    first = call(herald, "POST", "/notifications", request, key)
    second = call(herald, "POST", "/notifications", request, key)
    wait_for_status(herald, first[2]["id"], "sent")
    wait_until_queues_drain(herald)

    # Then
    assert first[0] == second[0] == 202
    assert first[2] == second[2]
    assert second[1]["Idempotent-Replayed"] == "true"
    assert [d.headers["webhook-id"] for d in receiver.received] == [first[2]["id"]]


def test_an_email_notification_is_sent_through_the_sendgrid_sandbox(herald: RunningHerald) -> None:
    # Given
    request = {"channel": "email", "recipient": {"email": "grace@example.com"}, "subject": "Code", "body": "Code 42"}

    # When
    status, _, accepted = call(herald, "POST", "/notifications", request)
    view = wait_for_status(herald, accepted["id"], "delivered")

    # Then: SendGrid (first for email locally) took it, with the notification id, and reported it delivered
    assert status == 202 and view["provider"] == "sendgrid"
    query = f"/_messages?provider=sendgrid&notification_id={accepted['id']}"
    with urllib.request.urlopen(f"{herald.sandbox_url}{query}", timeout=10) as response:  # noqa: S310 - loopback
        messages = json.loads(response.read())["messages"]
    assert [message["to"] for message in messages] == ["grace@example.com"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (b"{oops", {}, 400, "malformed_json"),
        ({"channel": "email"}, {"x-api-key": "wrong"}, 401, "unauthorized"),
        ({"channel": "email"}, {"content-type": "text/plain"}, 415, "unsupported_media_type"),
        ({"channel": "email", "body": "hi"}, {}, 422, "validation_error"),
    ],
    ids=["malformed", "bad-key", "not-json", "invalid"],
)
def test_bad_input_over_http_gets_the_documented_json_error(
    herald: RunningHerald, body: Any, headers: dict[str, str], status: int, code: str
) -> None:
    # When
    answered, _, error = call(herald, "POST", "/notifications", body, headers)

    # Then
    assert answered == status
    assert error["error"]["code"] == code


def test_ready_reports_every_dependency_reachable(herald: RunningHerald) -> None:
    # When
    status, _, report = call(herald, "GET", "/health/ready")

    # Then
    assert status == 200 and report["mode"] == "NORMAL"
    assert all(check["ok"] for check in report["checks"].values())
