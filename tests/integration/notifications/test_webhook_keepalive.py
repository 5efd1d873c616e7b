"""Webhook keep-alive against real loopback receivers: calls to one origin reuse one connection, a connection
the receiver closed costs a fresh one (never a failure), and concurrent calls each get their own."""

from __future__ import annotations

import http.client
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from local.receiver import WebhookReceiver
from notifications.errors import DeliveryError
from notifications.failures import delivery_classifier
from notifications.models import NotificationRecord, Recipient
from notifications.providers.pinned_http import ConnectionPool
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support.clock import FakeClock
from tests.support.records import make_record
from tests.support.scripted_server import ScriptedServer, read_request

if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def record(url: str, number: int = 1) -> NotificationRecord:
    return make_record(id=f"n-{number}", recipient=Recipient(webhook_url=url))


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    connections = ConnectionPool()
    yield connections
    connections.close()


@pytest.fixture
def provider(pool: ConnectionPool) -> WebhookProvider:
    return WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=5.0, pool=pool)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def answer(sock: socket.socket, status: int = 200, body: bytes = b"", *, close: bool = False) -> None:
    extra = b"connection: close\r\n" if close else b""
    head = f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n".encode() + extra + b"\r\n"
    sock.sendall(head + body)


def test_twenty_webhooks_in_a_row_to_one_origin_open_one_connection(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    # When
    for number in range(20):
        provider.send(record(receiver.url, number), timeout=5.0)

    # Then
    assert receiver.connections == 1
    assert len(receiver.received) == 20
    assert all(webhook.signature_valid for webhook in receiver.received)


def test_an_error_answer_keeps_the_connection_and_the_target_recovers_on_it(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    # Given: the target fails
    receiver.status = 503
    with pytest.raises(DeliveryError) as failure:
        provider.send(record(receiver.url), timeout=5.0)

    # When: it recovers
    receiver.status = 200
    receipt = provider.send(record(receiver.url), timeout=5.0)

    # Then
    assert failure.value.status_code == 503
    assert receipt.provider == "webhook"
    assert receiver.connections == 1


def test_a_receiver_that_closed_an_idle_connection_costs_a_fresh_connection_not_a_failure(
    provider: WebhookProvider, receiver: WebhookReceiver
) -> None:
    # Given: a kept-alive connection the receiver then closes, as receivers do with idle ones
    provider.send(record(receiver.url, 1), timeout=5.0)
    receiver.hang_up()

    # When
    receipt = provider.send(record(receiver.url, 2), timeout=5.0)

    # Then
    assert receipt.provider == "webhook"
    assert receiver.connections == 2
    assert [webhook.headers["webhook-id"] for webhook in receiver.received] == ["n-1", "n-2"]


def test_a_reused_connection_dropped_with_the_request_is_retried_once_on_a_fresh_one(
    provider: WebhookProvider,
) -> None:
    # Given: a receiver that answers the first request on each connection and hangs up on the second, as one
    # closing an idle connection just as a request arrives does
    requests: list[bytes] = []

    def first_only(sock: socket.socket, stopping: threading.Event) -> None:
        stream = sock.makefile("rb")
        for number in range(2):
            request = read_request(stream)
            if request is None:
                return
            requests.append(request)
            if number == 0:
                answer(sock)

    with ScriptedServer(first_only) as server:
        provider.send(record(server.url, 1), timeout=5.0)

        # When
        receipt = provider.send(record(server.url, 2), timeout=5.0)

        # Then: the second webhook went twice (receivers drop duplicates by webhook-id), once answered
        assert receipt.provider == "webhook"
        assert server.connections == 2
    assert [b"webhook-id: n-2" in request for request in requests] == [False, True, True]


def test_a_fresh_connection_dropped_before_any_answer_is_not_retried(provider: WebhookProvider) -> None:
    # Given: a receiver that hangs up on every request
    def hang_up(sock: socket.socket, stopping: threading.Event) -> None:
        read_request(sock.makefile("rb"))

    with ScriptedServer(hang_up) as server:
        # When
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(server.url), timeout=5.0)

        # Then
        assert failure.value.message == "could not connect to the webhook endpoint"
        assert isinstance(failure.value.__cause__, http.client.RemoteDisconnected)
        assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
        assert server.connections == 1


def test_a_receiver_asking_to_close_gets_a_new_connection_for_each_call(
    provider: WebhookProvider, pool: ConnectionPool
) -> None:
    # Given
    def one_and_close(sock: socket.socket, stopping: threading.Event) -> None:
        read_request(sock.makefile("rb"))
        answer(sock, close=True)

    with ScriptedServer(one_and_close) as server:
        # When
        for number in range(3):
            provider.send(record(server.url, number), timeout=5.0)

        # Then
        assert server.connections == 3
        assert pool.idle_count() == 0


def test_an_answer_longer_than_the_read_cap_is_cut_and_its_connection_not_reused(
    provider: WebhookProvider, pool: ConnectionPool
) -> None:
    # Given: a receiver answering 100 KiB bodies (more than the 64 KiB read)
    def chatty(sock: socket.socket, stopping: threading.Event) -> None:
        stream = sock.makefile("rb")
        while read_request(stream) is not None:
            answer(sock, body=b"x" * 100 * 1024)

    with ScriptedServer(chatty) as server:
        # When
        for number in range(2):
            provider.send(record(server.url, number), timeout=5.0)

        # Then
        assert server.connections == 2
        assert pool.idle_count() == 0


def test_an_idle_connection_older_than_the_bound_is_not_reused(receiver: WebhookReceiver) -> None:
    # Given
    clock = FakeClock()
    pool = ConnectionPool(max_idle_seconds=30.0, clock=clock)
    provider = WebhookProvider(SECRET, allow_private_targets=True, pool=pool)
    provider.send(record(receiver.url, 1), timeout=5.0)
    clock.advance(10)
    provider.send(record(receiver.url, 2), timeout=5.0)

    # When
    clock.advance(31)
    provider.send(record(receiver.url, 3), timeout=5.0)
    provider.close()

    # Then: the first two calls shared a connection; the third, after 31 s idle, opened another
    assert receiver.connections == 2


def test_a_call_that_timed_out_never_returns_its_connection_to_the_pool(
    pool: ConnectionPool, receiver: WebhookReceiver
) -> None:
    # Given: a slow receiver
    provider = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=0.2, pool=pool)
    receiver.delay_seconds = 1.0
    with pytest.raises(DeliveryError) as failure:
        provider.send(record(receiver.url, 1), timeout=5.0)
    assert isinstance(failure.value.__cause__, TimeoutError)

    # When: it is quick again
    receiver.delay_seconds = 0.0
    provider.send(record(receiver.url, 2), timeout=5.0)

    # Then: the timed-out connection (its answer still due) was closed, not reused
    assert receiver.connections == 2
    assert pool.idle_count() == 1


def test_concurrent_webhooks_to_one_origin_all_succeed_and_then_reuse_their_connections(
    provider: WebhookProvider, pool: ConnectionPool, receiver: WebhookReceiver
) -> None:
    # Given: a receiver slow enough that ten calls overlap
    receiver.delay_seconds = 0.05
    start = threading.Barrier(10)

    def deliver(number: int) -> str:
        if number < 10:
            start.wait()
        return provider.send(record(receiver.url, number), timeout=5.0).provider

    # When: 50 webhooks from 10 threads at once, as the sender's delivery pool runs them
    with ThreadPoolExecutor(max_workers=10) as threads:
        receipts = list(threads.map(deliver, range(50)))
    opened = receiver.connections
    for number in range(50, 55):
        provider.send(record(receiver.url, number), timeout=5.0)

    # Then
    assert receipts == ["webhook"] * 50
    assert len(receiver.received) == 55
    assert 1 < opened <= 10
    assert receiver.connections == opened  # the later sequential calls opened none
    assert pool.idle_count() == opened
