"""Listing every breaker: the in-memory store's listing, the registry's describe_all, and how the DynamoDB
store batches its reads and retries unprocessed keys (against a scripted client, no network)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from resilience import BreakerState, DynamoDBBreakerStore, InMemoryBreakerStore, StoreUnavailableError
from resilience.breaker.dynamodb import UNPROCESSED_KEYS_RETRY, item_key
from resilience.breaker.store import ItemUpdate

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience import BreakerRegistry, CircuitBreaker

TABLE = "resilience"


def stored(name: str, state: str = "OPEN") -> dict[str, Any]:
    """A breaker item as BatchGetItem returns it."""
    return {**item_key(name), "kind": {"S": "breaker"}, "state": {"S": state}, "version": {"N": "1"}}


class ScriptedClient:
    """Answers each BatchGetItem with the next scripted response, recording every request's keys."""

    def __init__(self, *responses: dict[str, Any]) -> None:
        self._responses = list(responses)
        self.requests: list[list[str]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        keys = RequestItems[TABLE]["Keys"]
        self.requests.append([key["pk"]["S"].removeprefix("breaker#") for key in keys])
        if self._responses:
            return self._responses.pop(0)
        return {"Responses": {TABLE: [stored(name) for name in self.requests[-1]]}}


def test_the_memory_store_lists_the_breakers_that_have_an_item(store: InMemoryBreakerStore) -> None:
    # Given two breakers with items, written in reverse order
    store.update("provider:b", ItemUpdate(add={"c100": 1}))
    store.update("provider:a", ItemUpdate(set={"state": "OPEN", "version": 1}))
    reads = store.reads

    # When they are listed
    names = store.list_names()

    # Then both are, sorted, for one read
    assert names == ["provider:a", "provider:b"]
    assert store.reads == reads + 1


def test_an_unavailable_memory_store_cannot_be_listed(store: InMemoryBreakerStore) -> None:
    # Given a store made unreachable
    store.available = False

    # When it is listed
    # Then it fails as DynamoDB would
    with pytest.raises(StoreUnavailableError):
        store.list_names()


def test_describe_all_lists_stored_breakers_only(
    registry: BreakerRegistry, make_breaker: Callable[..., CircuitBreaker], store: InMemoryBreakerStore
) -> None:
    # Given one breaker opened by another environment, and one this registry uses that only succeeded
    opener = make_breaker("provider:dead")
    for _ in range(5):
        opener.allow().record_failure(TimeoutError())
    registry.get("provider:fine").allow().record_success()
    registry.flush()

    # When every breaker is described
    listed = registry.describe_all()

    # Then the stored one is listed, OPEN, and the healthy one (no item: CLOSED) is not
    assert [(status.name, status.state) for status in listed] == [("provider:dead", BreakerState.OPEN)]
    assert store.list_names() == ["provider:dead"]


def test_load_many_reads_100_keys_a_request() -> None:
    # Given 250 names (one repeated) and a client that answers every key
    client = ScriptedClient()
    store = DynamoDBBreakerStore(TABLE, client=client)  # type: ignore[arg-type]
    names = [f"p{i}" for i in range(250)]

    # When they are read together
    items = store.load_many([*names, "p0"])

    # Then three requests of 100, 100 and 50 distinct keys read them, and the kind attribute is dropped
    assert [len(keys) for keys in client.requests] == [100, 100, 50]
    assert set(items) == set(names)
    assert items["p7"] == {"state": "OPEN", "version": 1}


def test_unprocessed_keys_are_asked_for_again_after_a_backoff() -> None:
    # Given a client that leaves two keys unprocessed once, and a recorded sleep
    unprocessed = {TABLE: {"Keys": [item_key("b"), item_key("c")], "ConsistentRead": False}}
    client = ScriptedClient({"Responses": {TABLE: [stored("a")]}, "UnprocessedKeys": unprocessed})
    slept: list[float] = []
    store = DynamoDBBreakerStore(TABLE, client=client, sleep=slept.append)  # type: ignore[arg-type]

    # When three breakers (one without an item) are read
    items = store.load_many(["a", "b", "c", "d"])

    # Then the unprocessed keys were requested again after one bounded pause, and "d" has no item
    assert client.requests == [["a", "b", "c", "d"], ["b", "c"]]
    assert len(slept) == 1
    assert 0 <= slept[0] <= UNPROCESSED_KEYS_RETRY.ceiling(1)
    assert {name: item is not None for name, item in items.items()} == {"a": True, "b": True, "c": True, "d": False}


def test_keys_still_unprocessed_after_the_last_round_are_a_store_error() -> None:
    # Given a client that never processes a key
    never = {"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": [item_key("a")]}}}
    client = ScriptedClient(*[never] * UNPROCESSED_KEYS_RETRY.max_attempts)
    slept: list[float] = []
    store = DynamoDBBreakerStore(TABLE, client=client, sleep=slept.append)  # type: ignore[arg-type]

    # When the breaker is read
    # Then the store gives up after max_attempts rounds with its one error
    with pytest.raises(StoreUnavailableError, match="unprocessed"):
        store.load_many(["a"])
    assert len(client.requests) == UNPROCESSED_KEYS_RETRY.max_attempts
    assert len(slept) == UNPROCESSED_KEYS_RETRY.max_attempts - 1
