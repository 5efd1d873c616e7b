"""Against real loopback receivers: a host resolving to several vetted addresses is tried address by address
until one connects, the connection is pinned (and kept alive) on that one, and every way of not reaching the
receiver reads the same to the client, so the notification's `error` is no port-scan oracle."""

from __future__ import annotations

import http.client
import json
import logging
import ssl
from typing import TYPE_CHECKING

import pytest

from local.aws.moto_server import free_port
from local.receiver import WebhookReceiver
from notifications.errors import DeliveryError
from notifications.failures import delivery_classifier, surely_not_delivered
from notifications.models import NotificationRecord, Recipient
from notifications.providers.pinned_http import ConnectionPool, PoolKey
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support.records import make_record
from tests.support.scripted_server import ScriptedServer, read_request

if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Callable, Iterator

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="
REFUSING = "127.0.0.0"  # on loopback, yet nothing listens there: connecting is refused at once


def record(url: str, number: int = 1) -> NotificationRecord:
    return make_record(id=f"n-{number}", recipient=Recipient(webhook_url=url))


class Dns:
    """A resolver the test points where it likes, as a name's A records would."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)

    def __call__(self, host: str, port: int) -> list[str]:
        return self.addresses


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    connections = ConnectionPool()
    yield connections
    connections.close()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def provider(pool: ConnectionPool, dns: Dns, timeout_seconds: float = 5.0) -> WebhookProvider:
    return WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=timeout_seconds, resolver=dns, pool=pool)


def test_an_address_that_refuses_is_passed_over_for_the_next_and_the_one_that_connected_is_kept(
    pool: ConnectionPool, receiver: WebhookReceiver
) -> None:
    # Given: a name whose first address refuses connections
    dns = Dns(REFUSING, "127.0.0.1")
    webhooks = provider(pool, dns)
    url = f"http://localhost:{receiver.port}/hook"

    # When
    first = webhooks.send(record(url, 1), timeout=5.0)
    second = webhooks.send(record(url, 2), timeout=5.0)

    # Then: delivered on the second address, and the connection reused under it
    assert (first.provider, second.provider) == ("webhook", "webhook")
    assert [webhook.headers["webhook-id"] for webhook in receiver.received] == ["n-1", "n-2"]
    assert receiver.connections == 1
    assert pool.idle_count(PoolKey("http", "localhost", receiver.port, "127.0.0.1")) == 1
    assert pool.idle_count(PoolKey("http", "localhost", receiver.port, REFUSING)) == 0


def test_an_idle_connection_to_an_address_the_name_no_longer_resolves_to_is_never_used(
    pool: ConnectionPool, receiver: WebhookReceiver
) -> None:
    # Given: a kept-alive connection to 127.0.0.1
    dns = Dns("127.0.0.1")
    webhooks = provider(pool, dns)
    url = f"http://localhost:{receiver.port}/hook"
    webhooks.send(record(url, 1), timeout=5.0)

    # When: the name now resolves elsewhere (DNS rebinding, or a move)
    dns.addresses = [REFUSING]
    with pytest.raises(DeliveryError):
        webhooks.send(record(url, 2), timeout=5.0)

    # Then: only the vetted address was tried; the connection to the old one waits unused
    assert [webhook.headers["webhook-id"] for webhook in receiver.received] == ["n-1"]
    assert pool.idle_count(PoolKey("http", "localhost", receiver.port, "127.0.0.1")) == 1


def test_when_no_address_connects_the_client_reads_one_coarse_error_and_the_log_keeps_the_detail(
    pool: ConnectionPool, caplog: pytest.LogCaptureFixture
) -> None:
    # Given: a name resolving to two addresses, neither listening
    webhooks = provider(pool, Dns(REFUSING, "127.0.0.1"))
    url = f"http://localhost:{free_port()}/secret-path?token=abc"

    # When
    with caplog.at_level(logging.INFO), pytest.raises(DeliveryError) as failure:
        webhooks.send(record(url), timeout=5.0)

    # Then: nothing reached the receiver, so another provider could take it at once
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert isinstance(failure.value.__cause__, ConnectionRefusedError)
    assert surely_not_delivered(failure.value)
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
    attempts = [record for record in caplog.records if record.getMessage() == "webhook address did not connect"]
    assert [attempt.__dict__["address"] for attempt in attempts] == [REFUSING, "127.0.0.1"]
    [failed] = [record for record in caplog.records if record.getMessage() == "webhook call failed"]
    assert failed.__dict__["error_type"] == "ConnectionRefusedError"
    assert failed.__dict__["notification_id"] == "n-1"
    logged = json.dumps([record.__dict__ for record in caplog.records], default=str)
    assert "secret-path" not in logged and "token" not in logged


def _silent(sock: socket.socket, stopping: threading.Event) -> None:
    """Accept, read the request, never answer."""
    read_request(sock.makefile("rb"))
    stopping.wait(5)


def _hang_up(sock: socket.socket, stopping: threading.Event) -> None:
    """Read the request and close without answering."""
    read_request(sock.makefile("rb"))


def _not_http(sock: socket.socket, stopping: threading.Event) -> None:
    """Another protocol's greeting on the port, as an SSH or SMTP server would send."""
    sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
    stopping.wait(5)


def _plain_http(sock: socket.socket, stopping: threading.Event) -> None:
    """A plain-http server on the port an https URL names: it answers the TLS greeting with an HTTP error."""
    sock.recv(1024)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")


def _fail(url: str, timeout_seconds: float = 5.0) -> DeliveryError:
    webhooks = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=timeout_seconds)
    try:
        with pytest.raises(DeliveryError) as failure:
            webhooks.send(record(url), timeout=5.0)
    finally:
        webhooks.close()
    return failure.value


SCRIPTED: dict[str, tuple[Callable[[socket.socket, threading.Event], None], str, type[BaseException]]] = {
    "times out": (_silent, "http", TimeoutError),
    "hangs up": (_hang_up, "http", http.client.RemoteDisconnected),
    "speaks another protocol": (_not_http, "http", http.client.BadStatusLine),
    "speaks no TLS": (_plain_http, "https", ssl.SSLError),
}


@pytest.mark.parametrize("behaviour", list(SCRIPTED))
def test_every_way_of_not_reaching_the_receiver_reads_the_same_to_the_client(behaviour: str) -> None:
    # Given: a port that answers in its own way
    script, scheme, cause = SCRIPTED[behaviour]
    with ScriptedServer(script) as server:
        url = server.url.replace("http://", f"{scheme}://")

        # When
        error = _fail(url, timeout_seconds=0.5)

    # Then: the client cannot tell an open port from a closed one; the cause stays for the log
    assert error.message == "could not connect to the webhook endpoint"
    assert error.status_code is None
    assert isinstance(error.__cause__, cause)


def test_a_closed_port_reads_the_same_to_the_client() -> None:
    # When
    error = _fail(f"http://127.0.0.1:{free_port()}/hook")

    # Then
    assert error.message == "could not connect to the webhook endpoint"
    assert isinstance(error.__cause__, ConnectionRefusedError)
