"""The webhook provider against real loopback servers: what it reports for each answer, and the verdict the
one classifier gives it (the provider describes; `delivery_classifier` judges)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from local.aws.moto_server import free_port
from notifications.errors import DeliveryError, TargetRefused, UndeliverableError
from notifications.failures import delivery_classifier
from notifications.models import Channel, NotificationRecord, Recipient
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def record(url: str) -> NotificationRecord:
    return make_record(recipient=Recipient(webhook_url=url))


def unchecked_record(url: str) -> NotificationRecord:
    """A record whose URL skipped today's validation at the edge (written before it, or by a bug)."""
    return make_record(recipient=Recipient.model_construct(webhook_url=url))


@pytest.fixture
def answering() -> Iterator[Any]:
    """Start a server answering a fixed status and headers; returns its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(status: int, headers: dict[str, str] | None = None) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length", "0")))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hook"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def provider() -> Iterator[WebhookProvider]:
    webhooks = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=2.0)
    yield webhooks
    webhooks.close()


@pytest.mark.parametrize(
    ("answer", "verdict", "retry_after"),
    [
        ((500, {}), ErrorClass.TRANSIENT, None),
        ((503, {"Retry-After": "7"}), ErrorClass.TRANSIENT, 7.0),
        ((429, {"Retry-After": "30"}), ErrorClass.TRANSIENT, 30.0),
        ((503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}), ErrorClass.TRANSIENT, 3600.0),  # a date, capped 1 h
        ((408, {}), ErrorClass.TRANSIENT, None),
        ((425, {}), ErrorClass.TRANSIENT, None),
        ((400, {}), ErrorClass.PERMANENT, None),
        ((409, {}), ErrorClass.PERMANENT, None),
        ((410, {"Retry-After": "5"}), ErrorClass.PERMANENT, 5.0),  # described as said; judged permanent anyway
    ],
)
def test_each_error_answer_is_described_and_classified(
    answering: Any,
    provider: WebhookProvider,
    answer: tuple[int, dict[str, str]],
    verdict: ErrorClass,
    retry_after: float | None,
) -> None:
    # Given
    status, headers = answer
    url = answering(status, headers)

    # When
    with pytest.raises(DeliveryError) as failure:
        provider.send(record(url), timeout=5.0)

    # Then: the provider reports the status and Retry-After; the classifier alone decides
    assert failure.value.status_code == status
    assert failure.value.retry_after == retry_after
    assert delivery_classifier(failure.value) is verdict


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_and_is_permanent(answering: Any, provider: WebhookProvider, status: int) -> None:
    # Given: a receiver redirecting to the instance metadata service
    url = answering(status, {"Location": "http://169.254.169.254/latest/meta-data/"})

    # When
    with pytest.raises(UndeliverableError, match="redirects are not followed") as failure:
        provider.send(record(url), timeout=5.0)

    # Then
    assert failure.value.status_code == status
    assert delivery_classifier(failure.value) is ErrorClass.PERMANENT


def test_a_2xx_answer_is_success(answering: Any, provider: WebhookProvider) -> None:
    # When
    receipt = provider.send(record(answering(204)), timeout=5.0)

    # Then
    assert receipt.provider == "webhook"
    assert provider.channel is Channel.WEBHOOK


def test_a_refused_connection_is_transient(provider: WebhookProvider) -> None:
    # When
    with pytest.raises(DeliveryError) as failure:
        provider.send(record(f"http://127.0.0.1:{free_port()}/hook"), timeout=5.0)

    # Then: coarse for the client (no exception class, no address); the cause stays for the log
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert isinstance(failure.value.__cause__, ConnectionRefusedError)
    assert failure.value.status_code is None
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT


def test_a_target_that_never_answers_times_out_as_transient() -> None:
    # Given: a socket that accepts connections and never replies
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    webhooks = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=0.3)
    try:
        # When
        with pytest.raises(DeliveryError) as failure:
            webhooks.send(record(f"http://127.0.0.1:{silent.getsockname()[1]}/hook"), timeout=5.0)
    finally:
        webhooks.close()
        silent.close()

    # Then
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert isinstance(failure.value.__cause__, TimeoutError)
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT


def test_without_the_local_switch_a_loopback_target_is_refused_before_any_connection(answering: Any) -> None:
    # Given
    url = answering(200)

    # When / Then: refused in the same words whatever range it is in
    with pytest.raises(TargetRefused) as failure:
        WebhookProvider(SECRET, allow_private_targets=False).send(
            record(url.replace("http://", "https://")), timeout=5.0
        )
    assert failure.value.message == "webhook target refused"
    assert delivery_classifier(failure.value) is ErrorClass.PERMANENT


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://h:99999/", "port outside 1-65535"),
        ("https://h:0/", "port outside 1-65535"),
        (f"https://{'a' * 64}.example.com/", "invalid host name"),
        ("https://exa mple.com/", "invalid host name"),
        ("https:///no-host", "invalid host name"),
        ("ftp://hooks.example.com/", "must be http or https"),
    ],
)
def test_a_url_that_can_never_be_called_is_undeliverable_not_a_raw_error(
    provider: WebhookProvider, url: str, message: str
) -> None:
    # When: the resolver must never be reached, so a real one is fine
    with pytest.raises(UndeliverableError, match=message) as failure:
        provider.send(unchecked_record(url), timeout=5.0)

    # Then
    assert delivery_classifier(failure.value) is ErrorClass.PERMANENT
    assert provider.breaker_name(unchecked_record(url)) == "webhook:invalid"


def test_a_recipient_without_a_webhook_url_is_undeliverable(provider: WebhookProvider) -> None:
    # When
    with pytest.raises(UndeliverableError, match="no webhook_url") as failure:
        provider.send(make_record(recipient=Recipient(email="a@example.com")), timeout=5.0)

    # Then
    assert delivery_classifier(failure.value) is ErrorClass.PERMANENT
