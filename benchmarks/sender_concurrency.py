"""Sender handler time per SQS batch: deliveries one by one against the bounded concurrent pool.

    .venv/bin/python -m benchmarks.sender_concurrency [--batches 5] [--delay 0.15]

The real sender handler (status store, breakers, webhook provider with keep-alive) runs against an
in-process moto (every table and queue built from template.yaml) and a webhook receiver on 127.0.0.1
that answers each request after `--delay` seconds. For batch sizes 10 and 1 (the usual batch at low
traffic), it times `sender.app.handle` with `DELIVERY_CONCURRENCY=1` and with the default pool of 10,
in one run, and prints the median and worst handler time per batch, and the connections the receiver
accepted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local import REPO_ROOT
from local.lambda_.handlers import add_code_paths, load_functions, merged_environment

add_code_paths()

import boto3  # noqa: E402 - after the code paths, as Lambda would load it
from moto import mock_aws  # noqa: E402

from local.aws.provision import provision  # noqa: E402
from local.aws.template import Stack  # noqa: E402
from local.lambda_.context import LambdaContext  # noqa: E402

REGION = "us-east-1"


class SlowReceiver:
    """HTTP/1.1 keep-alive receiver on loopback answering 200 after a fixed delay; counts connections."""

    def __init__(self, delay: float) -> None:
        self.connections = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", "0")))
                time.sleep(delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> Any:
                request = super().get_request()
                receiver.connections += 1
                return request

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def __enter__(self) -> SlowReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _event(ids: list[str], queue_arn: str) -> dict[str, Any]:
    records = [
        {
            "messageId": f"m-{notification_id}",
            "receiptHandle": f"rh-{notification_id}",
            "body": json.dumps({"id": notification_id}),
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": REGION,
        }
        for notification_id in ids
    ]
    return {"Records": records}


def _context(name: str, timeout: int) -> Any:
    """The local runtime's LambdaContext, which quacks like Powertools' typing-only one."""
    return LambdaContext.for_invocation(name, f"arn:aws:lambda:{REGION}:123456789012:function:{name}", 512, timeout)


def measure(concurrency: int, batch_size: int, batches: int, delay: float) -> tuple[list[float], int]:
    """Handler seconds per batch, and the connections the receiver accepted."""
    from api.app import build_dependencies  # noqa: PLC0415 - needs the code paths and moto first
    from api.app import handle as api_handle  # noqa: PLC0415
    from api.settings import ApiSettings  # noqa: PLC0415
    from notifications.observability import metrics  # noqa: PLC0415
    from notifications.settings import load_settings  # noqa: PLC0415
    from sender.app import build_sender  # noqa: PLC0415
    from sender.app import handle as send_batch  # noqa: PLC0415
    from sender.settings import SenderSettings  # noqa: PLC0415

    with mock_aws(), SlowReceiver(delay) as receiver:
        stack = copy.deepcopy(Stack.from_file())
        provision(stack, boto3.Session(region_name=REGION), prefix="bench")
        env = {
            **merged_environment(load_functions(stack)),
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "DELIVERY_CONCURRENCY": str(concurrency),
        }
        api = build_dependencies(load_settings(ApiSettings, env))
        sender = build_sender(load_settings(SenderSettings, env))
        template = json.loads((REPO_ROOT / "events" / "api_post_notification.json").read_text(encoding="utf-8"))
        timings: list[float] = []
        for _ in range(batches):
            ids = []
            for _ in range(batch_size):
                event = copy.deepcopy(template)
                event["headers"].pop("Idempotency-Key", None)
                event["multiValueHeaders"].pop("Idempotency-Key", None)
                request = {"channel": "webhook", "recipient": {"webhook_url": receiver.url}, "body": "b"}
                event["body"] = json.dumps(request)
                # The stack's default client, whose signing key the template generated (each client signs its own)
                event["requestContext"]["identity"]["apiKeyId"] = stack.physical_ids["HeraldApiApiKey"]
                answer = api_handle(event, _context("api", 25), api)
                ids.append(json.loads(answer["body"])["id"])
            context = _context("sender", 60)
            started = time.perf_counter()
            response = send_batch(_event(ids, stack.arns["StandardQueue"]), context, sender)
            timings.append(time.perf_counter() - started)
            metrics.clear_metrics()  # the handler's EMF lines, which Lambda would print at the end
            assert response["batchItemFailures"] == [], response
            statuses = {api.store.get(notification_id).status.value for notification_id in ids}  # type: ignore[union-attr]
            assert statuses == {"sent"}, statuses  # every one reached the receiver, or the figure means nothing
        return timings, receiver.connections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.15, help="seconds the receiver takes to answer")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # EMF lines would bury the table
    print(f"{args.batches} batches each; receiver answers after {args.delay * 1000:.0f} ms")
    print("| batch size | deliveries at once | median handler time | worst | vs one by one | connections |")
    print("|---|---|---|---|---|---|")
    for batch_size in (10, 1):
        baseline: float | None = None
        for concurrency in (1, 10):
            timings, connections = measure(concurrency, batch_size, args.batches, args.delay)
            median = statistics.median(timings)
            baseline = baseline or median
            print(
                f"| {batch_size} | {min(concurrency, batch_size)} | {median:.3f} s | {max(timings):.3f} s |"
                f" {median / baseline:.2f}x | {connections} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
