"""The Twilio adapter over a fake connection pool: the Messages request it sends, the receipt it reads, and
how each of Twilio's documented error codes is judged by the delivery chain."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import urllib3
from urllib3.exceptions import ReadTimeoutError

from notifications.errors import DeliveryError, UndeliverableError
from notifications.failures import delivery_classifier
from notifications.models import Channel, NotificationRecord, Recipient
from notifications.providers.http import ProviderHttp, ProviderUnreachable
from notifications.providers.twilio import TwilioError, TwilioSmsProvider, classify_twilio_error
from resilience import ErrorClass, default_classifier
from tests.support.clock import FakeClock
from tests.support.fake_http import FakePool, FakeResponse
from tests.support.records import make_record

PHONE = "+447700900123"
FROM = "+15005550006"
ACCOUNT = "AC" + "0" * 32
TOKEN = "token-1"
BASE_URL = "https://twilio.test"
CALLBACK = "https://api.example.com/prod/provider-events/twilio"
SID = "SM" + "a" * 32
chain = default_classifier.extended(classify_twilio_error)


def created(sid: str = SID) -> FakeResponse:
    """Twilio's 201 Created, with the Message resource as JSON."""
    body = {"sid": sid, "status": "queued", "to": PHONE, "from": FROM, "account_sid": ACCOUNT, "error_code": None}
    return FakeResponse(201, {"Content-Type": "application/json"}, json.dumps(body).encode())


def refused(status: int, code: int | None, headers: dict[str, str] | None = None) -> FakePool:
    """Twilio's error answer: {"code", "message", "more_info", "status"}; its message quotes the number."""
    body: dict[str, Any] = {"message": f"The 'To' number {PHONE} is not a valid phone number.", "status": status}
    if code is not None:
        body |= {"code": code, "more_info": f"https://www.twilio.com/docs/errors/{code}"}
    return FakePool(
        [FakeResponse(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())]
    )


def sms_record(**overrides: Any) -> NotificationRecord:
    fields: dict[str, Any] = {
        "id": "n-sms-1",
        "channel": Channel.SMS,
        "recipient": Recipient(phone=PHONE),
        "body": "Your code is 123456",
    }
    return make_record(**(fields | overrides))


def provider(
    pool: FakePool,
    *,
    sender: str = FROM,
    credentials: Any = None,
    status_callback_url: str | None = CALLBACK,
    clock: FakeClock | None = None,
) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        sender=sender,
        credentials=credentials or (lambda: {"account_sid": ACCOUNT, "auth_token": TOKEN}),
        base_url=BASE_URL + "/",
        status_callback_url=status_callback_url,
        http=ProviderHttp("twilio", pool=pool),  # type: ignore[arg-type]
        clock=clock or FakeClock(),
    )


def form(request: dict[str, Any]) -> dict[str, str]:
    return dict(parse_qsl(request["body"].decode(), strict_parsing=True))


def send_error(pool: FakePool, **kwargs: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as failure:
        provider(pool, **kwargs).send(sms_record(), timeout=3.0)
    return failure.value


def test_a_notification_is_posted_as_one_message_with_basic_auth() -> None:
    # Given
    pool = FakePool([created()])

    # When
    receipt = provider(pool).send(sms_record(), timeout=2.5)

    # Then: the receipt carries the message SID Twilio's callbacks will name
    assert receipt.provider == "twilio"
    assert receipt.message_id == SID
    [request] = pool.requests
    assert request["method"] == "POST"
    assert request["url"] == f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["timeout"].total == 2.5
    assert request["redirect"] is False
    # and the form is the documented one, the status callback naming the notification
    assert form(request) == {
        "To": PHONE,
        "From": FROM,
        "Body": "Your code is 123456",
        "StatusCallback": f"{CALLBACK}?notification_id=n-sms-1",
    }


def test_a_messaging_service_sender_is_sent_as_messaging_service_sid() -> None:
    # Given
    pool = FakePool([created()])
    service = "MG" + "b" * 32

    # When
    provider(pool, sender=service).send(sms_record(), timeout=1.0)

    # Then
    fields = form(pool.requests[0])
    assert fields["MessagingServiceSid"] == service
    assert "From" not in fields


def test_the_notification_id_is_url_encoded_into_the_status_callback() -> None:
    # Given: an id with characters that mean something in a query
    pool = FakePool([created()])
    record = sms_record(id="n 1&x=2/ü")

    # When
    provider(pool).send(record, timeout=1.0)

    # Then: Twilio's callback URL gives the id back exactly, and nothing else
    callback = urlsplit(form(pool.requests[0])["StatusCallback"])
    assert callback._replace(query="").geturl() == CALLBACK
    assert parse_qs(callback.query, strict_parsing=True) == {"notification_id": ["n 1&x=2/ü"]}


def test_a_callback_url_with_a_query_gets_the_id_appended() -> None:
    # Given / When
    twilio = provider(FakePool([]), status_callback_url=f"{CALLBACK}?stage=prod")

    # Then
    assert twilio.status_callback(sms_record()) == f"{CALLBACK}?stage=prod&notification_id=n-sms-1"


def test_no_status_callback_when_none_is_configured() -> None:
    # Given
    pool = FakePool([created()])

    # When
    provider(pool, status_callback_url=None).send(sms_record(), timeout=1.0)

    # Then
    assert "StatusCallback" not in form(pool.requests[0])


def test_the_credentials_are_read_on_every_send_so_a_rotated_token_is_used() -> None:
    # Given
    tokens = iter(["old", "new"])
    pool = FakePool([created(), created()])
    twilio = provider(pool, credentials=lambda: {"account_sid": ACCOUNT, "auth_token": next(tokens)})

    # When
    twilio.send(sms_record(), timeout=1.0)
    twilio.send(sms_record(), timeout=1.0)

    # Then
    sent = [base64.b64decode(r["headers"]["Authorization"].removeprefix("Basic ")).decode() for r in pool.requests]
    assert sent == [f"{ACCOUNT}:old", f"{ACCOUNT}:new"]


def test_a_2xx_without_a_sid_is_still_a_receipt() -> None:
    # Given: an answer a proxy mangled after Twilio took the message
    pool = FakePool([FakeResponse(201, {}, b"<html>created</html>")])

    # When
    receipt = provider(pool).send(sms_record(), timeout=1.0)

    # Then: sent, and never sent again
    assert receipt.message_id is None


def test_a_recipient_without_a_phone_number_is_undeliverable_without_a_call() -> None:
    # Given
    pool = FakePool([])
    record = sms_record(recipient=Recipient(email="ada@example.com"))

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
        (lambda: {"account_sid": ACCOUNT}, "ValidationError"),
        (lambda: {"account_sid": ACCOUNT, "auth_token": " "}, "ValidationError"),
        (lambda: {"account_sid": "AC/../x", "auth_token": TOKEN}, "ValidationError"),
        (unreadable_secret, "RuntimeError"),
    ],
    ids=["missing-token", "blank-token", "sid-not-a-path-segment", "secret-unreadable"],
)
def test_unusable_credentials_are_a_transient_failure_without_a_call(credentials: Any, error_type: str) -> None:
    # Given
    pool = FakePool([])

    # When
    error = send_error(pool, credentials=credentials)

    # Then: an operator's to fix, so counted against the breaker and retried
    assert pool.requests == []
    assert isinstance(error, TwilioError)
    assert error.status_code is None
    assert error.message == f"twilio credentials unavailable ({error_type})"
    assert chain(error) is ErrorClass.TRANSIENT


# Each code with the status Twilio answers it with and its meaning in Twilio's Error and Warning Dictionary.
CODE_VERDICTS = [
    # About this recipient or this message: permanent.
    pytest.param(400, 21211, ErrorClass.PERMANENT, id="21211-invalid-to-phone-number"),
    pytest.param(400, 21214, ErrorClass.PERMANENT, id="21214-to-phone-number-cannot-be-reached"),
    pytest.param(400, 21217, ErrorClass.PERMANENT, id="21217-phone-number-does-not-appear-to-be-valid"),
    # "Permission to send an SMS has not been enabled for the region indicated by the 'To' number": a region
    # the operator's Geo Permissions leave off (an anti-fraud policy) must not trip the breaker nor fail over.
    pytest.param(400, 21408, ErrorClass.PERMANENT, id="21408-region-not-enabled"),
    pytest.param(400, 21602, ErrorClass.PERMANENT, id="21602-message-body-is-required"),
    pytest.param(400, 21610, ErrorClass.PERMANENT, id="21610-attempt-to-send-to-unsubscribed-recipient"),
    pytest.param(400, 21612, ErrorClass.PERMANENT, id="21612-to-not-reachable-from-this-sender"),
    pytest.param(400, 21614, ErrorClass.PERMANENT, id="21614-to-is-not-a-valid-mobile-number"),
    pytest.param(400, 21617, ErrorClass.PERMANENT, id="21617-body-exceeds-1600-characters"),
    # About our account, its configuration or throughput: transient.
    pytest.param(401, 20003, ErrorClass.TRANSIENT, id="20003-authentication-error"),
    pytest.param(404, 20404, ErrorClass.TRANSIENT, id="20404-account-not-found"),
    pytest.param(429, 20429, ErrorClass.TRANSIENT, id="20429-too-many-requests"),
    pytest.param(400, 21212, ErrorClass.TRANSIENT, id="21212-invalid-from-phone-number"),
    pytest.param(400, 21606, ErrorClass.TRANSIENT, id="21606-from-not-a-valid-twilio-number-for-this-account"),
    pytest.param(400, 21608, ErrorClass.TRANSIENT, id="21608-trial-account-to-not-verified"),
    pytest.param(400, 21611, ErrorClass.TRANSIENT, id="21611-from-exceeded-max-queued-messages"),
    pytest.param(400, 30001, ErrorClass.TRANSIENT, id="30001-queue-overflow"),
]


@pytest.mark.parametrize(("status", "code", "verdict"), CODE_VERDICTS)
def test_each_documented_code_gets_its_verdict_through_the_chain(status: int, code: int, verdict: ErrorClass) -> None:
    # Given
    pool = refused(status, code)

    # When
    error = send_error(pool)

    # Then
    assert isinstance(error, TwilioError)
    assert (error.status_code, error.provider_code) == (status, str(code))
    assert classify_twilio_error(error) is verdict  # Twilio's rule, not the status rule by chance
    assert chain(error) is verdict


@pytest.mark.parametrize("code", [21606, 21608, 21212])
def test_account_codes_are_transient_only_thanks_to_twilios_rules(code: int) -> None:
    # Given: a 400 about our account, which the library's status rule alone would call permanent
    error = send_error(refused(400, code))

    # When / Then: Twilio's classifier overrides it, so the breaker counts it and SMS fails over
    assert default_classifier(error) is ErrorClass.PERMANENT
    assert classify_twilio_error(error) is ErrorClass.TRANSIENT


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        # 401 Unauthorized: Twilio answers it only for credentials it does not accept: our account.
        pytest.param(401, None, ErrorClass.TRANSIENT, id="401-without-a-code"),
        # 429 Too Many Requests and 5xx: Twilio's throttling and service, whatever the code says.
        pytest.param(429, None, ErrorClass.TRANSIENT, id="429-without-a-code"),
        pytest.param(500, 20500, ErrorClass.TRANSIENT, id="500-internal-server-error"),
        pytest.param(503, 21211, ErrorClass.TRANSIENT, id="503-even-with-a-recipient-code"),
    ],
)
def test_statuses_about_twilio_or_our_credentials_are_transient_whatever_the_code(
    status: int, code: int | None, verdict: ErrorClass
) -> None:
    # Given / When
    error = send_error(refused(status, code))

    # Then
    assert classify_twilio_error(error) is verdict


@pytest.mark.parametrize("code", [21999, None])
def test_another_4xx_is_left_to_the_default_chain(code: int | None) -> None:
    # Given: a code this adapter does not know, or none
    error = send_error(refused(400, code))

    # When / Then: the library's status rule decides: a 4xx is permanent
    assert classify_twilio_error(error) is None
    assert chain(error) is ErrorClass.PERMANENT


def test_other_errors_are_not_twilios_to_judge() -> None:
    # Given / When / Then
    assert classify_twilio_error(DeliveryError("x", status_code=400, provider_code="21606")) is None
    assert classify_twilio_error(ProviderUnreachable("twilio unreachable (ReadTimeoutError)")) is None
    assert classify_twilio_error(ValueError("x")) is None


def test_the_error_names_the_code_but_never_repeats_twilios_message_which_quotes_the_number() -> None:
    # Given
    pool = refused(400, 21211)

    # When
    error = send_error(pool)

    # Then
    assert error.message == "twilio answered HTTP 400 (code 21211)"
    assert PHONE not in error.message
    assert PHONE.removeprefix("+") not in error.message


@pytest.mark.parametrize(
    "body",
    [b"<html>502 Bad Gateway</html>", b'{"code": "21211; drop"}', b'{"code": true}', b"[21211]"],
    ids=["html", "code-not-digits", "code-bool", "not-an-object"],
)
def test_an_answer_without_a_readable_code_gives_no_provider_code(body: bytes) -> None:
    # Given
    pool = FakePool([FakeResponse(400, {}, body)])

    # When
    error = send_error(pool)

    # Then
    assert error.provider_code is None
    assert error.message == "twilio answered HTTP 400"


def test_a_code_sent_as_text_is_read() -> None:
    # Given / When
    error = send_error(FakePool([FakeResponse(400, {}, b'{"code": "21610", "status": 400}')]))

    # Then
    assert error.provider_code == "21610"
    assert chain(error) is ErrorClass.PERMANENT


def test_a_429_waits_for_its_retry_after() -> None:
    # Given
    pool = refused(429, 20429, headers={"Retry-After": "17"})

    # When
    error = send_error(pool)

    # Then
    assert error.retry_after == 17.0
    assert chain(error) is ErrorClass.TRANSIENT


def test_no_answer_is_provider_unreachable_and_transient() -> None:
    # Given: Twilio does not answer within the timeout
    pool = FakePool([ReadTimeoutError(urllib3.HTTPConnectionPool("twilio.test"), "/", "read timed out")])

    # When
    error = send_error(pool)

    # Then
    assert isinstance(error, ProviderUnreachable)
    assert error.message == "twilio unreachable (ReadTimeoutError)"
    assert chain(error) is ErrorClass.TRANSIENT


def test_its_breaker_is_the_providers() -> None:
    # Given / When / Then
    twilio = provider(FakePool([]))
    assert (twilio.name, twilio.channel) == ("twilio", Channel.SMS)
    assert twilio.breaker_name(sms_record()) == "provider:twilio"
