"""The admin function against moto: clients (create, list, rotate, revoke), erasure by recipient, the admin-only
rule, the audit lines, and every AWS call against the AdminFunction's policy in template.yaml."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from admin.app import build_dependencies, handle
from admin.settings import AdminSettings
from notifications import signing
from notifications.clients import ClientConflict, ClientRegistry, ClientSigningKeys, signing_secret_name
from notifications.observability import logger
from notifications.providers.secrets import ProviderSecrets
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from tests.integration.notifications.conftest import context
from tests.support import events
from tests.support.clock import FakeClock
from tests.support.iam import AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.notifications.conftest import Herald

Admin = Callable[..., dict[str, Any]]
NOW = 1_800_000_000.0


@pytest.fixture
def recorder(herald: Herald) -> Iterator[AwsCallRecorder]:
    calls = AwsCallRecorder(herald.stack)
    yield calls


@pytest.fixture
def admin(herald: Herald, recorder: AwsCallRecorder) -> Iterator[Admin]:
    """`admin(method, path, body=None, key_id=<the admin key's id>, resource=None)` -> the handler's response."""
    session = recorder.attach(herald.session.__class__(region_name="us-east-1"))
    settings = load_settings(AdminSettings, herald.env)
    deps = build_dependencies(
        settings,
        apigateway=session.client("apigateway"),
        secretsmanager=session.client("secretsmanager"),
        dynamodb=session.client("dynamodb"),
        clock=FakeClock(NOW),
    )

    def call(
        method: str, path: str, body: Any = None, *, key_id: str | None = None, resource: str | None = None
    ) -> dict[str, Any]:
        event = events.admin_request(method, path, body, key_id=key_id or settings.admin_client_id, resource=resource)
        return handle(event, context("admin", 25), deps)

    yield call
    recorder.detach(session)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What Herald's logger writes (its JSON lines), for the length of the test."""
    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[union-attr]
    yield stream
    logger.registered_handler.setStream(previous)  # type: ignore[union-attr]


def body_of(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def audit_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("audit")]


def test_an_admin_creates_a_client_whose_key_is_on_the_usage_plan_and_whose_secret_is_stored(
    herald: Herald, admin: Admin, logged: io.StringIO
) -> None:
    # When
    response = admin("POST", "/admin/clients", {"name": "billing team"})

    # Then: 201 with the key and secret, shown this once; the key is on the plan, the secret where senders look
    assert response["statusCode"] == 201
    created = body_of(response)
    assert created["name"] == "billing team" and created["enabled"] is True
    assert response["multiValueHeaders"]["Cache-Control"] == ["no-store"]
    apigateway = herald.session.client("apigateway")
    plan = herald.env["USAGE_PLAN_ID"]
    assert created["id"] in {key["id"] for key in apigateway.get_usage_plan_keys(usagePlanId=plan)["items"]}
    assert apigateway.get_api_key(apiKey=created["id"], includeValue=True)["value"] == created["api_key"]
    stored = herald.session.client("secretsmanager").get_secret_value(SecretId=signing_secret_name(created["id"]))
    assert signing.secret_of(json.loads(stored["SecretString"])) == created["webhook_signing_secret"]
    # ... it is listed and readable, without its key or secret
    listed = body_of(admin("GET", "/admin/clients"))["clients"]
    assert created["id"] in {client["id"] for client in listed}
    read = body_of(admin("GET", f"/admin/clients/{created['id']}", resource="/admin/clients/{id}"))
    assert "api_key" not in read and "webhook_signing_secret" not in read
    # ... and each action wrote one audit line naming who and what, and nothing secret
    output = logged.getvalue()
    audits = audit_lines(output)
    assert [line["action"] for line in audits] == ["client.create", "client.list", "client.read"]
    assert audits[0]["target"] == created["id"] and audits[0]["actor"] == herald.env["ADMIN_CLIENT_ID"]
    assert created["api_key"] not in output and created["webhook_signing_secret"] not in output


def test_a_client_key_gets_403_on_every_admin_route_and_nothing_changes(
    herald: Herald, admin: Admin, logged: io.StringIO
) -> None:
    # Given
    before = herald.session.client("apigateway").get_api_keys()["items"]

    # When: the default client's key tries the admin routes
    client_key = herald.env["DEFAULT_CLIENT_ID"]
    answers = [
        admin("POST", "/admin/clients", {"name": "x"}, key_id=client_key),
        admin("GET", "/admin/clients", key_id=client_key),
        admin("POST", "/admin/erasure", {"email": "ada@example.com"}, key_id=client_key),
    ]

    # Then
    assert [answer["statusCode"] for answer in answers] == [403, 403, 403]
    assert body_of(answers[0])["error"]["code"] == "forbidden"
    assert herald.session.client("apigateway").get_api_keys()["items"] == before
    assert {line["outcome"] for line in audit_lines(logged.getvalue())} == {"forbidden"}


def test_a_rotation_signs_webhooks_with_both_secrets_for_the_grace_period(herald: Herald, admin: Admin) -> None:
    # Given: a client and a notification it sent
    created = body_of(admin("POST", "/admin/clients", {"name": "shop"}))
    accepted = herald.api(
        events.post_notification(
            {"channel": "webhook", "recipient": {"webhook_url": "https://example.com/hook"}, "body": "hi"},
            key_id=created["id"],
        )
    )
    record = DynamoDBStatusStore(herald.stack.physical_ids["NotificationsTable"]).get(body_of(accepted)["id"])
    assert record is not None

    # When: the secret is rotated with an hour's grace
    rotated = admin(
        "POST",
        f"/admin/clients/{created['id']}/rotate-signing-secret",
        {"grace_period_seconds": 3600},
        resource="/admin/clients/{id}/rotate-signing-secret",
    )

    # Then: a new secret, the old one valid for an hour; the sender signs with both until then
    assert rotated["statusCode"] == 200
    rotation = body_of(rotated)
    assert rotation["webhook_signing_secret"] != created["webhook_signing_secret"]
    assert rotation["previous_secret_valid_until"].startswith("2027-01-15T09:00:00")  # NOW + 3600 s
    keys = ClientSigningKeys(ProviderSecrets(0), herald.env["DEFAULT_CLIENT_ID"])(record)
    assert keys.active(NOW + 3599) == [created["webhook_signing_secret"], rotation["webhook_signing_secret"]]
    assert keys.active(NOW + 3600) == [rotation["webhook_signing_secret"]]


def test_of_two_rotations_from_one_version_the_second_is_refused(herald: Herald, admin: Admin) -> None:
    # Given: a client whose secret another rotation replaced after this one read it
    created = body_of(admin("POST", "/admin/clients", {"name": "shop"}))
    secrets = herald.session.client("secretsmanager")
    name = signing_secret_name(created["id"])
    read = secrets.get_secret_value(SecretId=name)["VersionId"]
    winner = ClientRegistry(
        herald.env["USAGE_PLAN_ID"],
        apigateway=herald.session.client("apigateway"),
        secretsmanager=secrets,
        clock=FakeClock(NOW),
    ).rotate(created["id"], grace_seconds=60)
    loser = ClientRegistry(
        herald.env["USAGE_PLAN_ID"],
        apigateway=herald.session.client("apigateway"),
        secretsmanager=_StaleSecrets(secrets, read),  # type: ignore[arg-type]
        clock=FakeClock(NOW),
    )

    # When / Then: the rotation that read the old version is refused, and the winner's secret stands
    with pytest.raises(ClientConflict):
        loser.rotate(created["id"], grace_seconds=60)
    current = signing.keys_of(json.loads(secrets.get_secret_value(SecretId=name)["SecretString"]))
    assert current.current == winner.webhook_signing_secret


class _StaleSecrets:
    """A Secrets Manager client whose reads return one old version (as a rotation that read before another)."""

    def __init__(self, client: Any, version: str) -> None:
        self._client, self._version = client, version

    def get_secret_value(self, **kwargs: Any) -> Any:
        return self._client.get_secret_value(VersionId=self._version, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_revoking_deletes_the_key_and_the_stacks_own_keys_cannot_be_revoked(herald: Herald, admin: Admin) -> None:
    # Given
    created = body_of(admin("POST", "/admin/clients", {"name": "old partner"}))

    # When
    revoked = admin("DELETE", f"/admin/clients/{created['id']}", resource="/admin/clients/{id}")
    again = admin("DELETE", f"/admin/clients/{created['id']}", resource="/admin/clients/{id}")
    protected = [
        admin("DELETE", f"/admin/clients/{herald.env[name]}", resource="/admin/clients/{id}")
        for name in ("DEFAULT_CLIENT_ID", "ADMIN_CLIENT_ID")
    ]

    # Then: the key is gone (the gateway refuses it), its secret stays for the notifications in flight
    assert revoked["statusCode"] == 200 and body_of(revoked)["enabled"] is False
    assert again["statusCode"] == 404
    assert [answer["statusCode"] for answer in protected] == [409, 409]
    assert created["id"] not in {key["id"] for key in herald.session.client("apigateway").get_api_keys()["items"]}
    assert herald.session.client("secretsmanager").describe_secret(SecretId=signing_secret_name(created["id"]))


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/admin/clients", {"name": ""}, 422),
        ("POST", "/admin/clients", {"name": "a\nb"}, 422),
        ("POST", "/admin/clients", {"name": "x", "extra": 1}, 422),
        ("GET", "/admin/clients/nope-not-there", None, 404),
        ("GET", "/admin/clients/" + "x" * 300, None, 404),
        ("POST", "/admin/erasure", {"email": "a@example.com", "phone": "+15550100"}, 422),
        ("POST", "/admin/erasure", {}, 422),
        ("POST", "/admin/erasure", {"email": "not an address"}, 422),
    ],
)
def test_bad_admin_requests_get_clear_4xx_errors(admin: Admin, method: str, path: str, body: Any, status: int) -> None:
    resource = "/admin/clients/{id}" if path.startswith("/admin/clients/") else None
    response = admin(method, path, body, resource=resource)
    assert response["statusCode"] == status
    assert set(body_of(response)["error"]) >= {"code", "message"}


def test_erasure_deletes_every_notification_to_an_address_and_no_other(
    herald: Herald, admin: Admin, logged: io.StringIO
) -> None:
    # Given: two emails to Ada (one falling back to her phone, differently cased), one to Bob
    def send(recipient: dict[str, str], **extra: Any) -> str:
        body = {"channel": "email", "recipient": recipient, "subject": "s", "body": "b", **extra}
        response = herald.api(events.post_notification(body))
        assert response["statusCode"] == 202
        return str(body_of(response)["id"])

    ada_1 = send({"email": "ada@example.com"})
    ada_2 = send({"email": "Ada@Example.com", "phone": "+447700900123"}, fallback_channels=["sms"])
    bob = send({"email": "bob@example.com"})

    # When: Ada's email address is erased, then her phone number
    by_email = admin("POST", "/admin/erasure", {"email": "ada@example.com"})
    by_phone = admin("POST", "/admin/erasure", {"phone": "+447700900123"})

    # Then: both of Ada's are gone (the second had nothing left), Bob's stays; the audit names no address
    assert body_of(by_email) == {"removed": 2, "address_kind": "email"}
    assert body_of(by_phone) == {"removed": 0, "address_kind": "phone"}
    assert [herald.api(events.get_notification(i))["statusCode"] for i in (ada_1, ada_2, bob)] == [404, 404, 200]
    output = logged.getvalue()
    assert "ada@example.com" not in output.lower() and "447700900123" not in output
    assert [line["removed"] for line in audit_lines(output) if line["action"] == "recipient.erase"] == [2, 0]


def test_every_aws_call_the_admin_function_makes_is_allowed_by_its_policy(
    herald: Herald, admin: Admin, recorder: AwsCallRecorder
) -> None:
    # Given / When: every admin path through AWS
    herald.api(events.post_notification({"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "b"}))
    created = body_of(admin("POST", "/admin/clients", {"name": "shop"}))
    admin("GET", "/admin/clients")
    admin("GET", f"/admin/clients/{created['id']}", resource="/admin/clients/{id}")
    admin(
        "POST",
        f"/admin/clients/{created['id']}/rotate-signing-secret",
        resource="/admin/clients/{id}/rotate-signing-secret",
    )
    admin("DELETE", f"/admin/clients/{created['id']}", resource="/admin/clients/{id}")
    admin("POST", "/admin/erasure", {"phone": "+447700900123"})

    # Then
    assert {
        "apigateway:POST",
        "apigateway:GET",
        "apigateway:DELETE",
        "secretsmanager:CreateSecret",
        "secretsmanager:GetSecretValue",
        "secretsmanager:PutSecretValue",
        "dynamodb:Query",
        "dynamodb:BatchWriteItem",
    } <= recorder.actions()
    assert denied_calls(herald.stack, "AdminFunction", recorder.calls) == []


def test_the_admin_key_sends_no_notifications_and_reads_none(herald: Herald) -> None:
    # Given: the admin key's id, as API Gateway would pass it
    admin_id = herald.env["ADMIN_CLIENT_ID"]
    body = {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "b"}

    # When
    sent = herald.api(events.post_notification(body, key_id=admin_id))
    found = herald.api(events.find_notification("order-1", key_id=admin_id))

    # Then: 403 with a clear reason, and nothing was queued
    assert [sent["statusCode"], found["statusCode"]] == [403, 403]
    assert "client's API key" in body_of(sent)["error"]["message"]
    assert herald.receive_all("StandardQueue") == []
