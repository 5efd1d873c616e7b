"""The push and AWS SMS adapters against real counterparts: SNS in moto (with the status table built from
template.yaml) and FCM as a loopback server that plays Google's token endpoint and `messages:send`."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt
from moto.sns.models import sns_backends

from notifications.models import Channel, NotificationRecord, Recipient
from notifications.providers.fcm import (
    FCM_ERROR_TYPE,
    SCOPE,
    FcmAuthError,
    FcmError,
    FcmPushProvider,
    classify_fcm_error,
)
from notifications.providers.http import ProviderUnreachable
from notifications.providers.sns import SnsError, SnsPushProvider, SnsSmsProvider, classify_sns_error, endpoint_item_id
from resilience import ErrorClass
from tests.support.clock import FakeClock
from tests.support.iam import AwsCallRecorder
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_sns import SNSClient

    from tests.integration.notifications.conftest import Herald

PHONE = "+447700900123"
DEVICE_TOKEN = "fcm-registration-token-0123456789"
PROJECT = "herald-it"
GOOGLE_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"


def push_record(token: str = DEVICE_TOKEN, **overrides: Any) -> NotificationRecord:
    fields = {"channel": Channel.PUSH, "recipient": Recipient(device_token=token), "subject": "Hi", "body": "Shipped"}
    return make_record(**(fields | overrides))


def sms_record(**overrides: Any) -> NotificationRecord:
    return make_record(
        **({"channel": Channel.SMS, "recipient": Recipient(phone=PHONE), "body": "Code 1234"} | overrides)
    )


# ====================================================================== SNS in moto


@dataclass
class Sns:
    """Clients on a session whose every AWS request is recorded, a platform application, and the table."""

    client: SNSClient
    dynamodb: Any
    calls: AwsCallRecorder
    application: str
    table: str
    account: str
    region: str

    def push(self) -> SnsPushProvider:
        """A push provider as a fresh execution environment has it: nothing in memory."""
        return SnsPushProvider(
            self.application, self.table, client=self.client, dynamodb=self.dynamodb, clock=FakeClock()
        )

    def endpoint_messages(self, arn: str) -> list[dict[str, Any]]:
        endpoint = sns_backends[self.account][self.region].platform_endpoints[arn]
        return [json.loads(message) for message in endpoint.messages.values()]

    def item(self, token: str = DEVICE_TOKEN) -> dict[str, Any] | None:
        key = {"id": {"S": endpoint_item_id(self.application, token)}}
        item: dict[str, Any] | None = self.dynamodb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get(
            "Item"
        )
        return item


@pytest.fixture
def sns(herald: Herald) -> Iterator[Sns]:
    recorder = AwsCallRecorder(herald.stack)
    session = recorder.attach(boto3.Session(region_name=herald.stack.region))
    client = session.client("sns")
    application = client.create_platform_application(
        Name="herald", Platform="GCM", Attributes={"PlatformCredential": "fcm-server-key"}
    )["PlatformApplicationArn"]
    recorder.calls.clear()
    recorder.requests.clear()
    yield Sns(
        client=client,
        dynamodb=session.client("dynamodb"),
        calls=recorder,
        application=application,
        table=herald.env["NOTIFICATIONS_TABLE"],
        account=herald.stack.account_id,
        region=herald.stack.region,
    )
    recorder.detach(session)


def test_an_sms_is_published_to_the_phone_number(sns: Sns) -> None:
    # Given
    provider = SnsSmsProvider(client=sns.client)

    # When
    receipt = provider.send(sms_record(), timeout=5)

    # Then
    sent = sns_backends[sns.account][sns.region].sms_messages
    assert receipt.provider == "sns-sms" and sent[receipt.message_id] == (PHONE, "Code 1234")
    [publish] = sns.calls.made("sns:Publish")
    assert publish["MessageAttributes"]["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"


@pytest.mark.parametrize("number", ["+44 7700 900123", "0447700900123", "+4477009001234567"])
def test_a_number_sns_refuses_is_a_permanent_failure(sns: Sns, number: str) -> None:
    # Given: numbers that are not E.164 (spaces, no "+" but a leading 0, more than 15 digits); SNS (and moto,
    # with `^\+?[1-9]\d{1,14}$`) answers InvalidParameter. The API refuses them; a record written before
    # its validation could still hold one.
    record = sms_record(recipient=Recipient.model_construct(phone=number))

    # When
    with pytest.raises(SnsError) as refused:
        SnsSmsProvider(client=sns.client).send(record, timeout=5)

    # Then
    assert (refused.value.provider_code, refused.value.status_code) == ("InvalidParameter", 400)
    assert classify_sns_error(refused.value) is ErrorClass.PERMANENT
    assert number not in refused.value.message


def test_a_push_creates_the_endpoint_once_caches_it_in_the_status_table_and_carries_the_notification_id(
    sns: Sns,
) -> None:
    # Given
    provider = sns.push()

    # When
    receipt = provider.send(push_record(data={"order": 42}), timeout=5)

    # Then
    item = sns.item()
    assert item is not None
    arn = item["endpoint_arn"]["S"]
    assert arn.startswith("arn:aws:sns:") and "endpoint/GCM/herald/" in arn
    assert set(item) == {"id", "endpoint_arn", "created_at", "expires_at"}
    assert DEVICE_TOKEN not in json.dumps(item)
    [message] = sns.endpoint_messages(arn)
    assert receipt.provider == "sns-push" and receipt.message_id
    assert json.loads(message["GCM"]) == {
        "notification": {"title": "Hi", "body": "Shipped"},
        "data": {"order": "42", "notification_id": "n-1"},
    }
    assert json.loads(message["APNS"])["notification_id"] == "n-1"


def test_another_environment_finds_the_endpoint_in_the_status_table(sns: Sns) -> None:
    # Given
    sns.push().send(push_record(), timeout=5)
    first = sns.item()
    assert first is not None

    # When
    receipt = sns.push().send(push_record(), timeout=5)

    # Then
    assert len(sns.calls.made("sns:CreatePlatformEndpoint")) == 1
    assert len(sns.calls.made("dynamodb:GetItem")) == 3  # two environments' reads and the test's
    assert receipt.message_id and len(sns.endpoint_messages(first["endpoint_arn"]["S"])) == 2


def test_an_environment_that_loses_the_cache_write_race_keeps_the_first_item(sns: Sns) -> None:
    # Given: two environments that both found no item; the first has written it since, a minute earlier
    first = sns.push()
    second = SnsPushProvider(
        sns.application, sns.table, client=sns.client, dynamodb=sns.dynamodb, clock=FakeClock(FakeClock().now + 60)
    )
    first.send(push_record(), timeout=5)
    written = sns.item()
    second.endpoints._read = lambda key: None  # type: ignore[method-assign] # its read came before the write

    # When
    receipt = second.send(push_record(), timeout=5)

    # Then: its conditional put lost, harmlessly: SNS gave it the same endpoint, and it delivered
    assert receipt.message_id
    assert sns.item() == written
    assert len(sns.calls.made("dynamodb:PutItem")) == 2
    assert len(sns.endpoint_messages(written["endpoint_arn"]["S"])) == 2  # type: ignore[index]


def test_a_disabled_endpoint_fails_permanently_and_a_new_registration_gets_a_fresh_endpoint(sns: Sns) -> None:
    # Given
    provider = sns.push()
    provider.send(push_record(), timeout=5)
    old = sns.item()["endpoint_arn"]["S"]  # type: ignore[index]
    sns.client.set_endpoint_attributes(EndpointArn=old, Attributes={"Enabled": "false"})  # FCM said: unregistered

    # When
    with pytest.raises(SnsError) as refused:
        provider.send(push_record(), timeout=5)
    forgotten = sns.item()
    receipt = provider.send(push_record(), timeout=5)

    # Then
    assert refused.value.provider_code == "EndpointDisabled"
    assert classify_sns_error(refused.value) is ErrorClass.PERMANENT
    assert forgotten is None
    assert old not in sns_backends[sns.account][sns.region].platform_endpoints
    new = sns.item()["endpoint_arn"]["S"]  # type: ignore[index]
    assert new != old and receipt.message_id and len(sns.endpoint_messages(new)) == 1


def test_an_endpoint_deleted_outside_herald_is_created_again_and_delivered_to(sns: Sns) -> None:
    # Given
    provider = sns.push()
    provider.send(push_record(), timeout=5)
    old = sns.item()["endpoint_arn"]["S"]  # type: ignore[index]
    sns.client.delete_endpoint(EndpointArn=old)

    # When
    receipt = provider.send(push_record(), timeout=5)

    # Then
    new = sns.item()["endpoint_arn"]["S"]  # type: ignore[index]
    assert new != old and receipt.message_id and len(sns.endpoint_messages(new)) == 1


def test_a_token_whose_endpoint_has_other_attributes_is_sent_through_that_endpoint(sns: Sns) -> None:
    # Given: an endpoint for the token made by another system, with custom user data
    existing = sns.client.create_platform_endpoint(
        PlatformApplicationArn=sns.application, Token=DEVICE_TOKEN, CustomUserData="user-7"
    )["EndpointArn"]

    # When
    receipt = sns.push().send(push_record(), timeout=5)

    # Then
    assert receipt.message_id and len(sns.endpoint_messages(existing)) == 1


def test_the_adapters_make_only_the_aws_calls_the_sender_role_must_allow(sns: Sns) -> None:
    # Given
    push = sns.push()
    SnsSmsProvider(client=sns.client).send(sms_record(), timeout=5)
    push.send(push_record(), timeout=5)
    arn = sns.item()["endpoint_arn"]["S"]  # type: ignore[index]
    sns.calls.calls.clear()
    sns.client.set_endpoint_attributes(EndpointArn=arn, Attributes={"Enabled": "false"})

    # When: a fresh environment sends to the cached, disabled endpoint, then to the fresh one
    later = sns.push()
    with pytest.raises(SnsError):
        later.send(push_record(), timeout=5)
    later.send(push_record(), timeout=5)

    # Then
    assert sns.calls.actions() == {
        "sns:Publish",
        "sns:CreatePlatformEndpoint",
        "sns:DeleteEndpoint",
        "sns:SetEndpointAttributes",  # the test's own
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    }
    tables = {call.resource for call in sns.calls.calls if call.action.startswith("dynamodb:")}
    assert tables == {f"arn:aws:dynamodb:{sns.region}:{sns.account}:table/{sns.table}"}


# ====================================================================== FCM on loopback


@dataclass
class FcmSandbox:
    """Google's token endpoint and FCM's messages:send, checking the JWT grant and the bearer token."""

    public_key: bytes
    stopping: threading.Event = field(default_factory=threading.Event)
    token_answers: list[tuple[int, Any] | str] = field(default_factory=list)  # "hang": never answer
    send_answers: list[tuple[int, Any, dict[str, str]] | str] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)  # the verified JWT claims
    sends: list[dict[str, Any]] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    url: str = ""
    private_key_pem: str = field(default="", repr=False)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def audiences(self) -> set[str]:
        """What Google accepts as the JWT's audience: the token URI, or Google's own token endpoint (which
        google-auth always names, whatever the key file's token_uri)."""
        return {self.token_uri, GOOGLE_TOKEN_ENDPOINT}

    def handle_token(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        claims = jwt.decode(form["assertion"][0], certs=self.public_key, audience=list(self.audiences))
        self.grants.append(claims)
        if self.token_answers:
            scripted = self.token_answers.pop(0)
            if scripted == "hang":
                self.stopping.wait(10)
                return 0, None
            assert not isinstance(scripted, str)
            return scripted
        token = f"ya29.token-{len(self.grants)}"
        self.issued.add(token)
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}

    def handle_send(self, authorization: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        if authorization.removeprefix("Bearer ") not in self.issued:
            unauthenticated = {"code": 401, "message": "Request had invalid authentication credentials."}
            return 401, {"error": {**unauthenticated, "status": "UNAUTHENTICATED"}}, {}
        self.sends.append(body)
        if self.send_answers:
            scripted = self.send_answers.pop(0)
            if scripted == "hang":
                self.stopping.wait(10)
                return 0, None, {}
            assert not isinstance(scripted, str)
            return scripted
        return 200, {"name": f"projects/{PROJECT}/messages/{len(self.sends)}"}, {}


@pytest.fixture
def fcm_sandbox() -> Iterator[FcmSandbox]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    sandbox = FcmSandbox(public_key=public, private_key_pem=private.decode("ascii"))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers: dict[str, str] = {}
            if self.path == "/token":
                status, payload = sandbox.handle_token(parse_qs(raw.decode()))
            elif self.path == f"/v1/projects/{PROJECT}/messages:send":
                status, payload, headers = sandbox.handle_send(self.headers.get("Authorization", ""), json.loads(raw))
            else:
                status, payload = 404, {"error": {"code": 404, "status": "NOT_FOUND"}}
            if status == 0:
                return  # hung up without answering
            body = json.dumps(payload).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sandbox.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield sandbox
    finally:
        sandbox.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def fcm_provider(sandbox: FcmSandbox) -> FcmPushProvider:
    account = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123abcd",
        "private_key": sandbox.private_key_pem,
        "client_email": f"herald-sender@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": sandbox.token_uri,
    }
    return FcmPushProvider(credentials=lambda: account, base_url=sandbox.url)


def test_fcm_push_is_sent_with_a_token_granted_for_a_signed_service_account_jwt(fcm_sandbox: FcmSandbox) -> None:
    # Given
    provider = fcm_provider(fcm_sandbox)

    # When
    receipt = provider.send(push_record(data={"order": 42}), timeout=5)

    # Then
    [claims] = fcm_sandbox.grants
    assert claims["iss"] == f"herald-sender@{PROJECT}.iam.gserviceaccount.com"
    assert claims["scope"] == SCOPE and claims["aud"] in fcm_sandbox.audiences
    assert receipt.provider == "fcm" and receipt.message_id == f"projects/{PROJECT}/messages/1"
    assert fcm_sandbox.sends == [
        {
            "message": {
                "token": DEVICE_TOKEN,
                "notification": {"title": "Hi", "body": "Shipped"},
                "data": {"order": "42", "notification_id": "n-1"},
            }
        }
    ]


def test_fcm_reuses_its_token_and_fetches_a_new_one_after_a_401(fcm_sandbox: FcmSandbox) -> None:
    # Given
    provider = fcm_provider(fcm_sandbox)
    provider.send(push_record(), timeout=5)
    provider.send(push_record(), timeout=5)
    fcm_sandbox.issued.clear()  # Google revoked every token it gave

    # When
    with pytest.raises(FcmError) as refused:
        provider.send(push_record(), timeout=5)
    receipt = provider.send(push_record(), timeout=5)

    # Then
    assert (refused.value.status_code, refused.value.provider_code) == (401, "UNAUTHENTICATED")
    assert classify_fcm_error(refused.value) is ErrorClass.TRANSIENT
    assert len(fcm_sandbox.grants) == 2 and receipt.message_id


@pytest.mark.parametrize(
    ("answer", "code", "verdict", "retry_after"),
    [
        # UNREGISTERED: the app instance is gone and the token with it.
        ((404, "NOT_FOUND", "UNREGISTERED", {}), "UNREGISTERED", ErrorClass.PERMANENT, None),
        # QUOTA_EXCEEDED: the project's sending rate; FCM says when to come back.
        (
            (429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", {"Retry-After": "30"}),
            "QUOTA_EXCEEDED",
            ErrorClass.TRANSIENT,
            30,
        ),
        # UNAVAILABLE: FCM overloaded.
        ((503, "UNAVAILABLE", "UNAVAILABLE", {}), "UNAVAILABLE", ErrorClass.TRANSIENT, None),
    ],
)
def test_fcm_refusals_are_described_with_fcms_error_code(
    fcm_sandbox: FcmSandbox, answer: tuple[Any, ...], code: str, verdict: ErrorClass, retry_after: float | None
) -> None:
    # Given
    status, canonical, error_code, headers = answer
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}]
    fcm_sandbox.send_answers.append(
        (status, {"error": {"code": status, "message": "x", "status": canonical, "details": details}}, headers)
    )

    # When
    with pytest.raises(FcmError) as refused:
        fcm_provider(fcm_sandbox).send(push_record(), timeout=5)

    # Then
    assert (refused.value.status_code, refused.value.provider_code) == (status, code)
    assert classify_fcm_error(refused.value) is verdict
    assert refused.value.retry_after == retry_after


def test_a_failing_token_endpoint_is_asked_once_and_fails_fast(
    fcm_sandbox: FcmSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: a 500, which google-auth on its own would retry twice after sleeping 1 s and 2 s
    fcm_sandbox.token_answers.append((500, {"error": "internal_failure"}))
    sleeps: list[float] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(min(seconds, 0.01))

    monkeypatch.setattr(time, "sleep", recording_sleep)

    # When
    with pytest.raises(FcmAuthError) as failed:
        fcm_provider(fcm_sandbox).send(push_record(), timeout=5)

    # Then: asked once, and no back-off sleep of a retry (a clock bound would only be as sure as the machine)
    assert [seconds for seconds in sleeps if seconds >= 0.5] == []
    assert len(fcm_sandbox.grants) == 1 and fcm_sandbox.sends == []
    assert failed.value.message == "fcm token endpoint refused the service account (HTTP 500, internal_failure)"
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


def test_a_token_endpoint_that_never_answers_is_bounded_by_the_calls_timeout(fcm_sandbox: FcmSandbox) -> None:
    # Given
    fcm_sandbox.token_answers.append("hang")
    started = time.monotonic()

    # When
    with pytest.raises(FcmAuthError) as failed:
        fcm_provider(fcm_sandbox).send(push_record(), timeout=0.3)

    # Then
    assert time.monotonic() - started < 2
    assert failed.value.message == "fcm token endpoint unreachable (ReadTimeoutError)"
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


def test_a_send_that_never_answers_is_bounded_by_what_is_left_of_the_timeout(fcm_sandbox: FcmSandbox) -> None:
    # Given
    fcm_sandbox.send_answers.append("hang")
    started = time.monotonic()

    # When
    with pytest.raises(ProviderUnreachable):
        fcm_provider(fcm_sandbox).send(push_record(), timeout=0.5)

    # Then
    assert time.monotonic() - started < 2
