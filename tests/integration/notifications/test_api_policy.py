"""The API function's AWS calls against its policy in template.yaml (moto enforces no IAM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support import events
from tests.support.iam import denied_calls

if TYPE_CHECKING:
    from tests.integration.notifications.conftest import Herald


def test_every_aws_call_the_api_makes_is_allowed_by_its_policy(herald: Herald) -> None:
    # Given: the API's paths through AWS: accept (with a keyed replay), read, and every health probe
    body = {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "s", "body": "b"}
    keyed = events.post_notification(body, headers={"Idempotency-Key": "order-42"})

    # When
    accepted = herald.api(keyed)
    herald.api(keyed)
    herald.api(events.get_notification("unknown-id"))
    for path in ("/health", "/health/ready"):
        herald.api(events.get_route(path))

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
