"""Listing every breaker without a scan, on DynamoDB (moto's server over HTTP) and on the in-memory store.

Each test gets its own ResilienceTable with the sparse ``by-kind`` index (see conftest.py), and counts
the DynamoDB requests it makes with a botocore ``before-call`` hook on its client.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from resilience import (
    BreakerRegistry,
    BreakerState,
    DynamoDBBreakerStore,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    ResilienceSettings,
    StoreUnavailableError,
)
from resilience.breaker.dynamodb import BREAKER_INDEX, INDEX_ATTRIBUTE_DEFINITION, INDEX_DEFINITION, item_key
from resilience.breaker.store import ItemUpdate
from tests.integration.resilience.conftest import create_resilience_table, template_resilience_table
from tests.support.breaker_fakes import SMALL
from tests.support.clock import START, FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.breaker.store import BreakerStore


class RequestLog:
    """The DynamoDB operations a client sends, counted by a ``before-call`` hook."""

    def __init__(self, client: Any) -> None:
        self.operations: list[str] = []
        client.meta.events.register("before-call.dynamodb", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)

    def since(self, mark: int) -> Counter[str]:
        """Operations sent after the first ``mark`` ones, by name."""
        return Counter(self.operations[mark:])


@pytest.fixture
def client(client_factory: Callable[[], Any]) -> Any:
    return client_factory()


@pytest.fixture
def requests(client: Any) -> RequestLog:
    return RequestLog(client)


@pytest.fixture
def table(client: Any) -> str:
    """A fresh ResilienceTable per test: a listing sees every breaker of its table."""
    return create_resilience_table(client)


@pytest.fixture
def dynamodb_store(client: Any, table: str) -> DynamoDBBreakerStore:
    return DynamoDBBreakerStore(table, client=client)


@pytest.fixture(params=["memory", "dynamodb"])
def any_store(request: pytest.FixtureRequest) -> BreakerStore:
    if request.param == "memory":
        return InMemoryBreakerStore()
    store: BreakerStore = request.getfixturevalue("dynamodb_store")
    return store


def make_registry(store: BreakerStore, clock: FakeClock) -> BreakerRegistry:
    return BreakerRegistry(
        settings=ResilienceSettings(table_name="unused"),
        store=store,
        clock=clock,
        defaults=SMALL,
        metrics=NullBreakerMetrics(),
        logger=logging.getLogger("tests.resilience"),
    )


def fail(registry: BreakerRegistry, name: str, times: int = 5) -> None:
    """``times`` failed calls through breaker ``name`` (5 open it: SMALL's local rule)."""
    breaker = registry.get(name)
    for _ in range(times):
        breaker.allow().record_failure(TimeoutError())


def test_breakers_in_every_state_are_listed_and_one_that_never_wrote_is_not(any_store: BreakerStore) -> None:
    # Given breakers that opened, opened and were reset, were forced open, were disabled, went
    # half-open, and one that only ever succeeded (so never wrote)
    clock = FakeClock()
    registry = make_registry(any_store, clock)
    fail(registry, "provider:opened")
    fail(registry, "provider:closed")
    registry.reset("provider:closed")
    registry.force_open("provider:forced")
    registry.disable("provider:disabled")
    fail(registry, "provider:half-open")
    clock.advance(SMALL.wait_open_seconds)
    registry.get("provider:half-open").allow()  # the first probe moves it to HALF_OPEN
    for _ in range(20):
        registry.get("provider:healthy").allow().record_success()
    registry.flush()

    # When a monitor (another registry, knowing none of these names) lists every breaker
    listed = make_registry(any_store, clock).describe_all()

    # Then each breaker that wrote is listed with its state, described as describe() describes it,
    # and the healthy one is not listed: with no item it is CLOSED by definition
    assert {status.name: status.state for status in listed} == {
        "provider:closed": BreakerState.CLOSED,
        "provider:disabled": BreakerState.DISABLED,
        "provider:forced": BreakerState.FORCED_OPEN,
        "provider:half-open": BreakerState.HALF_OPEN,
        "provider:opened": BreakerState.OPEN,
    }
    assert [status.name for status in listed] == sorted(status.name for status in listed)
    assert listed == registry.describe([status.name for status in listed])
    opened = next(status for status in listed if status.name == "provider:opened")
    assert (opened.opened_at, opened.open_count, opened.next_probe_at) == (START, 1, START + SMALL.wait_open_seconds)
    assert registry.describe(["provider:healthy"])[0].state is BreakerState.CLOSED


def test_listing_150_breakers_costs_one_query_and_two_batch_gets(
    dynamodb_store: DynamoDBBreakerStore, requests: RequestLog
) -> None:
    # Given 150 breakers with an item each (opened, as a transition writes it)
    names = [f"provider:p{i:03d}" for i in range(150)]
    for name in names:
        dynamodb_store.update(name, ItemUpdate(set={"name": name, "state": "OPEN", "version": 1}))
    mark = len(requests.operations)

    # When every breaker is described
    listed = make_registry(dynamodb_store, FakeClock()).describe_all()

    # Then one Query of the index and ceil(150 / 100) BatchGetItem requests read them all, with no scan
    assert [status.name for status in listed] == names
    assert all(status.state is BreakerState.OPEN for status in listed)
    assert requests.since(mark) == Counter({"Query": 1, "BatchGetItem": 2})


def test_the_listing_pages_through_the_index(client: Any, table: str, requests: RequestLog) -> None:
    # Given five breakers, and a store reading the index two entries a page
    store = DynamoDBBreakerStore(table, client=client, list_page_size=2)
    for name in ("a", "b", "c", "d", "e"):
        store.update(name, ItemUpdate(add={"c100": 1}))
    mark = len(requests.operations)

    # When the names are listed
    names = store.list_names()

    # Then every page was read: 2 + 2 + 1, one Query each
    assert names == ["a", "b", "c", "d", "e"]
    assert requests.since(mark) == Counter({"Query": 3})


def test_a_healthy_breaker_writes_nothing_and_is_not_listed(
    dynamodb_store: DynamoDBBreakerStore, requests: RequestLog
) -> None:
    # Given a breaker whose every call succeeds, over a minute of cache refreshes and flushes
    clock = FakeClock()
    registry = make_registry(dynamodb_store, clock)
    for _ in range(60):
        registry.get("provider:healthy").allow().record_success()
        registry.flush()
        clock.advance(1)

    # When the breakers are listed
    written = requests.since(0)["UpdateItem"]
    listed = registry.describe_all()

    # Then the success path wrote nothing (so no item, no index entry) and nothing is listed
    assert written == 0
    assert listed == []


def test_kind_rides_in_the_breakers_own_write_and_reads_drop_it(
    dynamodb_store: DynamoDBBreakerStore, client: Any, table: str, requests: RequestLog
) -> None:
    # Given a breaker opened by a dead provider
    registry = make_registry(dynamodb_store, FakeClock())
    mark = len(requests.operations)
    fail(registry, "provider:dead")

    # When its item is read raw and through the store
    raw = client.get_item(TableName=table, Key=item_key("provider:dead"))["Item"]
    loaded = dynamodb_store.load("provider:dead")

    # Then the open was one UpdateItem that also set kind = "breaker", and the store hides it as it hides the keys
    assert requests.since(mark)["UpdateItem"] == 1
    assert raw["kind"] == {"S": "breaker"}
    assert loaded is not None
    assert "kind" not in loaded
    assert loaded["state"] == "OPEN"


def test_an_item_written_before_the_index_existed_is_listed_after_its_next_write(
    dynamodb_store: DynamoDBBreakerStore, client: Any, table: str
) -> None:
    # Given a breaker item without kind (written by a version of the store before the index)
    client.put_item(TableName=table, Item={**item_key("provider:old"), "state": {"S": "OPEN"}, "version": {"N": "1"}})
    before = dynamodb_store.list_names()

    # When the breaker next writes (any write: here its window)
    dynamodb_store.update("provider:old", ItemUpdate(add={"c100": 1}))

    # Then it enters the index with that write
    assert before == []
    assert dynamodb_store.list_names() == ["provider:old"]


def test_the_degradation_mode_item_is_not_a_breaker(
    dynamodb_store: DynamoDBBreakerStore, client: Any, table: str
) -> None:
    # Given the degradation mode's item in the same table, and one breaker
    client.put_item(
        TableName=table, Item={"pk": {"S": "degradation#mode"}, "sk": {"S": "current"}, "mode": {"S": "PARTIAL"}}
    )
    dynamodb_store.update("provider:a", ItemUpdate(add={"c100": 1}))

    # When the breakers are listed
    names = dynamodb_store.list_names()

    # Then only the breaker is (the index is sparse: only breaker items carry kind)
    assert names == ["provider:a"]


def test_a_table_without_the_index_cannot_be_listed(client: Any) -> None:
    # Given a table with the template's keys but no breaker index
    properties = template_resilience_table()
    client.create_table(
        TableName="resilience-no-index",
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=[a for a in properties["AttributeDefinitions"] if a["AttributeName"] in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    store = DynamoDBBreakerStore("resilience-no-index", client=client)
    store.update("provider:a", ItemUpdate(add={"c100": 1}))

    # When the breakers are listed
    # Then the store's one error says so (the monitor treats it as unreadable breakers)
    with pytest.raises(StoreUnavailableError, match=BREAKER_INDEX):
        store.list_names()


def test_the_template_declares_the_index_the_store_queries() -> None:
    # Given template.yaml's ResilienceTable
    properties = template_resilience_table()
    declared = {index["IndexName"]: index for index in properties.get("GlobalSecondaryIndexes", [])}
    if BREAKER_INDEX not in declared:
        pytest.skip(f"template.yaml does not declare the {BREAKER_INDEX} index yet (see layers/resilience/README.md)")

    # When it is compared with the library's declaration
    index = declared[BREAKER_INDEX]

    # Then the key schema, projection and attribute type are the ones the store relies on
    assert index["KeySchema"] == INDEX_DEFINITION["KeySchema"]
    assert index["Projection"] == INDEX_DEFINITION["Projection"]
    assert INDEX_ATTRIBUTE_DEFINITION in properties["AttributeDefinitions"]
