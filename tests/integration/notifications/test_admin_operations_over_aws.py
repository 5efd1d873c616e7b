"""The admin function's operations against moto: circuit breakers (list, reset, open, disable) and dead letters
(list without taking, redrive message by message or by a move task, dry runs, filters, a redrive killed mid-way),
with an audit line for each action and every AWS call checked against the AdminFunction's policy."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from admin.app import build_dependencies, handle
from admin.settings import AdminSettings
from local.lambda_.pollers import sqs_record
from notifications.dead_letters import REDRIVEN_BY_OPERATOR
from notifications.delivery import REDRIVEN_FROM_DLQ
from notifications.observability import logger
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from resilience import BreakerRegistry, DynamoDBBreakerStore
from tests.integration.notifications.conftest import REGION, context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.iam import AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from local.receiver import WebhookReceiver
    from tests.integration.notifications.conftest import Herald

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
Admin = Callable[..., dict[str, Any]]
MakeAdmin = Callable[..., Admin]


class Killed(Exception):
    """The admin function stopped mid-way (here: as it deletes the redriven messages from the DLQ)."""


class DiesBeforeDeleting:
    """An SQS client that sends and receives as moto does, and dies when asked to delete from the DLQ."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def delete_message_batch(self, **_: Any) -> Any:
        raise Killed("the invocation ended before the redriven messages were deleted")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def recorder(herald: Herald) -> AwsCallRecorder:
    return AwsCallRecorder(herald.stack)


@pytest.fixture
def make_admin(herald: Herald, recorder: AwsCallRecorder) -> Iterator[MakeAdmin]:
    """`make_admin(sqs=None, move_tasks=False)` -> `admin(method, path, body=None, key_id=, resource=, query=)`.

    moto has no SQS move tasks: with `move_tasks` REDRIVE_WITH_MOVE_TASK is on and StartMessageMoveTask is answered
    here, as SQS would (`task-1`), after the recorder saw the request; without, it is off (as the local runtime
    sets it). `sqs` wraps the admin's SQS client.
    """
    sessions: list[boto3.Session] = []

    def make(sqs: Any = None, *, move_tasks: bool = False) -> Admin:
        session = recorder.attach(boto3.Session(region_name=REGION))
        sessions.append(session)
        if move_tasks:
            session.events.register("before-call.sqs.StartMessageMoveTask", _answer_move_task)
        env = {
            **herald.env,
            "REDRIVE_WITH_MOVE_TASK": "true" if move_tasks else "false",
            "DEAD_LETTER_WAIT_SECONDS": "0",
        }
        settings = load_settings(AdminSettings, env)
        deps = build_dependencies(
            settings,
            apigateway=session.client("apigateway"),
            secretsmanager=session.client("secretsmanager"),
            dynamodb=session.client("dynamodb"),
            sqs=sqs(session.client("sqs")) if sqs else session.client("sqs"),
            clock=FakeClock(NOW),
        )

        def call(
            method: str,
            path: str,
            body: Any = None,
            *,
            key_id: str | None = None,
            resource: str | None = None,
            query: dict[str, str] | None = None,
        ) -> dict[str, Any]:
            event = events.admin_request(
                method, path, body, key_id=key_id or settings.admin_client_id, resource=resource, query=query
            )
            return handle(event, context("admin", 28), deps)

        return call

    yield make
    for session in sessions:
        recorder.detach(session)


@pytest.fixture
def admin(make_admin: MakeAdmin) -> Admin:
    return make_admin()


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[union-attr]
    yield stream
    logger.registered_handler.setStream(previous)  # type: ignore[union-attr]


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def audits(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("audit")]


# ---------------------------------------------------------------------- putting notifications in the DLQ
def accept(herald: Herald, body: dict[str, Any]) -> str:
    response = herald.api(events.post_notification(body))
    assert response["statusCode"] == 202, response["body"]
    notification_id: str = json.loads(response["body"])["id"]
    return notification_id


def webhook(receiver: WebhookReceiver, **extra: Any) -> dict[str, Any]:
    return {"channel": "webhook", "recipient": {"webhook_url": receiver.url}, "body": "Build 7 passed", **extra}


def sms(**extra: Any) -> dict[str, Any]:
    return {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "Your code is 1", **extra}


def dead_letter_for_real(herald: Herald, receiver: WebhookReceiver, **extra: Any) -> str:
    """A webhook whose receives run out as SQS counts them: four receives no sender finished, then the last,
    whose delivery fails (500); SQS moves the message to the DLQ on the next receive."""
    receiver.responses.append(500)
    notification_id = accept(herald, webhook(receiver, **extra))
    queue = "PriorityQueue" if extra.get("priority") in {"critical", "high"} else "StandardQueue"
    sqs, url = herald.session.client("sqs"), herald.queue_url(queue)
    for _ in range(int(herald.env["MAX_RECEIVE_COUNT"]) - 1):
        assert sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"]
    _, response = herald.poll(queue)
    assert response["batchItemFailures"]  # kept, visible again at once: retries exhausted
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # this receive moved it to the DLQ
    return notification_id


def dead_letter_in_place(herald: Herald, body: dict[str, Any], *, at: float = NOW) -> str:
    """A notification accepted, then dead-lettered at `at` as the sender does it, its message put in the DLQ."""
    notification_id = accept(herald, body)
    sqs = herald.session.client("sqs")
    queue = herald.queue_url("StandardQueue")
    for message in herald.receive_all("StandardQueue"):
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    store = DynamoDBStatusStore(
        herald.env["NOTIFICATIONS_TABLE"], client=herald.session.client("dynamodb"), clock=FakeClock(at)
    )
    claim = store.claim(notification_id, "sender-1", 30.0)
    assert claim.record is not None
    error = "provider answered HTTP 503"
    assert store.mark_dead_lettered(claim.record, "sender-1", error, reason=f"retries exhausted: {error}")
    sqs.send_message(QueueUrl=herald.queue_url("DeadLetterQueue"), MessageBody=events.queue_message(notification_id))
    return notification_id


def dlq_depth(herald: Herald) -> tuple[int, int]:
    """(visible, in flight) messages of the DLQ."""
    attributes = herald.session.client("sqs").get_queue_attributes(
        QueueUrl=herald.queue_url("DeadLetterQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def view(herald: Herald, notification_id: str) -> dict[str, Any]:
    found: dict[str, Any] = body_of(herald.api(events.get_notification(notification_id)))
    return found


# ---------------------------------------------------------------------- dead letters
def test_listing_explains_each_dead_letter_and_leaves_every_message_in_the_dlq_visible(
    herald: Herald, receiver: WebhookReceiver, admin: Admin, logged: io.StringIO
) -> None:
    # Given: a webhook dead-lettered for real (SQS's own redrive) and an SMS one put in place
    real = dead_letter_for_real(herald, receiver)
    placed = dead_letter_in_place(herald, sms())

    # When
    response = admin("GET", "/admin/dead-letters")

    # Then: both explained by their records; both still in the DLQ and visible (nothing in flight)
    assert response["statusCode"] == 200
    listing = body_of(response)
    by_id = {letter["notification_id"]: letter for letter in listing["dead_letters"]}
    assert set(by_id) == {real, placed}
    assert (listing["scanned"], listing["truncated"]) == (2, False)
    assert by_id[real] | {"message_id": "", "first_failure_at": "", "last_failure_at": ""} == {
        "notification_id": real,
        "message_id": "",
        "channel": "webhook",
        "provider": None,  # it failed on its first attempt, the last receive: no provider recorded before
        "error_class": "transient",
        "error": "webhook answered HTTP 500",
        "attempts": 1,
        "first_failure_at": "",
        "last_failure_at": "",
        "status": "dead_lettered",
    }
    assert by_id[placed]["last_failure_at"] == "2027-01-15T08:00:00.000Z"
    assert dlq_depth(herald) == (2, 0)
    [line] = audits(logged.getvalue())
    assert (line["action"], line["returned"], line["scanned"]) == ("dead_letters.list", 2, 2)


def test_filters_and_the_limit_pick_dead_letters_and_bad_ones_are_refused_in_the_error_shape(
    herald: Herald, admin: Admin
) -> None:
    # Given: an SMS dead-lettered at NOW, a webhook an hour later
    early = dead_letter_in_place(herald, sms(), at=NOW)
    late = dead_letter_in_place(
        herald, {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com/x"}, "body": "b"},
        at=NOW + 3600,
    )  # fmt: skip

    def found(**query: str) -> list[str]:
        response = admin("GET", "/admin/dead-letters", query=query)
        assert response["statusCode"] == 200, response["body"]
        return [letter["notification_id"] for letter in body_of(response)["dead_letters"]]

    # When / Then: newest failure first
    assert found() == [late, early]
    assert found(channel="sms") == [early]
    assert found(since="2027-01-15T08:30:00Z") == [late]
    assert found(until="2027-01-15T08:30:00+00:00", error_class="transient") == [early]
    assert found(channel="", provider="") == [late, early]  # an empty parameter is no filter
    assert found(limit="1") == [late]
    assert found(error_class="no_channel") == []
    for bad in ({"channel": "fax"}, {"since": "noon"}, {"limit": "0"}, {"limit": "1001"}, {"color": "red"}):
        refused = admin("GET", "/admin/dead-letters", query=bad)
        assert refused["statusCode"] == 422, bad
        error = body_of(refused)["error"]
        assert error["code"] == "validation_error" and error["details"][0]["field"] == next(iter(bad))
    assert dlq_depth(herald) == (2, 0)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"max": 0}, "max"), ({"max": 10_001}, "max"), ({"channel": "fax"}, "channel"), ({"moved": 1}, "moved")],
)
def test_a_bad_redrive_request_is_refused_and_moves_nothing(
    herald: Herald, admin: Admin, body: dict[str, Any], field: str
) -> None:
    # Given
    dead_letter_in_place(herald, sms())

    # When
    response = admin("POST", "/admin/dead-letters/redrive", body)

    # Then
    assert response["statusCode"] == 422
    assert body_of(response)["error"]["details"][0]["field"] == field
    assert dlq_depth(herald) == (1, 0)


def test_a_dry_run_changes_nothing_and_says_what_would_move(herald: Herald, admin: Admin) -> None:
    # Given
    dead = dead_letter_in_place(herald, sms())
    before = view(herald, dead)

    # When
    response = admin("POST", "/admin/dead-letters/redrive", {"dry_run": True})

    # Then
    assert body_of(response) == {
        "dry_run": True,
        "matched": 1,
        "moved": 0,
        "method": "message_by_message",
        "notification_ids": [dead],
        "truncated": False,
    }
    assert view(herald, dead) == before
    assert dlq_depth(herald) == (1, 0)
    assert herald.receive_all("StandardQueue") == []


def test_a_filtered_redrive_puts_each_back_on_its_queue_and_the_sender_delivers_each_once(
    herald: Herald, receiver: WebhookReceiver, admin: Admin, logged: io.StringIO
) -> None:
    # Given: two webhooks dead-lettered for real (one high priority), and an SMS one the filter leaves
    normal = dead_letter_for_real(herald, receiver)
    high = dead_letter_for_real(herald, receiver, priority="high")
    other = dead_letter_in_place(herald, sms())

    # When
    response = admin("POST", "/admin/dead-letters/redrive", {"channel": "webhook", "max": 10})

    # Then: both moved, same ids, each on the queue its priority uses; the SMS one stays in the DLQ
    result = body_of(response)
    assert (result["matched"], result["moved"], result["method"], result["truncated"]) == (
        2,
        2,
        "message_by_message",
        False,
    )
    assert set(result["notification_ids"]) == {normal, high}
    for notification_id in (normal, high):
        record = view(herald, notification_id)
        assert (record["status"], record["history"][-1]["detail"]) == ("queued", REDRIVEN_BY_OPERATOR)
    assert [json.loads(m["Body"])["id"] for m in herald.receive_all("StandardQueue", visibility=0)] == [normal]
    assert [json.loads(m["Body"])["id"] for m in herald.receive_all("PriorityQueue", visibility=0)] == [high]
    assert dlq_depth(herald) == (1, 0)
    assert [letter["notification_id"] for letter in body_of(admin("GET", "/admin/dead-letters"))["dead_letters"]] == [
        other
    ]
    # ... and the sender delivers both, once each
    herald.poll("StandardQueue")
    herald.poll("PriorityQueue")
    assert sorted(delivery.headers["webhook-id"] for delivery in receiver.received[-2:]) == sorted([normal, high])
    assert {view(herald, n)["status"] for n in (normal, high)} == {"sent"}
    redrive_audit = [line for line in audits(logged.getvalue()) if line["action"] == "dead_letters.redrive"]
    assert [(line["filters"], line["matched"], line["moved"]) for line in redrive_audit] == [
        ({"channel": "webhook"}, 2, 2)
    ]


def test_a_redrive_killed_between_sending_and_deleting_loses_nothing_and_delivers_once(
    herald: Herald, receiver: WebhookReceiver, make_admin: MakeAdmin
) -> None:
    # Given: a dead letter, and an admin function that dies after sending the copy, before deleting from the DLQ
    dead = dead_letter_for_real(herald, receiver)
    dying = make_admin(sqs=DiesBeforeDeleting)

    # When
    response = dying("POST", "/admin/dead-letters/redrive", {})

    # Then: the request failed, and both copies exist: the one on the standard queue and the one in the DLQ
    assert response["statusCode"] == 500
    assert dlq_depth(herald) == (1, 0)
    assert view(herald, dead)["status"] == "queued"

    # When: the sender gets both (the copy, then the DLQ one, as a later move would hand it over)
    herald.poll("StandardQueue")
    [stale] = herald.receive_all("DeadLetterQueue")
    second = herald.sender({"Records": [sqs_record(stale, herald.stack.arns["DeadLetterQueue"], REGION)]})

    # Then: delivered once; the second copy found it sent and was dropped
    assert second["batchItemFailures"] == []
    assert [d.headers["webhook-id"] for d in receiver.received].count(dead) == 2  # the 500, then the delivery
    assert [d.status for d in receiver.received if d.headers["webhook-id"] == dead] == [500, 200]
    assert view(herald, dead)["status"] == "sent"


def test_an_unfiltered_redrive_starts_a_move_task_and_the_sender_puts_each_record_back_to_queued(
    herald: Herald, receiver: WebhookReceiver, make_admin: MakeAdmin, recorder: AwsCallRecorder
) -> None:
    # Given: a dead letter, and an SQS with move tasks (moto has none: the call is answered here, as SQS would)
    dead = dead_letter_for_real(herald, receiver)
    admin = make_admin(move_tasks=True)

    # When
    response = admin("POST", "/admin/dead-letters/redrive", {})

    # Then: one move task from the DLQ to the standard queue; the record is untouched until its message arrives
    result = body_of(response)
    assert (result["method"], result["matched"], result["moved"], result["task_handle"]) == (
        "move_task",
        1,
        1,
        "task-1",
    )
    assert result["notification_ids"] == [dead]
    assert recorder.made("sqs:StartMessageMoveTask") == [
        {"SourceArn": herald.stack.arns["DeadLetterQueue"], "DestinationArn": herald.stack.arns["StandardQueue"]}
    ]
    assert view(herald, dead)["status"] == "dead_lettered"

    # When: SQS moves the message (a new message on the standard queue), and the sender receives it
    sqs = herald.session.client("sqs")
    [moved] = herald.receive_all("DeadLetterQueue")
    sqs.send_message(QueueUrl=herald.queue_url("StandardQueue"), MessageBody=moved["Body"])
    sqs.delete_message(QueueUrl=herald.queue_url("DeadLetterQueue"), ReceiptHandle=moved["ReceiptHandle"])
    herald.poll("StandardQueue")

    # Then: redriven (back to queued, in its history), then delivered
    record = view(herald, dead)
    assert record["status"] == "sent"
    assert [(e["status"], e.get("detail")) for e in record["history"][-2:]][0] == ("queued", REDRIVEN_FROM_DLQ)


def _answer_move_task(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """SQS's answer to StartMessageMoveTask (botocore sends no request when a before-call handler answers)."""
    return AWSResponse("https://sqs.us-east-1.amazonaws.com/", 200, {}, None), {"TaskHandle": "task-1"}


# ---------------------------------------------------------------------- circuit breakers
def test_an_operator_lists_every_breaker_and_resets_opens_and_disables_one(
    herald: Herald, admin: Admin, logged: io.StringIO
) -> None:
    # Given: a webhook origin's breaker with a stored state, as a sender would leave it
    origin = "webhook:https://hooks.example.com:443"
    registry = BreakerRegistry(
        store=DynamoDBBreakerStore(herald.env["RESILIENCE_TABLE"], client=herald.session.client("dynamodb"))
    )
    registry.force_open(origin)
    encoded = quote(origin, safe="")  # webhook%3Ahttps%3A%2F%2Fhooks.example.com%3A443, as API Gateway passes it

    # When
    listed = body_of(admin("GET", "/admin/circuit-breakers"))["breakers"]
    reset = admin("POST", f"/admin/circuit-breakers/{encoded}/reset", resource="/admin/circuit-breakers/{name}/reset")
    opened = admin("POST", "/admin/circuit-breakers/provider:ses/open", resource="/admin/circuit-breakers/{name}/open")
    disabled = admin("POST", f"/admin/circuit-breakers/{origin}/disable")  # a gateway that decoded the name

    # Then: the stored one listed, and the providers in use (SES, SNS for SMS) as CLOSED without a state
    by_name = {breaker["name"]: breaker for breaker in listed}
    assert {"provider:ses", "provider:sns-sms", origin} <= set(by_name)
    assert set(by_name[origin]) == {
        "name", "kind", "state", "permits_calls", "failure_rate", "calls", "opened_at", "open_until",
    }  # fmt: skip
    assert (by_name[origin]["kind"], by_name[origin]["state"], by_name[origin]["permits_calls"]) == (
        "webhook",
        "FORCED_OPEN",
        False,
    )
    assert (by_name["provider:ses"]["state"], by_name["provider:ses"]["kind"]) == ("CLOSED", "provider")
    assert [body_of(reset), body_of(opened), body_of(disabled)] == [
        {"name": origin, "state": "CLOSED", "previous_state": "FORCED_OPEN"},
        {"name": "provider:ses", "state": "FORCED_OPEN", "previous_state": "CLOSED"},
        {"name": origin, "state": "DISABLED", "previous_state": "CLOSED"},
    ]
    assert registry.get("provider:ses").describe().state.value == "FORCED_OPEN"
    assert [(line["action"], line.get("target")) for line in audits(logged.getvalue())] == [
        ("breaker.list", None),
        ("breaker.reset", origin),
        ("breaker.open", "provider:ses"),
        ("breaker.disable", origin),
    ]


@pytest.mark.parametrize(
    ("name", "action", "status"),
    [
        ("provider%3Asess", "reset", 422),
        ("provider:webhook", "open", 422),
        ("webhook%3Ahttps%3A%2F%2Fhooks.example.com", "reset", 422),  # no port
        ("anything", "disable", 422),
        ("provider:ses", "explode", 404),
    ],
)
def test_a_name_herald_has_no_breaker_for_or_an_unknown_action_is_refused_in_the_error_shape(
    admin: Admin, logged: io.StringIO, name: str, action: str, status: int
) -> None:
    # When
    response = admin("POST", f"/admin/circuit-breakers/{name}/{action}")

    # Then: refused, audited as refused, and no breaker was created
    assert response["statusCode"] == status
    assert set(body_of(response)["error"]) >= {"code", "message"}
    [line] = audits(logged.getvalue())
    assert line["message"] == "admin action refused"
    assert [b["name"] for b in body_of(admin("GET", "/admin/circuit-breakers"))["breakers"]] == [
        "provider:ses",
        "provider:sns-sms",
    ]


def test_a_client_key_gets_403_on_the_operations_routes(herald: Herald, admin: Admin) -> None:
    # Given
    client = herald.env["DEFAULT_CLIENT_ID"]

    # When
    answers = [
        admin("GET", "/admin/circuit-breakers", key_id=client),
        admin("POST", "/admin/circuit-breakers/provider:ses/open", key_id=client),
        admin("GET", "/admin/dead-letters", key_id=client),
        admin("POST", "/admin/dead-letters/redrive", {}, key_id=client),
    ]

    # Then
    assert [answer["statusCode"] for answer in answers] == [403] * 4
    assert {body_of(answer)["error"]["code"] for answer in answers} == {"forbidden"}


# ---------------------------------------------------------------------- the policy
def test_every_aws_call_of_the_operations_is_allowed_by_the_admin_function_s_policy(
    herald: Herald, receiver: WebhookReceiver, make_admin: MakeAdmin, recorder: AwsCallRecorder
) -> None:
    # Given / When: every operation, the move task's included
    dead_letter_for_real(herald, receiver)
    dead_letter_in_place(herald, sms())
    admin = make_admin()
    admin("GET", "/admin/circuit-breakers")
    admin("POST", "/admin/circuit-breakers/provider:ses/open")
    admin("POST", "/admin/circuit-breakers/provider:ses/reset")
    admin("GET", "/admin/dead-letters", query={"channel": "webhook"})
    admin("POST", "/admin/dead-letters/redrive", {"dry_run": True})
    admin("POST", "/admin/dead-letters/redrive", {"channel": "webhook"})
    with_tasks = make_admin(move_tasks=True)
    with_tasks("POST", "/admin/dead-letters/redrive", {})

    # Then
    assert {
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "sqs:ReceiveMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:DeleteMessage",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
        "sqs:StartMessageMoveTask",
    } <= recorder.actions()
    assert denied_calls(herald.stack, "AdminFunction", recorder.calls) == []
