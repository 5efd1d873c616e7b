"""POST /notifications/batch through the API handler, over the in-memory fakes of the store and queues.

Each notification of a batch is accepted on its own, by the single path's rules: validation and its
field paths (prefixed by the notification's place), idempotency keys (a replay gives the original id, a
reuse with another request a conflict), and no record left without its message.
"""

from __future__ import annotations

import json
import logging
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


def post_batch(
    notifications: Any = None, *, raw: str | None = None, headers: dict[str, str | None] | None = None
) -> dict[str, Any]:
    """The API Gateway event of `POST /notifications/batch` with `{"notifications": [...]}` (or a raw body)."""
    return events.post_batch(notifications, raw=raw, headers=headers, key_id=KEY_ID)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def keyed(notification: dict[str, Any], key: str) -> dict[str, Any]:
    return {**notification, "idempotency_key": key}


def test_a_batch_all_accepted_is_202_with_one_result_and_one_message_per_notification(herald: Herald) -> None:
    # Given: normal and low priorities go to the batch queue, critical and high to the priority queue
    batch = [{**EMAIL, "priority": priority} for priority in ("normal", "low", "critical", "high", "normal")]

    # When
    response = herald.api(post_batch(batch))

    # Then
    assert response["statusCode"] == 202
    answer = body_of(response)
    assert (answer["accepted"], answer["rejected"]) == (5, 0)
    assert [result["index"] for result in answer["results"]] == [0, 1, 2, 3, 4]
    assert all(set(result) == {"index", "id", "status"} for result in answer["results"])
    assert {result["status"] for result in answer["results"]} == {"queued"}
    ids = [result["id"] for result in answer["results"]]
    assert len(set(ids)) == 5
    assert herald.receive_all("BatchQueue") == [ids[0], ids[1], ids[4]]
    assert herald.receive_all("PriorityQueue") == [ids[2], ids[3]]
    assert herald.enqueuer.batches == 1
    assert herald.store.count() == 5


def test_an_accepted_notification_of_a_batch_reads_back_like_a_single_one(herald: Herald) -> None:
    # Given
    notification_id = body_of(herald.api(post_batch([EMAIL])))["results"][0]["id"]

    # When
    response = herald.api(events.get_notification(notification_id))

    # Then
    assert response["statusCode"] == 200
    view = body_of(response)
    assert (view["status"], view["channel"], view["priority"]) == ("queued", "email", "normal")
    assert [entry["status"] for entry in view["history"]] == ["queued"]


def test_invalid_notifications_are_rejected_by_index_with_prefixed_field_paths_and_the_rest_accepted(
    herald: Herald,
) -> None:
    # Given
    batch = [
        EMAIL,
        {**EMAIL, "recipient": {"email": "nope"}},
        "not an object",
        {**EMAIL, "subject": None},
        {**EMAIL, "channel": "sms", "recipient": {"phone": "+447700900123"}},
        WEBHOOK,
    ]

    # When
    response = herald.api(post_batch(batch))

    # Then: 207, the valid ones queued, each rejection with the single path's code and a prefixed field
    assert response["statusCode"] == 207
    answer = body_of(response)
    assert (answer["accepted"], answer["rejected"]) == (2, 4)
    results = answer["results"]
    assert [("id" in result) for result in results] == [True, False, False, False, False, True]
    fields = {result["index"]: {d["field"] for d in result["error"]["details"]} for result in results[1:5]}
    assert fields == {
        1: {"notifications[1].recipient.email"},
        2: {"notifications[2]"},
        3: {"notifications[3]"},  # the whole notification: an email needs a subject
        4: {"notifications[4].channel"},  # no SMS provider is configured
    }
    assert {result["error"]["code"] for result in results[1:5]} == {"validation_error"}
    assert herald.receive_all("BatchQueue") == [results[0]["id"], results[5]["id"]]
    assert herald.store.count() == 2


def test_a_private_webhook_target_is_refused_for_that_notification_only(herald: Herald) -> None:
    # When
    response = herald.api_as_deployed(
        post_batch([WEBHOOK, {**WEBHOOK, "recipient": {"webhook_url": "https://10.0.0.1/x"}}])
    )

    # Then
    assert response["statusCode"] == 207
    rejected = body_of(response)["results"][1]
    assert rejected["error"]["code"] == "validation_error"
    assert [d["field"] for d in rejected["error"]["details"]] == ["notifications[1].recipient.webhook_url"]


def test_a_batch_with_every_notification_rejected_is_422_with_the_results_body(herald: Herald) -> None:
    # When
    response = herald.api(post_batch([{"channel": "email"}, {**EMAIL, "priority": "urgent"}]))

    # Then
    assert response["statusCode"] == 422
    answer = body_of(response)
    assert (answer["accepted"], answer["rejected"]) == (0, 2)
    assert [result["index"] for result in answer["results"]] == [0, 1]
    assert "notifications[1].priority" in {d["field"] for d in answer["results"][1]["error"]["details"]}
    assert herald.enqueuer.sent == [] and herald.store.count() == 0
    # and, like every 4xx, the error shape, naming every rejected notification's fields
    assert (answer["error"]["code"], answer["error"]["message"]) == (
        "batch_rejected",
        "no notification of the batch was accepted",
    )
    assert "notifications[1].priority" in {d["field"] for d in answer["error"]["details"]}


def test_a_notification_larger_than_a_single_request_may_be_is_rejected_as_too_large(herald: Herald) -> None:
    # Given: a notification over MAX_REQUEST_BYTES (256 KiB) inside a batch under MAX_BATCH_REQUEST_BYTES
    oversized = {**EMAIL, "data": {f"k{i}": "z" * 60_000 for i in range(5)}}

    # When
    response = herald.api(post_batch([EMAIL, oversized]))

    # Then
    assert response["statusCode"] == 207
    assert body_of(response)["results"][1]["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("event", "status", "code", "field"),
    [
        (post_batch(raw="{not json"), 400, "malformed_json", None),
        (post_batch([EMAIL], headers={"Content-Type": "text/plain"}), 415, "unsupported_media_type", None),
        (
            post_batch(raw=json.dumps({"notifications": [{**EMAIL, "body": "x" * 9_000}] * 120})),
            413,
            "payload_too_large",
            None,
        ),
        (post_batch(raw="[]"), 422, "validation_error", "body"),
        (post_batch(raw="{}"), 422, "validation_error", "notifications"),
        (post_batch(raw='{"notifications": {"channel": "email"}}'), 422, "validation_error", "notifications"),
        (post_batch([]), 422, "validation_error", "notifications"),
        (post_batch([EMAIL] * 101), 422, "validation_error", "notifications"),
        (post_batch(raw=json.dumps({"notifications": [EMAIL], "extra": 1})), 422, "validation_error", "extra"),
        (post_batch([EMAIL], headers={"Idempotency-Key": "k"}), 422, "validation_error", "Idempotency-Key"),
    ],
    ids=[
        "malformed",
        "text-plain",
        "too-large",
        "not-object",
        "no-notifications",
        "not-a-list",
        "empty",
        "over-100",
        "unknown-field",
        "idempotency-header",
    ],
)
def test_a_bad_envelope_fails_the_whole_request_with_the_documented_error(
    herald: Herald, event: dict[str, Any], status: int, code: str, field: str | None
) -> None:
    # When
    response = herald.api(event)

    # Then
    assert response["statusCode"] == status
    error = body_of(response)["error"]
    assert error["code"] == code and error["message"]
    if field is not None:
        assert field in {detail["field"] for detail in error["details"]}
    assert herald.enqueuer.sent == [] and herald.store.count() == 0


def test_exactly_100_notifications_are_accepted(herald: Herald) -> None:
    # When
    response = herald.api(post_batch([EMAIL] * 100))

    # Then
    assert response["statusCode"] == 202
    assert body_of(response)["accepted"] == 100
    assert len(herald.receive_all("BatchQueue")) == 100


def test_replaying_a_keyed_batch_returns_the_original_ids_marked_replayed_and_sends_their_messages_again(
    herald: Herald,
) -> None:
    # Given
    batch = [keyed(EMAIL, "order-1"), keyed(WEBHOOK, "order-2"), EMAIL]
    first = body_of(herald.api(post_batch(batch)))
    ids = [result["id"] for result in first["results"]]

    # When
    second = herald.api(post_batch(batch))

    # Then: the keyed ones are replays of the originals, never attempted, so their messages are sent again (in
    # the same batch send as the new one's); the unkeyed one is a new notification. No record is made twice.
    assert second["statusCode"] == 202
    again = body_of(second)["results"]
    assert [result["id"] for result in again[:2]] == ids[:2]
    assert [result.get("replayed") for result in again] == [True, True, None]
    assert again[2]["id"] not in ids
    assert herald.receive_all("BatchQueue") == [*ids, ids[0], ids[1], again[2]["id"]]
    assert herald.enqueuer.batches == 2
    assert herald.store.count() == 4


def test_a_key_reused_with_a_different_body_is_a_conflict_for_that_notification_only(herald: Herald) -> None:
    # Given
    original = body_of(herald.api(post_batch([keyed(EMAIL, "order-7")])))["results"][0]["id"]

    # When
    response = herald.api(post_batch([keyed({**EMAIL, "body": "Other"}, "order-7"), EMAIL]))

    # Then
    assert response["statusCode"] == 207
    conflict = body_of(response)["results"][0]["error"]
    assert conflict["code"] == "idempotency_conflict"
    assert conflict["details"] == [{"field": "notifications[0].idempotency_key", "notification_id": original}]
    assert len(herald.receive_all("BatchQueue")) == 2


def test_keys_are_shared_with_the_single_path(herald: Herald) -> None:
    # Given: accepted one at a time first (the single path's queue for a normal priority is the standard one)
    single = herald.api(events.post_notification(EMAIL, headers={"Idempotency-Key": "order-8"}, key_id=KEY_ID))

    # When
    response = herald.api(post_batch([keyed(EMAIL, "order-8")]))

    # Then: a replay of the single notification, never attempted, so its message is sent again to the queue the
    # record names (not the batch queue)
    result = body_of(response)["results"][0]
    assert (result["id"], result["replayed"]) == (body_of(single)["id"], True)
    assert herald.receive_all("StandardQueue") == [result["id"], result["id"]]
    assert herald.receive_all("BatchQueue") == []
    assert herald.store.count() == 1


def test_one_key_twice_in_a_request_behaves_as_two_requests_one_after_the_other(herald: Herald) -> None:
    # Given: the same key three times, the last with another body
    batch = [keyed(EMAIL, "order-9"), keyed(EMAIL, "order-9"), keyed({**EMAIL, "body": "Other"}, "order-9")]

    # When
    response = herald.api(post_batch(batch))

    # Then: the first is new, the second its replay, the third a conflict; one record, one message
    assert response["statusCode"] == 207
    first, second, third = body_of(response)["results"]
    assert "replayed" not in first
    assert (second["id"], second["replayed"]) == (first["id"], True)
    assert third["error"]["code"] == "idempotency_conflict"
    assert third["error"]["details"][0]["notification_id"] == first["id"]
    assert herald.receive_all("BatchQueue") == [first["id"]]
    assert herald.store.count() == 1


def test_a_batch_replaying_a_record_just_stored_and_never_attempted_sends_its_message_once(herald: Herald) -> None:
    # Given: a keyed record stored a second ago whose message was lost (a crash between put and send)
    request = NotificationRequest.model_validate(keyed(EMAIL, "order-10"))
    herald.store.put(
        make_record(
            id=TEST_IDS.for_key(KEY_ID, "order-10"),
            channel=Channel.EMAIL,
            recipient=Recipient(email="ada@example.com"),
            subject="Code",
            body="Your code is 1",
            priority=Priority.NORMAL,
            idempotency_key="order-10",
            fingerprint=request.fingerprint(),
            queue="batch",
            created_at=iso(START - 1),
            updated_at=iso(START - 1),
        )
    )

    # When: the batch holds the key twice
    response = herald.api(post_batch([keyed(EMAIL, "order-10"), keyed(EMAIL, "order-10")]))

    # Then: both replays of the one record; its message is sent again once for the request, at no age
    assert response["statusCode"] == 202
    assert [result["replayed"] for result in body_of(response)["results"]] == [True, True]
    assert herald.receive_all("BatchQueue") == [TEST_IDS.for_key(KEY_ID, "order-10")]
    assert herald.store.count() == 1


def test_notifications_the_queue_refuses_are_taken_back_and_rejected_as_unavailable(herald: Herald) -> None:
    # Given: SQS takes two messages, then refuses the rest
    herald.enqueuer.capacity = 2

    # When
    response = herald.api(post_batch([keyed(EMAIL, "order-11"), EMAIL, keyed(EMAIL, "order-12"), EMAIL]))

    # Then: the accepted have records and messages; the refused have neither
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert ["id" in result for result in results] == [True, True, False, False]
    assert {result["error"]["code"] for result in results[2:]} == {"service_unavailable"}
    assert herald.receive_all("BatchQueue") == [results[0]["id"], results[1]["id"]]
    assert herald.store.count() == 2

    # And when the refused key is sent again, it is new (nothing of it was kept), the accepted one a replay whose
    # message, never attempted, is sent again
    herald.enqueuer.capacity = None
    retried = body_of(herald.api(post_batch([keyed(EMAIL, "order-11"), keyed(EMAIL, "order-12")])))["results"]
    assert [result.get("replayed") for result in retried] == [True, None]
    assert retried[0]["id"] == results[0]["id"]
    assert herald.receive_all("BatchQueue") == [results[0]["id"], results[1]["id"], results[0]["id"], retried[1]["id"]]
    assert herald.store.count() == 3


def test_queues_unreachable_is_503_with_retry_after_and_nothing_is_kept(herald: Herald) -> None:
    # Given
    herald.enqueuer.unavailable = True

    # When
    response = herald.api(post_batch([EMAIL, keyed(WEBHOOK, "order-13")]))

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    assert body_of(response)["error"]["code"] == "service_unavailable"
    assert herald.store.count() == 0


def test_notifications_the_store_cannot_take_are_rejected_as_unavailable_and_never_queued(herald: Herald) -> None:
    # Given: DynamoDB takes two records of the batch, then throttles beyond the store's retries
    herald.store.batch_capacity = 2

    # When
    response = herald.api(post_batch([EMAIL, EMAIL, EMAIL]))

    # Then
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert results[2]["error"]["code"] == "service_unavailable"
    assert herald.receive_all("BatchQueue") == [results[0]["id"], results[1]["id"]]
    assert herald.store.count() == 2


def test_store_unreachable_is_503_and_nothing_is_queued(herald: Herald) -> None:
    # Given
    herald.store.unavailable = True

    # When
    response = herald.api(post_batch([EMAIL, keyed(EMAIL, "order-14")]))

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    assert herald.enqueuer.sent == []


def test_invalid_notifications_beside_an_outage_still_get_the_503(herald: Herald) -> None:
    # Given: nothing can be accepted; one notification is also invalid
    herald.enqueuer.unavailable = True

    # When
    response = herald.api(post_batch([{"channel": "email"}, EMAIL]))

    # Then: the outage decides: retrying later can succeed, and then the invalid one is reported
    assert response["statusCode"] == 503
    assert herald.store.count() == 0


def test_a_batch_logs_counts_without_personal_data(herald: Herald, caplog: pytest.LogCaptureFixture) -> None:
    # When
    with caplog.at_level(logging.INFO):
        herald.api(post_batch([EMAIL, {"channel": "email"}]))

    # Then
    summary = next(record for record in caplog.records if record.getMessage() == "notification batch accepted")
    assert (summary.__dict__["accepted"], summary.__dict__["rejected"]) == (1, 1)
    logged = json.dumps([record.__dict__ for record in caplog.records], default=str)
    assert "ada@example.com" not in logged and "Your code" not in logged
