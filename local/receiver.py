"""A webhook receiver for trying Herald locally: prints each delivery and whether its signature verifies.

    .venv/bin/python -m local.receiver            # listens on 127.0.0.1:${HERALD_RECEIVER_PORT:-9000}

It verifies Standard Webhooks signatures with `WEBHOOK_SIGNING_SECRET` (default: the template's local
secret) and answers 200, or the status in `HERALD_RECEIVER_STATUS`, to play a failing endpoint. It speaks
HTTP/1.1 and keeps connections alive, as Herald's sender expects of a receiver.

Switch the answered status while it runs, to watch the endpoint's breaker open and recover (the control
path needs no signature; it answers the status as JSON)::

    curl -X PUT http://127.0.0.1:9000/_status -d 503     # fail from now on
    curl -X PUT http://127.0.0.1:9000/_status -d 200     # recover
    curl http://127.0.0.1:9000/_status                   # {"status": 200}
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.functions import add_code_paths
from local.moto_server import LOOPBACK
from local.template import load_sam_template

STATUS_PATH = "/_status"


def default_secret() -> str:
    secret: str = load_sam_template()["Parameters"]["WebhookSigningSecret"]["Default"]
    return os.environ.get("WEBHOOK_SIGNING_SECRET", secret)


@dataclass
class Answer:
    """The status the receiver answers deliveries with; `PUT /_status` changes it while it runs."""

    status: int


def parse_status(text: str) -> int:
    """A status a receiver may answer with: 200-599 (1xx would break the HTTP exchange)."""
    cleaned = text.strip()
    if not (cleaned.isdigit() and 200 <= int(cleaned) <= 599):
        raise ValueError(f"status must be a number from 200 to 599, not {cleaned!r}")
    return int(cleaned)


def make_handler(secret: str, answer: Answer) -> type[BaseHTTPRequestHandler]:
    add_code_paths()
    signing = importlib.import_module("notifications.signing")  # the same code the sender signs with

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: one connection carries many deliveries

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            message_id = self.headers.get("webhook-id", "")
            timestamp = self.headers.get("webhook-timestamp", "0")
            valid = timestamp.isdigit() and signing.verify(
                secret, message_id, int(timestamp), body, self.headers.get("webhook-signature", ""), now=time.time()
            )
            status = answer.status if valid else 401
            print(json.dumps({"webhook_id": message_id, "signature_valid": valid, "answer": status}), flush=True)
            print(body.decode("utf-8", "replace"), flush=True)
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_PUT(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.path != STATUS_PATH:
                self._json(404, {"error": f"only {STATUS_PATH} can be changed"})
                return
            try:
                answer.status = parse_status(body.decode("ascii", "replace"))
            except ValueError as error:
                self._json(400, {"error": str(error)})
                return
            print(json.dumps({"answer_from_now_on": answer.status}), flush=True)
            self._json(200, {"status": answer.status})

        def do_GET(self) -> None:  # noqa: N802
            if self.path != STATUS_PATH:
                self._json(404, {"error": f"POST webhooks to any path; GET or PUT {STATUS_PATH}"})
                return
            self._json(200, {"status": answer.status})

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


class ReceiverServer(ThreadingHTTPServer):
    request_queue_size = 64  # the sender connects up to ten at once; a backlog of 5 would cost 1 s SYN retries


def build_server(port: int, secret: str, status: int) -> ReceiverServer:
    """The receiver on 127.0.0.1 only (port 0: one the system picks), answering `status` to begin with."""
    return ReceiverServer((LOOPBACK, port), make_handler(secret, Answer(status)))


def main() -> int:
    port = int(os.environ.get("HERALD_RECEIVER_PORT", "9000"))
    status = parse_status(os.environ.get("HERALD_RECEIVER_STATUS", "200"))
    server = build_server(port, default_secret(), status)
    print(
        f"webhook receiver on http://{LOOPBACK}:{port}/ answering {status} "
        f"(change it: curl -X PUT http://{LOOPBACK}:{port}{STATUS_PATH} -d 503; Ctrl-C stops it)",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
