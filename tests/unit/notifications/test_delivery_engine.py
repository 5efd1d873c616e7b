"""The delivery engine's rules, with an injected clock and in-memory fakes of the store, queues and providers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from notifications.clock import iso
from notifications.delivery import Deliverer, DeliveryPolicy, Outcome
from notifications.errors import DeliveryError
from notifications.failures import delivery_classifier
from notifications.models import Channel, HistoryEntry, Priority, QueueMessage, Recipient, Status
from resilience import (
    BreakerRegistry,
    BreakerState,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    ResilienceSettings,
    RetryPolicy,
)
from resilience.mode import Mode
from tests.support.clock import FakeClock
from tests.support.fakes import FakeProvider, FakeQueues, FakeStatusStore, http_error
from tests.support.records import make_record

if TYPE_CHECKING:
    from collections.abc import Iterator

    from notifications.delivery import DeliveryResult
    from notifications.models import NotificationRecord

HOOK_A = "https://a.example.com/hook"
HOOK_B = "https://b.example.com/hook"
MAX_RECEIVES = 5


class CountingBreakerStore(InMemoryBreakerStore):
    """The in-memory breaker store, counting writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def update(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return super().update(*args, **kwargs)


class Engine:
    """A Deliverer over fakes, plus what the tests look at."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        mode: Mode = Mode.NORMAL,
        horizon: float = 24 * 3600.0,
        second_email: FakeProvider | None = None,
    ) -> None:
        self.clock = clock
        self.store = FakeStatusStore(clock)
        self.queues = FakeQueues()
        self.breaker_store = CountingBreakerStore()
        quiet = logging.getLogger("tests.delivery")
        self.breakers = BreakerRegistry(
            settings=ResilienceSettings(),
            store=self.breaker_store,
            clock=clock,
            classifier=delivery_classifier,
            metrics=NullBreakerMetrics(),
            logger=quiet,
        )
        self.email = FakeProvider("ses", Channel.EMAIL)
        self.webhook = FakeProvider("webhook", Channel.WEBHOOK, per_destination=True)
        self.second_email = second_email or FakeProvider("unused", Channel.EMAIL)
        self.mode = mode
        self.deliverer = Deliverer(
            self.store,
            {Channel.EMAIL: [self.email, *([second_email] if second_email else [])], Channel.WEBHOOK: [self.webhook]},
            self.breakers,
            self.queues,
            DeliveryPolicy(
                max_receive_count=MAX_RECEIVES,
                backoff=RetryPolicy(base_seconds=5, cap_seconds=900, max_attempts=MAX_RECEIVES),
                deferral_horizon_seconds=horizon,
                call_timeout_seconds=10.0,
            ),
            mode=lambda: self.mode,
            clock=clock,
            random=lambda: 0.5,
        )
        self._count = 0

    def add(self, **overrides: Any) -> NotificationRecord:
        self._count += 1
        fields: dict[str, Any] = {
            "id": f"n-{self._count}",
            "created_at": iso(self.clock()),
            "recipient": Recipient(webhook_url=HOOK_A),
            "history": [HistoryEntry(status=Status.QUEUED, at=iso(self.clock()), detail="accepted")],
        }
        record = make_record(**(fields | overrides))
        self.store.put(record)
        return record

    def deliver(self, record: NotificationRecord, *, receive_count: int = 1, lease: float = 55.0) -> DeliveryResult:
        return self.deliverer.deliver(
            QueueMessage(id=record.id), owner=f"req/{record.id}/{receive_count}", receive_count=receive_count,
            lease_seconds=lease,
        )  # fmt: skip

    def view(self, record: NotificationRecord) -> NotificationRecord:
        return self.store.get(record.id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> Iterator[Engine]:
    yield Engine(clock)


def test_a_delivery_goes_out_and_a_healthy_breaker_writes_nothing(engine: Engine) -> None:
    # Given
    record = engine.add()

    # When
    result = engine.deliver(record)
    engine.breakers.flush()

    # Then
    assert result.outcome is Outcome.SENT
    stored = engine.view(record)
    assert (stored.status, stored.channel_used, stored.provider, stored.attempts) == (
        Status.SENT, Channel.WEBHOOK, "webhook", 1,
    )  # fmt: skip
    assert stored.reason == "delivered by webhook via webhook"
    assert [entry.status for entry in stored.history] == [Status.QUEUED, Status.SENT]
    assert engine.breaker_store.writes == 0  # a healthy path writes nothing
    assert not engine.store.leased(record.id)


def test_a_duplicate_message_of_a_finished_notification_is_dropped_without_a_call(engine: Engine) -> None:
    # Given
    record = engine.add()
    engine.deliver(record)

    # When
    result = engine.deliver(record, receive_count=2)

    # Then
    assert result.outcome is Outcome.DUPLICATE
    assert len(engine.webhook.calls) == 1


def test_a_transient_failure_comes_back_in_seconds_with_full_jitter(engine: Engine) -> None:
    # Given: the endpoint answers 503 once
    engine.webhook.failures.append(http_error(503))
    record = engine.add()

    # When
    result = engine.deliver(record)

    # Then: visible again after random() x 5 s (random is 0.5 here), not the queue's 360 s
    assert (result.outcome, result.visibility_seconds) == (Outcome.RETRY, 3)
    stored = engine.view(record)
    assert (stored.status, stored.attempts, stored.error) == (Status.QUEUED, 1, "provider answered HTTP 503")
    assert stored.next_attempt_at == iso(engine.clock() + 3)
    assert not engine.store.leased(record.id)


def test_the_backoff_grows_with_the_receive_count_and_honours_retry_after(engine: Engine) -> None:
    # Given
    engine.webhook.failures.extend([http_error(500), http_error(429, retry_after=120)])
    first, second = engine.add(), engine.add()

    # When
    grown = engine.deliver(first, receive_count=4)  # ceiling 5 x 2^3 = 40 s; random 0.5 -> 20 s
    asked = engine.deliver(second)

    # Then
    assert grown.visibility_seconds == 20
    assert asked.visibility_seconds == 120


@pytest.mark.parametrize("status", [400, 409, 410, 422])
def test_a_4xx_is_permanent_not_retried_and_not_counted_by_the_breaker(engine: Engine, status: int) -> None:
    # Given
    engine.webhook.failures.append(http_error(status))
    record = engine.add()

    # When
    result = engine.deliver(record)
    engine.breakers.flush()

    # Then
    assert result.outcome is Outcome.FAILED
    assert engine.view(record).status is Status.FAILED
    assert engine.breakers.describe([f"webhook:{HOOK_A}"])[0].failures_in_window == 0


def test_a_transient_failure_on_the_last_receive_dead_letters_at_once(engine: Engine) -> None:
    # Given
    engine.webhook.failures.append(http_error(502))
    record = engine.add()

    # When
    result = engine.deliver(record, receive_count=MAX_RECEIVES)

    # Then: SQS moves the message to the DLQ on its next receive, made at once (visibility 0)
    assert (result.outcome, result.visibility_seconds) == (Outcome.DEAD_LETTERED, 0)
    stored = engine.view(record)
    assert stored.status is Status.DEAD_LETTERED
    assert stored.reason == f"retries exhausted after {MAX_RECEIVES} receives: provider answered HTTP 502"


@pytest.mark.parametrize(
    "error",
    [ValueError("Port out of range 0-65535"), UnicodeError("label too long"), RuntimeError("a bug")],
    ids=["bad-port", "idna", "bug"],
)
def test_an_exception_nobody_classified_is_transient_and_never_leaves_the_record_claimed(
    engine: Engine, error: Exception
) -> None:
    # Given
    engine.webhook.always = error
    record, last = engine.add(), engine.add()

    # When
    early = engine.deliver(record, receive_count=1)
    final = engine.deliver(last, receive_count=MAX_RECEIVES)

    # Then: retried while receives remain, dead-lettered on the last; never left leased at `queued`
    assert early.outcome is Outcome.RETRY
    assert engine.view(record).status is Status.QUEUED
    assert engine.view(record).error == f"provider call failed ({type(error).__name__})"
    assert final.outcome is Outcome.DEAD_LETTERED
    assert engine.view(last).status is Status.DEAD_LETTERED
    assert not engine.store.leased(record.id) and not engine.store.leased(last.id)


def test_an_unexpected_error_outside_the_provider_call_still_settles_the_record(engine: Engine) -> None:
    # Given: something after the claim fails that nobody foresaw (here: reading the degradation mode)
    def broken_mode() -> Mode:
        raise KeyError("mode")

    engine.deliverer._mode = broken_mode
    record = engine.add()

    # When
    result = engine.deliver(record, receive_count=MAX_RECEIVES)

    # Then
    assert result.outcome is Outcome.DEAD_LETTERED
    stored = engine.view(record)
    assert (stored.status, stored.error) == (Status.DEAD_LETTERED, "internal error (KeyError)")


def test_a_dead_endpoint_opens_its_breaker_and_the_rest_is_queued_for_later(engine: Engine) -> None:
    # Given: an endpoint that fails every call, and 8 notifications to it in one batch
    engine.webhook.always = http_error(503)
    records = [engine.add() for _ in range(8)]

    # When
    results = [engine.deliver(record) for record in records]
    engine.breakers.flush()

    # Then: 5 calls (the breaker's local rule) and the breaker is open; the 5th and later are deferred
    assert len(engine.webhook.calls) == 5
    assert engine.breakers.get(f"webhook:{HOOK_A}").state is BreakerState.OPEN
    assert [r.outcome for r in results] == [Outcome.RETRY] * 4 + [Outcome.DEFERRED] * 4
    stored = engine.view(records[-1])
    assert stored.status is Status.DEFERRED
    assert stored.reason is not None and stored.reason.startswith("webhook endpoint unavailable")
    assert stored.attempts == 0  # a deferral uses up no attempt
    delays = [delay for _, delay in engine.queues.deferred]
    assert all(30 <= delay <= 34 for delay in delays)  # the breaker's 30 s wait, plus up to 10 % jitter


def test_a_deferred_notification_goes_out_on_its_own_once_the_breaker_lets_calls_through(engine: Engine) -> None:
    # Given: the endpoint's breaker opened and a notification was deferred
    engine.webhook.always = http_error(503)
    for _ in range(5):
        engine.deliver(engine.add())
    deferred = engine.add()
    assert engine.deliver(deferred).outcome is Outcome.DEFERRED
    (_, delay) = engine.queues.deferred[-1]

    # When: the endpoint recovers and the deferred copy comes back after its delay
    engine.webhook.always = None
    engine.clock.advance(delay)
    result = engine.deliver(deferred)

    # Then: it was a probe of the half-open breaker, and it went out
    assert result.outcome is Outcome.SENT
    assert engine.view(deferred).status is Status.SENT
    assert engine.view(deferred).attempts == 1


def test_one_dead_endpoint_does_not_hold_back_another(engine: Engine) -> None:
    # Given: endpoint A is dead and its breaker is open
    engine.breakers.force_open(f"webhook:{HOOK_A}")
    to_a = engine.add()
    to_b = engine.add(recipient=Recipient(webhook_url=HOOK_B))

    # When
    outcomes = engine.deliver(to_a).outcome, engine.deliver(to_b).outcome

    # Then
    assert outcomes == (Outcome.DEFERRED, Outcome.SENT)


EMAIL_WITH_WEBHOOK_FALLBACK: dict[str, Any] = {
    "channel": Channel.EMAIL,
    "fallback_channels": [Channel.WEBHOOK],
    "recipient": Recipient(email="ada@example.com", webhook_url=HOOK_A),
    "subject": "Code",
}


def test_a_fallback_channel_takes_over_and_the_status_says_why(engine: Engine) -> None:
    # Given: the email provider's breaker is open; the notification may fall back to a webhook
    engine.breakers.force_open("provider:ses")
    record = engine.add(**EMAIL_WITH_WEBHOOK_FALLBACK)

    # When
    result = engine.deliver(record)

    # Then
    assert result.outcome is Outcome.SENT
    stored = engine.view(record)
    assert (stored.channel_used, stored.provider) == (Channel.WEBHOOK, "webhook")
    assert stored.reason == (
        "delivered by webhook via webhook (fallback: email provider unavailable (provider:ses FORCED_OPEN))"
    )
    assert engine.email.calls == []


def test_when_the_primary_fails_and_opens_its_breaker_the_fallback_goes_in_the_same_attempt(engine: Engine) -> None:
    # Given: email already failed 4 times in this environment; the 5th failure opens its breaker
    engine.email.always = http_error(503)
    for _ in range(4):
        engine.deliver(engine.add(channel=Channel.EMAIL, recipient=Recipient(email="a@example.com"), subject="s"))
    record = engine.add(**EMAIL_WITH_WEBHOOK_FALLBACK)

    # When
    result = engine.deliver(record)

    # Then
    assert result.outcome is Outcome.SENT
    assert engine.view(record).channel_used is Channel.WEBHOOK


def test_deferrals_stop_at_the_horizon_and_the_notification_is_dead_lettered(clock: FakeClock) -> None:
    # Given: a notification accepted 25 hours ago whose only endpoint is still unavailable
    engine = Engine(clock, horizon=24 * 3600)
    record = engine.add(created_at=iso(clock() - 25 * 3600))
    engine.breakers.force_open(f"webhook:{HOOK_A}")

    # When
    result = engine.deliver(record)

    # Then: copied to the DLQ (redrivable) and the message itself is done
    assert result.outcome is Outcome.EXPIRED
    assert not result.outcome.keeps_message
    stored = engine.view(record)
    assert stored.status is Status.DEAD_LETTERED
    assert stored.reason is not None and "gave up after 24 h without a channel" in stored.reason
    assert [notification_id for notification_id, _ in engine.queues.dead_lettered] == [record.id]


@pytest.mark.parametrize(
    ("mode", "priority", "attempted"),
    [
        (Mode.NORMAL, Priority.LOW, True),
        (Mode.PARTIAL, Priority.LOW, True),
        (Mode.DEGRADED, Priority.LOW, False),
        (Mode.DEGRADED, Priority.NORMAL, True),
        (Mode.CRITICAL, Priority.HIGH, False),
        (Mode.CRITICAL, Priority.CRITICAL, True),
    ],
)
def test_the_degradation_mode_holds_back_lower_priorities(
    clock: FakeClock, mode: Mode, priority: Priority, attempted: bool
) -> None:
    # Given
    engine = Engine(clock, mode=mode)
    record = engine.add(priority=priority)

    # When
    result = engine.deliver(record)

    # Then
    assert (result.outcome is Outcome.SENT) is attempted
    if not attempted:
        stored = engine.view(record)
        assert stored.status is Status.DEFERRED
        assert stored.reason == f"service mode {mode}: {priority}-priority notifications wait"


def test_when_the_retry_queue_refuses_the_message_itself_waits(engine: Engine) -> None:
    # Given
    engine.breakers.force_open(f"webhook:{HOOK_A}")
    engine.queues.unavailable = True
    record = engine.add()

    # When
    result = engine.deliver(record)

    # Then: kept, visible again after about the same delay; not claimed, no attempt counted
    assert result.outcome is Outcome.RETRY
    assert result.visibility_seconds is not None and result.visibility_seconds >= 1
    assert not engine.store.leased(record.id)
    assert engine.view(record).attempts == 0


def test_an_unreachable_status_store_keeps_the_message_with_a_backoff(engine: Engine) -> None:
    # Given
    record = engine.add()
    engine.store.unavailable = True

    # When
    result = engine.deliver(record)

    # Then
    assert result.outcome is Outcome.RETRY
    assert result.visibility_seconds == 3
    assert engine.webhook.calls == []


def test_a_channel_without_any_provider_fails_permanently(engine: Engine) -> None:
    # Given
    record = engine.add(channel=Channel.SMS, recipient=Recipient(phone="+447700900123"))

    # When
    result = engine.deliver(record)

    # Then
    assert result.outcome is Outcome.FAILED
    assert engine.view(record).error == "no provider is configured for any of the notification's channels"


def test_the_provider_call_gets_only_the_time_the_lease_has_left(engine: Engine) -> None:
    # Given
    record, short = engine.add(), engine.add()

    # When
    engine.deliver(record, lease=55.0)
    engine.deliver(short, lease=4.0)

    # Then: the configured 10 s, or the lease less a second for the status write
    assert [timeout for _, timeout in engine.webhook.calls] == [10.0, 3.0]


def test_a_lease_too_short_for_any_call_hands_the_message_back_untouched(engine: Engine) -> None:
    # Given
    record = engine.add()

    # When
    result = engine.deliver(record, lease=1.2)

    # Then
    assert result.outcome is Outcome.RETRY
    assert engine.webhook.calls == []
    assert engine.view(record).attempts == 0


def test_history_stays_bounded_however_often_a_notification_is_deferred(engine: Engine) -> None:
    # Given: an endpoint that stays down for many deferral rounds
    engine.breakers.force_open(f"webhook:{HOOK_A}")
    record = engine.add()

    # When
    for _ in range(100):
        engine.deliver(record)

    # Then: the first entry (accepted) and the newest ones
    history = engine.view(record).history
    assert len(history) == 30
    assert history[0].detail == "accepted"
    assert history[-1].status is Status.DEFERRED


EVERY_ADDRESS = Recipient(email="ada@example.com", phone="+447700900123", webhook_url=HOOK_A)


def test_the_primary_channel_wins_when_its_provider_is_available(engine: Engine) -> None:
    # Given
    record = engine.add(
        channel=Channel.EMAIL, fallback_channels=[Channel.WEBHOOK], recipient=EVERY_ADDRESS, subject="s"
    )

    # When
    engine.deliver(record)

    # Then
    assert engine.view(record).channel_used is Channel.EMAIL
    assert engine.view(record).reason == "delivered by ses via email"


def test_the_first_available_fallback_is_taken_in_the_requested_order(engine: Engine) -> None:
    # Given: no sms provider, so the request's order decides between the rest
    record = engine.add(
        channel=Channel.SMS, fallback_channels=[Channel.WEBHOOK, Channel.EMAIL], recipient=EVERY_ADDRESS, subject="s"
    )

    # When
    engine.deliver(record)

    # Then
    stored = engine.view(record)
    assert stored.channel_used is Channel.WEBHOOK
    assert stored.reason == "delivered by webhook via webhook (fallback: sms has no provider configured)"


# ---------------------------------------------------------------------- provider failover in a channel
EMAIL = {"channel": Channel.EMAIL, "recipient": Recipient(email="ada@example.com"), "subject": "Code"}


@pytest.fixture
def two_providers(clock: FakeClock) -> Engine:
    """Email through "sendgrid" first, then "ses" (the fixture's first provider is named for the order)."""
    engine = Engine(clock, second_email=FakeProvider("ses", Channel.EMAIL))
    engine.email.name = "sendgrid"
    return engine


def unreachable(cause: BaseException) -> DeliveryError:
    error = DeliveryError(f"sendgrid unreachable ({type(cause).__name__})")
    error.__cause__ = cause
    return error


def test_a_provider_that_refuses_hands_the_notification_to_the_next_provider_at_once(two_providers: Engine) -> None:
    # Given: SendGrid answers 503
    engine = two_providers
    engine.email.always = http_error(503)
    record = engine.add(**EMAIL)

    # When
    result = engine.deliver(record)

    # Then: SES delivers it in the same attempt, and the status says so
    assert result.outcome is Outcome.SENT
    stored = engine.view(record)
    assert (stored.provider, stored.attempts) == ("ses", 1)
    assert stored.reason == "delivered by ses via email (failover: sendgrid: provider answered HTTP 503)"
    assert len(engine.email.calls) == 1
    second = engine.second_email
    assert len(second.calls) == 1


def test_no_connection_is_a_refusal_too(two_providers: Engine) -> None:
    # Given: SendGrid cannot be connected to
    engine = two_providers
    engine.email.always = unreachable(ConnectionRefusedError(111, "refused"))
    record = engine.add(**EMAIL)

    # When
    result = engine.deliver(record)

    # Then
    assert result.outcome is Outcome.SENT
    assert engine.view(record).provider == "ses"


def test_after_a_timeout_the_next_provider_is_not_tried_because_the_first_may_have_delivered(
    two_providers: Engine,
) -> None:
    # Given: SendGrid took the request and never answered
    engine = two_providers
    engine.email.always = unreachable(TimeoutError("read timed out"))
    record = engine.add(**EMAIL)

    # When
    result = engine.deliver(record)

    # Then: retried later (by whichever provider is first then), not sent twice now
    assert result.outcome is Outcome.RETRY
    assert engine.view(record).status is Status.QUEUED
    second = engine.second_email
    assert second.calls == []


def test_when_every_provider_of_the_channel_refuses_the_notification_is_retried(two_providers: Engine) -> None:
    # Given
    engine = two_providers
    engine.email.always = http_error(503)
    second = engine.second_email
    second.always = http_error(502)
    record = engine.add(**EMAIL)

    # When
    result = engine.deliver(record)

    # Then: each was called once, and the message comes back after a backoff
    assert result.outcome is Outcome.RETRY
    assert (len(engine.email.calls), len(second.calls)) == (1, 1)
    assert engine.view(record).error == "provider answered HTTP 502"


def test_a_dead_provider_is_skipped_once_its_breaker_opens(two_providers: Engine) -> None:
    # Given: SendGrid is down
    engine = two_providers
    engine.email.always = http_error(503)

    # When: eight emails go out
    records = [engine.add(**EMAIL) for _ in range(8)]
    results = [engine.deliver(record) for record in records]

    # Then: all through SES; SendGrid saw only the calls that opened its breaker (5 in one environment)
    assert {result.outcome for result in results} == {Outcome.SENT}
    assert {engine.view(record).provider for record in records} == {"ses"}
    assert len(engine.email.calls) == 5
    assert engine.breakers.get("provider:sendgrid").state is BreakerState.OPEN
    assert engine.view(records[-1]).reason == "delivered by ses via email (skipped: provider:sendgrid OPEN)"
