"""Rendered conditions decide in DynamoDB (moto's mock_aws, no network) as ``holds`` decides on a dict.

The unit tests pin what each predicate renders to; this checks that DynamoDB reads it the same way.
Left out: comparisons across types (a bool against a number, a number against a string, a missing
attribute against NULL), where moto compares Python values instead of DynamoDB types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from resilience.breaker.store import SlotClaimable, StateIs, VersionIs
from resilience.conditional import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Equals,
    Exists,
    In,
    ItemUpdate,
    LessThan,
    Not,
    NotExists,
    apply_update,
    holds,
)
from resilience.conditional.dynamodb import render, serialize

if TYPE_CHECKING:
    from collections.abc import Iterator

    from resilience.conditional import Predicate, Value

TABLE = "conditional"
ITEM: dict[str, Value] = {
    "status": "queued",
    "version": 3,
    "lease_until": 100.5,
    "note": None,
    "done": True,
    "tags": ["a", 1.5],
    "meta": {"k": "v", "n": 2},
    "lease1": "a",
    "lease1_until": 50.0,
}
PREDICATES: list[Predicate] = [
    Exists("note"),
    Exists("missing"),
    NotExists("missing"),
    NotExists("note"),
    Equals("status", "queued"),
    Equals("version", 3.0),
    Equals("done", True),
    Equals("note", None),
    Equals("tags", ["a", 1.5]),
    Equals("meta", {"n": 2, "k": "v"}),
    Equals("meta", {"k": "v"}),
    In("status", ("deferred", "queued")),
    In("status", ("sent", "failed")),
    LessThan("lease_until", 100.6),
    LessThan("lease_until", 100.5),
    LessThan("status", "sent"),
    LessThan("missing", 1e9),
    AtMost("lease_until", 100.5),
    AtLeast("version", 4),
    AnyOf(NotExists("lease_until"), LessThan("lease_until", 50)),
    AnyOf(NotExists("missing"), LessThan("missing", 0)),
    AllOf(Equals("status", "queued"), Equals("version", 3)),
    Not(Equals("status", "sent")),
    Not(Equals("missing", "x")),
    Not(Exists("status")),
    VersionIs(0),
    StateIs("CLOSED"),
    SlotClaimable(1, 50.0),
    SlotClaimable(1, 49.9),
]


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with pytest.MonkeyPatch.context() as monkeypatch, mock_aws():
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield dynamodb


@pytest.mark.parametrize("predicate", PREDICATES, ids=repr)
def test_dynamodb_applies_a_write_exactly_when_the_condition_holds_in_memory(
    client: object, predicate: Predicate
) -> None:
    # Given the item in DynamoDB
    key = {"id": {"S": repr(predicate)}}
    client.put_item(TableName=TABLE, Item={**key, **{k: serialize(v) for k, v in ITEM.items()}})  # type: ignore[attr-defined]
    update = ItemUpdate(set={"status": "sent", "history": [{"at": 1.25}]}, add={"version": -1})

    # When a write guarded by the predicate is rendered and sent
    try:
        client.update_item(TableName=TABLE, Key=key, **render(update, (predicate,)))  # type: ignore[attr-defined]
        applied = True
    except client.exceptions.ConditionalCheckFailedException:  # type: ignore[attr-defined]
        applied = False

    # Then DynamoDB decided as holds() does, and what it stored is what apply_update gives
    assert applied is holds(ITEM, predicate)
    stored = client.get_item(TableName=TABLE, Key=key)["Item"]  # type: ignore[attr-defined]
    expected = apply_update(ITEM, update) if applied else ITEM
    assert stored == {**key, **{k: serialize(v) for k, v in expected.items()}}
