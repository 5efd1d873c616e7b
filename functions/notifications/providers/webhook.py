"""Signed webhooks (Standard Webhooks): an HTTP POST to a vetted, pinned address, over kept-alive connections.

One call to `WebhookProvider.send`:

1. reads the URL's origin (`webhook_origin`) and vets the URL against SSRF (`notifications.ssrf.vet`),
   which resolves the host once and pins the call to an address it checked;
2. takes an idle connection to that origin and address from the provider's `ConnectionPool`, or opens
   one (TLS with SNI and certificate checks for the URL's host name when https);
3. posts the signed payload and reads at most 64 KiB of the answer, every blocking step bounded by one
   deadline for the whole call, so a receiver that drips its answer a byte at a time cannot hold it;
4. puts the connection back when the answer was read to its end and the receiver keeps it open.

Redirects are never followed. The provider describes what happened and never judges it: a
`DeliveryError` with the status and the receiver's Retry-After, an `UndeliverableError` for a URL that
can never be called or a redirect, a `TargetRefused` from the SSRF guard.
`notifications.failures.delivery_classifier` alone decides whether it is worth retrying.
"""

from __future__ import annotations

import http.client
import io
import json
import select
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from notifications import signing, ssrf
from notifications.clock import Clock, system_clock
from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel
from notifications.providers import ProviderReceipt
from notifications.ssrf import webhook_origin
from resilience import parse_retry_after

if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import ReadableBuffer, WriteableBuffer

    from notifications.models import NotificationRecord

USER_AGENT = "Herald-Webhooks/1"
INVALID_BREAKER = "webhook:invalid"
"""The breaker name of a webhook URL that can never be called (its calls fail as undeliverable)."""
MAX_ANSWER_BYTES = 64 * 1024
_MAX_RETRY_AFTER_SECONDS = 3600.0
# A request line carries printable ASCII but the space as is; anything else in a path is percent-encoded.
_AS_IS_IN_PATH = "".join(chr(code) for code in range(0x21, 0x7F))
# How a kept-alive connection the receiver closed while it sat idle fails when reused, before any answer byte
# (RemoteDisconnected is both a ConnectionResetError and a BadStatusLine).
_CLOSED_WHILE_IDLE = (
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.BadStatusLine,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)


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


def _request_path(path: str) -> str:
    """The path as a request line may carry it: spaces, control and non-ASCII characters percent-encoded."""
    return quote(path, safe=_AS_IS_IN_PATH)


class _Deadline:
    """When the current call on a connection must end, and how many answer bytes it has read so far.

    One per connection, shared with its socket, set afresh for every call.
    """

    __slots__ = ("at", "received")

    def __init__(self) -> None:
        self.at = 0.0  # not set yet: every blocking step times out at once
        self.received = 0

    def start(self, at: float) -> None:
        self.at = at
        self.received = 0

    def remaining(self) -> float:
        """Seconds left for the next blocking step; `TimeoutError` once none are, so no step starts late."""
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("webhook call ran out of time")
        return left


class _BoundedReader(io.RawIOBase):
    """The answer's bytes: each read waits at most until the deadline, and counts what arrived."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # keeps the socket open until this reader is closed
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        self._sock.settimeout(self._deadline.remaining())
        count = self._raw.readinto(buffer)
        if count:
            self._deadline.received += count
        return count

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _BoundedSocket:
    """What `http.client` sees as the connection's socket (plain or TLS): each send and receive may take only
    the time left until the call's deadline.

    A per-operation timeout alone lets a receiver that drips one byte at a time, each well within it, hold a
    call for as long as it likes.
    """

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def sendall(self, data: ReadableBuffer) -> None:
        with memoryview(data) as view, view.cast("B") as octets:
            sent = 0
            while sent < len(octets):
                self._sock.settimeout(self._deadline.remaining())
                sent += self._sock.send(octets[sent:])

    def makefile(self, mode: str) -> io.BufferedReader:
        """`http.client` reads each answer through `makefile("rb")`."""
        if mode != "rb":
            raise ValueError(f"only 'rb' is supported, not {mode!r}")
        return io.BufferedReader(_BoundedReader(self._sock, self._deadline))

    def peer_closed(self) -> bool:
        """True when an idle connection has something to read: the receiver closed it (or spoke unasked)."""
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            return True
        try:
            if hasattr(select, "poll"):
                poller = select.poll()
                poller.register(self._sock, select.POLLIN)
                return bool(poller.poll(0))
            readable, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self._sock.close()


class _PinnedConnection(http.client.HTTPConnection):
    """HTTP/1.1 to one vetted address; for https, TLS with SNI and certificate checks for the URL's host name.

    The host name goes in the Host header and the TLS handshake; only the address it resolved to when it
    was vetted is ever connected to, so DNS cannot change it after the check.
    """

    def __init__(self, target: ssrf.Target, tls: ssl.SSLContext | None) -> None:
        super().__init__(target.host, target.port)
        self.default_port = ssrf.DEFAULT_PORTS[target.scheme]  # the Host header names the port only when not this
        self.deadline = _Deadline()
        self._address = target.address
        self._tls = tls
        self._bounded: _BoundedSocket | None = None

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), timeout=self.deadline.remaining())
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock.settimeout(self.deadline.remaining())  # bounds the whole handshake, not each step of it
                sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self._bounded = _BoundedSocket(sock, self.deadline)
        self.sock = self._bounded

    def peer_closed(self) -> bool:
        """True unless this idle connection is open and quiet, as one worth reusing is."""
        return self.sock is None or self._bounded is None or self._bounded.peer_closed()


class PoolKey(NamedTuple):
    """Connections are shared only between calls to the same origin pinned to the same address."""

    scheme: str
    host: str
    port: int
    address: str


class ConnectionPool:
    """Idle kept-alive connections of one execution environment, by origin and pinned address.

    Thread-safe: each delivery takes a connection for itself and puts it back when done, so concurrent calls
    to one origin open several connections and sequential ones reuse one. The most recently used is taken
    first (LIFO), so the others age out.

    Parameters
    ----------
    max_idle_per_key : int
        Idle connections kept per key; putting one more back closes the oldest.
    max_idle_seconds : float
        An idle connection older than this is closed, not reused (receivers close idle ones too).
    clock : Callable[[], float]
        Monotonic seconds (``time.monotonic``); tests pass a fake one.
    """

    def __init__(
        self,
        *,
        max_idle_per_key: int = 10,
        max_idle_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_idle_per_key = max_idle_per_key
        self._max_idle_seconds = max_idle_seconds
        self._clock = clock
        self._idle: dict[PoolKey, list[tuple[float, _PinnedConnection]]] = {}  # oldest first
        self._lock = threading.Lock()

    def take(self, key: PoolKey) -> _PinnedConnection | None:
        """The most recently used idle connection for `key` that is still open, or None."""
        discarded: list[_PinnedConnection] = []
        found: _PinnedConnection | None = None
        with self._lock:
            idle = self._idle.get(key, [])
            now = self._clock()
            while idle and found is None:
                since, connection = idle.pop()
                if now - since > self._max_idle_seconds:  # and so are all older ones
                    discarded += [connection, *(older for _, older in idle)]
                    idle.clear()
                elif connection.peer_closed():
                    discarded.append(connection)
                else:
                    found = connection
            if not idle:
                self._idle.pop(key, None)
        _close_all(discarded)
        return found

    def put(self, key: PoolKey, connection: _PinnedConnection) -> None:
        """Keep an idle connection for the next call to `key`; closes the ones that aged out meanwhile."""
        discarded: list[_PinnedConnection] = []
        with self._lock:
            now = self._clock()
            for other in list(self._idle):
                others = self._idle[other]
                while others and now - others[0][0] > self._max_idle_seconds:
                    discarded.append(others.pop(0)[1])
                if not others:
                    del self._idle[other]
            idle = self._idle.setdefault(key, [])
            idle.append((now, connection))
            while len(idle) > self._max_idle_per_key:
                discarded.append(idle.pop(0)[1])
            if not idle:
                del self._idle[key]
        _close_all(discarded)

    def idle_count(self, key: PoolKey | None = None) -> int:
        """Idle connections kept for `key`, or for every key."""
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, []))
            return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            discarded = [connection for idle in self._idle.values() for _, connection in idle]
            self._idle.clear()
        _close_all(discarded)


def _close_all(connections: list[_PinnedConnection]) -> None:
    for connection in connections:
        connection.close()


class _Call(NamedTuple):
    """One webhook call: where it goes, what it sends, and the monotonic instant it must end by."""

    key: PoolKey
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
    signing_secret : str
        The Standard Webhooks secret (``whsec_...``), checked here so a bad one fails at start-up.
    allow_private_targets : bool
        Allow loopback and private targets, and plain http to them (local runs and tests only).
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
        signing_secret: str,
        *,
        allow_private_targets: bool,
        timeout_seconds: float = 10.0,
        clock: Clock = system_clock,
        resolver: Callable[[str, int], list[str]] = ssrf.resolve_host,
        tls_context: ssl.SSLContext | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        signing.decode_secret(signing_secret)  # fail at start-up, not at the first delivery
        self._secret = signing_secret
        self._allow_private = allow_private_targets
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

        Connecting, the TLS handshake, sending and every read of the answer share one deadline; a kept-alive
        connection the receiver closed is replaced by a fresh one within it. Resolving the host for the SSRF
        check counts against the deadline but is bounded by the resolver's own timeouts (``getaddrinfo`` takes
        none).

        Raises
        ------
        UndeliverableError
            No webhook URL, a URL that can never be called, or a redirect answered (never followed).
        TargetRefused
            The SSRF guard refused the target.
        DeliveryError
            The receiver answered another non-2xx status (`status_code`, `retry_after` capped at 1 h), or
            could not be reached in time (no status).
        """
        deadline = time.monotonic() + min(timeout, self._timeout)
        url = record.recipient.webhook_url
        if url is None:
            raise UndeliverableError("recipient has no webhook_url")
        webhook_origin(url)  # a URL that can never be called fails here, in plain words
        try:
            target = ssrf.vet(url, allow_private=self._allow_private, resolver=self._resolver)
        except ValueError as error:  # anything else the URL parser or IDNA codec objects to
            raise UndeliverableError("webhook URL is not valid") from error
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
        status, retry_after = self._post(target, body, headers, deadline)
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

    def _post(
        self, target: ssrf.Target, body: bytes, headers: dict[str, str], deadline: float
    ) -> tuple[int, str | None]:
        """On an idle connection to the origin if there is one; once more on a fresh one if that turns out
        closed by the receiver (a webhook is idempotent by its webhook-id, and receivers drop duplicates)."""
        call = _Call(
            PoolKey(target.scheme, target.host, target.port, target.address),
            _request_path(target.path),
            body,
            headers,
            deadline,
        )
        idle = self._pool.take(call.key)
        if idle is not None:
            try:
                return self._exchange(idle, call, reused=True)
            except _ClosedWhileIdle:
                pass
        fresh = _PinnedConnection(target, self._tls if target.scheme == "https" else None)
        return self._exchange(fresh, call, reused=False)

    def _exchange(self, connection: _PinnedConnection, call: _Call, *, reused: bool) -> tuple[int, str | None]:
        """One request and its answer; the connection goes back to the pool only if it can carry another."""
        connection.deadline.start(call.deadline)
        response: http.client.HTTPResponse | None = None
        keep = False
        try:
            connection.request("POST", call.path, body=call.body, headers=call.headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            # Read to its end (not longer than the cap), framed, and the receiver keeps the connection open.
            keep = response.status >= 200 and response.isclosed() and not response.will_close
            return response.status, response.getheader("retry-after")
        except (OSError, http.client.HTTPException) as error:  # TimeoutError is an OSError
            if reused and connection.deadline.received == 0 and isinstance(error, _CLOSED_WHILE_IDLE):
                raise _ClosedWhileIdle from error
            raise DeliveryError(f"webhook unreachable ({type(error).__name__})") from error
        finally:
            if keep:
                self._pool.put(call.key, connection)
            else:
                if response is not None:
                    response.close()
                connection.close()


def _retry_after(value: str | None, now: float) -> float | None:
    """The receiver's Retry-After (seconds or an HTTP date), capped so one receiver cannot park a message."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, _MAX_RETRY_AFTER_SECONDS)
