"""The status store's conditional writes: idempotent create, delivery leases and their expiry."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.moto_server import MotoServer, free_port
from local.provision import provision
from local.template import Stack
from notifications.models import Channel, NotificationRecord, Status
from notifications.store import AlreadyExists, ClaimRefusal, StatusStore

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.integration.notifications.conftest import Herald
from tests.support.clock import FakeClock
from tests.support.records import make_record


def record(notification_id: str = "n-1", **overrides: Any) -> NotificationRecord:
    return make_record(id=notification_id, data={"ratio": 0.25, "nested": [1, 2.5]}, **overrides)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(herald: Herald, clock: FakeClock) -> StatusStore:
    table = herald.env["NOTIFICATIONS_TABLE"]
    return StatusStore(table, client=herald.session.client("dynamodb"), clock=clock)


def test_a_record_round_trips_with_its_json_data_intact(store: StatusStore) -> None:
    # Given
    original = record()

    # When
    store.create(original)

    # Then
    assert store.get("n-1") == original


def test_creating_an_existing_id_returns_the_stored_record(store: StatusStore) -> None:
    # Given
    store.create(record(body="first"))

    # When
    with pytest.raises(AlreadyExists) as exists:
        store.create(record(body="second"))

    # Then
    assert exists.value.existing.body == "first"


def test_a_live_lease_refuses_a_second_claim_and_an_expired_one_does_not(store: StatusStore, clock: FakeClock) -> None:
    # Given
    store.create(record())
    first = store.claim("n-1", "sender-a", lease_seconds=30)

    # When
    while_leased = store.claim("n-1", "sender-b", lease_seconds=30)
    clock.now += 31
    after_expiry = store.claim("n-1", "sender-b", lease_seconds=30)

    # Then
    assert first.granted and first.record is not None and first.record.attempts == 1
    assert while_leased.refusal is ClaimRefusal.LEASED
    assert after_expiry.granted and after_expiry.record is not None and after_expiry.record.attempts == 2
    # the first sender lost its lease: its outcome must not overwrite the second one's
    assert not store.mark_sent("n-1", "sender-a", channel=Channel.WEBHOOK, provider="webhook", provider_message_id=None)
    assert store.mark_sent("n-1", "sender-b", channel=Channel.WEBHOOK, provider="webhook", provider_message_id=None)


def test_terminal_and_missing_records_refuse_claims(store: StatusStore) -> None:
    # Given
    store.create(record())
    store.claim("n-1", "a", lease_seconds=30)
    store.mark_failed("n-1", "a", "invalid address")

    # When / Then
    assert store.claim("n-1", "b", lease_seconds=30).refusal is ClaimRefusal.TERMINAL
    assert store.claim("nope", "b", lease_seconds=30).refusal is ClaimRefusal.MISSING
    final = store.get("n-1")
    assert final is not None and final.status is Status.FAILED and final.error == "invalid address"


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer(free_port()) as server:
        yield server


def test_concurrent_claims_over_http_grant_exactly_one(moto_server: MotoServer) -> None:
    # Given: the table from the template in moto's server, and 8 senders each with its own client
    session = boto3.Session(
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )

    class Endpoint:
        def client(self, name: str) -> Any:
            return session.client(name, endpoint_url=moto_server.url)

    stack = Stack.from_file()
    provision(stack, Endpoint(), prefix="claims")
    table = stack.physical_ids["NotificationsTable"]
    rounds = 50
    for round_ in range(rounds):
        StatusStore(table, client=Endpoint().client("dynamodb")).create(record(f"race-{round_}"))
    stores = [StatusStore(table, client=Endpoint().client("dynamodb")) for _ in range(8)]
    results: dict[int, list[bool]] = {round_: [] for round_ in range(rounds)}
    barrier = threading.Barrier(8)

    def claim(index: int) -> None:
        for round_ in range(rounds):
            barrier.wait()
            results[round_].append(stores[index].claim(f"race-{round_}", f"sender-{index}", lease_seconds=60).granted)

    # When: 8 senders race for each of 50 notifications
    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # Then: every notification was granted to exactly one sender
    assert {round_: sum(granted) for round_, granted in results.items()} == dict.fromkeys(range(rounds), 1)
