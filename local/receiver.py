"""A webhook receiver for trying Herald locally: prints each delivery and whether its signature verifies.

    .venv/bin/python -m local.receiver            # listens on 127.0.0.1:${HERALD_RECEIVER_PORT:-9000}

It verifies Standard Webhooks signatures with `WEBHOOK_SIGNING_SECRET` (default: the template's local
secret), answers 200, or the status in `HERALD_RECEIVER_STATUS` to play a failing endpoint.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local.functions import add_code_paths
from local.moto_server import LOOPBACK
from local.template import load_sam_template


def default_secret() -> str:
    secret: str = load_sam_template()["Parameters"]["WebhookSigningSecret"]["Default"]
    return os.environ.get("WEBHOOK_SIGNING_SECRET", secret)


def make_handler(secret: str, status: int) -> type[BaseHTTPRequestHandler]:
    add_code_paths()
    signing = importlib.import_module("notifications.signing")  # the same code the sender signs with

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            message_id = self.headers.get("webhook-id", "")
            timestamp = self.headers.get("webhook-timestamp", "0")
            valid = timestamp.isdigit() and signing.verify(
                secret, message_id, int(timestamp), body, self.headers.get("webhook-signature", ""), now=time.time()
            )
            print(json.dumps({"webhook_id": message_id, "signature_valid": valid, "answer": status}), flush=True)
            print(body.decode("utf-8", "replace"), flush=True)
            self.send_response(status if valid else 401)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    return Handler


def main() -> int:
    port = int(os.environ.get("HERALD_RECEIVER_PORT", "9000"))
    status = int(os.environ.get("HERALD_RECEIVER_STATUS", "200"))
    server = ThreadingHTTPServer((LOOPBACK, port), make_handler(default_secret(), status))
    print(f"webhook receiver on http://{LOOPBACK}:{port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
