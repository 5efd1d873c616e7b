"""POST /notifications/batch against moto's DynamoDB and SQS: few requests, real conditions, no record lost.

The accepting rules per notification are unit tests over fakes (tests/unit/notifications/test_batch_accept.py).
Here the real store and queues are checked: how many requests a batch costs, what DynamoDB's transaction
cancellations and batch writes' unprocessed items lead to, what SQS's refused entries lead to, and that
the template's policy allows every request. Faults are injected with botocore event hooks on the clients,
so moto answers everything else.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import EndpointConnectionError

from api.app import Dependencies, handle
from api.settings import ApiSettings
from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.health import HealthViews
from notifications.queues import QueueUrls, SqsEnqueuer
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from tests.integration.notifications.conftest import context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.fakes import FakeProbes, FakeSnapshots, FakeStatusStore
from tests.support.iam import denied_calls
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.notifications.conftest import Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
KEY_ID = "k7v2n4p8q1"


def post_batch(notifications: list[dict[str, Any]]) -> dict[str, Any]:
    return events.post_batch(notifications, key_id=KEY_ID)


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def keyed(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{**EMAIL, "idempotency_key": f"{prefix}-{i}"} for i in range(count)]


def stored(herald: Herald) -> int:
    table = herald.env["NOTIFICATIONS_TABLE"]
    return int(herald.session.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


def waiting(herald: Herald, logical_id: str) -> int:
    attributes = herald.session.client("sqs").get_queue_attributes(
        QueueUrl=herald.queue_url(logical_id), AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@dataclass
class Rig:
    """The API handler on clients of its own, where a test hooks faults, counting every request."""

    herald: Herald
    dynamodb: Any
    sqs: Any
    sleeps: list[float] = field(default_factory=list)  # the store's backoffs, recorded instead of slept
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for client in (self.dynamodb, self.sqs):
            client.meta.events.register("before-parameter-build", self._count)
        table = self.herald.env["NOTIFICATIONS_TABLE"]
        self.store = DynamoDBStatusStore(table, client=self.dynamodb, sleep=self.sleeps.append)

    def _count(self, model: Any, **_: Any) -> None:
        self.requests[model.name] += 1

    def api(self, event: dict[str, Any]) -> dict[str, Any]:
        settings = load_settings(ApiSettings, self.herald.env)
        urls = QueueUrls(settings.priority_queue_url, settings.standard_queue_url, settings.batch_queue_url)
        policy = AcceptPolicy(settings.enabled_channels, settings.webhook_allow_private_targets, 86_400)
        acceptor = NotificationAcceptor(self.store, SqsEnqueuer(urls, client=self.sqs), policy, ids=self.herald.ids)
        # The health views read no AWS here: only the batch path's requests are counted.
        clock = FakeClock()
        probes = FakeProbes((), clock)
        health = HealthViews(
            FakeSnapshots(),
            ready_probes=probes,
            db_probes=probes,
            queue_probes=probes,
            config=settings.health,
            clock=clock,
        )
        deps = Dependencies(settings, acceptor, self.store, health)
        return handle(event, context("api", 25), deps)


def rig(herald: Herald) -> Rig:
    return Rig(herald, herald.session.client("dynamodb"), herald.session.client("sqs"))


def on_first_call(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The handler for the first event only; later events pass untouched."""
    calls = []

    def once(**kwargs: Any) -> Any:
        calls.append(1)
        return handler(**kwargs) if len(calls) == 1 else None

    return once


class RefusedEntries:
    """SQS refusing the first `refusals[i]` entries of its i-th `SendMessageBatch` (its `Failed` list)."""

    def __init__(self, sqs: Any, refusals: list[int]) -> None:
        self.refusals = refusals
        self.refused: list[dict[str, Any]] = []
        self.kept: list[dict[str, Any]] = []
        sqs.meta.events.register("before-parameter-build.sqs.SendMessageBatch", self._drop)
        sqs.meta.events.register("before-call.sqs.SendMessageBatch", self._answer_if_nothing_kept)
        sqs.meta.events.register("after-call.sqs.SendMessageBatch", self._report)

    def _drop(self, params: dict[str, Any], **_: Any) -> None:
        count = self.refusals.pop(0) if self.refusals else 0
        self.refused, self.kept = params["Entries"][:count], params["Entries"][count:]
        params["Entries"] = self.kept

    def _answer_if_nothing_kept(self, **_: Any) -> Any:
        return None if self.kept else (SimpleNamespace(status_code=200), {"Successful": [], "ResponseMetadata": {}})

    def _report(self, parsed: dict[str, Any], **_: Any) -> None:
        parsed.setdefault("Failed", []).extend(
            {"Id": entry["Id"], "SenderFault": False, "Code": "InternalError", "Message": "try again"}
            for entry in self.refused
        )


# ---------------------------------------------------------------------- requests per notification
def test_a_batch_of_100_without_keys_costs_4_batch_writes_and_10_batch_sends(herald: Herald) -> None:
    # When
    response = herald.api(post_batch([EMAIL] * 100))

    # Then: 14 requests for 100 notifications (single accepts: 200), each record stored, each message queued;
    # besides them, one read of the health snapshot (for the notices), which an environment makes at most once
    # per SNAPSHOT_CACHE_SECONDS
    assert response["statusCode"] == 202
    assert body_of(response)["accepted"] == 100
    assert len(herald.api_calls.made("dynamodb:BatchWriteItem")) == 4
    assert len(herald.api_calls.made("sqs:SendMessageBatch")) == 10
    assert {action for action, _ in herald.api_calls.requests} == {
        "dynamodb:BatchWriteItem",
        "sqs:SendMessageBatch",
        "dynamodb:GetItem",
    }
    assert [read["TableName"] for read in herald.api_calls.made("dynamodb:GetItem")] == [herald.env["RESILIENCE_TABLE"]]
    assert stored(herald) == 100
    assert waiting(herald, "BatchQueue") == 100


def test_a_keyed_batch_of_100_is_one_transaction_and_its_replay_one_cancelled_transaction_and_10_batch_sends(
    herald: Herald,
) -> None:
    # Given
    batch = keyed(100, "order")
    first = herald.api(post_batch(batch))

    # When
    replay = herald.api(post_batch(batch))

    # Then: the replay read the stored records from the cancellation reasons and wrote none; as none was
    # attempted yet, it sent their 100 messages again, in 10 batch sends
    assert first["statusCode"] == replay["statusCode"] == 202
    ids = [r["id"] for r in body_of(first)["results"]]
    assert [r["id"] for r in body_of(replay)["results"]] == ids
    assert all(r["replayed"] for r in body_of(replay)["results"])
    assert len(herald.api_calls.made("dynamodb:TransactWriteItems")) == 2
    assert herald.api_calls.made("dynamodb:BatchGetItem") == []
    sends = herald.api_calls.made("sqs:SendMessageBatch")
    assert len(sends) == 20
    assert [json.loads(entry["MessageBody"])["id"] for send in sends[10:] for entry in send["Entries"]] == ids
    assert stored(herald) == 100
    assert waiting(herald, "BatchQueue") == 200


def test_existing_keys_are_decided_from_the_cancellation_and_the_rest_written_in_a_second_transaction(
    herald: Herald,
) -> None:
    # Given: one key used before with the same request, one with another request
    herald.api(post_batch([{**EMAIL, "idempotency_key": "same"}, {**EMAIL, "idempotency_key": "other"}]))
    batch = [
        {**EMAIL, "idempotency_key": "new-1"},
        {**EMAIL, "idempotency_key": "same"},
        {**EMAIL, "idempotency_key": "other", "body": "changed"},
        {**EMAIL, "idempotency_key": "new-2"},
    ]

    # When
    response = herald.api(post_batch(batch))

    # Then
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert [r.get("replayed") for r in results] == [None, True, None, None]
    assert results[1]["id"] == herald.ids.for_key(KEY_ID, "same")
    assert results[2]["error"]["code"] == "idempotency_conflict"
    assert len(herald.api_calls.made("dynamodb:TransactWriteItems")) == 3  # set-up, cancelled, retried
    assert [len(p["TransactItems"]) for p in herald.api_calls.made("dynamodb:TransactWriteItems")[1:]] == [4, 2]
    assert stored(herald) == 4
    # the replayed record, never attempted, has its message sent again, in the new ones' batch send
    sends = herald.api_calls.made("sqs:SendMessageBatch")
    assert len(sends) == 2  # set-up, this request
    assert [json.loads(entry["MessageBody"])["id"] for entry in sends[1]["Entries"]] == [
        herald.ids.for_key(KEY_ID, "new-1"),
        herald.ids.for_key(KEY_ID, "same"),
        herald.ids.for_key(KEY_ID, "new-2"),
    ]
    assert waiting(herald, "BatchQueue") == 5


def test_without_the_stored_items_in_the_cancellation_the_existing_records_are_read_in_one_batch_get(
    herald: Herald,
) -> None:
    # Given: DynamoDB's cancellation reasons come without the items (as from an SDK that drops them)
    given = rig(herald)
    given.api(post_batch(keyed(3, "seen")))

    def strip_items(parsed: dict[str, Any], **_: Any) -> None:
        for reason in parsed.get("CancellationReasons", []):
            reason.pop("Item", None)

    given.dynamodb.meta.events.register("after-call.dynamodb.TransactWriteItems", strip_items)
    given.requests.clear()

    # When
    response = given.api(post_batch([*keyed(3, "seen"), {**EMAIL, "idempotency_key": "fresh"}]))

    # Then
    assert response["statusCode"] == 202
    assert [r.get("replayed") for r in body_of(response)["results"]] == [True, True, True, None]
    assert given.requests == {"TransactWriteItems": 2, "BatchGetItem": 1, "SendMessageBatch": 1}


# ---------------------------------------------------------------------- the store contract, fake and real
@pytest.fixture(params=["dynamodb", "fake"])
def either_store(request: pytest.FixtureRequest) -> DynamoDBStatusStore | FakeStatusStore:
    if request.param == "fake":
        return FakeStatusStore(FakeClock())
    herald: Herald = request.getfixturevalue("herald")
    return rig(herald).store


def test_create_many_creates_free_ids_and_returns_taken_ones_with_their_stored_record(
    either_store: DynamoDBStatusStore | FakeStatusStore,
) -> None:
    # Given
    either_store.create(make_record(id="taken", idempotency_key="taken", body="first"))

    # When
    creation = either_store.create_many(
        [make_record(id=i, idempotency_key=i, body="second") for i in ("free-1", "taken", "free-2")]
    )

    # Then
    assert creation.created == {"free-1", "free-2"} and not creation.failed
    assert {i: record.body for i, record in creation.existing.items()} == {"taken": "first"}
    assert either_store.get("taken").body == "first"  # type: ignore[union-attr]
    assert either_store.get("free-2") == make_record(id="free-2", idempotency_key="free-2", body="second")


def test_create_fresh_writes_every_record(either_store: DynamoDBStatusStore | FakeStatusStore) -> None:
    # When
    creation = either_store.create_fresh([make_record(id=f"fresh-{i}") for i in range(30)])

    # Then
    assert creation.created == {f"fresh-{i}" for i in range(30)} and not creation.failed and not creation.existing
    assert either_store.get("fresh-29") == make_record(id="fresh-29")


# ---------------------------------------------------------------------- DynamoDB's partial answers
def test_unprocessed_batch_writes_are_sent_again_after_a_backoff(herald: Herald) -> None:
    # Given: DynamoDB leaves the last 5 puts of the first BatchWriteItem unprocessed (throttled)
    given = rig(herald)
    table = herald.env["NOTIFICATIONS_TABLE"]
    left: list[dict[str, Any]] = []

    def leave_five(params: dict[str, Any], **_: Any) -> None:
        left.extend(params["RequestItems"][table][-5:])
        params["RequestItems"][table] = params["RequestItems"][table][:-5]

    def report(parsed: dict[str, Any], **_: Any) -> None:
        parsed["UnprocessedItems"] = {table: left}

    given.dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", on_first_call(leave_five))
    given.dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", on_first_call(report))

    # When
    response = given.api(post_batch([EMAIL] * 25))

    # Then
    assert response["statusCode"] == 202
    assert given.requests["BatchWriteItem"] == 2
    assert len(given.sleeps) == 1 and 0 <= given.sleeps[0] <= 0.05
    assert stored(herald) == 25


def test_a_transaction_cancelled_by_contention_is_retried_after_a_backoff(herald: Herald) -> None:
    # Given: the first transaction meets a concurrent one on its second item (TransactionConflict)
    given = rig(herald)

    def conflict(params: dict[str, Any], **_: Any) -> Any:
        items = json.loads(params["body"])["TransactItems"]
        reasons = [{"Code": "TransactionConflict" if i == 1 else "None"} for i in range(len(items))]
        error = {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"}
        return SimpleNamespace(status_code=400), {"Error": error, "CancellationReasons": reasons}

    given.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", on_first_call(conflict))
    records = [make_record(id=f"contended-{i}", idempotency_key=f"k-{i}") for i in range(3)]

    # When
    creation = given.store.create_many(records)

    # Then
    assert creation.created == {"contended-0", "contended-1", "contended-2"}
    assert not creation.existing and not creation.failed
    assert given.requests["TransactWriteItems"] == 2
    assert len(given.sleeps) == 1


def lose_the_answer(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
    """DynamoDB applied the request, but the answer that reaches the client is a 500."""
    http_response.status_code = 500
    parsed["Error"] = {"Code": "InternalServerError", "Message": "Internal server error"}
    parsed["ResponseMetadata"]["HTTPStatusCode"] = 500


def test_a_batch_write_whose_answer_is_lost_is_taken_back_and_the_rest_not_tried(herald: Herald) -> None:
    # Given: the first BatchWriteItem lands, but its answer is lost; 30 records make two of them
    given = rig(herald)
    given.dynamodb.meta.events.register("after-call.dynamodb.BatchWriteItem", on_first_call(lose_the_answer))
    records = [make_record(id=f"lost-{i}") for i in range(30)]

    # When
    creation = given.store.create_fresh(records)

    # Then: every record reported failed is absent: the landed ones were deleted again, the others never sent
    assert creation.failed == {record.id for record in records} and not creation.created
    assert stored(herald) == 0
    assert given.requests["BatchWriteItem"] == 2  # the lost put, then the deletes; not the second chunk


def test_a_transaction_whose_answer_is_lost_is_read_back_and_its_records_kept(herald: Herald) -> None:
    # Given: 150 keyed records make two transactions; the first lands, but its answer is a 500
    given = rig(herald)
    given.dynamodb.meta.events.register("after-call.dynamodb.TransactWriteItems", on_first_call(lose_the_answer))
    records = [make_record(id=f"doubt-{i}", idempotency_key=f"doubt-{i}") for i in range(150)]

    # When
    creation = given.store.create_many(records)

    # Then: the records stored exactly as sent are ours (created, to be queued); the rest followed
    assert len(creation.created) == 150 and not creation.existing and not creation.failed
    assert given.requests == {"TransactWriteItems": 2, "BatchGetItem": 1}


def test_dynamodb_unreachable_fails_the_records_and_stops_the_batch(herald: Herald) -> None:
    # Given: 150 keyed records make two transactions; DynamoDB cannot be reached
    given = rig(herald)

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    given.dynamodb.meta.events.register("before-call.dynamodb.TransactWriteItems", unreachable)
    records = [make_record(id=f"down-{i}", idempotency_key=f"down-{i}") for i in range(150)]

    # When
    creation = given.store.create_many(records)

    # Then: nothing is reported created; the second transaction was not sent to wait on the outage too
    assert len(creation.failed) == 150 and not creation.created and not creation.existing
    assert given.requests["TransactWriteItems"] == 1
    assert stored(herald) == 0


def test_transactions_are_cut_at_100_items_and_4_mb(herald: Herald) -> None:
    # Given: 60 records of about 100 KB each, more than 4 MB in all
    given = rig(herald)
    records = [
        make_record(id=f"big-{i}", idempotency_key=f"big-{i}", data={"blob": "x" * 60_000}, body="y" * 40_000)
        for i in range(60)
    ]

    # When
    creation = given.store.create_many(records)

    # Then
    assert len(creation.created) == 60
    assert given.requests["TransactWriteItems"] == 2


# ---------------------------------------------------------------------- SQS's partial answers
def test_entries_sqs_refuses_once_are_sent_again_and_accepted(herald: Herald) -> None:
    # Given
    given = rig(herald)
    RefusedEntries(given.sqs, refusals=[2])

    # When
    response = given.api(post_batch([EMAIL] * 10))

    # Then
    assert response["statusCode"] == 202
    assert given.requests["SendMessageBatch"] == 2
    assert waiting(herald, "BatchQueue") == 10


def test_entries_sqs_refuses_twice_lose_their_records_and_are_rejected_as_unavailable(herald: Herald) -> None:
    # Given: the first two entries (two keyed notifications) are refused, and refused again on the retry
    given = rig(herald)
    RefusedEntries(given.sqs, refusals=[2, 2])
    batch = keyed(5, "sqs") + [EMAIL] * 5

    # When
    response = given.api(post_batch(batch))

    # Then: no record stays without its message, and the refused keys are free to be sent again
    assert response["statusCode"] == 207
    results = body_of(response)["results"]
    assert [result.get("error", {}).get("code") for result in results[:3]] == ["service_unavailable"] * 2 + [None]
    assert stored(herald) == waiting(herald, "BatchQueue") == 8
    assert given.store.get(herald.ids.for_key(KEY_ID, "sqs-0")) is None
    retried = body_of(given.api(post_batch(batch[:3])))["results"]
    assert [result.get("replayed") for result in retried] == [None, None, True]


def test_queue_unreachable_is_503_with_retry_after_and_no_record_is_kept(herald: Herald) -> None:
    # Given
    herald.session.client("sqs").delete_queue(QueueUrl=herald.queue_url("BatchQueue"))

    # When
    response = herald.api(post_batch([EMAIL] * 3 + keyed(3, "gone")))

    # Then
    assert response["statusCode"] == 503
    assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    assert stored(herald) == 0


# ---------------------------------------------------------------------- IAM
def test_every_request_of_the_batch_path_is_allowed_by_the_api_policy(herald: Herald) -> None:
    # Given: the batch path's requests: batch writes, transactions (created, then cancelled), batch sends,
    # and the read a cancellation without items falls back on
    batch = [EMAIL, *keyed(2, "iam")]
    herald.api(post_batch(batch))
    herald.api(post_batch(batch))
    fallback_read = {"RequestItems": {herald.env["NOTIFICATIONS_TABLE"]: {}}}

    # When
    calls = herald.api_calls.calls | herald.api_calls.authorised_as("dynamodb", "BatchGetItem", fallback_read)

    # Then: IAM sees the transaction's puts as PutItem and the batch sends as SendMessage (and, from building
    # the API, the read of the idempotency key; for the notices, the read of the health snapshot)
    assert {action for action, _ in herald.api_calls.requests} == {
        "dynamodb:BatchWriteItem",
        "dynamodb:TransactWriteItems",
        "sqs:SendMessageBatch",
        "dynamodb:GetItem",
    }
    assert {call.action for call in calls} == {
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "sqs:SendMessage",
        "secretsmanager:GetSecretValue",
    }
    assert denied_calls(herald.stack, "ApiFunction", calls) == []
