"""POST and GET /notifications through the API handler, over the in-memory fakes of the store and queues."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from notifications.clock import iso
from notifications.models import Channel, NotificationRequest, Priority, Recipient
from tests.support import events
from tests.support.clock import START
from tests.support.fakes import TEST_IDS
from tests.support.records import make_record

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
WEBHOOK = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "Hello"}
KEY_ID = "k7v2n4p8q1"  # the caller's API key id in the sample event: the scope of its idempotency keys


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


def test_replaying_a_key_never_attempted_returns_the_original_response_and_sends_its_message_again(
    herald: Herald,
) -> None:
    # Given a keyed notification accepted, not yet taken by a sender
    first = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-42"}))
    notification_id = body_of(first)["id"]

    # When the client sends it again
    second = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-42"}))

    # Then the original answer, marked replayed, and still one record; as the record was never attempted (its
    # first message may have been lost), its message is sent again, for a sender to drop as a duplicate
    assert first["statusCode"] == second["statusCode"] == 202
    assert body_of(first) == body_of(second)
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert herald.store.count() == 1
    assert herald.receive_all("StandardQueue") == [notification_id, notification_id]

    # And once a sender has claimed it (one attempt), a replay sends nothing more
    assert herald.store.claim(notification_id, "sender-1", 30.0).granted
    third = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-42"}))
    assert third["statusCode"] == 202
    assert third["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert body_of(third)["id"] == notification_id
    assert herald.store.count() == 1
    assert herald.receive_all("StandardQueue") == [notification_id, notification_id]


def test_a_message_lost_by_a_crash_between_the_put_and_the_send_is_sent_by_the_clients_retry(herald: Herald) -> None:
    # Given a keyed record just created (queued, never attempted) whose message reached no queue: the function
    # crashed between the put and the send, so its client saw no 202
    request = NotificationRequest.model_validate({**EMAIL, "idempotency_key": "order-45"})
    notification_id = TEST_IDS.for_key(KEY_ID, "order-45")
    herald.store.put(
        make_record(
            id=notification_id,
            channel=Channel.EMAIL,
            recipient=Recipient(email="ada@example.com"),
            subject="Code",
            body="Your code is 1",
            priority=Priority.NORMAL,
            idempotency_key="order-45",
            fingerprint=request.fingerprint(),
            queue="standard",
            created_at=iso(START - 1),  # the clock reads START: the retry comes one second later
            updated_at=iso(START - 1),
        )
    )

    # When the client retries
    response = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-45"}))

    # Then it is a replay of that record, and its message is on its queue at last
    assert response["statusCode"] == 202
    assert response["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert body_of(response)["id"] == notification_id
    assert herald.enqueuer.sent == [("standard", notification_id, "normal")]
    assert herald.store.count() == 1


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
