"""SendGrid and Twilio adapters over real HTTP: a `ThreadingHTTPServer` on loopback answering as the real APIs
do (success, error bodies, 429 with Retry-After), one that never answers, and a port nobody listens on."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import pytest

from notifications.errors import DeliveryError
from notifications.models import Channel, NotificationRecord, Recipient
from notifications.providers.http import ProviderUnreachable
from notifications.providers.sendgrid import SendGridEmailProvider, SendGridError, classify_sendgrid_error
from notifications.providers.twilio import TwilioError, TwilioSmsProvider, classify_twilio_error
from resilience import ErrorClass, default_classifier
from tests.support.clock import FakeClock
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Callable

    from notifications.providers import Provider

LOOPBACK = "127.0.0.1"
API_KEY = "SG.integration-key"
ACCOUNT = "AC" + "1" * 32
TOKEN = "integration-token"
SID = "SM" + "c" * 32
PHONE = "+447700900123"
ADDRESS = "ada@example.com"
CALLBACK = "https://api.example.com/prod/provider-events/twilio"
TIMEOUT_SECONDS = 0.5
SLACK_SECONDS = 0.5
chain = default_classifier.extended(classify_sendgrid_error, classify_twilio_error)


@dataclass(frozen=True)
class Received:
    """One request as the server read it (header names in lower case)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


HANG: Reply | None = None
"""What a script answers to never answer: the handler waits until the server stops."""


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # `server_close` joins every handler thread: nothing outlives the test


class ApiServer:
    """A loopback HTTP server that answers each POST with `script(request)` and records what it received."""

    def __init__(self, script: Callable[[Received], Reply | None]) -> None:
        self.received: list[Received] = []
        self.stopping = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                request = Received("POST", self.path, headers, body)
                api.received.append(request)
                reply = script(request)
                if reply is None:
                    api.stopping.wait(10)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return None

        self._httpd = _Server((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}"

    def __enter__(self) -> ApiServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(payload).encode())


# ---------------------------------------------------------------- SendGrid, as its v3 Mail Send answers


def sendgrid_errors(message: str, field_name: str | None = None) -> dict[str, Any]:
    return {"errors": [{"message": message, "field": field_name, "help": None}]}


def sendgrid_api(request: Received) -> Reply:
    """SendGrid's Mail Send: 401 for another key, 400 for a message without content, else 202 Accepted."""
    if request.path != "/v3/mail/send":
        return json_reply(404, sendgrid_errors("Not found"))
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return json_reply(401, sendgrid_errors("The provided authorization grant is invalid, expired, or revoked"))
    message = json.loads(request.body)
    if not message["content"][0]["value"].strip():
        return json_reply(
            400, sendgrid_errors("The content value must be a string at least one character", "content.0.value")
        )
    return Reply(202, {"X-Message-Id": "sg-integration-1"})


def sendgrid(base_url: str, *, api_key: str = API_KEY, clock: FakeClock | None = None) -> SendGridEmailProvider:
    return SendGridEmailProvider(
        sender="herald@example.org",
        credentials=lambda: {"api_key": api_key},
        base_url=base_url,
        clock=clock or FakeClock(),
    )


def email(body: str = "Your code is 123456") -> NotificationRecord:
    return make_record(
        id="n-email-it", channel=Channel.EMAIL, recipient=Recipient(email=ADDRESS), subject="Code", body=body
    )


def test_sendgrid_accepts_a_message_and_answers_its_id() -> None:
    # Given
    with ApiServer(sendgrid_api) as server:
        # When
        receipt = sendgrid(server.base_url).send(email(), timeout=5.0)

    # Then
    assert (receipt.provider, receipt.message_id) == ("sendgrid", "sg-integration-1")
    [request] = server.received
    assert request.headers["content-type"] == "application/json"
    message = json.loads(request.body)
    assert message["personalizations"] == [
        {"to": [{"email": ADDRESS}], "custom_args": {"notification_id": "n-email-it"}}
    ]
    assert message["custom_args"] == {"notification_id": "n-email-it"}


def test_sendgrid_refusing_our_key_is_transient() -> None:
    # Given: a key SendGrid does not accept (revoked, rotated away)
    with ApiServer(sendgrid_api) as server:
        # When
        with pytest.raises(SendGridError) as failure:
            sendgrid(server.base_url, api_key="SG.revoked").send(email(), timeout=5.0)

    # Then: about our account: the breaker counts it, email fails over
    assert failure.value.status_code == 401
    assert chain(failure.value) is ErrorClass.TRANSIENT


def test_sendgrid_refusing_the_message_is_permanent() -> None:
    # Given
    with ApiServer(sendgrid_api) as server:
        # When
        with pytest.raises(SendGridError) as failure:
            sendgrid(server.base_url).send(email(body=" "), timeout=5.0)

    # Then
    assert (failure.value.status_code, failure.value.provider_code) == (400, "content.0.value")
    assert chain(failure.value) is ErrorClass.PERMANENT


def test_sendgrid_rate_limiting_carries_its_wait() -> None:
    # Given: SendGrid's 429, with its rate-limit headers and no Retry-After
    clock = FakeClock()
    headers = {"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now) + 25)}
    with ApiServer(lambda _: json_reply(429, sendgrid_errors("too many requests"), headers)) as server:
        # When
        with pytest.raises(SendGridError) as failure:
            sendgrid(server.base_url, clock=clock).send(email(), timeout=5.0)

    # Then
    assert failure.value.retry_after == 25.0
    assert chain(failure.value) is ErrorClass.TRANSIENT


# ---------------------------------------------------------------- Twilio, as its Messages API answers


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def twilio_api(request: Received) -> Reply:
    """Twilio's Messages resource: 20003 for other credentials, 21211 for a number it cannot parse, 21610
    for a recipient who replied STOP, else 201 Created with the Message."""
    if request.path != f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json":
        return json_reply(404, twilio_error(20404, "The requested resource was not found", 404))
    expected = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    if request.headers.get("authorization") != expected:
        return json_reply(401, twilio_error(20003, "Authenticate", 401))
    fields = dict(parse_qsl(request.body.decode(), strict_parsing=True))
    if fields["To"] == "+15005550001":
        return json_reply(400, twilio_error(21211, f"The 'To' number {fields['To']} is not a valid phone number.", 400))
    if fields["To"] == "+15005550004":
        return json_reply(400, twilio_error(21610, "Attempt to send to unsubscribed recipient", 400))
    message = {"sid": SID, "status": "queued", "to": fields["To"], "from": fields["From"], "account_sid": ACCOUNT}
    return json_reply(201, message | {"body": fields["Body"], "error_code": None})


def twilio(base_url: str, *, token: str = TOKEN) -> TwilioSmsProvider:
    return TwilioSmsProvider(
        sender="+15005550006",
        credentials=lambda: {"account_sid": ACCOUNT, "auth_token": token},
        base_url=base_url,
        status_callback_url=CALLBACK,
        clock=FakeClock(),
    )


def sms(phone: str = PHONE) -> NotificationRecord:
    return make_record(id="n-sms-it", channel=Channel.SMS, recipient=Recipient(phone=phone), body="Your code")


def test_twilio_creates_a_message_and_answers_its_sid() -> None:
    # Given
    with ApiServer(twilio_api) as server:
        # When
        receipt = twilio(server.base_url).send(sms(), timeout=5.0)

    # Then
    assert (receipt.provider, receipt.message_id) == ("twilio", SID)
    [request] = server.received
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(request.body.decode())) == {
        "To": PHONE,
        "From": "+15005550006",
        "Body": "Your code",
        "StatusCallback": f"{CALLBACK}?notification_id=n-sms-it",
    }


@pytest.mark.parametrize(
    ("phone", "code"),
    [("+15005550001", "21211"), ("+15005550004", "21610")],
    ids=["invalid-number", "unsubscribed"],
)
def test_twilio_refusing_the_recipient_is_permanent(phone: str, code: str) -> None:
    # Given
    with ApiServer(twilio_api) as server:
        # When
        with pytest.raises(TwilioError) as failure:
            twilio(server.base_url).send(sms(phone), timeout=5.0)

    # Then: the error names the code, never the number Twilio quoted
    assert (failure.value.status_code, failure.value.provider_code) == (400, code)
    assert phone not in failure.value.message
    assert chain(failure.value) is ErrorClass.PERMANENT


def test_twilio_refusing_our_token_is_transient() -> None:
    # Given
    with ApiServer(twilio_api) as server:
        # When
        with pytest.raises(TwilioError) as failure:
            twilio(server.base_url, token="rotated-away").send(sms(), timeout=5.0)

    # Then
    assert (failure.value.status_code, failure.value.provider_code) == (401, "20003")
    assert chain(failure.value) is ErrorClass.TRANSIENT


def test_twilio_rate_limiting_carries_its_retry_after() -> None:
    # Given
    reply = json_reply(429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "12"})
    with ApiServer(lambda _: reply) as server:
        # When
        with pytest.raises(TwilioError) as failure:
            twilio(server.base_url).send(sms(), timeout=5.0)

    # Then
    assert (failure.value.retry_after, failure.value.provider_code) == (12.0, "20429")
    assert chain(failure.value) is ErrorClass.TRANSIENT


# ---------------------------------------------------------------- no answer


ADAPTERS: dict[str, tuple[Callable[[str], Provider], Callable[[], NotificationRecord]]] = {
    "sendgrid": (sendgrid, email),
    "twilio": (twilio, sms),
}


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_provider_that_never_answers_is_unreachable_within_the_timeout(name: str) -> None:
    # Given: a server that reads the request and never answers
    build, record = ADAPTERS[name]
    with ApiServer(lambda _: HANG) as server:
        adapter = build(server.base_url)

        # When
        started = time.monotonic()
        with pytest.raises(ProviderUnreachable) as failure:
            adapter.send(record(), timeout=TIMEOUT_SECONDS)
        elapsed = time.monotonic() - started

    # Then: the call ended at its timeout, not the server's pleasure; the server was stopped on the way out
    assert len(server.received) == 1
    assert TIMEOUT_SECONDS * 0.9 <= elapsed < TIMEOUT_SECONDS + SLACK_SECONDS
    assert failure.value.message == f"{name} unreachable (ReadTimeoutError)"
    assert chain(failure.value) is ErrorClass.TRANSIENT


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_a_refused_connection_is_unreachable_at_once(name: str, closed_port: int) -> None:
    # Given
    build, record = ADAPTERS[name]
    adapter = build(f"http://{LOOPBACK}:{closed_port}")

    # When
    started = time.monotonic()
    with pytest.raises(ProviderUnreachable) as failure:
        adapter.send(record(), timeout=5.0)

    # Then: no status, so transient: the breaker counts it and delivery fails over
    assert time.monotonic() - started < 1.0
    assert isinstance(failure.value, DeliveryError)
    assert failure.value.status_code is None
    assert failure.value.message.startswith(f"{name} unreachable (")
    assert chain(failure.value) is ErrorClass.TRANSIENT
