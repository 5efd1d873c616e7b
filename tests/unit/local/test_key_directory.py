"""The API key directory's cache against an in-memory API Gateway: what counts as valid, freshness, rate, failure."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.apigateway.keys import (
    MAX_AGE_SECONDS,
    MIN_REFRESH_INTERVAL_SECONDS,
    ApiKeyDirectory,
    ApiKeyLookupError,
    stored_key_value,
)
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Iterator

PLAN = "plan-1"
VALUE = "a-key-value-of-twenty-or-more-characters"


@dataclass
class FakeApiGateway:
    """API keys and usage plan keys as moto holds them; a plan key stays after its API key is deleted."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> {"id", "value", "enabled"}
    plan_keys: dict[str, list[str]] = field(default_factory=dict)  # usage plan id -> key ids
    page_size: int = 2  # small, so that every read pages
    error: Exception | None = None
    reads: int = 0  # reads of the usage plan's keys (one per refresh)
    pages: int = 0

    def add(self, key_id: str, value: str, *, enabled: bool = True, on_plan: bool = True) -> None:
        self.keys[key_id] = {"id": key_id, "value": value, "enabled": enabled}
        if on_plan:
            self.plan_keys.setdefault(PLAN, []).append(key_id)

    def get_paginator(self, operation: str) -> FakePaginator:
        return FakePaginator(self, operation)


@dataclass
class FakePaginator:
    api: FakeApiGateway
    operation: str

    def paginate(self, **arguments: Any) -> Iterator[dict[str, Any]]:
        if self.operation == "get_usage_plan_keys":
            self.api.reads += 1
            if self.api.error is not None:
                raise self.api.error
            on_plan = self.api.plan_keys.get(arguments["usagePlanId"], [])
            items = [{"id": key_id, "type": "API_KEY"} for key_id in on_plan]
        else:
            assert arguments == {"includeValues": True}
            items = list(self.api.keys.values())
        for start in range(0, max(len(items), 1), self.api.page_size):
            self.api.pages += 1
            yield {"items": items[start : start + self.api.page_size]}


@pytest.fixture
def api() -> FakeApiGateway:
    return FakeApiGateway()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def directory(api: FakeApiGateway, clock: FakeClock) -> ApiKeyDirectory:
    return ApiKeyDirectory(api, PLAN, clock=clock)  # the fake has the calls the directory makes


def test_only_existing_enabled_keys_on_the_plan_are_valid(api: FakeApiGateway, directory: ApiKeyDirectory) -> None:
    # Given five keys over several pages: valid, disabled, off the plan, deleted (its plan key left behind), valid
    api.add("k1", VALUE)
    api.add("k2", VALUE + "-disabled", enabled=False)
    api.add("k3", VALUE + "-off-plan", on_plan=False)
    api.add("k4", VALUE + "-deleted")
    del api.keys["k4"]
    api.add("k5", VALUE + "-second")

    # When each value is looked up
    found = {value: directory.key_id(value) for value in (VALUE, VALUE + "-disabled", VALUE + "-off-plan")}
    found |= {value: directory.key_id(value) for value in (VALUE + "-deleted", VALUE + "-second", "never-issued")}

    # Then only the enabled keys on the plan have an id, read in one refresh that followed every page
    assert found == {
        VALUE: "k1",
        VALUE + "-disabled": None,
        VALUE + "-off-plan": None,
        VALUE + "-deleted": None,
        VALUE + "-second": "k5",
        "never-issued": None,
    }
    assert api.reads == 1
    assert api.pages > 2


def test_a_short_value_is_found_under_its_padded_stored_value(api: FakeApiGateway, directory: ApiKeyDirectory) -> None:
    # Given the local runtime's documented 13-character key, stored padded as API Gateway's 20-character minimum needs
    api.add("dev", stored_key_value("local-dev-key"))

    # When a client sends the short value, or a longer value it is a prefix of
    short = directory.key_id("local-dev-key")
    longer = directory.key_id("local-dev-key~")

    # Then the short value is the key, and padding makes no second value of it
    assert short == "dev"
    assert longer is None
    assert len(stored_key_value("local-dev-key")) >= 20
    assert stored_key_value(VALUE) == VALUE


def test_changes_take_effect_once_the_answer_is_older_than_its_max_age(
    api: FakeApiGateway, directory: ApiKeyDirectory, clock: FakeClock
) -> None:
    # Given a valid key, looked up once
    api.add("k1", VALUE)
    assert directory.key_id(VALUE) == "k1"

    # When the key is deleted, and it is looked up just before and just after the answer's max age
    del api.keys["k1"]
    clock.advance(MAX_AGE_SECONDS - 0.01)
    before = directory.key_id(VALUE)
    clock.advance(0.01)
    after = directory.key_id(VALUE)

    # Then the cached answer stands until then (as API Gateway's propagation), and then the key is refused
    assert (before, after) == ("k1", None)
    assert api.reads == 2


def test_an_unknown_key_refreshes_at_most_once_per_interval(
    api: FakeApiGateway, directory: ApiKeyDirectory, clock: FakeClock
) -> None:
    # Given an answer read a moment ago, and then a key created
    assert directory.key_id("nobody-has-this-key-value") is None
    api.add("new", VALUE)

    # When a thousand unknown keys arrive within the interval, then the new key just after it
    within = [directory.key_id(f"unknown-key-value-number-{n:05d}") for n in range(1000)]
    new_within = directory.key_id(VALUE)
    clock.advance(MIN_REFRESH_INTERVAL_SECONDS)
    new_after = directory.key_id(VALUE)

    # Then the unknown keys cost no read at all, and the new key is honoured by the first read allowed
    assert within == [None] * 1000
    assert (new_within, new_after) == (None, "new")
    assert api.reads == 2


def test_concurrent_lookups_share_one_read(api: FakeApiGateway, directory: ApiKeyDirectory) -> None:
    # Given a valid key and eight threads about to look keys up at the same instant
    api.add("k1", VALUE)
    results: list[str | None] = []
    lock = threading.Lock()

    def look_up() -> None:
        found = [directory.key_id(VALUE if n % 2 else f"unknown-{n:030d}") for n in range(200)]
        with lock:
            results.extend(found)

    # When they all run
    threads = [threading.Thread(target=look_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then every answer is right and the embedded AWS was read once
    assert results.count("k1") == 800
    assert results.count(None) == 800
    assert api.reads == 1


def test_a_failed_read_refuses_to_guess_and_is_not_retried_at_once(
    api: FakeApiGateway, directory: ApiKeyDirectory, clock: FakeClock
) -> None:
    # Given an embedded AWS that fails
    api.add("k1", VALUE)
    api.error = ConnectionError("embedded AWS down")

    # When a key is looked up twice at once, and again after the interval once AWS is back
    with pytest.raises(ApiKeyLookupError) as first:
        directory.key_id(VALUE)
    with pytest.raises(ApiKeyLookupError):
        directory.key_id(VALUE)
    reads_while_down = api.reads
    api.error = None
    clock.advance(MIN_REFRESH_INTERVAL_SECONDS)
    recovered = directory.key_id(VALUE)

    # Then the key is neither taken nor called invalid while unknown, AWS is not hammered, and it recovers
    assert isinstance(first.value.__cause__, ConnectionError)
    assert reads_while_down == 1
    assert recovered == "k1"


def test_a_failed_read_keeps_a_fresh_answer_until_it_is_too_old(
    api: FakeApiGateway, directory: ApiKeyDirectory, clock: FakeClock
) -> None:
    # Given a good answer, then an embedded AWS that fails
    api.add("k1", VALUE)
    assert directory.key_id(VALUE) == "k1"
    api.error = ConnectionError("embedded AWS down")

    # When an unknown key forces a read that fails, and the key is looked up before and after the max age
    clock.advance(MIN_REFRESH_INTERVAL_SECONDS)
    unknown = directory.key_id("unknown-key-value-that-forces-a-read")
    fresh = directory.key_id(VALUE)
    clock.advance(MAX_AGE_SECONDS)

    # Then the fresh answer still serves, and once too old the lookup fails rather than trust it
    assert (unknown, fresh) == (None, "k1")
    with pytest.raises(ApiKeyLookupError):
        directory.key_id(VALUE)


def test_cache_times_must_be_positive(api: FakeApiGateway) -> None:
    # Given a directory asked never to cache, or to read without pause
    # When it is made, then it is refused: either would send every request to the embedded AWS
    with pytest.raises(ValueError, match="positive"):
        ApiKeyDirectory(api, PLAN, max_age=0)
    with pytest.raises(ValueError, match="positive"):
        ApiKeyDirectory(api, PLAN, min_refresh_interval=0)
