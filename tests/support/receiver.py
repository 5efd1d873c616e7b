"""Webhook receivers on loopback for tests.

`WebhookReceiver` behaves as a real receiver: HTTP/1.1 with keep-alive, records every request, verifies
Standard Webhooks signatures, and answers with scripted statuses so tests can make a target fail, recover or
time out. `ScriptedServer` misbehaves on purpose: it hands each accepted connection to a test's script
(drip an answer a byte at a time, hang up without answering).
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from local.moto_server import LOOPBACK
from notifications import signing

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool
    status: int = 200  # what the receiver answered


class _ConnectionTracker:
    """The accepted connections of one server: how many so far, and the ones still open (to hang them up)."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.count = 0
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self._tls = tls

    def accepted(self, sock: socket.socket) -> socket.socket:
        if self._tls is not None:  # the handshake happens on the first read, in the connection's own thread
            sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.lock:
            self.count += 1
            self.open.add(sock)
        return sock

    def closed(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.discard(sock)

    def hang_up_all(self) -> None:
        with self.lock:
            still_open = list(self.open)
        for sock in still_open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already gone


@dataclass
class WebhookReceiver:
    """Use as a context manager; `url` is http://127.0.0.1:<port>/hook (https:// with `tls`).

    It answers the statuses queued in `responses` first, then `status` (change it at any time to make the
    target fail and recover), each after `delay_seconds`. `connections` counts the TCP connections accepted.
    """

    secret: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    responses: deque[int] = field(default_factory=deque)  # statuses to answer first, then `status`
    status: int = 200
    delay_seconds: float = 0.0
    tls: ssl.SSLContext | None = None
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _tracker: _ConnectionTracker | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self._server.server_address[1]}/hook"

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        assert self._tracker is not None
        with self._tracker.lock:
            return self._tracker.count

    def hang_up(self) -> None:
        """Close every connection now, as a receiver does with idle kept-alive ones."""
        assert self._tracker is not None
        self._tracker.hang_up_all()

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive unless the client asks to close

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                timestamp = headers.get("webhook-timestamp", "0")
                valid = timestamp.isdigit() and signing.verify(
                    receiver.secret,
                    headers.get("webhook-id", ""),
                    int(timestamp),
                    body,
                    headers.get("webhook-signature", ""),
                    now=time.time(),
                )
                with receiver._lock:
                    status = receiver.responses.popleft() if receiver.responses else receiver.status
                    receiver.received.append(ReceivedWebhook(self.path, headers, body, valid, status))
                    delay = receiver.delay_seconds
                if delay:
                    receiver._stopping.wait(delay)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._tracker = _ConnectionTracker(self.tls)
        self._server = _TrackedServer(Handler, self._tracker)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None and self._tracker is not None
        self._stopping.set()
        self._server.shutdown()
        self._tracker.hang_up_all()  # kept-alive connections would otherwise keep their threads waiting
        self._server.server_close()
        self._thread.join(timeout=5)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} webhooks within {timeout} s, got {len(self.received)}")


class _TrackedServer(ThreadingHTTPServer):
    """A threading HTTP server that counts and remembers its connections, optionally over TLS."""

    daemon_threads = True
    request_queue_size = 64  # ten calls connecting at once must not overflow the backlog (1 s SYN retries)

    def __init__(self, handler: type[BaseHTTPRequestHandler], tracker: _ConnectionTracker) -> None:
        super().__init__((LOOPBACK, 0), handler)
        self.tracker = tracker

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.tracker.accepted(sock), address

    def shutdown_request(self, request: Any) -> None:
        self.tracker.closed(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (a timeout on its side, a test hanging up): expected here
        super().handle_error(request, client_address)


class ScriptedServer:
    """A TCP server on loopback that runs `script(connection, stopping)` for each accepted connection.

    For receivers no HTTP server library would play: one that drips its answer, one that hangs up. The
    script should return soon after `stopping` is set (wait on it instead of sleeping); leaving the
    context manager sets it, closes every connection and waits for the scripts.
    """

    def __init__(
        self, script: Callable[[socket.socket, threading.Event], None], tls: ssl.SSLContext | None = None
    ) -> None:
        self.connections = 0
        self._script = script
        self._tls = tls
        self._stopping = threading.Event()
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(0.05)  # so the accepting thread notices `stopping`
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://{LOOPBACK}:{self._listener.getsockname()[1]}/hook"

    def __enter__(self) -> ScriptedServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        with self._lock:
            for sock in self._open:  # wakes a script blocked on the client; each closes its own
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            sock.settimeout(None)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            with self._lock:
                self.connections += 1
                self._open.append(sock)
                self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self._script(sock, self._stopping)
        except OSError:
            pass  # the client went away
        finally:
            sock.close()


def read_request(stream: Any) -> bytes | None:
    """Read one HTTP request (headers and a content-length body) from a binary file; None when the client
    closed the connection first."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = stream.readline()
        if not line:
            return None
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    return head + stream.read(length)
