"""The API function's AWS calls against its policy in template.yaml (moto enforces no IAM)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from resilience.mode import MODE_PARTITION_KEY
from tests.support import events
from tests.support.iam import AwsCall, denied_calls

if TYPE_CHECKING:
    from tests.integration.notifications.conftest import Herald

HEALTH_ROUTES = [
    "/health",
    "/health/live",
    "/health/ready",
    "/health/detailed",
    "/health/db",
    "/health/queues",
    "/health/providers",
    "/health/circuit-breakers",
    "/health/system",
]


def keyed_get(path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = events.get_route(path)
    event["requestContext"]["identity"]["apiKeyId"] = events.CLIENT_KEY_ID
    event["queryStringParameters"] = query
    event["multiValueQueryStringParameters"] = {name: [value] for name, value in (query or {}).items()} or None
    return event


def test_every_aws_call_the_api_makes_is_allowed_by_its_policy(herald: Herald) -> None:
    # Given: the API's paths through AWS: accept (with a keyed replay, and the health snapshot read for its
    # notice), read, every health route, and the live probes of the table and every queue
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "s", "body": "b"}
    keyed = events.post_notification(body, headers={"Idempotency-Key": "order-42"})

    # When
    accepted = herald.api(keyed)
    herald.api(keyed)
    herald.api(events.get_notification("unknown-id"))
    for path in HEALTH_ROUTES:
        herald.api(keyed_get(path))
    for path in ("/health/db", "/health/queues"):
        herald.api(keyed_get(path, {"live": "true"}))

    # Then: each path was taken, and the template's policy allows every request it made
    assert accepted["statusCode"] == 202
    assert {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:DescribeTable",
        "sqs:SendMessage",
        "sqs:GetQueueAttributes",
    } <= herald.api_calls.actions()
    assert denied_calls(herald.stack, "ApiFunction", herald.api_calls.calls) == []
    # And the live probes reached every queue the API knows, the provider-events queue included
    probed = {call.resource for call in herald.api_calls.calls if call.action == "sqs:GetQueueAttributes"}
    assert herald.stack.arns["ProviderEventsQueue"] in probed
    assert len(probed) == 6


def test_the_api_reads_only_the_health_snapshot_of_the_resilience_table(herald: Herald) -> None:
    # Given: the policy lets the API read the resilience table's items under the snapshot's partition key only
    # (dynamodb:LeadingKeys, which the recorder cannot check)
    resilience = herald.env["RESILIENCE_TABLE"]

    # When every route that reads the snapshot is taken
    herald.api(
        events.post_notification(
            {"channel": "email", "recipient": {"email": "a@example.com"}, "subject": "s", "body": "b"}
        )
    )
    for path in HEALTH_ROUTES:
        herald.api(keyed_get(path))

    # Then every read of that table is the snapshot's item
    reads = [read for read in herald.api_calls.made("dynamodb:GetItem") if read["TableName"] == resilience]
    assert reads
    assert {read["Key"]["pk"]["S"] for read in reads} == {MODE_PARTITION_KEY}
    assert AwsCall("dynamodb:GetItem", herald.stack.arns["ResilienceTable"]) in herald.api_calls.calls
