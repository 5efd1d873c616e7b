"""AWS requests per accepted notification: batches against single accepts, through the API and the inbound queue.

    .venv/bin/python -m benchmarks.batch_accept [--notifications 100]

The real API and ingest handlers run against an in-process moto (`moto.mock_aws`; every table and queue
built from template.yaml), their DynamoDB and SQS clients counting each request with a botocore
`before-call` hook. In one run the API accepts the same number of notifications one at a time (a
`PutItem` and a `SendMessage` each: the baseline), then in batches: without idempotency keys
(`BatchWriteItem` of 25, `SendMessageBatch` of 10), with keys (conditional puts in one
`TransactWriteItems`), the keyed batch again (every notification a replay) and a batch split over two
queues by priority.

Then the ingest function accepts them from producers: one message per notification, without keys (the
SQS message id becomes the key) and with keys, and one message holding the batch envelope of all of
them, without and with keys. A producer client sends the messages to the InboundQueue; the local
runtime's event source mapping player (`local.lambda_.pollers.SqsPoller`, records built by
`sqs_record`) receives them in batches of the template's `BatchSize`, invokes the real
`ingest.app.handle` and deletes what succeeded. Only the requests of the clients handed to
`ingest.app.build_dependencies` are counted: the poller's ReceiveMessage and DeleteMessageBatch are
Lambda's, not the function's, and the producer's SendMessage is the producer's; both are printed apart.

It prints one row per case and exits non-zero when a batch misses its target or a notification was not
accepted (for ingest: not stored and queued for delivery).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_sqs import SQSClient

REGION = "us-east-1"
EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
INGEST_FUNCTION = "IngestFunction"
# Requests per accepted notification a batch of 100 may cost (a single accept costs 2); checked at 100 only.
TARGETS = {
    "batch, no keys": 0.25,
    "batch, keys": 0.5,
    "ingest, envelope, no keys": 0.25,
    "ingest, envelope, keys": 0.5,
    "ingest, messages, no keys": 0.25,  # ten single messages per invocation, accepted together
    "ingest, messages, keys": 0.25,
}


@dataclass(frozen=True)
class Case:
    name: str
    notifications: int
    accepted: int
    requests: Counter[str]
    # Ingest cases only: the producer's requests, and the event source mapping's (Lambda's), not counted above.
    producer: Counter[str] = field(default_factory=Counter)
    poller: Counter[str] = field(default_factory=Counter)
    invocations: int = 0

    @property
    def per_notification(self) -> float:
        return sum(self.requests.values()) / max(self.accepted, 1)


def _event(path: str, body: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((REPO_ROOT / "events" / "api_post_notification.json").read_text("utf-8"))
    for headers in (event["headers"], event["multiValueHeaders"]):
        headers.pop("Idempotency-Key", None)
    event["resource"] = event["path"] = event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/v1{path}"
    event["body"] = json.dumps(body)
    return event


def _context(function: str) -> Any:
    """The local runtime's LambdaContext, which quacks like Powertools' typing-only one."""
    from local.lambda_.context import LambdaContext  # noqa: PLC0415 - needs the code paths first

    timeout = 25 if function == "api" else 10  # the functions' Timeout in template.yaml
    return LambdaContext.for_invocation(
        function, f"arn:aws:lambda:{REGION}:123456789012:function:{function}", 512, timeout
    )


def _counting(client: Any, requests: Counter[str]) -> Any:
    """`client`, adding the name of every request it makes to `requests`."""
    client.meta.events.register("before-call", lambda model, **_: requests.update([model.name]))
    return client


def measure(count: int) -> list[Case]:  # noqa: PLR0915 - one moto account; the cases share its stack
    """Every case in one moto account, each with freshly counted clients."""
    import boto3  # noqa: PLC0415 - after the code paths, as Lambda would load it
    from moto import mock_aws  # noqa: PLC0415

    from api.app import build_dependencies, handle  # noqa: PLC0415
    from api.settings import ApiSettings  # noqa: PLC0415
    from ingest import app as ingest_app  # noqa: PLC0415
    from ingest.settings import IngestSettings  # noqa: PLC0415
    from local.aws.provision import provision  # noqa: PLC0415
    from local.aws.template import Stack  # noqa: PLC0415
    from local.lambda_.handlers import load_functions, merged_environment  # noqa: PLC0415
    from local.lambda_.pollers import SqsPoller, sqs_event_sources  # noqa: PLC0415
    from notifications.observability import metrics  # noqa: PLC0415
    from notifications.settings import load_settings  # noqa: PLC0415

    with mock_aws():
        stack = copy.deepcopy(Stack.from_file())
        session = boto3.Session(region_name=REGION)
        provision(stack, session, prefix="bench")
        environment = merged_environment(load_functions(stack))
        settings = load_settings(ApiSettings, environment)
        ingest_settings = load_settings(IngestSettings, environment)
        source = next(source for source in sqs_event_sources(stack) if source.function_logical_id == INGEST_FUNCTION)
        observer: SQSClient = session.client("sqs")  # not counted: reads what the cases left on the queues
        delivery_queues = (settings.priority_queue_url, settings.standard_queue_url, settings.batch_queue_url)

        def queued() -> int:
            """Messages waiting on the delivery queues: one per notification accepted (no sender drains them)."""
            names: Any = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
            return sum(
                int(value)
                for url in delivery_queues
                for value in observer.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"].values()
            )

        def run(name: str, events: list[dict[str, Any]], accepted_of: Callable[[dict[str, Any]], int]) -> Case:
            """Send the events through the handler; count the requests and the notifications accepted."""
            requests: Counter[str] = Counter()
            clients = {service: _counting(session.client(service), requests) for service in ("dynamodb", "sqs")}
            deps = build_dependencies(settings, **clients)
            accepted = sum(accepted_of(handle(event, _context("api"), deps)) for event in events)
            return Case(name, count, accepted, requests)

        def ingest(name: str, bodies: list[dict[str, Any]], batch_size: int | None = None) -> Case:
            """Producers send `bodies`; the event source mapping hands them to the ingest function in batches.

            Only the function's own clients count; a notification is accepted when its delivery message is
            queued (a reject goes to the inbound dead-letter queue, a failure stays on the inbound queue).
            """
            requests: Counter[str] = Counter()
            clients = {service: _counting(session.client(service), requests) for service in ("dynamodb", "sqs")}
            deps = ingest_app.build_dependencies(ingest_settings, **clients)
            producer: Counter[str] = Counter()
            producer_sqs = _counting(session.client("sqs"), producer)
            for body in bodies:
                producer_sqs.send_message(QueueUrl=source.queue_url, MessageBody=json.dumps(body))
            invocations = 0

            def invoke(event: dict[str, Any]) -> dict[str, Any]:
                """`lambda_handler` without X-Ray; metrics dropped after each invocation, as its `log_metrics` would
                flush them (Powertools prints a metric that reaches 100 values even with metrics disabled)."""
                nonlocal invocations
                invocations += 1
                try:
                    return ingest_app.handle(event, _context("ingest"), deps)
                finally:
                    metrics.clear_metrics()

            poller_requests: Counter[str] = Counter()
            mapping = source if batch_size is None else dataclasses.replace(source, batch_size=batch_size)
            poller = SqsPoller(mapping, invoke, _counting(session.client("sqs"), poller_requests), wait_seconds=0)
            before = queued()
            received = 0
            while received < len(bodies) and (handled := poller.poll_once()):
                received += handled
            return Case(name, count, queued() - before, requests, producer, poller_requests, invocations)

        def single(response: dict[str, Any]) -> int:
            return 1 if response["statusCode"] == 202 else 0

        def batch(response: dict[str, Any]) -> int:
            return int(json.loads(response["body"]).get("accepted", 0)) if response["statusCode"] == 202 else 0

        keyed = [{**EMAIL, "idempotency_key": f"order-{i}"} for i in range(count)]
        mixed = [{**EMAIL, "priority": "high" if i % 2 else "normal"} for i in range(count)]
        # Keys of their own: the inbound queue's client may be the API key of the cases above.
        inbound_keyed = [{**EMAIL, "idempotency_key": f"inbound-{i}"} for i in range(count)]
        envelope_keyed = [{**EMAIL, "idempotency_key": f"inbound-envelope-{i}"} for i in range(count)]
        return [
            run("single accepts", [_event("/notifications", EMAIL) for _ in range(count)], single),
            run("batch, no keys", [_event("/notifications/batch", {"notifications": [EMAIL] * count})], batch),
            run("batch, keys", [_event("/notifications/batch", {"notifications": keyed})], batch),
            run("batch, keys, replayed", [_event("/notifications/batch", {"notifications": keyed})], batch),
            run("batch, two queues", [_event("/notifications/batch", {"notifications": mixed})], batch),
            ingest("ingest, messages, no keys", [EMAIL] * count),
            ingest("ingest, messages, keys", inbound_keyed),
            ingest("ingest, messages, batch size 1", [EMAIL] * count, batch_size=1),
            ingest("ingest, envelope, no keys", [{"notifications": [EMAIL] * count}]),
            ingest("ingest, envelope, keys", [{"notifications": envelope_keyed}]),
        ]


def _operations(requests: Counter[str]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(requests.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=100, choices=range(1, 101), metavar="1..100")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"  # EMF lines would bury the table
    cases = measure(args.notifications)
    baseline = cases[0].per_notification
    failures = []
    print("| case | notifications | requests by operation | requests per notification | vs single accept | target |")
    print("|---|---|---|---|---|---|")
    for case in cases:
        target = TARGETS.get(case.name) if case.notifications == 100 else None  # the targets are for 100
        print(
            f"| {case.name} | {case.notifications} | {_operations(case.requests)} | {case.per_notification:.2f} |"
            f" {case.per_notification / baseline:.3f}x | {f'<= {target}' if target else ''} |"
        )
        if case.accepted != case.notifications:
            failures.append(f"{case.name}: {case.accepted} of {case.notifications} accepted")
        if target is not None and case.per_notification > target:
            failures.append(f"{case.name}: {case.per_notification:.2f} requests per notification, target {target}")
    ingested = [case for case in cases if case.invocations]
    print()
    print(
        "Ingest rows count only the requests of the ingest function's own clients. The event source mapping's"
        " ReceiveMessage and DeleteMessageBatch are Lambda's, not the function's, and are not counted; nor is"
        " the producer's SendMessage (1 per message):"
    )
    print()
    print("| ingest case | producer messages | producer SendMessage per notification | invocations | Lambda's poller |")
    print("|---|---|---|---|---|")
    for case in ingested:
        sent = case.producer["SendMessage"]
        print(
            f"| {case.name} | {sent} | {sent / max(case.notifications, 1):.2f} | {case.invocations} |"
            f" {_operations(case.poller)} |"
        )
    print()
    print(
        "The messages of one invocation are accepted together (a transaction and a SendMessageBatch for the"
        " template's batch of 10). At batch size 1, the usual batch at low traffic, a message of one notification"
        " costs what a single API accept costs (a PutItem and a SendMessage). Producers that send many"
        " notifications at once should send the batch envelope."
    )
    for failure in failures:
        print(f"MISSED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
