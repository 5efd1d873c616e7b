"""AWS requests per accepted notification: `POST /notifications/batch` against one `POST /notifications` each.

    .venv/bin/python -m benchmarks.batch_accept [--notifications 100]

The real API handler runs against an in-process moto (`moto.mock_aws`; every table and queue built from
template.yaml), its DynamoDB and SQS clients counting each request with a botocore `before-call` hook.
In one run it accepts the same number of notifications one at a time (a `PutItem` and a `SendMessage`
each: the baseline), then in batches: without idempotency keys (`BatchWriteItem` of 25,
`SendMessageBatch` of 10), with keys (conditional puts in one `TransactWriteItems`), the keyed batch
again (every notification a replay) and a batch split over two queues by priority. It prints one row
per case and exits non-zero when a batch misses its target or a notification was not accepted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

REGION = "us-east-1"
EMAIL = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "Code", "body": "Your code is 1"}
# Requests per accepted notification a batch of 100 may cost (a single accept costs 2); checked at 100 only.
TARGETS = {"batch, no keys": 0.25, "batch, keys": 0.5}


@dataclass(frozen=True)
class Case:
    name: str
    notifications: int
    accepted: int
    requests: Counter[str]

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


def _context() -> Any:
    """The local runtime's LambdaContext, which quacks like Powertools' typing-only one."""
    from local.lambda_.context import LambdaContext  # noqa: PLC0415 - needs the code paths first

    return LambdaContext.for_invocation("api", f"arn:aws:lambda:{REGION}:123456789012:function:api", 512, 10)


def measure(count: int) -> list[Case]:
    """Every case in one moto account, each with freshly counted clients."""
    import boto3  # noqa: PLC0415 - after the code paths, as Lambda would load it
    from moto import mock_aws  # noqa: PLC0415

    from api.app import build_dependencies, handle  # noqa: PLC0415
    from api.settings import ApiSettings  # noqa: PLC0415
    from local.aws.provision import provision  # noqa: PLC0415
    from local.aws.template import Stack  # noqa: PLC0415
    from local.lambda_.handlers import load_functions, merged_environment  # noqa: PLC0415
    from notifications.settings import load_settings  # noqa: PLC0415

    with mock_aws():
        stack = copy.deepcopy(Stack.from_file())
        session = boto3.Session(region_name=REGION)
        provision(stack, session, prefix="bench")
        settings = load_settings(ApiSettings, merged_environment(load_functions(stack)))

        def run(name: str, events: list[dict[str, Any]], accepted_of: Callable[[dict[str, Any]], int]) -> Case:
            """Send the events through the handler; count the requests and the notifications accepted."""
            requests: Counter[str] = Counter()
            clients = {"dynamodb": session.client("dynamodb"), "sqs": session.client("sqs")}
            for client in clients.values():
                client.meta.events.register("before-call", lambda model, **_: requests.update([model.name]))
            deps = build_dependencies(settings, **clients)
            accepted = sum(accepted_of(handle(event, _context(), deps)) for event in events)
            return Case(name, count, accepted, requests)

        def single(response: dict[str, Any]) -> int:
            return 1 if response["statusCode"] == 202 else 0

        def batch(response: dict[str, Any]) -> int:
            return int(json.loads(response["body"]).get("accepted", 0)) if response["statusCode"] == 202 else 0

        keyed = [{**EMAIL, "idempotency_key": f"order-{i}"} for i in range(count)]
        mixed = [{**EMAIL, "priority": "high" if i % 2 else "normal"} for i in range(count)]
        return [
            run("single accepts", [_event("/notifications", EMAIL) for _ in range(count)], single),
            run("batch, no keys", [_event("/notifications/batch", {"notifications": [EMAIL] * count})], batch),
            run("batch, keys", [_event("/notifications/batch", {"notifications": keyed})], batch),
            run("batch, keys, replayed", [_event("/notifications/batch", {"notifications": keyed})], batch),
            run("batch, two queues", [_event("/notifications/batch", {"notifications": mixed})], batch),
        ]


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
        operations = ", ".join(f"{name} {n}" for name, n in sorted(case.requests.items()))
        target = TARGETS.get(case.name) if case.notifications == 100 else None  # the targets are for 100
        print(
            f"| {case.name} | {case.notifications} | {operations} | {case.per_notification:.2f} |"
            f" {case.per_notification / baseline:.3f}x | {f'<= {target}' if target else ''} |"
        )
        if case.accepted != case.notifications:
            failures.append(f"{case.name}: {case.accepted} of {case.notifications} accepted")
        if target is not None and case.per_notification > target:
            failures.append(f"{case.name}: {case.per_notification:.2f} requests per notification, target {target}")
    for failure in failures:
        print(f"MISSED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
