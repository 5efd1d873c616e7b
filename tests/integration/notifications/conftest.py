"""Handlers against moto (in-process), with every table and queue built from template.yaml."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from api.app import build_dependencies, handle
from api.settings import ApiSettings
from local.functions import load_functions, merged_environment
from local.lambda_context import LambdaContext
from local.provision import provision
from local.template import Stack
from notifications.settings import load_settings
from sender.app import build_deliverer
from sender.app import handle as handle_batch
from sender.settings import SenderSettings
from tests.support.receiver import WebhookReceiver

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REGION = "us-east-1"


@cache
def _translated() -> Stack:
    return Stack.from_file()


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

    def queue_url(self, logical_id: str) -> str:
        return self.stack.physical_ids[logical_id]

    def receive_all(self, logical_id: str) -> list[dict[str, Any]]:
        sqs = self.session.client("sqs")
        response = sqs.receive_message(
            QueueUrl=self.queue_url(logical_id), MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages


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
        session = boto3.Session(region_name=REGION)
        provision(stack, session, prefix="test")
        deployed = merged_environment(load_functions(stack))
        # As the local runtime does: webhooks may target the loopback receivers these tests start.
        env = {**deployed, "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}
        api_deps = build_dependencies(load_settings(ApiSettings, env))
        deployed_api_deps = build_dependencies(load_settings(ApiSettings, deployed))
        deliverer = build_deliverer(load_settings(SenderSettings, env))
        yield Herald(
            stack=stack,
            env=env,
            api=lambda event: handle(event, context("api", 10), api_deps),
            api_as_deployed=lambda event: handle(event, context("api", 10), deployed_api_deps),
            sender=lambda event: handle_batch(event, context("sender", 60), deliverer),
            sender_with_time_left=lambda event, seconds: handle_batch(event, context("sender", seconds), deliverer),
            session=session,
        )


@pytest.fixture
def receiver(herald: Herald) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=herald.env["WEBHOOK_SIGNING_SECRET"]) as running:
        yield running
