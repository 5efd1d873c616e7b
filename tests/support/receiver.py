"""A webhook receiver on loopback: records every request, verifies Standard Webhooks signatures,
and answers with scripted statuses so tests can make a target fail, recover or time out."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from notifications import signing


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_valid: bool


@dataclass
class WebhookReceiver:
    """Use as a context manager; `url` is http://127.0.0.1:<port>/hook."""

    secret: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    responses: deque[int] = field(default_factory=deque)  # statuses to answer, then 200 forever
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                valid = signing.verify(
                    receiver.secret,
                    headers.get("webhook-id", ""),
                    int(headers.get("webhook-timestamp", "0")),
                    body,
                    headers.get("webhook-signature", ""),
                    now=time.time(),
                )
                with receiver._lock:
                    receiver.received.append(ReceivedWebhook(self.path, headers, body, valid))
                    status = receiver.responses.popleft() if receiver.responses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
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
