"""Handlers against moto (in-process), with every table and queue built from template.yaml."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
import pytest
from moto import mock_aws

from api.app import build_dependencies, handle
from api.settings import ApiSettings
from local.aws.provision import provision
from local.aws.template import Stack
from local.lambda_.context import LambdaContext
from local.lambda_.handlers import load_functions, merged_environment
from local.lambda_.pollers import sqs_record
from local.receiver import WebhookReceiver
from notifications import signing
from notifications.clients import signing_secret_name
from notifications.ids import KeyedIds
from notifications.settings import load_settings
from sender.app import build_sender
from sender.app import handle as handle_batch
from sender.settings import SenderSettings
from tests.support import events
from tests.support.iam import AwsCallRecorder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REGION = "us-east-1"


@cache
def _translated() -> Stack:
    return Stack.from_file()


@cache
def _botocore(role: str) -> botocore.session.Session:
    """One botocore session per role for the whole run: its model loader stays warm, so a test's clients
    cost milliseconds instead of reading every service model again. The roles keep the API's and the
    sender's recorded calls apart (each recorder hooks its role's session, for one test at a time)."""
    return botocore.session.Session()


def _session(role: str) -> boto3.Session:
    return boto3.Session(region_name=REGION, botocore_session=_botocore(role))


@dataclass
class Herald:
    """The API and sender handlers wired to one moto account, plus what tests need to look inside."""

    stack: Stack
    env: dict[str, str]
    api: Callable[[dict[str, Any]], dict[str, Any]]
    api_as_deployed: Callable[[dict[str, Any]], dict[str, Any]]  # the template's settings, as in AWS
    sender: Callable[[dict[str, Any]], dict[str, Any]]
    sender_with_time_left: Callable[[dict[str, Any], float], dict[str, Any]]
    session: boto3.Session
    sender_calls: AwsCallRecorder  # every AWS request the sender's code made
    api_calls: AwsCallRecorder  # every AWS request the API's code made (through `api`)
    webhook_secret: str  # the whsec_ secret of the events' client (`events.CLIENT_KEY_ID`)
    ids: KeyedIds  # keyed notification ids under the idempotency key generated into the stack's secret

    def queue_url(self, logical_id: str) -> str:
        return self.stack.physical_ids[logical_id]

    def receive_all(self, logical_id: str, *, visibility: int | None = None) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        extra = {} if visibility is None else {"VisibilityTimeout": visibility}
        response = sqs.receive_message(
            QueueUrl=self.queue_url(logical_id),
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            **extra,
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def poll(self, logical_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """What the event source mapping does once: receive from the queue, invoke the sender, delete the
        records it did not report failed. Returns (event, response)."""
        arn = self.stack.arns[logical_id]
        messages = self.receive_all(logical_id)
        if not messages:
            return {"Records": []}, {"batchItemFailures": []}  # Lambda never invokes with an empty batch
        event = {"Records": [sqs_record(message, arn, REGION) for message in messages]}
        response = self.sender(event)
        failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        sqs = self.session.client("sqs")
        for message in messages:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.queue_url(logical_id), ReceiptHandle=message["ReceiptHandle"])
        return event, response


def context(name: str, timeout: float) -> LambdaContext:
    return LambdaContext.for_invocation(name, f"arn:aws:lambda:{REGION}:123456789012:function:{name}", 512, timeout)


@pytest.fixture
def herald(monkeypatch: pytest.MonkeyPatch) -> Iterator[Herald]:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        stack = copy.deepcopy(_translated())
        session = _session("test")
        provision(stack, session, prefix="test")
        deployed = merged_environment(load_functions(stack))
        # As the local runtime does: webhooks may target the loopback receivers these tests start.
        env = {**deployed, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}
        api_calls = AwsCallRecorder(stack)
        api_session = api_calls.attach(_session("api"))
        api_clients = {
            "dynamodb": api_session.client("dynamodb"),
            "sqs": api_session.client("sqs"),
            "probe_dynamodb": api_session.client("dynamodb"),
            "probe_sqs": api_session.client("sqs"),
            "secretsmanager": api_session.client("secretsmanager"),
        }
        api_deps = build_dependencies(load_settings(ApiSettings, env), **api_clients)
        deployed_api_deps = build_dependencies(load_settings(ApiSettings, deployed), **api_clients)
        # Building read the idempotency key: its GetSecretValue stays in `calls`, for the policy checks, but
        # `requests` starts empty, so a test sees only the requests its own invocations make.
        api_calls.requests.clear()
        sender_calls = AwsCallRecorder(stack)
        sender_session = sender_calls.attach(_session("sender"))
        sender = build_sender(
            load_settings(SenderSettings, env),
            dynamodb=sender_session.client("dynamodb"),
            ses=sender_session.client("sesv2"),
            sqs=sender_session.client("sqs"),
            secretsmanager=sender_session.client("secretsmanager"),
        )
        secrets = session.client("secretsmanager")
        # The events' client has its own signing key, made as POST /admin/clients makes one.
        client_key = signing.new_secret_value()
        secrets.create_secret(Name=signing_secret_name(events.CLIENT_KEY_ID), SecretString=json.dumps(client_key))
        idempotency = secrets.get_secret_value(SecretId=env["IDEMPOTENCY_SECRET_NAME"])
        herald = Herald(
            stack=stack,
            env=env,
            api=lambda event: handle(event, context("api", 25), api_deps),
            api_as_deployed=lambda event: handle(event, context("api", 25), deployed_api_deps),
            sender=lambda event: handle_batch(event, context("sender", 60), sender),
            sender_with_time_left=lambda event, seconds: handle_batch(event, context("sender", seconds), sender),
            session=session,
            sender_calls=sender_calls,
            api_calls=api_calls,
            webhook_secret=signing.secret_of(client_key),
            ids=KeyedIds.from_secret(json.loads(idempotency["SecretString"])),
        )
        try:
            yield herald
        finally:
            api_calls.detach(api_session)
            sender_calls.detach(sender_session)


@pytest.fixture
def receiver(herald: Herald) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=herald.webhook_secret) as running:
        yield running
