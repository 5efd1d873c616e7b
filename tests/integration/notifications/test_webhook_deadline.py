"""One deadline bounds the whole webhook call, not each socket read: a receiver that drips its answer a byte
every 0.4 s (each read well within any per-read timeout) cannot hold `send` past it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from notifications.errors import DeliveryError
from notifications.failures import delivery_classifier
from notifications.models import NotificationRecord, Recipient
from notifications.providers.pinned_http import ConnectionPool
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support.records import make_record
from tests.support.scripted_server import ScriptedServer, read_request

if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Callable

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="
DRIP_SECONDS = 0.4
DRIP_BYTES = 10  # 4 s of dripping at most, so a regression fails the test instead of hanging the suite
SLACK_SECONDS = 0.5


def record(url: str) -> NotificationRecord:
    return make_record(recipient=Recipient(webhook_url=url))


def dripping(head: bytes) -> Callable[[socket.socket, threading.Event], None]:
    """A receiver script: read the request, send `head` at once, then one byte every 0.4 s until stopped."""

    def script(sock: socket.socket, stopping: threading.Event) -> None:
        read_request(sock.makefile("rb"))
        sock.sendall(head)
        for _ in range(DRIP_BYTES):
            if stopping.wait(DRIP_SECONDS):
                return
            sock.sendall(b"a")

    return script


DRIPS = {
    "status line": b"HTTP/1.",
    "headers": b"HTTP/1.1 200 OK\r\nx-drip: ",
    "body": b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n",
}


@pytest.mark.parametrize("phase", list(DRIPS))
def test_a_dripping_receiver_cannot_hold_send_past_its_deadline(phase: str) -> None:
    # Given: a provider allowing 10 s, given 1 s by the sender
    pool = ConnectionPool()
    provider = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=10.0, pool=pool)
    with ScriptedServer(dripping(DRIPS[phase])) as server:
        # When
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(server.url), timeout=1.0)
        elapsed = time.monotonic() - started

    # Then: the drip server was stopped mid-drip by leaving the block
    assert elapsed < 1.0 + SLACK_SECONDS
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert isinstance(failure.value.__cause__, TimeoutError)
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
    assert pool.idle_count() == 0  # a timed-out connection is never reused


def test_the_providers_own_timeout_bounds_a_call_given_more_time() -> None:
    # Given: a provider allowing 1 s, given 30 s by the sender
    provider = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=1.0)
    with ScriptedServer(dripping(DRIPS["headers"])) as server:
        # When
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(server.url), timeout=30.0)
        elapsed = time.monotonic() - started

    # Then
    assert elapsed < 1.0 + SLACK_SECONDS
    assert isinstance(failure.value.__cause__, TimeoutError)


def test_a_call_given_no_time_fails_at_once_without_connecting() -> None:
    # Given
    provider = WebhookProvider(SECRET, allow_private_targets=True)
    with ScriptedServer(dripping(b"")) as server:
        # When
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(server.url), timeout=0.0)

        # Then
        assert isinstance(failure.value.__cause__, TimeoutError)
        assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
        assert server.connections == 0
