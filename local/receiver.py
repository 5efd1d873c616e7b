"""The example webhook receiver: the one a person runs to try Herald locally, and the one the tests deliver to.

    .venv/bin/python -m local.receiver            # listens on 127.0.0.1:${HERALD_RECEIVER_PORT:-9000}

Run this way, it prints each delivery and whether its Standard Webhooks signature verifies with
`WEBHOOK_SIGNING_SECRET` (default: the local runtime's secret), answers 401 to a bad signature, and
otherwise 200, or the status in `HERALD_RECEIVER_STATUS`, to play a failing endpoint. It speaks HTTP/1.1 and
keeps connections alive, as Herald's sender expects of a receiver.

Switch the answered status while it runs, to watch the endpoint's breaker open and recover (the control
path needs no signature; it answers the status as JSON)::

    curl -X PUT http://127.0.0.1:9000/_status -d 503     # fail from now on
    curl -X PUT http://127.0.0.1:9000/_status -d 200     # recover
    curl http://127.0.0.1:9000/_status                   # {"status": 200}

Tests use :class:`WebhookReceiver` as a context manager on a port the system picks: it records every
delivery, answers scripted statuses, can answer late, counts and hangs up its connections, and can speak TLS.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from local.aws.moto_server import LOOPBACK
from local.lambda_.handlers import add_code_paths
from local.settings import DEFAULT_WEBHOOK_SIGNING_SECRET

if TYPE_CHECKING:
    import ssl

STATUS_PATH = "/_status"


def default_secret() -> str:
    """The local runtime's webhook secret (`WEBHOOK_SIGNING_SECRET`, else the local default)."""
    return os.environ.get("WEBHOOK_SIGNING_SECRET") or DEFAULT_WEBHOOK_SIGNING_SECRET


def parse_status(text: str) -> int:
    """A status a receiver may answer with: 200-599 (1xx would break the HTTP exchange)."""
    cleaned = text.strip()
    if not (cleaned.isdigit() and 200 <= int(cleaned) <= 599):
        raise ValueError(f"status must be a number from 200 to 599, not {cleaned!r}")
    return int(cleaned)


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

    It answers the statuses queued in `responses` first, then `status` (change it at any time, or with
    `PUT /_status`, to make the target fail and recover), each after `delay_seconds`. `connections` counts the
    TCP connections accepted. With `reject_bad_signatures` it answers 401 to a delivery whose signature does
    not verify (as a real receiver does); without, it answers as scripted and records `signature_valid`.
    With `echo` it prints each delivery to stdout. `port` 0 (the default): one the system picks; `port` is
    the bound one once entered.
    """

    secret: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    responses: deque[int] = field(default_factory=deque)  # statuses to answer first, then `status`
    status: int = 200
    delay_seconds: float = 0.0
    tls: ssl.SSLContext | None = None
    port: int = 0
    reject_bad_signatures: bool = False
    echo: bool = False
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
        self._tracker = _ConnectionTracker(self.tls)
        self._server = _TrackedServer((LOOPBACK, self.port), _handler_for(self), self._tracker)
        self.port = int(self._server.server_address[1])
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

    # ------------------------------------------------------------------ what the handler calls
    def _answer(self, path: str, headers: dict[str, str], body: bytes, valid: bool) -> tuple[int, float]:
        """Record one delivery; the status to answer it with, and how long to wait first."""
        with self._lock:
            if self.reject_bad_signatures and not valid:
                status = 401
            else:
                status = self.responses.popleft() if self.responses else self.status
            self.received.append(ReceivedWebhook(path, headers, body, valid, status))
            delay = self.delay_seconds
        if self.echo:
            print(json.dumps({"webhook_id": headers.get("webhook-id", ""), "signature_valid": valid, "answer": status}))
            print(body.decode("utf-8", "replace"), flush=True)
        return status, delay

    def _set_status(self, text: str) -> int:
        status = parse_status(text)
        with self._lock:
            self.status = status
        if self.echo:
            print(json.dumps({"answer_from_now_on": status}), flush=True)
        return status


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    add_code_paths()  # run as `python -m local.receiver`, the function code is not on sys.path yet
    signing = importlib.import_module("notifications.signing")  # the same code the sender signs with

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive unless the client asks to close

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
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
            status, delay = receiver._answer(self.path, headers, body, valid)
            if delay:
                receiver._stopping.wait(delay)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != STATUS_PATH:
                self._json(404, {"error": f"only {STATUS_PATH} can be changed"})
                return
            try:
                status = receiver._set_status(body.decode("ascii", "replace"))
            except ValueError as error:
                self._json(400, {"error": str(error)})
                return
            self._json(200, {"status": status})

        def do_GET(self) -> None:  # noqa: N802
            if self.path != STATUS_PATH:
                self._json(404, {"error": f"POST webhooks to any path; GET or PUT {STATUS_PATH}"})
                return
            self._json(200, {"status": receiver.status})

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return

    return Handler


class _TrackedServer(ThreadingHTTPServer):
    """A threading HTTP server that counts and remembers its connections, optionally over TLS."""

    daemon_threads = True
    request_queue_size = 64  # the sender connects up to ten at once; a backlog of 5 would cost 1 s SYN retries

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tracker: _ConnectionTracker
    ) -> None:
        super().__init__(address, handler)
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


def example_receiver(secret: str, status: int = 200, port: int = 0) -> WebhookReceiver:
    """The receiver as `python -m local.receiver` runs it: prints each delivery, refuses bad signatures."""
    return WebhookReceiver(secret=secret, status=status, port=port, reject_bad_signatures=True, echo=True)


def main() -> int:
    port = int(os.environ.get("HERALD_RECEIVER_PORT", "9000"))
    status = parse_status(os.environ.get("HERALD_RECEIVER_STATUS", "200"))
    with example_receiver(default_secret(), status, port) as receiver:
        print(
            f"webhook receiver on http://{LOOPBACK}:{receiver.port}/ answering {status} "
            f"(change it: curl -X PUT http://{LOOPBACK}:{receiver.port}{STATUS_PATH} -d 503; Ctrl-C stops it)",
            flush=True,
        )
        try:
            receiver._stopping.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
