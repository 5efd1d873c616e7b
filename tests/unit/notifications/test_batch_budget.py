"""The time budget of a batch accept, over the in-memory fakes: its rule, and the batch stopping on it.

A batch makes an AWS call only while that call and one take-back after it fit before the deadline
(`notifications.budget.TimeBudget`). The fakes send their requests as the adapters do (25 records to a
batch write, 100 to a transaction, 10 messages to a send per queue) and ask the budget before each, so
these tests script the time left that each of those checks reads.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from notifications import aws
from notifications.accept import AcceptPolicy, ItemAccepted, ItemRejected, NotificationAcceptor
from notifications.budget import UNBOUNDED, TimeBudget
from notifications.errors import DependencyUnavailable, QueueUnavailable
from notifications.models import Channel, NotificationRequest
from tests.support.clock import FakeClock
from tests.support.fakes import TEST_IDS, FakeEnqueuer, FakeStatusStore

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from notifications.ports import Outgoing

SCOPE = "k7v2n4p8q1"
ENOUGH = 20.0  # seconds left: room for a 7 s call and a 7 s take-back, and the margin
TOO_LITTLE = 14.0  # not enough for both


def email(priority: str = "normal", key: str | None = None) -> NotificationRequest:
    return NotificationRequest.model_validate(
        {
            "channel": "email",
            "recipient": {"email": "ada@example.com"},
            "subject": "Code",
            "body": "Your code is 1",
            "priority": priority,
            "idempotency_key": key,
        }
    )


def time_for(calls: int) -> Callable[[], float]:
    """The time left as the budget's checks read it: enough for the first `calls` checks, then too little."""
    readings = [ENOUGH] * calls

    def time_left() -> float:
        return readings.pop(0) if readings else TOO_LITTLE

    return time_left


class Rig:
    def __init__(self) -> None:
        clock = FakeClock()
        self.store, self.enqueuer = FakeStatusStore(clock), FakeEnqueuer()
        policy = AcceptPolicy(
            enabled_channels=frozenset({Channel.EMAIL}), allow_private_webhook_targets=False, retention_seconds=86_400
        )
        self.acceptor = NotificationAcceptor(self.store, self.enqueuer, policy, clock=clock, ids=TEST_IDS)


# ---------------------------------------------------------------------- the rule
@pytest.mark.parametrize(
    ("seconds_left", "allowed"),
    [(15.0, True), (14.999, False), (25.0, True), (0.0, False)],
)
def test_a_call_is_allowed_only_while_it_and_a_take_back_still_fit_with_the_margin(
    seconds_left: float, allowed: bool
) -> None:
    # Given: calls of at most 7 s and a margin of 1 s: a call needs 7 + 7 + 1 = 15 s left
    budget = TimeBudget(lambda: seconds_left, call_seconds=7.0, margin_seconds=1.0)

    # When / Then
    assert budget.allows_call() is allowed


def test_by_default_a_call_takes_the_api_clients_slowest_time_and_the_margin_is_one_second() -> None:
    # Given
    boundary = 2 * aws.API_SLOWEST_CALL_SECONDS + 1.0

    # When / Then
    assert TimeBudget(lambda: boundary).allows_call()
    assert not TimeBudget(lambda: boundary - 0.001).allows_call()


def test_the_budget_reads_the_time_left_at_every_check() -> None:
    # Given: a deadline 25 s away on a clock the test moves
    clock = FakeClock()
    deadline = clock() + 25.0
    budget = TimeBudget(lambda: deadline - clock())

    # When / Then: a call fits now, and no longer once one slowest call has passed
    assert budget.allows_call()
    clock.advance(aws.API_SLOWEST_CALL_SECONDS)
    assert budget.allows_call()
    clock.advance(aws.API_SLOWEST_CALL_SECONDS)
    assert not budget.allows_call()


def test_the_unbounded_budget_allows_every_call() -> None:
    # When / Then
    assert all(UNBOUNDED.allows_call() for _ in range(1000))


# ---------------------------------------------------------------------- the batch stopping on it
def test_a_batch_whose_time_runs_out_while_sending_accepts_what_was_queued_and_takes_back_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given: 12 normal notifications without keys (the batch queue), then 8 critical ones with keys (the
    # priority queue); time for three requests: the batch write, the transaction, the first send of 10
    rig = Rig()
    items = [email() for _ in range(12)] + [email("critical", f"order-{i}") for i in range(8)]

    # When
    with caplog.at_level(logging.ERROR):
        outcome = rig.acceptor.accept_batch(items, scope=SCOPE, budget=TimeBudget(time_for(3)))

    # Then: the first 10 are accepted and queued; the other 10 are rejected with the retry message, and
    # none of them is stored (taken back in one request, every one of them)
    accepted = [result for result in outcome.results if isinstance(result, ItemAccepted)]
    rejected = [result for result in outcome.results if isinstance(result, ItemRejected)]
    assert [result.index for result in accepted] == list(range(10))
    assert [result.index for result in rejected] == list(range(10, 20))
    assert {type(result.error) for result in rejected} == {QueueUnavailable}
    assert {result.error.message for result in rejected} == {"this notification could not be queued; retry it"}
    assert rig.enqueuer.on("batch") == [result.accepted.view.id for result in accepted]
    assert rig.enqueuer.on("priority") == []
    assert rig.store.count() == 10
    assert all(rig.store.get(TEST_IDS.for_key(SCOPE, f"order-{i}")) is None for i in range(8))
    assert rig.store.take_backs == 1
    assert "record left without a message" not in caplog.text

    # And when the keyed ones are sent again with time enough, they are new notifications
    retried = rig.acceptor.accept_batch(items[12:], scope=SCOPE)
    assert [isinstance(r, ItemAccepted) and not r.accepted.replayed for r in retried.results] == [True] * 8
    assert len(rig.enqueuer.on("priority")) == 8


def test_a_batch_whose_time_runs_out_while_writing_accepts_nothing_and_leaves_nothing_stored() -> None:
    # Given: 30 notifications without keys (two batch writes: 25, then 5) and 5 with keys; time for the
    # first batch write only
    rig = Rig()
    items = [email() for _ in range(30)] + [email(key=f"order-{i}") for i in range(5)]

    # When
    with pytest.raises(DependencyUnavailable) as raised:
        rig.acceptor.accept_batch(items, scope=SCOPE, budget=TimeBudget(time_for(1)))

    # Then: nothing could be queued in time, so nothing is accepted (the single path's 503): the 25 records
    # written are taken back, the others were never written
    assert raised.value.message.startswith("nothing was accepted")
    assert rig.store.count() == 0
    assert rig.enqueuer.sent == []
    assert rig.store.take_backs == 1


def test_a_batch_with_no_time_left_makes_no_request_at_all() -> None:
    # Given
    rig = Rig()
    items = [email(), email(key="order-1")]

    # When
    with pytest.raises(DependencyUnavailable):
        rig.acceptor.accept_batch(items, scope=SCOPE, budget=TimeBudget(time_for(0)))

    # Then: nothing written, sent or taken back
    assert rig.store.count() == 0
    assert rig.enqueuer.sent == []
    assert rig.store.take_backs == 0


def test_records_that_cannot_be_taken_back_are_logged_by_id_only(caplog: pytest.LogCaptureFixture) -> None:
    # Given: SQS refuses every message, and the store goes down while they are being sent
    rig = Rig()
    items = [email(key="order-1"), email(key="order-2")]
    rig.enqueuer.unavailable = True
    send_many = rig.enqueuer.send_many

    def send_while_the_store_goes_down(messages: Sequence[Outgoing], budget: TimeBudget = UNBOUNDED) -> list[Outgoing]:
        rig.store.unavailable = True
        return send_many(messages, budget)

    rig.enqueuer.send_many = send_while_the_store_goes_down  # type: ignore[method-assign]

    # When
    with caplog.at_level(logging.ERROR), pytest.raises(DependencyUnavailable):
        rig.acceptor.accept_batch(items, scope=SCOPE)

    # Then: one take-back request, and one error line per record it left without a message, with the
    # notification's id and nothing personal
    assert rig.store.take_backs == 1
    lines = [record for record in caplog.records if record.getMessage() == "record left without a message"]
    assert sorted(getattr(line, "notification_id", "") for line in lines) == sorted(
        TEST_IDS.for_key(SCOPE, key) for key in ("order-1", "order-2")
    )
    assert "ada@example.com" not in caplog.text
