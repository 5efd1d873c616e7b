"""Signed webhooks (Standard Webhooks): an HTTPS POST to a vetted, pinned address."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from typing import TYPE_CHECKING

from notifications import signing, ssrf
from notifications.clock import Clock, system_clock
from notifications.errors import DeliveryError
from notifications.providers import ProviderReceipt
from resilience import parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from notifications.models import NotificationRecord

USER_AGENT = "Herald-Webhooks/1"
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})
_MAX_RETRY_AFTER_SECONDS = 3600.0


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a fixed IP, with SNI and certificate checks for the URL's host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def webhook_payload(record: NotificationRecord, timestamp: int) -> bytes:
    """The JSON body: Standard Webhooks' {type, timestamp, data} envelope."""
    envelope = {
        "type": "notification",
        "timestamp": timestamp,
        "data": {
            "id": record.id,
            "subject": record.subject,
            "body": record.body,
            "data": record.data,
            "metadata": record.metadata,
            "priority": record.priority.value,
        },
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


class WebhookProvider:
    name = "webhook"

    def __init__(
        self,
        signing_secret: str,
        *,
        allow_private_targets: bool,
        timeout_seconds: float = 10.0,
        clock: Clock = system_clock,
        resolver: Callable[[str, int], list[str]] = ssrf.resolve_host,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        signing.decode_secret(signing_secret)  # fail at start-up, not at the first delivery
        self._secret = signing_secret
        self._allow_private = allow_private_targets
        self._timeout = timeout_seconds
        self._clock = clock
        self._resolver = resolver
        self._tls = tls_context or ssl.create_default_context()

    def send(self, record: NotificationRecord) -> ProviderReceipt:
        if record.recipient.webhook_url is None:
            raise DeliveryError("recipient has no webhook_url", permanent=True)
        target = ssrf.vet(record.recipient.webhook_url, allow_private=self._allow_private, resolver=self._resolver)
        timestamp = int(self._clock())
        body = webhook_payload(record, timestamp)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": record.id,  # stable across retries: receivers drop duplicates by it
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.sign(self._secret, record.id, timestamp, body),
            "x-notification-id": record.id,
        }
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(target.host, target.address, target.port, self._timeout, self._tls)
        else:
            connection = _PinnedHTTPConnection(target.host, target.address, target.port, self._timeout)
        try:
            connection.request("POST", target.path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(64 * 1024)
            status = response.status
            retry_after = response.getheader("retry-after")
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            raise DeliveryError(f"webhook unreachable ({type(error).__name__})", permanent=False) from error
        finally:
            connection.close()
        if 200 <= status < 300:
            return ProviderReceipt(provider=self.name, message_id=None)
        transient = status >= 500 or status in _RETRYABLE_STATUS
        raise DeliveryError(
            f"webhook answered HTTP {status}",
            permanent=not transient,
            retry_after_seconds=_retry_after(retry_after, self._clock()) if transient else None,
        )


def _retry_after(value: str | None, now: float) -> float | None:
    """The receiver's Retry-After (seconds or an HTTP date), capped so one receiver cannot park a message."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_SECONDS)
