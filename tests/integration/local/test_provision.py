"""Provisioning creates exactly the template's queues, tables and sender identity in moto."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from local.aws.provision import creation_order

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.runtime import AwsClients


def test_creates_exactly_the_template_queues_with_their_settings(
    make_stack: Callable[..., Any], aws: AwsClients
) -> None:
    # Given the template, with MaxReceiveCount overridden as a deploy would
    provisioned = make_stack(MaxReceiveCount="3")
    stack = provisioned.stack
    sqs = aws.client("sqs")

    # When the created queues are listed
    urls = sqs.list_queues(QueueNamePrefix=f"{provisioned.prefix}-").get("QueueUrls", [])

    # Then there is one per AWS::SQS::Queue, and each has the template's attributes and redrive to the DLQ
    template_queues = stack.of_type("AWS::SQS::Queue")
    assert sorted(urls) == sorted(provisioned.provisioned.queues.values())
    assert set(provisioned.provisioned.queues) == set(template_queues)
    for logical_id, properties in template_queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=stack.physical_ids[logical_id], AttributeNames=["All"])[
            "Attributes"
        ]
        assert attributes["QueueArn"] == stack.arns[logical_id]
        assert attributes["MessageRetentionPeriod"] == str(properties["MessageRetentionPeriod"])
        assert attributes["SqsManagedSseEnabled"] == "true"
        if "VisibilityTimeout" in properties:
            assert attributes["VisibilityTimeout"] == str(properties["VisibilityTimeout"])
        if "RedrivePolicy" in properties:
            dlq = properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]  # from the template itself
            assert json.loads(attributes["RedrivePolicy"]) == {
                "deadLetterTargetArn": stack.arns[dlq],
                "maxReceiveCount": 3,
            }
        else:
            assert "RedrivePolicy" not in attributes


def test_dead_letter_queue_is_created_before_the_queues_redriving_to_it(make_stack: Callable[..., Any]) -> None:
    # Given the translated template
    stack = make_stack().stack

    # When the creation order is computed
    order = creation_order(stack, {"AWS::SQS::Queue"})

    # Then each DLQ comes before every queue whose RedrivePolicy names it
    redriving = {
        name: props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        for name, props in stack.of_type("AWS::SQS::Queue").items()
        if "RedrivePolicy" in props
    }
    assert redriving
    assert all(order.index(dlq) < order.index(name) for name, dlq in redriving.items())


def test_creates_exactly_the_template_tables_with_keys_billing_and_ttl(
    make_stack: Callable[..., Any], aws: AwsClients
) -> None:
    # Given the template
    provisioned = make_stack()
    stack = provisioned.stack
    dynamodb = aws.client("dynamodb")

    # When the created tables are described
    names = [name for name in dynamodb.list_tables()["TableNames"] if name.startswith(f"{provisioned.prefix}-")]

    # Then there is one per AWS::DynamoDB::Table, with its key schema, billing mode and TTL attribute
    template_tables = stack.of_type("AWS::DynamoDB::Table")
    assert sorted(names) == sorted(provisioned.provisioned.tables.values())
    assert set(provisioned.provisioned.tables) == set(template_tables)
    for logical_id, properties in template_tables.items():
        name = stack.physical_ids[logical_id]
        table = dynamodb.describe_table(TableName=name)["Table"]
        assert table["KeySchema"] == properties["KeySchema"]
        assert table["BillingModeSummary"]["BillingMode"] == properties["BillingMode"]
        assert table["TableArn"] == stack.arns[logical_id]
        ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert ttl == {
            "TimeToLiveStatus": "ENABLED",
            "AttributeName": properties["TimeToLiveSpecification"]["AttributeName"],
        }


def test_sender_email_identity_is_verified_so_ses_accepts_mail_from_it(
    make_stack: Callable[..., Any], aws: AwsClients
) -> None:
    # Given the template's SenderEmail parameter, set for this test
    sender = "herald-test@example.org"
    make_stack(SenderEmail=sender)

    # When email is sent from it through SES v2
    response = aws.client("sesv2").send_email(
        FromEmailAddress=sender,
        Destination={"ToAddresses": ["ada@example.com"]},
        Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hello"}}}},
    )

    # Then SES accepted it
    assert response["MessageId"]
