"""The SendGrid adapter over a fake connection pool: the v3 request it sends, the receipt it reads, and how
each of SendGrid's documented answers is judged by the delivery chain."""

from __future__ import annotations

import json
from email.utils import formatdate
from typing import Any

import pytest
from urllib3.connection import HTTPConnection
from urllib3.exceptions import NewConnectionError

from notifications.errors import DeliveryError, UndeliverableError
from notifications.failures import delivery_classifier
from notifications.models import Channel, NotificationRecord, Recipient
from notifications.providers.http import ProviderHttp, ProviderUnreachable
from notifications.providers.sendgrid import SendGridEmailProvider, SendGridError, classify_sendgrid_error
from resilience import ErrorClass, default_classifier
from tests.support.clock import FakeClock
from tests.support.fake_http import FakePool, FakeResponse
from tests.support.records import make_record

ADDRESS = "ada@example.com"
SENDER = "herald@example.org"
BASE_URL = "https://sendgrid.test"
chain = default_classifier.extended(classify_sendgrid_error)


def email_record(**overrides: Any) -> NotificationRecord:
    fields: dict[str, Any] = {
        "id": "n-email-1",
        "channel": Channel.EMAIL,
        "recipient": Recipient(email=ADDRESS),
        "subject": "Your code",
        "body": "123456",
    }
    return make_record(**(fields | overrides))


def provider(
    pool: FakePool, *, credentials: Any = None, clock: FakeClock | None = None, base_url: str = BASE_URL
) -> SendGridEmailProvider:
    return SendGridEmailProvider(
        sender=SENDER,
        credentials=credentials or (lambda: {"api_key": "SG.key-1"}),
        base_url=base_url,
        http=ProviderHttp("sendgrid", pool=pool),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


def refusal(status: int, errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> FakePool:
    body = json.dumps({"errors": errors or [{"message": "failed", "field": None, "help": None}]}).encode()
    return FakePool([FakeResponse(status, {"Content-Type": "application/json", **(headers or {})}, body)])


def send_error(pool: FakePool, **kwargs: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as failure:
        provider(pool, **kwargs).send(email_record(), timeout=3.0)
    return failure.value


def test_a_notification_is_posted_as_one_v3_mail_send_request() -> None:
    # Given: SendGrid accepts, as it does, with 202, no body and the message id in a header
    pool = FakePool([FakeResponse(202, {"X-Message-Id": "sg-msg-1"})])

    # When
    receipt = provider(pool, base_url=BASE_URL + "/").send(email_record(), timeout=2.5)

    # Then: one POST to the Mail Send endpoint, authorised by the key, bounded by the call's timeout
    assert receipt.provider == "sendgrid"
    assert receipt.message_id == "sg-msg-1"
    [request] = pool.requests
    assert request["method"] == "POST"
    assert request["url"] == "https://sendgrid.test/v3/mail/send"
    assert request["headers"]["Authorization"] == "Bearer SG.key-1"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["timeout"].total == 2.5
    assert request["redirect"] is False
    # and the body is the v3 message, the notification id in custom_args (echoed in every event) and a header
    assert json.loads(request["body"]) == {
        "personalizations": [{"to": [{"email": ADDRESS}], "custom_args": {"notification_id": "n-email-1"}}],
        "from": {"email": SENDER},
        "subject": "Your code",
        "content": [{"type": "text/plain", "value": "123456"}],
        "custom_args": {"notification_id": "n-email-1"},
        "headers": {"X-Notification-Id": "n-email-1"},
    }


def test_a_2xx_without_a_message_id_is_still_a_receipt() -> None:
    # Given: sandbox mode answers 200 and carries no X-Message-Id
    pool = FakePool([FakeResponse(200)])

    # When
    receipt = provider(pool).send(email_record(), timeout=1.0)

    # Then: the message was accepted; it must not be sent again
    assert receipt.message_id is None


def test_the_api_key_is_read_on_every_send_so_a_rotated_key_is_used() -> None:
    # Given: the secret changes between two sends
    keys = iter(["SG.old", "SG.new"])
    pool = FakePool([FakeResponse(202), FakeResponse(202)])
    sendgrid = provider(pool, credentials=lambda: {"api_key": next(keys)})

    # When
    sendgrid.send(email_record(), timeout=1.0)
    sendgrid.send(email_record(), timeout=1.0)

    # Then
    assert [r["headers"]["Authorization"] for r in pool.requests] == ["Bearer SG.old", "Bearer SG.new"]


def test_a_recipient_without_an_email_address_is_undeliverable_without_a_call() -> None:
    # Given
    pool = FakePool([])
    record = email_record(recipient=Recipient(phone="+447700900123"))

    # When
    with pytest.raises(UndeliverableError) as failure:
        provider(pool).send(record, timeout=1.0)

    # Then: the domain's rule judges it permanent
    assert pool.requests == []
    assert delivery_classifier(failure.value) is ErrorClass.PERMANENT


def unreadable_secret() -> dict[str, Any]:
    raise RuntimeError("secretsmanager down")


@pytest.mark.parametrize(
    ("credentials", "error_type"),
    [
        (lambda: {}, "ValidationError"),
        (lambda: {"api_key": "   "}, "ValidationError"),
        (lambda: {"api_key": "SG.a\r\nX-Injected: 1"}, "ValidationError"),
        (unreadable_secret, "RuntimeError"),
    ],
    ids=["missing", "blank", "header-breaking", "secret-unreadable"],
)
def test_unusable_credentials_are_a_transient_failure_without_a_call(credentials: Any, error_type: str) -> None:
    # Given
    pool = FakePool([])

    # When
    error = send_error(pool, credentials=credentials)

    # Then: an operator's to fix, so counted against the breaker and retried, never sent without a key
    assert pool.requests == []
    assert isinstance(error, SendGridError)
    assert error.status_code is None
    assert error.message == f"sendgrid credentials unavailable ({error_type})"
    assert chain(error) is ErrorClass.TRANSIENT


# Each status as SendGrid's v3 API documents it for Mail Send (API reference, "Errors" and "Responses").
STATUS_VERDICTS = [
    # 400 Bad Request: the request body is invalid (a malformed address, a missing field): about this message.
    pytest.param(400, ErrorClass.PERMANENT, id="400-bad-request"),
    # 413 Payload Too Large: "the JSON payload you have included in your request is too large": this message.
    pytest.param(413, ErrorClass.PERMANENT, id="413-payload-too-large"),
    # 401 Requires authentication: the API key is invalid, expired or revoked: our account's credentials.
    pytest.param(401, ErrorClass.TRANSIENT, id="401-requires-authentication"),
    # 403 Forbidden: "From address doesn't match Verified Sender Identity", or the account is temporarily
    # blocked after repeated bad requests: our account's configuration, not the recipient.
    pytest.param(403, ErrorClass.TRANSIENT, id="403-forbidden"),
    # 429 Too many requests / rate limit exceeded: our account's quota.
    pytest.param(429, ErrorClass.TRANSIENT, id="429-rate-limited"),
    # 500 Internal server error and 503 Service not available: SendGrid's service.
    pytest.param(500, ErrorClass.TRANSIENT, id="500-internal-server-error"),
    pytest.param(503, ErrorClass.TRANSIENT, id="503-service-unavailable"),
]


@pytest.mark.parametrize(("status", "verdict"), STATUS_VERDICTS)
def test_each_documented_status_gets_its_verdict_through_the_chain(status: int, verdict: ErrorClass) -> None:
    # Given
    pool = refusal(status)

    # When
    error = send_error(pool)

    # Then
    assert isinstance(error, SendGridError)
    assert error.status_code == status
    assert classify_sendgrid_error(error) is verdict  # SendGrid's rule, not the status rule by chance
    assert chain(error) is verdict


@pytest.mark.parametrize("status", [401, 403])
def test_account_failures_are_transient_only_thanks_to_sendgrids_rules(status: int) -> None:
    # Given: a refusal about our account, which the library's status rule alone would call permanent
    error = send_error(refusal(status))

    # When / Then: SendGrid's classifier overrides it, so the breaker counts it and email fails over
    assert default_classifier(error) is ErrorClass.PERMANENT
    assert classify_sendgrid_error(error) is ErrorClass.TRANSIENT


def test_an_undocumented_status_is_left_to_the_default_chain() -> None:
    # Given: 404, which Mail Send never answers when it is configured right
    error = send_error(refusal(404))

    # When / Then
    assert classify_sendgrid_error(error) is None
    assert chain(error) is ErrorClass.PERMANENT


def test_other_errors_are_not_sendgrids_to_judge() -> None:
    # Given / When / Then
    assert classify_sendgrid_error(DeliveryError("x", status_code=401)) is None
    assert classify_sendgrid_error(ProviderUnreachable("sendgrid unreachable (ReadTimeoutError)")) is None
    assert classify_sendgrid_error(ValueError("x")) is None


def test_the_error_names_the_field_but_never_repeats_sendgrids_message_which_may_quote_the_address() -> None:
    # Given
    errors = [{"message": f"Invalid email {ADDRESS}", "field": "personalizations.0.to.0.email", "help": None}]
    pool = refusal(400, errors)

    # When
    error = send_error(pool)

    # Then
    assert error.provider_code == "personalizations.0.to.0.email"
    assert error.message == "sendgrid answered HTTP 400 (field personalizations.0.to.0.email)"
    assert ADDRESS not in error.message


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b'{"errors": []}',
        json.dumps({"errors": [{"message": "x", "field": f"to {ADDRESS}"}]}).encode(),
        json.dumps({"errors": [{"message": "x", "field": "f" * 101}]}).encode(),
    ],
    ids=["html", "no-errors", "field-with-address", "long-field"],
)
def test_an_answer_without_a_plain_field_gives_no_provider_code(body: bytes) -> None:
    # Given
    pool = FakePool([FakeResponse(400, {}, body)])

    # When
    error = send_error(pool)

    # Then
    assert error.provider_code is None
    assert error.message == "sendgrid answered HTTP 400"


def test_a_429_waits_for_its_retry_after() -> None:
    # Given
    pool = refusal(429, headers={"Retry-After": "30", "X-RateLimit-Reset": str(int(FakeClock().now) + 5)})

    # When
    error = send_error(pool)

    # Then: Retry-After wins over the rate limit's reset
    assert error.retry_after == 30.0


def test_a_429_without_retry_after_waits_until_the_rate_limit_resets() -> None:
    # Given: SendGrid's X-RateLimit-Reset is the epoch second the limit resets
    clock = FakeClock()
    pool = refusal(429, headers={"X-RateLimit-Reset": str(int(clock.now) + 42)})

    # When
    error = send_error(pool, clock=clock)

    # Then
    assert error.retry_after == 42.0


@pytest.mark.parametrize(
    ("reset_offset", "expected"),
    [(-10, 0.0), (7200, 3600.0)],
    ids=["already-reset", "capped-at-an-hour"],
)
def test_the_rate_limit_wait_is_never_negative_nor_longer_than_an_hour(reset_offset: int, expected: float) -> None:
    # Given
    clock = FakeClock()
    pool = refusal(429, headers={"X-RateLimit-Reset": str(int(clock.now) + reset_offset)})

    # When / Then
    assert send_error(pool, clock=clock).retry_after == expected


def test_an_http_date_retry_after_is_read_against_the_injected_clock() -> None:
    # Given
    clock = FakeClock()
    pool = refusal(503, headers={"Retry-After": formatdate(clock.now + 120, usegmt=True)})

    # When / Then
    assert send_error(pool, clock=clock).retry_after == 120.0


@pytest.mark.parametrize("headers", [{}, {"X-RateLimit-Reset": "soon"}, {"X-RateLimit-Reset": "nan"}])
def test_no_wait_when_sendgrid_says_nothing_readable(headers: dict[str, str]) -> None:
    # Given / When / Then
    assert send_error(refusal(429, headers=headers)).retry_after is None


def test_the_rate_limit_reset_only_counts_for_a_429() -> None:
    # Given: a 500 that happens to carry the rate-limit headers SendGrid sends on every answer
    clock = FakeClock()
    pool = refusal(500, headers={"X-RateLimit-Reset": str(int(clock.now) + 42)})

    # When / Then
    assert send_error(pool, clock=clock).retry_after is None


def test_no_answer_is_provider_unreachable_and_transient() -> None:
    # Given: the connection cannot be opened
    pool = FakePool([NewConnectionError(HTTPConnection("sendgrid.test"), "refused")])

    # When
    error = send_error(pool)

    # Then
    assert isinstance(error, ProviderUnreachable)
    assert error.message == "sendgrid unreachable (NewConnectionError)"
    assert chain(error) is ErrorClass.TRANSIENT


def test_its_breaker_is_the_providers() -> None:
    # Given / When / Then
    sendgrid = provider(FakePool([]))
    assert (sendgrid.name, sendgrid.channel) == ("sendgrid", Channel.EMAIL)
    assert sendgrid.breaker_name(email_record()) == "provider:sendgrid"
