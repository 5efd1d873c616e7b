"""The DynamoDB store (moto's mock_aws, no network) behaves exactly like the in-memory store.

The table is built from template.yaml's key schema, so tests and template cannot drift.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from resilience import (
    BreakerState,
    CircuitBreaker,
    ConditionFailedError,
    DynamoDBBreakerStore,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    StoreUnavailableError,
)
from resilience.breaker.store import (
    AtLeast,
    AtMost,
    BreakerStore,
    Condition,
    Equals,
    ItemUpdate,
    SlotClaimable,
    StateIs,
    VersionIs,
)
from tests.integration.resilience.conftest import resilience_table_definition
from tests.support.breaker_fakes import SMALL
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

TABLE = "resilience-unit"


def create_table(client: object) -> None:
    # The template's keys and indexes (an attribute definition per index key, so the indexes must come too).
    client.create_table(TableName=TABLE, **resilience_table_definition())  # type: ignore[attr-defined]


@pytest.fixture
def dynamodb_store(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoDBBreakerStore]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield DynamoDBBreakerStore(TABLE, client=client)


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> BreakerStore:
    if request.param == "memory":
        return InMemoryBreakerStore()
    store: BreakerStore = request.getfixturevalue("dynamodb_store")
    return store


SEED = ItemUpdate(
    set={
        "state": "HALF_OPEN",
        "version": 4,
        "open_until": 100.5,
        "lease1": "a",
        "lease1_until": 50.0,
        "lease2": "done",
    },
    add={"probe_successes": 1, "c100": 3, "f100": 2},
)


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ((VersionIs(4),), True),
        ((VersionIs(3),), False),
        ((StateIs("HALF_OPEN"),), True),
        ((StateIs("CLOSED"),), False),
        ((AtMost("open_until", 100.5),), True),
        ((AtMost("open_until", 100.4),), False),
        ((AtMost("missing", 1e9),), False),
        ((AtLeast("probe_successes", 1),), True),
        ((AtLeast("probe_successes", 2),), False),
        ((Equals("lease1", "a"),), True),
        ((Equals("lease1", "b"),), False),
        ((SlotClaimable(1, 50.0),), True),  # lease expired
        ((SlotClaimable(1, 49.9),), False),  # lease alive
        ((SlotClaimable(2, 1e9),), False),  # probe succeeded: used up
        ((SlotClaimable(3, 0.0),), True),  # never granted
        ((VersionIs(4), StateIs("HALF_OPEN"), Equals("lease1", "a")), True),
        ((VersionIs(4), StateIs("OPEN")), False),
    ],
)
def test_conditions_mean_the_same_on_both_stores(any_store: BreakerStore, condition: Condition, holds: bool) -> None:
    # Given an item in a half-open period
    any_store.update("p", SEED)

    # When a guarded update is attempted
    try:
        after = any_store.update("p", ItemUpdate(add={"c100": 1}), condition)
    except ConditionFailedError as failed:
        applied, current = False, failed.current
    else:
        applied, current = True, after

    # Then it applies exactly when the condition holds, and a refusal returns the untouched item
    assert applied is holds
    assert current is not None
    assert current["c100"] == (4 if holds else 3)


def test_a_missing_item_is_closed_at_version_zero_on_both_stores(any_store: BreakerStore) -> None:
    # Given no item yet
    # When it is opened with the conditions of a first transition, then loaded
    any_store.update("p", ItemUpdate(set={"state": "OPEN", "version": 1}), (VersionIs(0), StateIs("CLOSED")))
    loaded = any_store.load("p")

    # Then the conditions treated the missing item as CLOSED/0, and the write created it
    assert loaded is not None
    assert (loaded["state"], loaded["version"]) == ("OPEN", 1)


def test_updates_set_add_and_remove_on_both_stores(any_store: BreakerStore) -> None:
    # Given an item with counters and a lease
    any_store.update("p", SEED)

    # When counters are added, a float is set, and attributes removed in one update
    after = any_store.update(
        "p", ItemUpdate(set={"opened_at": 1700000000.125}, add={"c100": 2, "c105": 1}, remove=frozenset({"lease1"}))
    )

    # Then every change applied, numbers keep their type, and a removed attribute is gone
    assert after["c100"] == 5 and after["c105"] == 1
    assert after["opened_at"] == 1700000000.125
    assert "lease1" not in after
    assert any_store.load("other") is None


def test_the_breaker_runs_a_full_cycle_on_dynamodb(dynamodb_store: DynamoDBBreakerStore) -> None:
    # Given two environments on the DynamoDB store
    clock = FakeClock()
    logger = logging.getLogger("tests.resilience")
    first, second = (
        CircuitBreaker("provider:ddb", dynamodb_store, SMALL, clock=clock, metrics=NullBreakerMetrics(), logger=logger)
        for _ in range(2)
    )

    # When a dead provider opens it, the wait passes, and two probes succeed
    for _ in range(5):
        first.allow().record_failure(TimeoutError())
    opened = first.describe()
    clock.advance(30)
    first.allow().record_success()
    second.allow().record_success()

    # Then the item went OPEN (with its evidence) and back to CLOSED through conditional writes
    assert (opened.state, opened.failures_in_window, opened.version) == (BreakerState.OPEN, 5, 1)
    closed = second.describe()
    assert (closed.state, closed.version, closed.calls_in_window) == (BreakerState.CLOSED, 3, 0)


def test_an_unreachable_table_raises_store_unavailable(dynamodb_store: DynamoDBBreakerStore) -> None:
    # Given a store pointed at a table that does not exist
    missing = DynamoDBBreakerStore("no-such-table", client=dynamodb_store.client)

    # When it is read and written
    # Then both fail with StoreUnavailableError (the breaker fails open on it)
    with pytest.raises(StoreUnavailableError):
        missing.load("p")
    with pytest.raises(StoreUnavailableError):
        missing.update("p", ItemUpdate(add={"c1": 1}))
