"""The webhook provider against real loopback servers: how each answer is classified."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from local.moto_server import free_port
from notifications.errors import DeliveryError
from notifications.models import NotificationRecord, Recipient
from notifications.providers.webhook import WebhookProvider
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def record(url: str) -> NotificationRecord:
    return make_record(recipient=Recipient(webhook_url=url))


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
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/hook"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def provider(timeout: float = 2.0) -> WebhookProvider:
    return WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=timeout)


@pytest.mark.parametrize(
    ("status", "headers", "permanent", "retry_after"),
    [
        (500, {}, False, None),
        (503, {"Retry-After": "7"}, False, 7.0),
        (429, {"Retry-After": "30"}, False, 30.0),
        (503, {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}, False, 3600.0),  # an HTTP date, capped at 1 h
        (408, {}, False, None),
        (400, {}, True, None),
        (410, {}, True, None),
        (301, {"Location": "http://169.254.169.254/"}, True, None),
    ],
)
def test_answers_are_classified(
    answering: Any, status: int, headers: dict[str, str], permanent: bool, retry_after: float | None
) -> None:
    # Given
    url = answering(status, headers)

    # When
    with pytest.raises(DeliveryError) as failure:
        provider().send(record(url))

    # Then: redirects are never followed (they could lead anywhere) and count as refusals
    assert failure.value.permanent is permanent
    assert failure.value.retry_after_seconds == retry_after


def test_a_2xx_answer_is_success(answering: Any) -> None:
    # When
    receipt = provider().send(record(answering(204)))

    # Then
    assert receipt.provider == "webhook"


def test_a_refused_connection_is_transient() -> None:
    # When
    with pytest.raises(DeliveryError) as failure:
        provider().send(record(f"http://127.0.0.1:{free_port()}/hook"))

    # Then
    assert failure.value.permanent is False


def test_a_target_that_never_answers_times_out_as_transient() -> None:
    # Given: a socket that accepts connections and never replies
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        # When
        with pytest.raises(DeliveryError) as failure:
            provider(timeout=0.3).send(record(f"http://127.0.0.1:{silent.getsockname()[1]}/hook"))
    finally:
        silent.close()

    # Then
    assert failure.value.permanent is False
    assert "TimeoutError" in failure.value.message or "timeout" in failure.value.message.lower()


def test_without_the_local_switch_a_loopback_target_is_refused_before_any_connection(answering: Any) -> None:
    # Given
    url = answering(200)

    # When / Then
    with pytest.raises(DeliveryError, match="private") as failure:
        WebhookProvider(SECRET, allow_private_targets=False).send(record(url.replace("http://", "https://")))
    assert failure.value.permanent is True
