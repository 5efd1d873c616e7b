"""POST and GET /notifications through the API handler, over the in-memory fakes of the store and queues."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import events

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


@pytest.mark.parametrize(
    ("priority", "queue"), [("critical", "PriorityQueue"), ("high", "PriorityQueue"), ("low", "StandardQueue")]
)
def test_the_queue_is_chosen_by_priority(herald: Herald, priority: str, queue: str) -> None:
    # When
    response = herald.api(events.post_notification({**EMAIL, "priority": priority}))

    # Then
    assert response["statusCode"] == 202
    assert len(herald.receive_all(queue)) == 1


def test_get_shows_status_and_history_without_personal_data(herald: Herald) -> None:
    # Given
    notification_id = body_of(herald.api(events.post_notification(EMAIL)))["id"]

    # When
    response = herald.api(events.get_notification(notification_id))

    # Then
    assert response["statusCode"] == 200
    view = body_of(response)
    assert view["id"] == notification_id
    assert view["status"] == "queued"
    assert view["attempts"] == 0
    assert [entry["status"] for entry in view["history"]] == ["queued"]
    assert "ada@example.com" not in response["body"] and "Your code" not in response["body"]


def test_unknown_id_is_404_json(herald: Herald) -> None:
    # When
    response = herald.api(events.get_notification("00000000-0000-0000-0000-000000000000"))

    # Then
    assert response["statusCode"] == 404
    assert body_of(response)["error"]["code"] == "not_found"


def test_replaying_an_idempotency_key_returns_the_original_response_and_queues_once(herald: Herald) -> None:
    # Given
    first = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-42"}))

    # When
    second = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-42"}))

    # Then
    assert first["statusCode"] == second["statusCode"] == 202
    assert body_of(first) == body_of(second)
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert len(herald.receive_all("StandardQueue")) == 1


def test_the_same_key_with_a_different_body_is_a_409_conflict(herald: Herald) -> None:
    # Given
    herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-43"}))

    # When
    response = herald.api(events.post_notification({**EMAIL, "body": "Other"}, headers={"Idempotency-Key": "order-43"}))

    # Then
    assert response["statusCode"] == 409
    assert body_of(response)["error"]["code"] == "idempotency_conflict"


def test_idempotency_keys_are_scoped_to_the_caller(herald: Herald) -> None:
    # Given
    mine = body_of(herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "k"}, key_id="a")))

    # When
    theirs = body_of(herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "k"}, key_id="b")))

    # Then
    assert mine["id"] != theirs["id"]


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        (events.post_notification(raw="{not json"), 400, "malformed_json"),
        (events.post_notification(EMAIL, headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type"),
        (events.post_notification(EMAIL, headers={"Content-Type": None}), 415, "unsupported_media_type"),
        (events.post_notification(raw=json.dumps({**EMAIL, "body": "x" * 300_000})), 413, "payload_too_large"),
        (events.post_notification(raw="[1, 2]"), 422, "validation_error"),
        (events.post_notification({"channel": "email"}), 422, "validation_error"),
        (
            events.post_notification({**EMAIL, "channel": "sms", "recipient": {"phone": "+447700900123"}}),
            422,
            "validation_error",
        ),
        (
            events.post_notification({**WEBHOOK, "recipient": {"webhook_url": "https://10.0.0.1/x"}}),
            422,
            "validation_error",
        ),
        (events.post_notification(EMAIL, headers={"Idempotency-Key": "a b"}), 422, "validation_error"),
    ],
    ids=[
        "malformed",
        "text-plain",
        "no-content-type",
        "too-large",
        "not-object",
        "missing-fields",
        "no-sms-provider",
        "private-webhook",
        "bad-key",
    ],
)
def test_bad_input_gets_the_documented_4xx_json_error(
    herald: Herald, event: dict[str, Any], status: int, code: str
) -> None:
    # When
    response = herald.api_as_deployed(event)

    # Then
    assert response["statusCode"] == status
    error = body_of(response)["error"]
    assert error["code"] == code and error["message"]
    assert herald.receive_all("StandardQueue") == []


def test_validation_errors_carry_field_paths(herald: Herald) -> None:
    # When
    response = herald.api(events.post_notification({**EMAIL, "recipient": {"email": "nope"}}))

    # Then
    details = body_of(response)["error"]["details"]
    assert {"recipient.email"} <= {detail["field"] for detail in details}


def test_queue_unreachable_is_503_with_retry_after_and_nothing_is_kept(herald: Herald) -> None:
    # Given: the queue cannot be reached
    herald.enqueuer.unavailable = True

    # When
    response = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "k-503"}))
    records_after_503 = herald.store.count()
    herald.enqueuer.unavailable = False
    retried = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "k-503"}))

    # Then: the first answer promised nothing (no record kept), and the retry is accepted as new, not a replay
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    assert records_after_503 == 0
    assert retried["statusCode"] == 202
    assert "Idempotent-Replayed" not in retried.get("multiValueHeaders", {})
