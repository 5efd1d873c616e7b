"""Webhooks over https to loopback receivers with a test certificate authority: the connection is pinned to
the vetted address yet checks the certificate for the URL's host, is kept alive, and obeys the deadline."""

from __future__ import annotations

import ipaddress
import ssl
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local.receiver import WebhookReceiver
from notifications.errors import DeliveryError
from notifications.failures import delivery_classifier
from notifications.models import NotificationRecord, Recipient
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support.records import make_record
from tests.support.scripted_server import ScriptedServer, read_request

if TYPE_CHECKING:
    import socket
    import threading
    from collections.abc import Iterator
    from pathlib import Path

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def record(url: str, number: int = 1) -> NotificationRecord:
    return make_record(id=f"n-{number}", recipient=Recipient(webhook_url=url))


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if issuer is None:  # the authority
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:  # the receiver: valid for 127.0.0.1 only
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True).add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(the receivers' server context, Herald's client context trusting only the test authority)."""
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority = _certificate("Herald test CA", authority_key, issuer=None, issuer_key=authority_key)
    receiver_key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("receiver", receiver_key, issuer=authority, issuer_key=authority_key)
    folder: Path = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        receiver_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=authority.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


@pytest.fixture
def provider(contexts: tuple[ssl.SSLContext, ssl.SSLContext]) -> Iterator[WebhookProvider]:
    webhooks = WebhookProvider(SECRET, allow_private_targets=True, timeout_seconds=5.0, tls_context=contexts[1])
    yield webhooks
    webhooks.close()


def test_https_webhooks_in_a_row_share_one_tls_connection(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], provider: WebhookProvider
) -> None:
    # Given
    with WebhookReceiver(secret=SECRET, tls=contexts[0]) as receiver:
        # When
        for number in range(10):
            provider.send(record(receiver.url, number), timeout=5.0)

        # Then
        assert receiver.url.startswith("https://")
        assert receiver.connections == 1
        assert len(receiver.received) == 10
        assert all(webhook.signature_valid for webhook in receiver.received)


def test_a_tls_connection_the_receiver_closed_costs_a_fresh_one_not_a_failure(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], provider: WebhookProvider
) -> None:
    # Given
    with WebhookReceiver(secret=SECRET, tls=contexts[0]) as receiver:
        provider.send(record(receiver.url, 1), timeout=5.0)
        receiver.hang_up()

        # When
        provider.send(record(receiver.url, 2), timeout=5.0)

        # Then
        assert receiver.connections == 2
        assert len(receiver.received) == 2


def test_the_certificate_is_checked_for_the_urls_host_not_the_pinned_address(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    # Given: a name resolving to the receiver's address, which its certificate does not cover
    provider = WebhookProvider(
        SECRET, allow_private_targets=True, tls_context=contexts[1], resolver=lambda host, port: ["127.0.0.1"]
    )
    with WebhookReceiver(secret=SECRET, tls=contexts[0]) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")

        # When
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(url), timeout=5.0)

        # Then
        assert failure.value.message == "could not connect to the webhook endpoint"
        assert isinstance(failure.value.__cause__, ssl.SSLCertVerificationError)
        assert receiver.received == []


def test_a_receiver_dripping_over_tls_cannot_hold_send_past_its_deadline(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext], provider: WebhookProvider
) -> None:
    # Given: a receiver sending its headers one byte every 0.4 s (10 bytes at most)
    def drip(sock: socket.socket, stopping: threading.Event) -> None:
        read_request(sock.makefile("rb"))
        sock.sendall(b"HTTP/1.1 200 OK\r\nx-drip: ")
        for _ in range(10):
            if stopping.wait(0.4):
                return
            sock.sendall(b"a")

    with ScriptedServer(drip, tls=contexts[0]) as server:
        # When
        started = time.monotonic()
        with pytest.raises(DeliveryError) as failure:
            provider.send(record(server.url), timeout=1.0)
        elapsed = time.monotonic() - started

    # Then
    assert elapsed < 1.5
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert isinstance(failure.value.__cause__, TimeoutError)
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
