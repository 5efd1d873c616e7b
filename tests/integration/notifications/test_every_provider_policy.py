"""The sender with every provider configured, against moto and the sandbox providers: failover on each
channel, and every AWS call checked against the sender's policy in template.yaml (moto enforces no IAM)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from api.app import build_dependencies, handle
from api.settings import ApiSettings
from local.lambda_.pollers import sqs_record
from local.sandbox import FaultSpec, Sandbox
from notifications.settings import load_settings
from sender.app import build_sender
from sender.app import handle as handle_batch
from sender.settings import SenderSettings
from tests.integration.notifications.conftest import REGION, _session, context
from tests.support import events
from tests.support.iam import AwsCallRecorder, denied_calls

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.notifications.conftest import Herald


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(callback_delay_seconds=0) as running:
        yield running


def configure(herald: Herald, sandbox: Sandbox) -> dict[str, str]:
    """Every provider, as the local runtime configures them: secrets in Secrets Manager, sandboxes' URLs."""
    secrets = herald.session.client("secretsmanager")
    credentials = sandbox.credentials
    for name, value in (
        ("herald/sendgrid", credentials.sendgrid_secret()),
        ("herald/twilio", credentials.twilio_secret()),
        ("herald/fcm", credentials.fcm_secret()),
    ):
        secrets.create_secret(Name=name, SecretString=value)
    application = herald.session.client("sns").create_platform_application(
        Name="herald-push", Platform="GCM", Attributes={"PlatformCredential": "key"}
    )["PlatformApplicationArn"]
    return {
        **herald.env,
        "EMAIL_PROVIDERS": "sendgrid,ses",
        "SMS_PROVIDERS": "twilio,sns",
        "PUSH_PROVIDERS": "fcm,sns",
        "SENDGRID_SECRET": "herald/sendgrid",
        "TWILIO_SECRET": "herald/twilio",
        "TWILIO_FROM": "+15005550006",
        "FCM_SECRET": "herald/fcm",
        "SNS_PLATFORM_APPLICATION_ARN": application,
        "SENDGRID_BASE_URL": sandbox.url,
        "TWILIO_BASE_URL": sandbox.url,
        "FCM_BASE_URL": sandbox.url,
    }


def deliver_all(herald: Herald, env: dict[str, str], requests: list[dict[str, Any]]) -> AwsCallRecorder:
    """Accept `requests` through the API, then run one sender batch over them; the sender's calls, recorded."""
    api = build_dependencies(
        load_settings(ApiSettings, env), dynamodb=herald.session.client("dynamodb"), sqs=herald.session.client("sqs")
    )
    for request in requests:
        answer = handle(events.post_notification(request), context("api", 25), api)
        assert answer["statusCode"] == 202, answer["body"]
    calls = AwsCallRecorder(herald.stack)
    session = calls.attach(_session("sender"))
    try:
        sender = build_sender(
            load_settings(SenderSettings, env),
            dynamodb=session.client("dynamodb"),
            ses=session.client("sesv2"),
            sqs=session.client("sqs"),
            sns=session.client("sns"),
            secretsmanager=session.client("secretsmanager"),
        )
        messages = herald.receive_all("StandardQueue")
        arn = herald.stack.arns["StandardQueue"]
        response = handle_batch(
            {"Records": [sqs_record(message, arn, REGION) for message in messages]}, context("sender", 60), sender
        )
        assert response["batchItemFailures"] == []
    finally:
        calls.detach(session)
    return calls


def views(herald: Herald, env: dict[str, str]) -> list[dict[str, Any]]:
    table = herald.session.client("dynamodb").scan(TableName=env["NOTIFICATIONS_TABLE"])["Items"]
    return [
        {"channel_used": item["channel_used"]["S"], "provider": item["provider"]["S"], "status": item["status"]["S"]}
        for item in table
        if "fingerprint" in item
    ]


def test_every_channel_goes_through_its_first_provider(herald: Herald, sandbox: Sandbox) -> None:
    # Given
    env = configure(herald, sandbox)

    # When
    deliver_all(
        herald,
        env,
        [
            {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "s", "body": "b"},
            {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "b"},
            {"channel": "push", "recipient": {"device_token": "device-1"}, "body": "b", "data": {"n": 1}},
        ],
    )

    # Then: each sandbox got its message, carrying the notification id
    assert sorted((view["channel_used"], view["provider"]) for view in views(herald, env)) == [
        ("email", "sendgrid"),
        ("push", "fcm"),
        ("sms", "twilio"),
    ]
    assert {message["provider"] for message in sandbox.messages()} == {"sendgrid", "twilio", "fcm"}
    assert all(message["notification_id"] for message in sandbox.messages())


def test_while_the_first_providers_refuse_the_aws_ones_deliver_within_the_sender_policy(
    herald: Herald, sandbox: Sandbox
) -> None:
    # Given: SendGrid, Twilio and FCM all answer 503
    env = configure(herald, sandbox)
    for provider in ("sendgrid", "twilio", "fcm"):
        sandbox.add_fault(FaultSpec.model_validate({"provider": provider, "error_rate": 1.0, "status": 503}))

    # When
    calls = deliver_all(
        herald,
        env,
        [
            {"channel": "email", "recipient": {"email": "ada@example.com"}, "subject": "s", "body": "b"},
            {"channel": "sms", "recipient": {"phone": "+447700900123"}, "body": "b"},
            {"channel": "push", "recipient": {"device_token": "device-1"}, "body": "b"},
        ],
    )

    # Then: SES, SNS SMS and SNS mobile push delivered them at once...
    assert sorted((view["channel_used"], view["provider"]) for view in views(herald, env)) == [
        ("email", "ses"),
        ("push", "sns-push"),
        ("sms", "sns-sms"),
    ]
    # ...and the sender's policy in template.yaml allows every request that took
    assert {
        "secretsmanager:GetSecretValue",
        "ses:SendEmail",
        "sns:Publish",
        "sns:CreatePlatformEndpoint",
        "dynamodb:PutItem",
    } <= calls.actions()
    assert denied_calls(herald.stack, "SenderFunction", calls.calls) == []
    endpoint_items = [
        item
        for item in herald.session.client("dynamodb").scan(TableName=env["NOTIFICATIONS_TABLE"])["Items"]
        if item["id"]["S"].startswith("push-endpoint#")
    ]
    assert len(endpoint_items) == 1
    assert "device-1" not in json.dumps(endpoint_items)  # the token is never a key or a value there
