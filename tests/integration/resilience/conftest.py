"""Fixtures of the resilience integration tests: one moto server over HTTP for the module.

Tables are built from template.yaml's ResilienceTable. The breaker listing needs the sparse ``by-kind``
index (``resilience.breaker.dynamodb.INDEX_DEFINITION``); while the template does not declare it yet,
:func:`resilience_table_definition` adds the library's declaration, and once it does, the template's is
used (``test_breaker_listing_dynamodb.py`` then checks that the two agree).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.aws.moto_server import MotoServer, aws_environment, free_port
from local.aws.template import Stack
from resilience.breaker.dynamodb import INDEX_ATTRIBUTE_DEFINITION, INDEX_DEFINITION

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


def template_resilience_table() -> dict[str, Any]:
    """The ResilienceTable's properties as template.yaml declares them."""
    properties: dict[str, Any] = Stack.from_file().of_type("AWS::DynamoDB::Table")["ResilienceTable"]
    return properties


def resilience_table_definition() -> dict[str, Any]:
    """``CreateTable`` arguments: the template's key schema and indexes, with the breaker index added if missing."""
    properties = template_resilience_table()
    attributes = list(properties["AttributeDefinitions"])
    indexes = list(properties.get("GlobalSecondaryIndexes", []))
    if not any(index["IndexName"] == INDEX_DEFINITION["IndexName"] for index in indexes):
        indexes.append(dict(INDEX_DEFINITION))
    if not any(a["AttributeName"] == INDEX_ATTRIBUTE_DEFINITION["AttributeName"] for a in attributes):
        attributes.append(dict(INDEX_ATTRIBUTE_DEFINITION))
    return {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": attributes,
        "GlobalSecondaryIndexes": indexes,
        "BillingMode": "PAY_PER_REQUEST",
    }


def create_resilience_table(client: Any) -> str:
    """Create a ResilienceTable (with the breaker index) under a fresh name; return the name."""
    name = f"resilience-{uuid.uuid4().hex[:8]}"
    client.create_table(TableName=name, **resilience_table_definition())
    return name


@pytest.fixture(scope="module")
def resilience_table(client_factory: Callable[[], Any]) -> str:
    """The ResilienceTable, created with the key schema and indexes template.yaml declares (and the breaker index)."""
    return create_resilience_table(client_factory())
