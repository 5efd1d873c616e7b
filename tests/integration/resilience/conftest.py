"""Fixtures of the resilience integration tests: one moto server over HTTP for the module."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.aws.moto_server import MotoServer, aws_environment, free_port
from local.aws.template import Stack

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    """moto's server on a free loopback port, stopped when the module's tests are done."""
    with MotoServer(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def client_factory(moto_server: MotoServer) -> Callable[[], Any]:
    """Make a new DynamoDB client (its own session) pointed at the moto server, as each Lambda environment has."""
    environment = aws_environment(moto_server.url)

    def make() -> Any:
        session = boto3.session.Session(
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=environment["AWS_SESSION_TOKEN"],
            region_name=environment["AWS_DEFAULT_REGION"],
        )
        return session.client("dynamodb", endpoint_url=moto_server.url)

    return make


@pytest.fixture(scope="module")
def resilience_table(client_factory: Callable[[], Any]) -> str:
    """The ResilienceTable, created with the key schema template.yaml declares."""
    properties = Stack.from_file().of_type("AWS::DynamoDB::Table")["ResilienceTable"]
    name = f"resilience-{uuid.uuid4().hex[:8]}"
    client_factory().create_table(
        TableName=name,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode="PAY_PER_REQUEST",
    )
    return name
