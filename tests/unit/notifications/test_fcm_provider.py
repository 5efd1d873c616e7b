"""The FCM adapter over a scripted urllib3 pool (no network): the v1 request it builds, the access token it
caches and refreshes, and what it reports for each of FCM's documented errors."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from urllib3.exceptions import NewConnectionError, ReadTimeoutError

from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel, Recipient
from notifications.providers.fcm import (
    FCM_ERROR_TYPE,
    FcmAuthError,
    FcmError,
    FcmPushProvider,
    classify_fcm_error,
)
from notifications.providers.http import ProviderHttp
from resilience import ErrorClass
from tests.support.clock import FakeClock
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from notifications.models import NotificationRecord

TOKEN_URI = "https://oauth2.example.test/token"
BASE_URL = "https://fcm.example.test"
SEND_URL = f"{BASE_URL}/v1/projects/herald-test/messages:send"
DEVICE_TOKEN = "device-token-abc"


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode("ascii")


def service_account(private_key_pem: str, **overrides: str) -> dict[str, str]:
    return {
        "type": "service_account",
        "project_id": "herald-test",
        "private_key_id": "key-1",
        "private_key": private_key_pem,
        "client_email": "sender@herald-test.iam.gserviceaccount.com",
        "token_uri": TOKEN_URI,
        **overrides,
    }


def push_record(**overrides: Any) -> NotificationRecord:
    fields: dict[str, Any] = {
        "channel": Channel.PUSH,
        "recipient": Recipient(device_token=DEVICE_TOKEN),
        "subject": "Hello",
        "body": "Your order shipped",
    }
    return make_record(**(fields | overrides))


class FakeResponse:
    """What urllib3 answers, as much of it as ProviderHttp and google-auth's transport read."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.status = status
        self.data = body
        self.headers = urllib3.HTTPHeaderDict(headers)

    def read(self, amount: int | None = None, decode_content: bool = True) -> bytes:
        return self.data if amount is None else self.data[:amount]

    def release_conn(self) -> None:
        return

    def close(self) -> None:
        return


Answer = tuple[int, Any, dict[str, str]]  # status, body (JSON-encoded unless bytes), headers


@dataclass
class FakePool:
    """A PoolManager that answers the token endpoint and messages:send from scripts, recording every request."""

    token_answers: list[Answer | BaseException] = field(default_factory=list)
    send_answers: list[Answer] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    on_token_request: Callable[[], None] | None = None
    _issued: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, method: str, url: str, body: bytes | None = None, headers: Any = None, **kwargs: Any) -> Any:
        with self._lock:
            self.requests.append({"method": method, "url": url, "body": body, "headers": dict(headers or {}), **kwargs})
        if url == TOKEN_URI:
            if self.on_token_request is not None:
                self.on_token_request()
            with self._lock:
                scripted = self.token_answers.pop(0) if self.token_answers else None
                self._issued += 1
                issued = self._issued
            if isinstance(scripted, BaseException):
                raise scripted
            answer = scripted or (
                200,
                {"access_token": f"token-{issued}", "expires_in": 3600, "token_type": "Bearer"},
                {},
            )
        elif url == SEND_URL:
            with self._lock:
                answer = self.send_answers.pop(0) if self.send_answers else (200, {"name": "projects/p/messages/1"}, {})
        else:
            raise AssertionError(f"unexpected request to {url}")
        status, payload, answer_headers = answer
        encoded = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return FakeResponse(status, encoded, answer_headers)

    def to(self, url: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["url"] == url]


def fcm(
    pool: FakePool, credentials: Callable[[], Mapping[str, Any]], clock: FakeClock | None = None
) -> FcmPushProvider:
    return FcmPushProvider(
        credentials=credentials,
        base_url=BASE_URL + "/",
        http=ProviderHttp("fcm", pool=pool),  # type: ignore[arg-type]
        token_pool=pool,  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


def fcm_error(status: int, canonical: str, error_code: str | None = None) -> dict[str, Any]:
    details = [{"@type": FCM_ERROR_TYPE, "errorCode": error_code}] if error_code else []
    return {"error": {"code": status, "message": "refused", "status": canonical, "details": details}}


# ---------------------------------------------------------------------- the request


def test_a_push_posts_the_v1_message_with_a_bearer_token_and_answers_fcms_message_name(private_key_pem: str) -> None:
    # Given
    pool = FakePool(send_answers=[(200, {"name": "projects/herald-test/messages/0:42"}, {})])
    provider = fcm(pool, lambda: service_account(private_key_pem))
    record = push_record(data={"order": 42, "tags": ["a"], "note": "as is", "gift": None})

    # When
    receipt = provider.send(record, timeout=5)

    # Then
    assert receipt.provider == "fcm" and receipt.message_id == "projects/herald-test/messages/0:42"
    [sent] = pool.to(SEND_URL)
    assert sent["method"] == "POST"
    assert sent["headers"]["Authorization"] == "Bearer token-1"
    assert json.loads(sent["body"]) == {
        "message": {
            "token": DEVICE_TOKEN,
            "notification": {"title": "Hello", "body": "Your order shipped"},
            # FCM's data values must be strings: the rest travel JSON-encoded, the notification id always.
            "data": {"order": "42", "tags": '["a"]', "note": "as is", "gift": "null", "notification_id": "n-1"},
        }
    }


def test_a_push_without_a_subject_has_no_title_and_its_data_names_the_notification(private_key_pem: str) -> None:
    # Given
    pool = FakePool()
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    provider.send(push_record(subject=None, data={"notification_id": "spoofed"}), timeout=5)

    # Then
    message = json.loads(pool.to(SEND_URL)[0]["body"])["message"]
    assert message["notification"] == {"body": "Your order shipped"}
    assert message["data"] == {"notification_id": "n-1"}


def test_the_token_request_is_a_jwt_grant_to_the_service_accounts_token_uri(private_key_pem: str) -> None:
    # Given
    pool = FakePool()
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    provider.send(push_record(), timeout=5)

    # Then
    [token_request] = pool.to(TOKEN_URI)
    form = parse_qs(token_request["body"].decode())
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert form["assertion"][0].count(".") == 2  # a signed JWT
    assert token_request["redirect"] is False and token_request["retries"] is False


def test_both_requests_are_bounded_by_the_calls_timeout(private_key_pem: str) -> None:
    # Given
    pool = FakePool()
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    provider.send(push_record(), timeout=2.5)

    # Then
    token_timeout = pool.to(TOKEN_URI)[0]["timeout"]
    send_timeout = pool.to(SEND_URL)[0]["timeout"]
    assert isinstance(token_timeout, urllib3.Timeout) and 0 < token_timeout.total <= 2.5
    assert isinstance(send_timeout, urllib3.Timeout) and 0 < send_timeout.total <= token_timeout.total


def test_a_recipient_without_a_device_token_is_undeliverable_before_any_request(private_key_pem: str) -> None:
    # Given
    pool = FakePool()
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(UndeliverableError):
        provider.send(push_record(recipient=Recipient(email="someone@example.com")), timeout=5)

    # Then
    assert pool.requests == []


# ---------------------------------------------------------------------- the access token


def test_the_access_token_is_fetched_once_and_reused_until_it_nears_expiry(private_key_pem: str) -> None:
    # Given
    pool = FakePool()
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    for _ in range(3):
        provider.send(push_record(), timeout=5)

    # Then
    assert len(pool.to(TOKEN_URI)) == 1
    assert {request["headers"]["Authorization"] for request in pool.to(SEND_URL)} == {"Bearer token-1"}


def test_a_token_within_google_auths_refresh_margin_is_refreshed_before_use(private_key_pem: str) -> None:
    # Given: tokens that expire in 60 s, inside google-auth's 3 min 45 s refresh margin
    short = (200, {"access_token": "short-lived", "expires_in": 60}, {})
    pool = FakePool(token_answers=[short, short])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    provider.send(push_record(), timeout=5)
    provider.send(push_record(), timeout=5)

    # Then
    assert len(pool.to(TOKEN_URI)) == 2


def test_a_rotated_service_account_key_gets_new_credentials_and_a_new_token(private_key_pem: str) -> None:
    # Given
    secret = service_account(private_key_pem)
    pool = FakePool()
    provider = fcm(pool, lambda: secret)
    provider.send(push_record(), timeout=5)

    # When
    secret = service_account(private_key_pem, private_key_id="key-2")
    provider.send(push_record(), timeout=5)
    provider.send(push_record(), timeout=5)

    # Then
    assert len(pool.to(TOKEN_URI)) == 2
    assert [request["headers"]["Authorization"] for request in pool.to(SEND_URL)] == [
        "Bearer token-1",
        "Bearer token-2",
        "Bearer token-2",
    ]


def test_a_401_from_fcm_drops_the_cached_token_so_the_next_send_fetches_one(private_key_pem: str) -> None:
    # Given
    pool = FakePool(send_answers=[(401, fcm_error(401, "UNAUTHENTICATED"), {})])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmError) as refused:
        provider.send(push_record(), timeout=5)
    provider.send(push_record(), timeout=5)

    # Then
    assert refused.value.status_code == 401 and refused.value.provider_code == "UNAUTHENTICATED"
    assert len(pool.to(TOKEN_URI)) == 2
    assert pool.to(SEND_URL)[-1]["headers"]["Authorization"] == "Bearer token-2"


def test_concurrent_sends_with_no_token_fetch_it_once(private_key_pem: str) -> None:
    # Given: the token endpoint answers only once every sender has read the secret, so without the
    # refresh lock each of them would be fetching a token of its own by then
    senders = 10
    secret_reads = threading.Semaphore(0)
    answered = threading.Event()

    def credentials() -> dict[str, str]:
        secret_reads.release()
        return service_account(private_key_pem)

    def wait_for_every_sender() -> None:
        if not answered.is_set():
            for _ in range(senders):
                assert secret_reads.acquire(timeout=5)
            answered.set()

    pool = FakePool(on_token_request=wait_for_every_sender)
    provider = fcm(pool, credentials)
    failures: list[BaseException] = []

    def send() -> None:
        try:
            provider.send(push_record(), timeout=10)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            failures.append(error)

    # When
    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Then
    assert failures == []
    assert len(pool.to(TOKEN_URI)) == 1
    assert len(pool.to(SEND_URL)) == senders


# ---------------------------------------------------------------------- the token endpoint failing


def test_a_refused_service_account_is_a_transient_auth_error_that_never_shows_the_key(private_key_pem: str) -> None:
    # Given: Google's token endpoint refusing the JWT (RFC 6749 section 5.2: invalid_grant)
    refusal = (400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, {})
    pool = FakePool(token_answers=[refusal])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then: about our credentials, not the message; nothing was sent
    error = failed.value
    assert classify_fcm_error(error) is ErrorClass.TRANSIENT
    assert error.status_code is None and error.provider_code == "invalid_grant"
    assert "HTTP 400" in error.message
    assert "PRIVATE KEY" not in error.message and "key-1" not in error.message
    assert error.__cause__ is None and error.__context__ is None
    assert pool.to(SEND_URL) == []


def test_a_failing_token_endpoint_is_asked_once_without_google_auths_sleeping_retries(private_key_pem: str) -> None:
    # Given: a 503, which google-auth would retry after sleeping a second, then two
    pool = FakePool(token_answers=[(503, b"<html>unavailable</html>", {})])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert len(pool.to(TOKEN_URI)) == 1
    assert failed.value.message == "fcm token endpoint refused the service account (HTTP 503)"
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (ReadTimeoutError(None, TOKEN_URI, "Read timed out."), "ReadTimeoutError"),  # type: ignore[arg-type]
        (NewConnectionError(None, "Connection refused"), "NewConnectionError"),  # type: ignore[arg-type]
    ],
)
def test_an_unreachable_token_endpoint_is_a_transient_auth_error(
    private_key_pem: str, failure: BaseException, cause: str
) -> None:
    # Given
    pool = FakePool(token_answers=[failure])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert failed.value.message == f"fcm token endpoint unreachable ({cause})"
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


def test_a_token_answer_without_an_access_token_is_a_transient_auth_error(private_key_pem: str) -> None:
    # Given
    pool = FakePool(token_answers=[(200, {"token_type": "Bearer"}, {})])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert "no usable token" in failed.value.message
    assert pool.to(SEND_URL) == []


def test_a_service_account_missing_fields_names_them_and_nothing_of_their_values(private_key_pem: str) -> None:
    # Given
    broken = service_account(private_key_pem)
    del broken["client_email"]
    broken["token_uri"] = "not a url"
    pool = FakePool()
    provider = fcm(pool, lambda: broken)

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert failed.value.message == "fcm service account secret lacks valid fields: client_email, token_uri"
    assert failed.value.__cause__ is None
    assert pool.requests == []


def test_an_unreadable_private_key_is_a_transient_auth_error_that_does_not_quote_it() -> None:
    # Given
    pool = FakePool()
    provider = fcm(
        pool, lambda: service_account("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    )

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert failed.value.message.startswith("fcm service account key unreadable (")
    assert "bm90IGEga2V5" not in failed.value.message and failed.value.__cause__ is None
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


def test_an_unreadable_secret_is_a_transient_auth_error() -> None:
    # Given
    def unreadable() -> dict[str, str]:
        raise RuntimeError("secret herald/fcm unreadable (ResourceNotFoundException)")

    provider = fcm(FakePool(), unreadable)

    # When
    with pytest.raises(FcmAuthError) as failed:
        provider.send(push_record(), timeout=5)

    # Then
    assert failed.value.message == "fcm credentials unavailable (RuntimeError)"
    assert classify_fcm_error(failed.value) is ErrorClass.TRANSIENT


# ---------------------------------------------------------------------- FCM's errors and their verdicts


@pytest.mark.parametrize(
    ("status", "body", "code", "verdict"),
    [
        # UNREGISTERED (404): "App instance was unregistered from FCM. This usually means that the token used
        # is no longer valid": this token can never receive it.
        (404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"), "UNREGISTERED", ErrorClass.PERMANENT),
        # INVALID_ARGUMENT (400): "Request parameters were invalid" (a malformed token, a reserved data key,
        # a message over 4096 bytes): this message as it is.
        (400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"), "INVALID_ARGUMENT", ErrorClass.PERMANENT),
        # INVALID_ARGUMENT without FCM's detail: the same verdict from the canonical status.
        (400, fcm_error(400, "INVALID_ARGUMENT"), "INVALID_ARGUMENT", ErrorClass.PERMANENT),
        # SENDER_ID_MISMATCH (403): "The authenticated sender ID is different from the sender ID for the
        # registration token": the token belongs to another project, which no retry changes.
        (403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), "SENDER_ID_MISMATCH", ErrorClass.PERMANENT),
        # QUOTA_EXCEEDED (429): "Sending limit exceeded for the message target": the project's rate, retried
        # after the back-off FCM asks for.
        (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), "QUOTA_EXCEEDED", ErrorClass.TRANSIENT),
        # UNAVAILABLE (503): "The server is overloaded": retry with back-off.
        (503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), "UNAVAILABLE", ErrorClass.TRANSIENT),
        # INTERNAL (500): "An unknown internal error occurred": retry with back-off.
        (500, fcm_error(500, "INTERNAL", "INTERNAL"), "INTERNAL", ErrorClass.TRANSIENT),
        # THIRD_PARTY_AUTH_ERROR (401): "APNs certificate or web push auth key was invalid or missing": our
        # project's configuration, fixed by an operator.
        (
            401,
            fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
            "THIRD_PARTY_AUTH_ERROR",
            ErrorClass.TRANSIENT,
        ),
        # UNAUTHENTICATED (401): our OAuth 2.0 access token was refused (expired or revoked).
        (401, fcm_error(401, "UNAUTHENTICATED"), "UNAUTHENTICATED", ErrorClass.TRANSIENT),
        # PERMISSION_DENIED (403) without FCM's detail: the service account lacks the messaging role.
        (403, fcm_error(403, "PERMISSION_DENIED"), "PERMISSION_DENIED", ErrorClass.TRANSIENT),
        # A bare 404 NOT_FOUND: a stale token is always UNREGISTERED, so this is the project id: configuration.
        (404, fcm_error(404, "NOT_FOUND"), "NOT_FOUND", ErrorClass.TRANSIENT),
        # An answer that is not FCM's (a proxy's HTML page): no verdict here, the chain judges the status.
        (502, b"<html>Bad Gateway</html>", None, None),
        # UNSPECIFIED_ERROR: "No more information is available": left to the chain too.
        (400, fcm_error(400, "FAILED_PRECONDITION", "UNSPECIFIED_ERROR"), "UNSPECIFIED_ERROR", None),
    ],
)
def test_each_fcm_error_is_described_and_judged_as_fcm_documents_it(
    private_key_pem: str, status: int, body: Any, code: str | None, verdict: ErrorClass | None
) -> None:
    # Given
    pool = FakePool(send_answers=[(status, body, {})])
    provider = fcm(pool, lambda: service_account(private_key_pem))

    # When
    with pytest.raises(FcmError) as refused:
        provider.send(push_record(), timeout=5)

    # Then
    error = refused.value
    assert (error.status_code, error.provider_code) == (status, code)
    assert classify_fcm_error(error) is verdict
    assert DEVICE_TOKEN not in error.message


def test_quota_exceeded_carries_fcms_retry_after(private_key_pem: str) -> None:
    # Given
    clock = FakeClock()
    answer = (429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), {"Retry-After": "30"})
    pool = FakePool(send_answers=[answer])
    provider = fcm(pool, lambda: service_account(private_key_pem), clock)

    # When
    with pytest.raises(FcmError) as refused:
        provider.send(push_record(), timeout=5)

    # Then
    assert refused.value.retry_after == 30.0
    assert refused.value.message == "fcm answered HTTP 429 (QUOTA_EXCEEDED)"


def test_only_fcms_errors_are_judged_by_the_fcm_classifier() -> None:
    # Given
    others = [DeliveryError("webhook answered 500", status_code=500), ValueError("bad"), TimeoutError()]

    # When
    verdicts = [classify_fcm_error(error) for error in others]

    # Then
    assert verdicts == [None, None, None]
