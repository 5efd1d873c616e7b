"""Signed webhooks (Standard Webhooks): an HTTP POST to a vetted, pinned address, over kept-alive connections.

One call to `WebhookProvider.send`:

1. vets the URL against SSRF (`notifications.ssrf.vet`): https, an allowed port (443 unless configured),
   and a host that resolves, once, only to global unicast addresses, which the call is pinned to;
2. takes an idle connection to that origin and one of those addresses from the provider's `ConnectionPool`
   (`notifications.providers.pinned_http`, the transport), or opens one, trying the vetted addresses in
   order (IPv4 first) until one connects (TLS with SNI and certificate checks for the URL's host name when
   https);
3. posts the signed payload and reads at most 64 KiB of the answer, every blocking step bounded by one
   deadline for the whole call, so a receiver that drips its answer a byte at a time cannot hold it;
4. puts the connection back, under the address that connected, when the answer was read to its end and the
   receiver keeps it open.

Redirects are never followed. The provider describes what happened and never judges it: a
`DeliveryError` with the status and the receiver's Retry-After, an `UndeliverableError` for a URL that
can never be called or a redirect, a `TargetRefused` from the SSRF guard.
`notifications.failures.delivery_classifier` alone decides whether it is worth retrying.

What a failure says is coarse and stable, since it becomes the notification's `error`, which the client
reads: every connection, TLS and timeout failure is "could not connect to the webhook endpoint", every
refused target "webhook target refused", so neither tells which ports are open or which ranges lie behind
a name. The log keeps the exception type, the origin and the address, never the URL's path or query.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from notifications import signing, ssrf
from notifications.clock import Clock, system_clock
from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel
from notifications.observability import logger
from notifications.providers import ProviderReceipt
from notifications.providers.pinned_http import CLOSED_WHILE_IDLE, ConnectionPool, PinnedConnection, PoolKey
from notifications.ssrf import COULD_NOT_CONNECT, DEFAULT_ALLOWED_PORTS, webhook_origin
from resilience import parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from notifications.models import NotificationRecord

USER_AGENT = "Herald-Webhooks/1"
INVALID_BREAKER = "webhook:invalid"
"""The breaker name of a webhook URL that can never be called (its calls fail as undeliverable)."""
MAX_ANSWER_BYTES = 64 * 1024
_MAX_RETRY_AFTER_SECONDS = 3600.0
# A request line carries printable ASCII but the space as is; anything else in a path is percent-encoded.
_AS_IS_IN_PATH = "".join(chr(code) for code in range(0x21, 0x7F))


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
    return json.dumps(envelope, separators=(",", ":"), allow_nan=False).encode()  # JSON only, never Infinity


def _request_path(path: str) -> str:
    """The path as a request line may carry it: spaces, control and non-ASCII characters percent-encoded."""
    return quote(path, safe=_AS_IS_IN_PATH)


class _Call(NamedTuple):
    """One webhook call: which notification, where it goes, what it sends, and the monotonic instant it must
    end by."""

    notification_id: str
    origin: str
    path: str
    body: bytes
    headers: dict[str, str]
    deadline: float


class _ClosedWhileIdle(Exception):
    """A reused connection turned out closed by the receiver before it answered anything."""


class WebhookProvider:
    """Signed webhooks to vetted, pinned addresses over kept-alive connections (see the module docstring).

    Parameters
    ----------
    signing_keys : str | Callable[[NotificationRecord], signing.SigningKeys]
        The Standard Webhooks keys of a notification's client (``notifications.clients.ClientSigningKeys``), or
        one ``whsec_...`` secret for every notification (checked here, so a bad one fails at start-up).
    allow_private_targets : bool
        Allow loopback and private targets, any port, and plain http to private targets (local runs and tests
        only).
    allowed_ports : frozenset[int]
        The ports a webhook URL may name (443 by default); every port when private targets are allowed.
    timeout_seconds : float
        The most a call may take, whatever time `send` is given.
    clock : Clock
        Epoch seconds, for the signed timestamp and Retry-After dates.
    resolver : Callable[[str, int], list[str]]
        Host name and port to addresses, for the SSRF check.
    tls_context : ssl.SSLContext | None
        Certificate checks for https; the system's trust store by default.
    pool : ConnectionPool | None
        Where idle connections wait for the next call; a pool of its own by default.
    """

    name = "webhook"
    channel = Channel.WEBHOOK

    def __init__(
        self,
        signing_keys: str | Callable[[NotificationRecord], signing.SigningKeys],
        *,
        allow_private_targets: bool,
        allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS,
        timeout_seconds: float = 10.0,
        clock: Clock = system_clock,
        resolver: Callable[[str, int], list[str]] = ssrf.resolve_host,
        tls_context: ssl.SSLContext | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        if isinstance(signing_keys, str):
            signing.decode_secret(signing_keys)  # fail at start-up, not at the first delivery
            fixed = signing.SigningKeys(signing_keys)
            signing_keys = lambda _record: fixed  # noqa: E731 - one secret for every notification
        if not all(1 <= port <= 65535 for port in allowed_ports):
            raise ValueError("allowed_ports must be TCP ports, 1-65535")
        self._keys_for = signing_keys
        self._allow_private = allow_private_targets
        self._allowed_ports = frozenset(allowed_ports)
        self._timeout = timeout_seconds
        self._clock = clock
        self._resolver = resolver
        self._tls = tls_context or ssl.create_default_context()
        self._pool = pool if pool is not None else ConnectionPool()

    def breaker_name(self, record: NotificationRecord) -> str:
        """`webhook:<scheme>://<host>:<port>`: one breaker per receiver origin, so one customer's dead
        endpoint never slows another's. Never raises: a URL that can never be called is `webhook:invalid`."""
        url = record.recipient.webhook_url
        if url is None:
            return INVALID_BREAKER
        try:
            return f"webhook:{webhook_origin(url)}"
        except UndeliverableError:
            return INVALID_BREAKER

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        """POST the signed notification, taking at most `timeout` (and `timeout_seconds`) for the whole call.

        Connecting (to each vetted address in turn until one does), the TLS handshake, sending and every read
        of the answer share one deadline; a kept-alive connection the receiver closed is replaced by a fresh
        one within it. Resolving the host for the SSRF check counts against the deadline but is bounded by the
        resolver's own timeouts (``getaddrinfo`` takes none).

        Raises
        ------
        UndeliverableError
            No webhook URL, a URL that can never be called, or a redirect answered (never followed).
        TargetRefused
            The SSRF guard refused the target ("webhook target refused", or the scheme or port it objects to).
        DeliveryError
            The receiver answered another non-2xx status (`status_code`, `retry_after` capped at 1 h), or
            could not be reached in time ("could not connect to the webhook endpoint", no status).
        """
        deadline = time.monotonic() + min(timeout, self._timeout)
        url = record.recipient.webhook_url
        if url is None:
            raise UndeliverableError("recipient has no webhook_url")
        target = ssrf.vet(
            url, allow_private=self._allow_private, allowed_ports=self._allowed_ports, resolver=self._resolver
        )
        keys = self._keys_for(record)
        timestamp = int(self._clock())
        body = webhook_payload(record, timestamp)
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": record.id,  # stable across retries: receivers drop duplicates by it
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signing.signature_header(keys, record.id, timestamp, body),
            "x-notification-id": record.id,
        }
        call = _Call(record.id, str(target.origin), target.path, body, headers, deadline)
        status, retry_after = self._post(target, call)
        if 200 <= status < 300:
            return ProviderReceipt(provider=self.name, message_id=None)
        if 300 <= status < 400:
            raise UndeliverableError(
                f"webhook answered a redirect (HTTP {status}); redirects are not followed", status_code=status
            )
        raise DeliveryError(
            f"webhook answered HTTP {status}", status_code=status, retry_after=_retry_after(retry_after, self._clock())
        )

    def close(self) -> None:
        """Close the idle connections."""
        self._pool.close()

    def _post(self, target: ssrf.Target, call: _Call) -> tuple[int, str | None]:
        """On an idle connection to the origin and one of its vetted addresses if there is one; once more on a
        fresh one if that turns out closed by the receiver (a webhook is idempotent by its webhook-id, and
        receivers drop duplicates)."""
        idle = self._idle_connection(target)
        if idle is not None:
            try:
                return self._exchange(idle, call, reused=True)
            except _ClosedWhileIdle:
                pass
        fresh = PinnedConnection(target, self._tls if target.scheme == "https" else None)
        return self._exchange(fresh, call, reused=False)

    def _idle_connection(self, target: ssrf.Target) -> PinnedConnection | None:
        """An idle connection pinned to one of the addresses vetted for this call, in their order: one pinned
        to an address the host no longer resolves to is never used."""
        for address in target.addresses:
            idle = self._pool.take(PoolKey(target.scheme, target.host, target.port, address))
            if idle is not None:
                return idle
        return None

    def _exchange(self, connection: PinnedConnection, call: _Call, *, reused: bool) -> tuple[int, str | None]:
        """One request and its answer; the connection goes back to the pool, under the address it connected
        to, only if it can carry another."""
        connection.deadline.start(call.deadline)
        response: http.client.HTTPResponse | None = None
        keep = False
        try:
            connection.request("POST", _request_path(call.path), body=call.body, headers=call.headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            # Read to its end (not longer than the cap), framed, and the receiver keeps the connection open.
            keep = response.status >= 200 and response.isclosed() and not response.will_close
            return response.status, response.getheader("retry-after")
        except (OSError, http.client.HTTPException) as error:  # TimeoutError and ssl.SSLError are OSErrors
            if reused and connection.deadline.received == 0 and isinstance(error, CLOSED_WHILE_IDLE):
                raise _ClosedWhileIdle from error
            logger.warning(
                "webhook call failed",
                extra={
                    "notification_id": call.notification_id,
                    "origin": call.origin,
                    "address": connection.address,
                    "reused": reused,
                    "error_type": type(error).__name__,
                },
            )
            raise DeliveryError(COULD_NOT_CONNECT) from error
        finally:
            key = connection.pool_key
            if keep and key is not None:
                self._pool.put(key, connection)
            else:
                if response is not None:
                    response.close()
                connection.close()


def _retry_after(value: str | None, now: float) -> float | None:
    """The receiver's Retry-After (seconds or an HTTP date), capped so one receiver cannot park a message."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_SECONDS)
