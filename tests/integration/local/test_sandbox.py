"""The sandbox providers over real HTTP on loopback: SendGrid, Twilio and FCM answers, faults, messages, callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import client as http_client
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import google.auth.transport.requests
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.auth import crypt
from google.auth import jwt as google_jwt
from google.oauth2 import service_account

from local.receiver import WebhookReceiver
from local.sandbox import Sandbox, SandboxCredentials

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass
class ShiftedClock:
    """Real time plus an offset the test moves (Google's libraries stamp assertions with real time)."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class ScriptedRandom:
    """The draws deciding which faulted calls fail: the scripted ones first, then 0.0 (every call fails)."""

    draws: deque[float] = field(default_factory=deque)

    def __call__(self) -> float:
        return self.draws.popleft() if self.draws else 0.0


@dataclass
class Shared:
    sandbox: Sandbox
    clock: ShiftedClock
    random: ScriptedRandom


@pytest.fixture(scope="module")
def shared() -> Iterator[Shared]:
    clock, draws = ShiftedClock(), ScriptedRandom()
    with Sandbox(clock=clock, random=draws) as sandbox:
        yield Shared(sandbox, clock, draws)


@pytest.fixture
def sandbox(shared: Shared) -> Iterator[Sandbox]:
    """The module's sandbox, with no messages, faults, scripted draws or clock offset left by another test."""
    yield shared.sandbox
    shared.sandbox.clear_messages()
    shared.sandbox.clear_faults()
    shared.random.draws.clear()
    shared.clock.offset = 0.0


# ---------------------------------------------------------------------- requests as the providers' clients send them
def sendgrid_mail(to: str = "ada@example.com", notification_id: str = "n-1", **overrides: Any) -> dict[str, Any]:
    mail: dict[str, Any] = {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"notification_id": notification_id}}],
        "from": {"email": "herald@example.com"},
        "subject": "Your code",
        "content": [{"type": "text/plain", "value": "It is 1234"}],
        "custom_args": {"notification_id": notification_id},
        "headers": {"X-Notification-Id": notification_id},
    }
    mail.update(overrides)
    return mail


def send_mail(http: Callable[..., Any], sandbox: Sandbox, mail: dict[str, Any], api_key: str | None = None) -> Any:
    key = sandbox.credentials.sendgrid_api_key if api_key is None else api_key
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return http("POST", f"{sandbox.url}/v3/mail/send", headers, json.dumps(mail).encode())


def send_sms(
    http: Callable[..., Any],
    sandbox: Sandbox,
    to: str = "+15551230000",
    *,
    callback: str | None = None,
    auth: tuple[str, str] | None = None,
    account_sid: str | None = None,
    **fields: str,
) -> Any:
    credentials = sandbox.credentials
    user, password = auth or (credentials.twilio_account_sid, credentials.twilio_auth_token)
    form = {"To": to, "From": "+15005550006", "Body": "It is 1234", **fields}
    if callback is not None:
        form["StatusCallback"] = callback
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"}
    sid = account_sid or credentials.twilio_account_sid
    return http("POST", f"{sandbox.url}/2010-04-01/Accounts/{sid}/Messages.json", headers, urlencode(form).encode())


def fcm_access_token(sandbox: Sandbox) -> str:
    """An access token fetched the way Herald's FCM adapter's peers do: google-auth's service account credentials."""
    credentials = service_account.Credentials.from_service_account_info(
        sandbox.credentials.fcm_service_account, scopes=[FCM_SCOPE]
    )
    credentials.refresh(google.auth.transport.requests.Request())
    token: str = credentials.token
    return token


def send_push(
    http: Callable[..., Any], sandbox: Sandbox, token: str, device: str = "device-1", project: str = "herald-local"
) -> Any:
    message = {
        "message": {
            "token": device,
            "notification": {"title": "Hello", "body": "It is 1234"},
            "data": {"notification_id": "n-push"},
        }
    }
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return http("POST", f"{sandbox.url}/v1/projects/{project}/messages:send", headers, json.dumps(message).encode())


def add_fault(http: Callable[..., Any], sandbox: Sandbox, **fault: Any) -> Any:
    return http("POST", f"{sandbox.url}/_faults", {"Content-Type": "application/json"}, json.dumps(fault).encode())


def assertion(info: dict[str, str], *, lifetime: tuple[float, float] = (0, 3600), **claims: Any) -> str:
    """A JWT bearer assertion signed with `info`'s key: issued `lifetime[0]` s from now, living `lifetime[1]` s."""
    now = time.time() + lifetime[0]
    payload = {
        "iss": info["client_email"],
        "aud": info["token_uri"],
        "scope": FCM_SCOPE,
        "iat": int(now),
        "exp": int(now + lifetime[1]),
        **claims,
    }
    signer = crypt.RSASigner.from_service_account_info(info)
    return google_jwt.encode(signer, payload).decode()


def token_request(http: Callable[..., Any], sandbox: Sandbox, grant: str, grant_type: str = JWT_BEARER) -> Any:
    body = urlencode({"grant_type": grant_type, "assertion": grant}).encode()
    return http("POST", f"{sandbox.url}/token", {"Content-Type": "application/x-www-form-urlencoded"}, body)


# ---------------------------------------------------------------------- credentials
def test_generated_credentials_have_the_shapes_herald_is_given() -> None:
    # Given a sandbox URL
    started = time.monotonic()

    # When credentials are generated for it
    credentials = SandboxCredentials.generate("http://127.0.0.1:4010")
    elapsed = time.monotonic() - started

    # Then they are quick to make and shaped as the providers' are: a Twilio account SID, an RSA 2048 service
    # account whose token_uri is the sandbox, a P-256 event verification key; no secret shows in the repr
    assert elapsed < 1.0
    assert re.fullmatch(r"AC[0-9a-f]{32}", credentials.twilio_account_sid)
    account = credentials.fcm_service_account
    assert account["type"] == "service_account"
    assert account["project_id"] == "herald-local"
    assert account["token_uri"] == "http://127.0.0.1:4010/token"
    assert {"private_key_id", "client_email"} <= account.keys()
    private_key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
    assert isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == 2048
    event_key = serialization.load_der_public_key(base64.b64decode(credentials.sendgrid_event_public_key))
    assert isinstance(event_key, ec.EllipticCurvePublicKey) and isinstance(event_key.curve, ec.SECP256R1)
    assert json.loads(credentials.twilio_secret())["auth_token"] == credentials.twilio_auth_token
    for secret in (credentials.sendgrid_api_key, credentials.twilio_auth_token, account["private_key"]):
        assert secret not in repr(credentials)


# ---------------------------------------------------------------------- SendGrid
def test_sendgrid_accepts_a_mail_with_202_and_a_message_id(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a complete v3 mail with Herald's notification id in its custom args

    # When it is sent with the sandbox's API key
    reply = send_mail(http, sandbox, sendgrid_mail(notification_id="n-mail"))

    # Then SendGrid's answer comes back (202, empty body, X-Message-Id) and the message is recorded under its id
    assert reply.status == 202
    assert reply.body == b""
    [message_id] = reply.header("X-Message-Id")
    [recorded] = sandbox.messages("sendgrid")
    assert recorded["notification_id"] == "n-mail"
    assert recorded["message_id"] == message_id
    assert (recorded["to"], recorded["subject"], recorded["body"], recorded["status"]) == (
        "ada@example.com",
        "Your code",
        "It is 1234",
        202,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", recorded["at"])


def test_sendgrid_refuses_a_wrong_api_key_with_its_401_body(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a mail sent with a key the sandbox did not issue
    # When it is sent
    reply = send_mail(http, sandbox, sendgrid_mail(), api_key="SG.wrong")

    # Then SendGrid's 401 errors[] body comes back and nothing is recorded
    assert reply.status == 401
    assert reply.json()["errors"][0]["message"] == "The provided authorization grant is invalid, expired, or revoked"
    assert sandbox.messages() == []


def test_sendgrid_names_each_missing_field_in_a_400(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a mail with none of what SendGrid requires, one with a recipient without an address, and non-JSON
    empty: dict[str, Any] = {}
    no_address = sendgrid_mail(personalizations=[{"to": [{"name": "Ada"}]}])

    # When each is sent
    replies = [send_mail(http, sandbox, empty), send_mail(http, sandbox, no_address)]
    not_json = http(
        "POST",
        f"{sandbox.url}/v3/mail/send",
        {"Authorization": f"Bearer {sandbox.credentials.sendgrid_api_key}"},
        b"{not json",
    )

    # Then each is a 400 whose errors[] name the fields, as SendGrid's do, and nothing is recorded
    assert [reply.status for reply in [*replies, not_json]] == [400, 400, 400]
    assert {error["field"] for error in replies[0].json()["errors"]} == {
        "personalizations",
        "from.email",
        "subject",
        "content",
    }
    assert [error["field"] for error in replies[1].json()["errors"]] == ["personalizations.0.to.0.email"]
    assert all(error["help"] is None for error in replies[0].json()["errors"])
    assert not_json.json()["errors"][0]["message"] == "Bad Request"
    assert sandbox.messages() == []


# ---------------------------------------------------------------------- Twilio
def test_twilio_accepts_a_message_with_201_and_the_resource(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given an SMS whose status callback names Herald's notification id
    callback = "http://127.0.0.1:9/provider-events/twilio?notification_id=n-sms"

    # When it is sent with the account's SID and auth token
    reply = send_sms(http, sandbox, "+15551230000", callback=callback)

    # Then Twilio's 201 message resource comes back and the message is recorded under the notification id
    assert reply.status == 201
    resource = reply.json()
    assert re.fullmatch(r"SM[0-9a-f]{32}", resource["sid"])
    assert resource["status"] == "queued"
    assert (resource["to"], resource["from"], resource["body"]) == ("+15551230000", "+15005550006", "It is 1234")
    assert resource["account_sid"] == sandbox.credentials.twilio_account_sid
    assert resource["error_code"] is None
    [recorded] = sandbox.messages("twilio")
    assert (recorded["notification_id"], recorded["message_id"], recorded["to"], recorded["status"]) == (
        "n-sms",
        resource["sid"],
        "+15551230000",
        201,
    )


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", 21211),
        ("+15005550002", 21612),
        ("+15005550003", 21408),
        ("+15005550004", 21610),
        ("+15005550009", 21614),
        ("5551230000", 21211),  # not E.164
    ],
)
def test_twilio_refuses_its_magic_test_numbers(sandbox: Sandbox, http: Callable[..., Any], to: str, code: int) -> None:
    # Given one of the To numbers Twilio's test credentials refuse
    # When a message is sent to it
    reply = send_sms(http, sandbox, to)

    # Then Twilio's 400 error body comes back with that number's code, and nothing is recorded
    assert reply.status == 400
    error = reply.json()
    assert (error["code"], error["status"]) == (code, 400)
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert error["message"]
    assert sandbox.messages() == []


def test_twilio_refuses_wrong_credentials_and_a_missing_body(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given the right account with a wrong token, another account's path, and a message without a body
    sid = sandbox.credentials.twilio_account_sid

    # When each is sent
    wrong_token = send_sms(http, sandbox, auth=(sid, "not-the-token"))
    other_account = send_sms(http, sandbox, account_sid=f"AC{'0' * 32}")
    no_body = send_sms(http, sandbox, Body="")

    # Then the credentials are refused with Twilio's 401 (20003) and the body with 21602
    assert (wrong_token.status, wrong_token.json()["code"]) == (401, 20003)
    assert (other_account.status, other_account.json()["code"]) == (401, 20003)
    assert (no_body.status, no_body.json()["code"]) == (400, 21602)
    assert sandbox.messages() == []


# ---------------------------------------------------------------------- FCM
def test_fcm_token_flow_works_with_google_auth_and_the_token_sends(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given google-auth's service account credentials built from the sandbox's service account
    # When they fetch an access token from the sandbox's token_uri and a message is sent with it
    token = fcm_access_token(sandbox)
    reply = send_push(http, sandbox, token, device="device-1")

    # Then a real client accepted the token answer, FCM's 200 names the message, and it is recorded
    assert token.startswith("ya29.")
    assert reply.status == 200
    name = reply.json()["name"]
    assert re.fullmatch(r"projects/herald-local/messages/.+", name)
    [recorded] = sandbox.messages("fcm")
    assert (recorded["notification_id"], recorded["message_id"], recorded["to"], recorded["body"]) == (
        "n-push",
        name,
        "device-1",
        "It is 1234",
    )


def test_fcm_token_endpoint_refuses_bad_assertions(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given assertions signed with another key, expired, for another audience, without the scope, and another grant
    info = sandbox.credentials.fcm_service_account
    stranger = SandboxCredentials.generate(sandbox.url).fcm_service_account
    forged = {**stranger, "private_key_id": info["private_key_id"], "client_email": info["client_email"]}
    grants = {
        "wrong key": assertion(forged),
        "expired": assertion(info, lifetime=(-7200, 3600)),
        "too long": assertion(info, lifetime=(0, 7200)),
        "other audience": assertion(info, aud="https://example.com/token"),
        "other issuer": assertion(info, iss="someone@example.com"),
        "not a JWT": "not.a.jwt",
    }

    # When each is presented
    replies = {name: token_request(http, sandbox, grant) for name, grant in grants.items()}
    no_scope = token_request(http, sandbox, assertion(info, scope="https://www.googleapis.com/auth/userinfo.email"))
    other_grant = token_request(http, sandbox, assertion(info), grant_type="client_credentials")
    good = token_request(http, sandbox, assertion(info))

    # Then each is Google's 400 invalid_grant (invalid_scope, unsupported_grant_type); a good one gets a token
    outcomes = {name: (reply.status, reply.json()["error"]) for name, reply in replies.items()}
    assert outcomes == dict.fromkeys(grants, (400, "invalid_grant"))
    assert (no_scope.status, no_scope.json()["error"]) == (400, "invalid_scope")
    assert (other_grant.status, other_grant.json()["error"]) == (400, "unsupported_grant_type")
    assert good.status == 200
    assert (good.json()["expires_in"], good.json()["token_type"]) == (3600, "Bearer")


def test_fcm_send_takes_only_live_tokens_the_sandbox_issued(
    sandbox: Sandbox, shared: Shared, http: Callable[..., Any]
) -> None:
    # Given a token the sandbox never issued, and one it issued
    token = fcm_access_token(sandbox)

    # When each sends, the second again once its hour has passed on the sandbox's clock
    unknown = send_push(http, sandbox, "ya29.made-up")
    live = send_push(http, sandbox, token)
    shared.clock.offset = 3601
    expired = send_push(http, sandbox, token)

    # Then the unknown and expired tokens get FCM's 401 UNAUTHENTICATED; the live one sends
    assert (unknown.status, unknown.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert live.status == 200
    assert (expired.status, expired.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    assert len(sandbox.messages("fcm")) == 1


@pytest.mark.parametrize(
    ("device", "expected"),
    [
        ("unregistered-device", (404, "NOT_FOUND", "UNREGISTERED")),
        ("invalid-device", (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT")),
    ],
)
def test_fcm_answers_device_tokens_it_cannot_deliver_to(
    sandbox: Sandbox, http: Callable[..., Any], device: str, expected: tuple[int, str, str]
) -> None:
    # Given a valid access token and a device token FCM would refuse
    token = fcm_access_token(sandbox)

    # When a message is sent to it
    reply = send_push(http, sandbox, token, device=device)

    # Then FCM's error body comes back with the FcmError detail, and nothing is recorded
    status, google_status, error_code = expected
    assert reply.status == status
    error = reply.json()["error"]
    assert (error["code"], error["status"]) == (status, google_status)
    assert error["details"] == [
        {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code}
    ]
    assert sandbox.messages() == []


# ---------------------------------------------------------------------- faults
def test_a_fault_at_rate_one_fails_every_call_in_each_providers_shape(
    sandbox: Sandbox, http: Callable[..., Any]
) -> None:
    # Given a 503 fault on every provider
    token = fcm_access_token(sandbox)  # the token endpoint is not faulted, so fetch it either way
    for provider in ("sendgrid", "twilio", "fcm"):
        assert add_fault(http, sandbox, provider=provider).status == 201

    # When each provider is called twice
    mails = [send_mail(http, sandbox, sendgrid_mail()) for _ in range(2)]
    texts = [send_sms(http, sandbox) for _ in range(2)]
    pushes = [send_push(http, sandbox, token) for _ in range(2)]

    # Then every call is a 503 in its provider's error body, and nothing is recorded
    assert [reply.status for reply in [*mails, *texts, *pushes]] == [503] * 6
    assert all(reply.json()["errors"][0]["message"] for reply in mails)
    assert [reply.json()["code"] for reply in texts] == [20500, 20500]
    assert [reply.json()["error"]["status"] for reply in pushes] == ["UNAVAILABLE", "UNAVAILABLE"]
    assert sandbox.messages() == []


def test_a_fault_with_a_count_applies_that_many_times_then_recovers(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a 500 fault on SendGrid for two calls
    created = add_fault(http, sandbox, provider="sendgrid", status=500, count=2)

    # When SendGrid is called three times
    statuses = [send_mail(http, sandbox, sendgrid_mail()).status for _ in range(3)]

    # Then the fault is stored as sent, the first two calls fail, the third succeeds and the fault is gone
    assert created.status == 201
    assert created.json() == {
        "provider": "sendgrid",
        "error_rate": 1.0,
        "status": 500,
        "latency_ms": 0,
        "retry_after": None,
        "timeout": False,
        "count": 2,
    }
    assert statuses == [500, 500, 202]
    assert http("GET", f"{sandbox.url}/_faults").json() == {"faults": []}


def test_a_fault_error_rate_fails_the_calls_the_random_draws_pick(
    sandbox: Sandbox, shared: Shared, http: Callable[..., Any]
) -> None:
    # Given a fault failing half the Twilio calls, and draws of 0.1, 0.9, 0.4, 0.6
    add_fault(http, sandbox, provider="twilio", error_rate=0.5)
    shared.random.draws.extend([0.1, 0.9, 0.4, 0.6])

    # When Twilio is called four times
    statuses = [send_sms(http, sandbox).status for _ in range(4)]

    # Then exactly the calls whose draw fell under the rate failed
    assert statuses == [503, 201, 503, 201]


def test_a_latency_fault_delays_the_answer(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given 300 ms of latency on SendGrid that fails no call
    add_fault(http, sandbox, provider="sendgrid", latency_ms=300, error_rate=0)

    # When SendGrid is called
    started = time.monotonic()
    reply = send_mail(http, sandbox, sendgrid_mail())
    elapsed = time.monotonic() - started

    # Then the answer is the normal one, after the latency
    assert reply.status == 202
    assert elapsed >= 0.3


def test_a_429_fault_carries_retry_after_in_each_providers_shape(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a 429 fault with Retry-After 7 on every provider
    token = fcm_access_token(sandbox)
    for provider in ("sendgrid", "twilio", "fcm"):
        add_fault(http, sandbox, provider=provider, status=429, retry_after=7)

    # When each provider is called
    mail, text, push = (
        send_mail(http, sandbox, sendgrid_mail()),
        send_sms(http, sandbox),
        send_push(http, sandbox, token),
    )

    # Then each answers 429 with Retry-After: 7 and its rate-limit shape
    assert [reply.status for reply in (mail, text, push)] == [429, 429, 429]
    assert [reply.header("Retry-After") for reply in (mail, text, push)] == [["7"], ["7"], ["7"]]
    [reset] = mail.header("X-RateLimit-Reset")
    assert int(reset) >= int(time.time()) + 6
    assert text.json()["code"] == 20429
    error = push.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert error["details"][0]["errorCode"] == "QUOTA_EXCEEDED"


def test_a_timeout_fault_answers_nothing_until_the_client_gives_up(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a timeout fault on SendGrid
    add_fault(http, sandbox, provider="sendgrid", timeout=True)
    host, port = urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port
    body = json.dumps(sendgrid_mail()).encode()
    headers = {"Authorization": f"Bearer {sandbox.credentials.sendgrid_api_key}", "Content-Type": "application/json"}

    # When a client with a 0.3 s timeout calls it, and again once the fault is deleted
    client = _connection(host, port, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.request("POST", "/v3/mail/send", body, headers)
        client.getresponse()
    waited = time.monotonic() - started
    client.close()
    cleared = http("DELETE", f"{sandbox.url}/_faults?provider=sendgrid")
    after = send_mail(http, sandbox, sendgrid_mail())

    # Then the client got no answer before its own timeout; deleting the fault recovers the provider
    assert waited >= 0.3
    assert cleared.json() == {"cleared": 1}
    assert after.status == 202
    assert len(sandbox.messages("sendgrid")) == 1


def test_deleting_one_providers_fault_leaves_the_others(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given faults on SendGrid and Twilio
    add_fault(http, sandbox, provider="sendgrid")
    add_fault(http, sandbox, provider="twilio", status=500)

    # When only Twilio's is deleted
    http("DELETE", f"{sandbox.url}/_faults?provider=twilio")
    listed = http("GET", f"{sandbox.url}/_faults").json()["faults"]

    # Then Twilio answers again and SendGrid still fails
    assert [fault["provider"] for fault in listed] == ["sendgrid"]
    assert send_sms(http, sandbox).status == 201
    assert send_mail(http, sandbox, sendgrid_mail()).status == 503


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ({"provider": "pigeon"}, "provider"),
        ({"provider": "sendgrid", "error_rate": 2}, "error_rate"),
        ({"provider": "sendgrid", "status": 200}, "status"),
        ({"provider": "sendgrid", "count": 0}, "count"),
        ({"provider": "sendgrid", "colour": "red"}, "colour"),
        ({}, "provider"),
    ],
)
def test_a_bad_fault_is_refused_with_a_message_naming_the_field(
    sandbox: Sandbox, http: Callable[..., Any], fault: dict[str, Any], named: str
) -> None:
    # Given a fault with one thing wrong
    # When it is posted
    reply = add_fault(http, sandbox, **fault)

    # Then it is a 400 whose message names the field, and no fault is stored
    assert reply.status == 400
    assert named in reply.json()["error"]
    assert sandbox.faults() == []


def test_an_fcm_fault_leaves_the_token_endpoint_alone(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a fault on FCM
    add_fault(http, sandbox, provider="fcm")

    # When a token is fetched and a message sent
    token = fcm_access_token(sandbox)
    reply = send_push(http, sandbox, token)

    # Then the token endpoint answered and the send endpoint failed
    assert token
    assert reply.status == 503


# ---------------------------------------------------------------------- messages and routes
def test_messages_filter_by_provider_and_notification_id_and_clear(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given two mails and an SMS
    send_mail(http, sandbox, sendgrid_mail(notification_id="n-a"))
    send_mail(http, sandbox, sendgrid_mail(notification_id="n-b"))
    send_sms(http, sandbox, callback="http://127.0.0.1:9/cb?notification_id=n-a")

    # When they are listed, filtered, and cleared
    every = http("GET", f"{sandbox.url}/_messages").json()["messages"]
    mails = http("GET", f"{sandbox.url}/_messages?provider=sendgrid").json()["messages"]
    for_a = http("GET", f"{sandbox.url}/_messages?notification_id=n-a").json()["messages"]
    bad = http("GET", f"{sandbox.url}/_messages?provider=pigeon")
    cleared = http("DELETE", f"{sandbox.url}/_messages")

    # Then each filter picks its messages, an unknown provider is a 400, and clearing empties the list
    assert [(m["provider"], m["notification_id"]) for m in every] == [
        ("sendgrid", "n-a"),
        ("sendgrid", "n-b"),
        ("twilio", "n-a"),
    ]
    assert [m["notification_id"] for m in mails] == ["n-a", "n-b"]
    assert [m["provider"] for m in for_a] == ["sendgrid", "twilio"]
    assert bad.status == 400
    assert cleared.json() == {"cleared": 3}
    assert http("GET", f"{sandbox.url}/_messages").json() == {"messages": []}


def test_unknown_routes_are_404_json_and_wrong_methods_405(sandbox: Sandbox, http: Callable[..., Any]) -> None:
    # Given a path the sandbox does not serve, and a provider path with the wrong method
    # When each is requested
    unknown = http("GET", f"{sandbox.url}/v4/nothing")
    wrong_method = http("GET", f"{sandbox.url}/v3/mail/send")

    # Then the first is a JSON 404 and the second a 405 naming the allowed method
    assert unknown.status == 404
    assert "error" in unknown.json()
    assert wrong_method.status == 405
    assert wrong_method.header("Allow") == ["POST"]


# ---------------------------------------------------------------------- callbacks
@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """Herald's API as far as callbacks go: a loopback server recording every POST."""
    with WebhookReceiver(secret="unused") as server:  # the sandbox's callbacks carry no Standard Webhooks signature
        yield server


def verify_sendgrid(public_key_b64: str, headers: dict[str, str], body: bytes) -> None:
    """Contract A: ECDSA P-256 / SHA-256 over timestamp header value + raw body; raises when it does not verify."""
    public_key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    timestamp = headers["x-twilio-email-event-webhook-timestamp"]
    signature = base64.b64decode(headers["x-twilio-email-event-webhook-signature"])
    public_key.verify(signature, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))


def twilio_signature(auth_token: str, url: str, body: bytes) -> str:
    """Contract B, computed independently: HMAC-SHA1 of the URL then each field's name and value, sorted by name."""
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    payload = url + "".join(name + fields[name] for name in sorted(fields))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


@pytest.mark.parametrize(
    ("to", "last"),
    [("ada@example.com", {"event": "delivered"}), ("bounce@example.com", {"event": "bounce", "type": "bounce"})],
)
def test_sendgrid_events_arrive_signed_processed_then_final(
    receiver: WebhookReceiver, http: Callable[..., Any], to: str, last: dict[str, str]
) -> None:
    # Given a sandbox posting SendGrid events to the receiver
    with Sandbox(sendgrid_events_url=receiver.url, callback_delay_seconds=0.01) as sandbox:
        # When a mail is accepted
        reply = send_mail(http, sandbox, sendgrid_mail(to=to, notification_id="n-events"))
        posts = receiver.wait_for(2, timeout=5)
        public_key = sandbox.credentials.sendgrid_event_public_key

    # Then "processed" then the final event arrive, each verifying against the event key exactly as contract A says
    [message_id] = reply.header("X-Message-Id")
    events = []
    for post in posts:
        verify_sendgrid(public_key, post.headers, post.body)
        assert post.headers["content-type"] == "application/json"
        events.extend(json.loads(post.body))
    assert [event["event"] for event in events] == ["processed", last["event"]]
    for event in events:
        assert event["email"] == to
        assert event["notification_id"] == "n-events"
        assert event["sg_message_id"].startswith(message_id)
        assert isinstance(event["timestamp"], int)
    assert len({event["sg_event_id"] for event in events}) == 2
    assert events[1].items() >= last.items()
    if last["event"] == "bounce":
        assert (events[1]["status"], events[1]["reason"]) == ("5.1.1", "550 5.1.1 unknown user")


def test_a_tampered_sendgrid_event_does_not_verify(receiver: WebhookReceiver, http: Callable[..., Any]) -> None:
    # Given a signed event the sandbox sent
    with Sandbox(sendgrid_events_url=receiver.url, callback_delay_seconds=0.01) as sandbox:
        send_mail(http, sandbox, sendgrid_mail())
        [post, *_] = receiver.wait_for(1, timeout=5)
        public_key = sandbox.credentials.sendgrid_event_public_key

    # When its body is changed by one byte
    tampered = post.body.replace(b"processed", b"delivered")

    # Then the check of contract A refuses it (so the passing checks above are not vacuous)
    with pytest.raises(InvalidSignature):
        verify_sendgrid(public_key, post.headers, tampered)


@pytest.mark.parametrize(("to", "final"), [("+15551230000", "delivered"), ("+15005550010", "undelivered")])
def test_twilio_status_callbacks_arrive_signed_sent_then_final(
    receiver: WebhookReceiver, http: Callable[..., Any], to: str, final: str
) -> None:
    # Given a sandbox and an SMS whose StatusCallback is the receiver
    callback = f"{receiver.url}?notification_id=n-sms"
    with Sandbox(callback_delay_seconds=0.01) as sandbox:
        # When it is accepted
        reply = send_sms(http, sandbox, to, callback=callback)
        posts = receiver.wait_for(2, timeout=5)
        credentials = sandbox.credentials

    # Then "sent" then the final status arrive at the callback URL, signed as contract B computes it
    sid = reply.json()["sid"]
    forms = []
    for post in posts:
        assert post.path == "/hook?notification_id=n-sms"
        assert post.headers["content-type"] == "application/x-www-form-urlencoded"
        assert post.headers["x-twilio-signature"] == twilio_signature(
            credentials.twilio_auth_token, callback, post.body
        )
        forms.append(dict(parse_qsl(post.body.decode())))
    assert [(form["MessageStatus"], form["SmsStatus"]) for form in forms] == [("sent", "sent"), (final, final)]
    for form in forms:
        assert (form["MessageSid"], form["SmsSid"], form["AccountSid"]) == (sid, sid, credentials.twilio_account_sid)
        assert (form["To"], form["ApiVersion"]) == (to, "2010-04-01")
    assert ("ErrorCode" in forms[1]) is (final == "undelivered")
    if final == "undelivered":
        assert forms[1]["ErrorCode"] == "30003"


def test_callbacks_are_retried_while_herald_is_not_up_yet(receiver: WebhookReceiver, http: Callable[..., Any]) -> None:
    # Given a receiver answering 503 twice before it is ready
    receiver.responses.extend([503, 503])
    with Sandbox(sendgrid_events_url=receiver.url, callback_delay_seconds=0.01) as sandbox:
        # When a mail is accepted
        send_mail(http, sandbox, sendgrid_mail())
        posts = receiver.wait_for(4, timeout=5)

    # Then "processed" was tried until it went through, and only then "delivered" was sent
    events = [json.loads(post.body)[0]["event"] for post in posts]
    assert [post.status for post in posts] == [503, 503, 200, 200]
    assert events == ["processed", "processed", "processed", "delivered"]


def test_a_refused_callback_is_logged_once_and_not_retried(
    receiver: WebhookReceiver, http: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    # Given a receiver refusing every callback with 401, and the sandbox's log captured
    receiver.status = 401
    records: list[logging.LogRecord] = []
    capture = _Capture(records)
    sandbox_logger = logging.getLogger("herald.local.sandbox")
    sandbox_logger.addHandler(capture)
    try:
        with Sandbox(sendgrid_events_url=receiver.url, callback_delay_seconds=0.01) as sandbox:
            # When a mail is accepted
            send_mail(http, sandbox, sendgrid_mail(notification_id="n-refused"))
            failures = wait_until(lambda: [r for r in records if r.getMessage() == "callback failed"], timeout=5)
            posted = len(receiver.received)
    finally:
        sandbox_logger.removeHandler(capture)

    # Then the first event was posted once and refused; one line says the sequence ended there (the rest dropped),
    # naming the notification, not the address
    [failure] = failures
    assert posted == 1
    fields = {
        name: getattr(failure, name) for name in ("notification_id", "status", "event", "attempts", "dropped_after")
    }
    assert fields == {
        "notification_id": "n-refused",
        "status": 401,
        "event": "processed",
        "attempts": 1,
        "dropped_after": 1,
    }
    assert "@" not in json.dumps({key: str(value) for key, value in vars(failure).items()})


def test_the_request_path_never_waits_for_callbacks_and_stop_is_prompt(
    receiver: WebhookReceiver, http: Callable[..., Any]
) -> None:
    # Given a sandbox whose callbacks wait 5 s
    sandbox = Sandbox(sendgrid_events_url=receiver.url, callback_delay_seconds=5).start()
    try:
        # When a mail is accepted, and the sandbox stops (twice)
        started = time.monotonic()
        reply = send_mail(http, sandbox, sendgrid_mail())
        answered = time.monotonic() - started
        sandbox.stop()
        stopped = time.monotonic() - started
        sandbox.stop()
    finally:
        sandbox.stop()

    # Then the answer came at once, stop did not wait for the queued callbacks, and none was sent
    assert reply.status == 202
    assert answered < 1.0
    assert stopped < 2.0
    assert receiver.received == []


def test_stop_releases_a_request_held_by_a_timeout_fault(
    http: Callable[..., Any], wait_until: Callable[..., Any]
) -> None:
    # Given a sandbox with a timeout fault and a patient client whose call it is holding
    sandbox = Sandbox().start()
    add_fault(http, sandbox, provider="twilio", timeout=True, count=1)
    outcome: list[BaseException | int] = []
    address = urlsplit(sandbox.url)
    path = f"/2010-04-01/Accounts/{sandbox.credentials.twilio_account_sid}/Messages.json"

    def call() -> None:
        client = _connection(address.hostname, address.port, timeout=10)
        try:
            client.request("POST", path)
            outcome.append(client.getresponse().status)
        except (OSError, http_client.HTTPException) as error:
            outcome.append(error)
        finally:
            client.close()

    caller = threading.Thread(target=call)
    try:
        caller.start()
        wait_until(lambda: sandbox.faults() == [])  # the call took the fault's only strike: it is being held

        # When the sandbox stops
        started = time.monotonic()
        sandbox.stop()
        stopped = time.monotonic() - started
        caller.join(timeout=5)
    finally:
        sandbox.stop()

    # Then stop returned promptly and the client's connection ended without any answer
    assert stopped < 2.0
    assert len(outcome) == 1
    assert isinstance(outcome[0], BaseException)


# ---------------------------------------------------------------------- helpers
class _Capture(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _connection(host: str | None, port: int | None, timeout: float) -> http_client.HTTPConnection:
    assert host is not None and port is not None
    return http_client.HTTPConnection(host, port, timeout=timeout)
