"""The status store's conditional writes: idempotent create, delivery leases and their expiry."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from local.aws.moto_server import MotoServer, free_port
from local.aws.provision import provision
from local.aws.template import Stack
from notifications.clock import iso
from notifications.models import Channel, HistoryEntry, NotificationRecord, Status
from notifications.ports import MAX_HISTORY, AlreadyExists, ClaimRefusal
from notifications.store import DynamoDBStatusStore
from tests.support.fakes import FakeStatusStore

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
def store(herald: Herald, clock: FakeClock) -> DynamoDBStatusStore:
    table = herald.env["NOTIFICATIONS_TABLE"]
    return DynamoDBStatusStore(table, client=herald.session.client("dynamodb"), clock=clock)


def test_a_record_round_trips_with_its_json_data_intact(store: DynamoDBStatusStore) -> None:
    # Given
    original = record()

    # When
    store.create(original)

    # Then
    assert store.get("n-1") == original


def test_a_cached_push_endpoint_in_the_same_table_is_no_notification(
    herald: Herald, store: DynamoDBStatusStore
) -> None:
    # Given: the SNS push provider caches a device's endpoint beside the status records
    from notifications.providers.sns import endpoint_item_id

    item_id = endpoint_item_id("arn:aws:sns:us-east-1:123456789012:app/GCM/herald", "device-token")
    herald.session.client("dynamodb").put_item(
        TableName=herald.env["NOTIFICATIONS_TABLE"],
        Item={"id": {"S": item_id}, "endpoint_arn": {"S": "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/x/1"}},
    )

    # When / Then: looking it up as a notification finds none (the API answers 404, not a 500)
    assert store.get(item_id) is None


def test_creating_an_existing_id_returns_the_stored_record(store: DynamoDBStatusStore) -> None:
    # Given
    store.create(record(body="first"))

    # When
    with pytest.raises(AlreadyExists) as exists:
        store.create(record(body="second"))

    # Then
    assert exists.value.existing.body == "first"


def test_a_live_lease_refuses_a_second_claim_and_an_expired_one_does_not(
    store: DynamoDBStatusStore, clock: FakeClock
) -> None:
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
    sent = {"channel": Channel.WEBHOOK, "provider": "webhook", "provider_message_id": None, "reason": "delivered"}
    assert not store.mark_sent(first.record, "sender-a", **sent)
    assert store.mark_sent(after_expiry.record, "sender-b", **sent)


def test_terminal_and_missing_records_refuse_claims(store: DynamoDBStatusStore) -> None:
    # Given
    store.create(record())
    claimed = store.claim("n-1", "a", lease_seconds=30).record
    assert claimed is not None
    store.mark_failed(claimed, "a", "invalid address")

    # When / Then
    assert store.claim("n-1", "b", lease_seconds=30).refusal is ClaimRefusal.TERMINAL
    assert store.claim("nope", "b", lease_seconds=30).refusal is ClaimRefusal.MISSING
    final = store.get("n-1")
    assert final is not None and final.status is Status.FAILED and final.error == "invalid address"


@pytest.fixture(params=["dynamodb", "fake"])
def either_store(request: pytest.FixtureRequest, clock: FakeClock) -> DynamoDBStatusStore | FakeStatusStore:
    """The DynamoDB store and the unit tests' in-memory fake: both must keep one contract."""
    if request.param == "fake":
        return FakeStatusStore(clock)
    herald: Herald = request.getfixturevalue("herald")
    return DynamoDBStatusStore(herald.env["NOTIFICATIONS_TABLE"], client=herald.session.client("dynamodb"), clock=clock)


def put(store: DynamoDBStatusStore | FakeStatusStore, new: NotificationRecord) -> None:
    if isinstance(store, FakeStatusStore):
        store.put(new)
    else:
        store.create(new)


def stored(store: DynamoDBStatusStore | FakeStatusStore, notification_id: str) -> NotificationRecord:
    found = store.get(notification_id)
    assert found is not None
    return found


def test_a_deferral_gives_the_attempt_back_and_says_why_and_when(
    either_store: DynamoDBStatusStore | FakeStatusStore, clock: FakeClock
) -> None:
    # Given
    put(either_store, record())
    claimed = either_store.claim("n-1", "a", lease_seconds=30).record
    assert claimed is not None

    # When
    written = either_store.defer(claimed, "a", "webhook endpoint unavailable", next_attempt_at=clock() + 30)

    # Then: deferred, not claimed any more, no attempt counted
    after = stored(either_store, "n-1")
    assert written
    assert (after.status, after.attempts, after.reason) == (Status.DEFERRED, 0, "webhook endpoint unavailable")
    assert after.next_attempt_at == iso(clock() + 30)
    assert after.history[-1].status is Status.DEFERRED
    assert either_store.claim("n-1", "b", lease_seconds=30).granted


def test_a_retry_keeps_the_attempt_and_the_error_and_releases_the_lease(
    either_store: DynamoDBStatusStore | FakeStatusStore, clock: FakeClock
) -> None:
    # Given
    put(either_store, record())
    claimed = either_store.claim("n-1", "a", lease_seconds=30).record
    assert claimed is not None

    # When
    either_store.record_retry(
        claimed, "a", "webhook answered HTTP 503", next_attempt_at=clock() + 3, provider="webhook"
    )

    # Then
    after = stored(either_store, "n-1")
    assert (after.status, after.attempts, after.error) == (Status.QUEUED, 1, "webhook answered HTTP 503")
    assert after.next_attempt_at == iso(clock() + 3)
    assert either_store.claim("n-1", "b", lease_seconds=30).granted


def test_a_release_gives_the_record_back_untouched(either_store: DynamoDBStatusStore | FakeStatusStore) -> None:
    # Given
    put(either_store, record())
    claimed = either_store.claim("n-1", "a", lease_seconds=30).record
    assert claimed is not None

    # When
    either_store.release(claimed, "a")

    # Then
    after = stored(either_store, "n-1")
    assert (after.status, after.attempts, len(after.history)) == (Status.QUEUED, 0, len(claimed.history))


def test_only_the_lease_holder_writes_an_outcome(either_store: DynamoDBStatusStore | FakeStatusStore) -> None:
    # Given
    put(either_store, record())
    claimed = either_store.claim("n-1", "a", lease_seconds=30).record
    assert claimed is not None

    # When / Then
    assert not either_store.mark_dead_lettered(claimed, "intruder", "boom", reason="retries exhausted")
    assert either_store.mark_dead_lettered(claimed, "a", "boom", reason="retries exhausted")
    after = stored(either_store, "n-1")
    assert (after.status, after.error, after.reason) == (Status.DEAD_LETTERED, "boom", "retries exhausted")


def test_history_is_bounded_to_the_first_entry_and_the_newest(
    either_store: DynamoDBStatusStore | FakeStatusStore, clock: FakeClock
) -> None:
    # Given
    put(either_store, record(history=[HistoryEntry(status=Status.QUEUED, at=iso(clock()), detail="accepted")]))

    # When: deferred again and again
    for round_ in range(MAX_HISTORY + 5):
        claimed = either_store.claim("n-1", f"s{round_}", lease_seconds=30).record
        assert claimed is not None
        either_store.defer(claimed, f"s{round_}", f"round {round_}", next_attempt_at=clock() + 1)

    # Then
    history = stored(either_store, "n-1").history
    assert len(history) == MAX_HISTORY
    assert history[0].detail == "accepted"
    assert history[-1].detail is not None and history[-1].detail.startswith(f"round {MAX_HISTORY + 4}")


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
        DynamoDBStatusStore(table, client=Endpoint().client("dynamodb")).create(record(f"race-{round_}"))
    stores = [DynamoDBStatusStore(table, client=Endpoint().client("dynamodb")) for _ in range(8)]
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
