"""POST /notifications/batch against moto when every AWS call takes its slowest time: the batch stops in time.

One API-side call takes at most `aws.API_SLOWEST_CALL_SECONDS` (7 s); a batch of 100 may make 20 of them,
far past ApiFunction's 25 s timeout, where Lambda would end the invocation between writing records and
queueing their messages. Here a botocore `before-call` hook on the API's clients moves a fake clock by that
slowest time on every call, and the invocation's remaining time (what the batch route's `TimeBudget`
reads) is the 25 s deadline on that clock. Whatever the batch, the simulated AWS time stays inside the
deadline, and nothing is lost: every notification answered accepted has its record, `queued`, and one
message; every one answered rejected has no record, or (keyed) one its replay queues.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import EndpointConnectionError

from api.app import build_dependencies, handle
from api.settings import ApiSettings
from notifications import aws
from notifications.models import Status
from notifications.settings import load_settings
from notifications.store import from_item
from tests.integration.notifications.conftest import _session, context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.iam import AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from api.app import Dependencies
    from local.lambda_.context import LambdaContext
    from tests.integration.notifications.conftest import Herald

EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
KEY_ID = "k7v2n4p8q1"
TIMEOUT = 25.0  # ApiFunction's Timeout in template.yaml
PRIORITIES = ("normal", "critical", "low", "high")  # the batch queue and the priority queue
QUEUES = ("PriorityQueue", "StandardQueue", "BatchQueue")


def notification(index: int, *, keyed: bool) -> dict[str, Any]:
    key = {"idempotency_key": f"budget-{index}"} if keyed else {}
    return {**EMAIL, "priority": PRIORITIES[index % len(PRIORITIES)], **key}


def mixed(count: int) -> list[dict[str, Any]]:
    """Every other notification keyed, priorities in turn."""
    return [notification(i, keyed=i % 2 == 1) for i in range(count)]


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


@dataclass
class SlowApi:
    """The API handler on clients of its own whose every call moves `clock` by `call_seconds`."""

    herald: Herald
    deps: Dependencies
    calls: AwsCallRecorder  # every request its clients made, as IAM sees them
    clock: FakeClock
    call_seconds: float

    def invoke(self, event: dict[str, Any], timeout: float = TIMEOUT) -> dict[str, Any]:
        """One invocation whose deadline is `timeout` seconds away on the fake clock."""
        return handle(event, self.context(timeout), self.deps)

    def context(self, timeout: float) -> LambdaContext:
        invocation = context("api", timeout)
        deadline = self.clock() + timeout
        invocation.get_remaining_time_in_millis = lambda: max(0, int((deadline - self.clock()) * 1000))  # type: ignore[method-assign]
        return invocation

    def take_time(self, **_: Any) -> None:
        self.clock.advance(self.call_seconds)


@pytest.fixture
def slow_api(herald: Herald) -> SlowApi:
    calls = AwsCallRecorder(herald.stack)
    session = calls.attach(_session("budget"))
    clients: dict[str, Any] = {name: session.client(name) for name in ("dynamodb", "sqs")}
    calls.detach(session)  # the clients keep the recorder; later clients of the cached session do not
    api = SlowApi(herald, None, calls, FakeClock(), aws.API_SLOWEST_CALL_SECONDS)  # type: ignore[arg-type]
    for client in clients.values():
        client.meta.events.register("before-call", api.take_time)
    api.deps = build_dependencies(
        load_settings(ApiSettings, herald.env),
        **clients,
        probe_dynamodb=clients["dynamodb"],
        probe_sqs=clients["sqs"],
        secretsmanager=herald.session.client("secretsmanager"),
    )
    return api


def stored(herald: Herald) -> dict[str, Any]:
    """Every record in the table, by id."""
    pages = (
        herald.session.client("dynamodb").get_paginator("scan").paginate(TableName=herald.env["NOTIFICATIONS_TABLE"])
    )
    return {record.id: record for page in pages for record in map(from_item, page["Items"])}


def messages(herald: Herald) -> Counter[str]:
    """How many messages each notification has, over the notification queues (received, kept invisible)."""
    sqs, found = herald.session.client("sqs"), Counter[str]()
    for queue in QUEUES:
        while batch := sqs.receive_message(
            QueueUrl=herald.queue_url(queue), MaxNumberOfMessages=10, VisibilityTimeout=600
        ).get("Messages", []):
            found.update(json.loads(message["Body"])["id"] for message in batch)
    return found


def check_nothing_is_lost(slow_api: SlowApi, batch: list[dict[str, Any]], response: dict[str, Any]) -> None:
    """Accepted: record `queued`, exactly one message. Rejected: no record, or a keyed one its replay queues."""
    herald = slow_api.herald
    results = body_of(response).get("results", [])
    accepted = {result["id"] for result in results if "id" in result}
    records, queued = stored(herald), messages(herald)
    assert all(records[i].status == Status.QUEUED for i in accepted)
    assert queued == Counter(dict.fromkeys(accepted, 1))  # one message each, and none for anyone else
    keys = {herald.ids.for_key(KEY_ID, n["idempotency_key"]): n for n in batch if "idempotency_key" in n}
    left = set(records) - accepted
    assert left <= set(keys)  # an unkeyed notification answered rejected has no record
    if left:
        # When a keyed notification left stored is sent again, with time enough: its replay queues it
        slow_api.call_seconds = 0.0
        replay = body_of(slow_api.invoke(events.post_batch([keys[i] for i in sorted(left)], key_id=KEY_ID)))
        assert [(result["id"], result["replayed"]) for result in replay["results"]] == [(i, True) for i in sorted(left)]
        assert messages(herald) == Counter(left)


# ---------------------------------------------------------------------- every call at its slowest
@pytest.mark.parametrize(
    ("batch", "status", "accepted"),
    [
        # 50 without keys (two batch writes) and 50 keyed (a transaction): 21 s, no time left to send any
        # message, so nothing is accepted (the 503 of an outage) and every record written is taken back
        pytest.param(mixed(100), 503, 0, id="100-mixed"),
        # a transaction (7 s), the first send of 10 (14 s): the other 90 are taken back (21 s)
        pytest.param([notification(i, keyed=True) for i in range(100)], 207, 10, id="100-keyed"),
        # a batch write (7 s), the first send of 10 (14 s): the other 10 are taken back (21 s)
        pytest.param([notification(i, keyed=False) for i in range(20)], 207, 10, id="20-unkeyed"),
    ],
)
def test_a_batch_at_the_slowest_aws_stops_in_time_and_loses_nothing(
    slow_api: SlowApi, batch: list[dict[str, Any]], status: int, accepted: int
) -> None:
    # Given: every AWS call of the API takes 7 s, and the invocation has 25 s
    start = slow_api.clock()

    # When
    response = slow_api.invoke(events.post_batch(batch, key_id=KEY_ID))

    # Then: the simulated AWS time stayed inside the deadline, the answer is what was done in it, and nothing
    # answered accepted or rejected is lost or left without its message
    assert slow_api.clock() - start <= TIMEOUT
    assert response["statusCode"] == status
    if status == 503:
        assert body_of(response)["error"]["code"] == "service_unavailable"
        assert response["multiValueHeaders"]["Retry-After"] == ["5"]
    else:
        answer = body_of(response)
        assert (answer["accepted"], answer["rejected"]) == (accepted, len(batch) - accepted)
        rejected = [result["error"] for result in answer["results"] if "error" in result]
        assert {(error["code"], error["message"]) for error in rejected} == {
            ("service_unavailable", "this notification could not be queued; retry it")
        }
    check_nothing_is_lost(slow_api, batch, response)
    # the records written and never queued were taken back in one request
    take_backs = [p for p in slow_api.calls.made("dynamodb:TransactWriteItems") if "Delete" in p["TransactItems"][0]]
    assert len(take_backs) == 1


@pytest.mark.parametrize("call_seconds", [0.5, 1.0, 2.5])
def test_a_batch_at_any_call_time_stays_inside_the_deadline_and_loses_nothing(
    slow_api: SlowApi, call_seconds: float
) -> None:
    # Given: AWS calls faster than their slowest, the budget still reckoning with 7 s each
    slow_api.call_seconds = call_seconds
    batch = mixed(100)
    start = slow_api.clock()

    # When
    response = slow_api.invoke(events.post_batch(batch, key_id=KEY_ID))

    # Then: more is done in the time, never past it, and a partial answer is 207, never a 5xx
    assert slow_api.clock() - start <= TIMEOUT
    answer = body_of(response)
    assert response["statusCode"] == (202 if answer["accepted"] == len(batch) else 207)
    assert answer["accepted"] > 0
    check_nothing_is_lost(slow_api, batch, response)


def test_keyed_records_left_in_doubt_when_time_runs_out_are_rejected_and_their_replay_queues_them(
    slow_api: SlowApi,
) -> None:
    # Given: the transaction lands but its answer is lost (a 500), and after it there is no time left to read
    # its records back (20 s: the transaction fits, a read-back after it does not)
    lost: list[int] = []

    def lose_the_first_answer(http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if not lost:
            lost.append(1)
            http_response.status_code = 500
            parsed["Error"] = {"Code": "InternalServerError", "Message": "Internal server error"}
            parsed["ResponseMetadata"]["HTTPStatusCode"] = 500

    slow_api.deps.store._client.meta.events.register(  # type: ignore[attr-defined]
        "after-call.dynamodb.TransactWriteItems", lose_the_first_answer
    )
    batch = [notification(i, keyed=True) for i in range(5)]

    # When
    response = slow_api.invoke(events.post_batch(batch, key_id=KEY_ID), timeout=20.0)

    # Then: nothing could be confirmed, so nothing is accepted (503), and nothing was queued; the records
    # are stored, never attempted, and the keys' replay queues each once
    assert response["statusCode"] == 503
    assert slow_api.calls.made("dynamodb:BatchGetItem") == []
    assert len(stored(slow_api.herald)) == 5
    check_nothing_is_lost(slow_api, batch, response)


# ---------------------------------------------------------------------- the take-back
def test_sqs_failing_every_send_costs_one_take_back_transaction_and_leaves_no_record(slow_api: SlowApi) -> None:
    # Given: every SendMessageBatch fails (SQS unreachable); calls take no time
    slow_api.call_seconds = 0.0

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://sqs.us-east-1.amazonaws.com")

    slow_api.deps.acceptor._enqueuer._client.meta.events.register(  # type: ignore[attr-defined]
        "before-call.sqs.SendMessageBatch", unreachable
    )
    batch = mixed(100)

    # When
    response = slow_api.invoke(events.post_batch(batch, key_id=KEY_ID))

    # Then: 503; the 100 records written (two batch writes and a transaction) were taken back in one
    # transaction of conditional deletes, which IAM authorises as DeleteItem, allowed to ApiFunction
    assert response["statusCode"] == 503
    transactions = slow_api.calls.made("dynamodb:TransactWriteItems")
    take_backs = [p for p in transactions if all("Delete" in item for item in p["TransactItems"])]
    assert len(take_backs) == 1 and len(take_backs[0]["TransactItems"]) == 100
    assert len(transactions) == 2  # the keyed records' transaction, and the take-back
    assert stored(slow_api.herald) == {}
    calls = slow_api.calls.authorised_as("dynamodb", "TransactWriteItems", take_backs[0])
    assert {call.action for call in calls} == {"dynamodb:DeleteItem"}
    assert denied_calls(slow_api.herald.stack, "ApiFunction", slow_api.calls.calls) == []
