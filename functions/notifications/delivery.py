"""The delivery engine: one queued notification, from claim to its next status, with no AWS in sight.

For each message the `Deliverer`:

1. claims the status record (a conditional, leased update); a terminal record means a duplicate
   message, dropped; a leased one is being delivered elsewhere, retried later;
2. holds back what the degradation mode does not admit (DEGRADED: `low`; CRITICAL: all but
   `critical`) by deferring it;
3. picks the first channel, primary then fallbacks, with a provider whose circuit breaker permits a
   call, and takes a permit (`notifications.routing`);
4. calls the provider within the time the invocation has left, and records the outcome on the
   permit: `notifications.failures.delivery_classifier` judges any exception, once, for the breaker
   and for the notification alike;
5. writes the outcome (one conditional write by the lease holder) and tells the sender what to do
   with the message:

=====================================  ===========================================================
What happened                          Status, and the message
=====================================  ===========================================================
provider accepted                      `sent`; deleted
permanent failure                      `failed`; deleted
transient failure, breaker closed      `queued` (attempt in history); visible again after a
                                       full-jitter backoff from its receive count, or the
                                       provider's Retry-After if longer
transient failure on the last receive  `dead_lettered`; SQS moves it to the DLQ at once
no channel can be tried now            `deferred` with the reason and `next_attempt_at`; a new
                                       copy waits on the retry queue until the breaker lets a
                                       call through (<= 900 s); uses up no receive
deferred past the horizon (24 h)       `dead_lettered`; copied to the DLQ, then deleted
anything unexpected                    as a transient failure: retried, then `dead_lettered`
=====================================  ===========================================================

A message whose notification is `dead_lettered` reaches a work queue only when it was moved back from the
dead-letter queue: by an SQS move task (`POST /admin/dead-letters/redrive` without filters, or an operator's
`aws sqs start-message-move-task`). The engine then treats it as redriven: it puts the record back to
`queued` (a conditional write, `records.requeue_dead_lettered`) and claims it as any other. The one other way
such a message appears, the original of a notification dead-lettered past the horizon whose deletion failed,
is harmless so: it is tried again, and dead-lettered again if there is still no channel.
"""

from __future__ import annotations

import dataclasses
import math
import random as _random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from notifications.clock import epoch
from notifications.errors import DeliveryError, DependencyUnavailable
from notifications.failures import surely_not_delivered
from notifications.models import Status
from notifications.observability import logger
from notifications.ports import ClaimRefusal
from notifications.routing import ChannelRouter, Route, Wait
from resilience import (
    QUEUE_BACKOFF,
    ErrorClass,
    RetryPolicy,
    retry_after_of,
    system_clock,
    visibility_timeout,
)
from resilience.degradation import SQS_MAX_DELAY_SECONDS
from resilience.mode import Mode, admits

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from notifications.models import Channel, NotificationRecord, QueueMessage
    from notifications.ports import Claim, DeliveryQueue, Provider, StatusStore
    from resilience import BreakerRegistry, Clock
    from resilience.clock import Random

# Kept back from the lease for the status write after the provider call.
WRITE_MARGIN_SECONDS = 1.0
# The shortest provider call worth starting.
MIN_CALL_SECONDS = 0.5
# The history entry of a dead-lettered notification whose message came back on a work queue (a move task).
REDRIVEN_FROM_DLQ = "redriven by an operator: its message came back from the dead-letter queue"


class Outcome(StrEnum):
    SENT = "sent"  # the provider accepted it
    DUPLICATE = "duplicate"  # already terminal: a second copy of the message; drop it
    UNKNOWN = "unknown"  # no such record (never accepted); drop it
    FAILED = "failed"  # permanent failure; not retried
    RETRY = "retry"  # transient failure, or in delivery elsewhere; SQS hands it out again after a backoff
    DEFERRED = "deferred"  # no channel now: a copy waits on the retry queue; this message is done
    DEAD_LETTERED = "dead_lettered"  # transient failure on the last receive; SQS moves it to the DLQ
    EXPIRED = "expired"  # deferred past the horizon: copied to the DLQ; this message is done

    @property
    def keeps_message(self) -> bool:
        """True when the SQS message must stay (reported as a batch item failure)."""
        return self in {Outcome.RETRY, Outcome.DEAD_LETTERED}


@dataclass(frozen=True)
class ProviderCall:
    """One provider call of a delivery attempt, for the sender's metrics (names only: no address, no origin)."""

    channel: Channel
    provider: str  # the provider's name (`ses`, `webhook`, ...)
    latency_ms: float  # how long the call took, whatever came of it


@dataclass(frozen=True)
class DeliveryResult:
    """What became of one message, and what the sender's metrics need to know of it.

    `channel` and `provider` are those of the last provider call (the one that decided the outcome), else
    the notification's own channel and no provider; both are None when the notification was never claimed.
    `fallback` says the channel is one of the notification's fallbacks; `calls` holds every provider call.
    """

    outcome: Outcome
    detail: str = ""
    visibility_seconds: int | None = None  # for a kept message: when SQS should hand it out again
    channel: Channel | None = None
    provider: str | None = None
    fallback: bool = False
    calls: tuple[ProviderCall, ...] = ()


@dataclass(frozen=True)
class DeliveryPolicy:
    """The engine's tunables (the sender's settings fill them in).

    Parameters
    ----------
    max_receive_count : int
        The queues' `maxReceiveCount`: the receive on which a transient failure dead-letters.
    backoff : RetryPolicy
        Visibility backoff after a transient failure (full jitter; 5 s doubling, capped at 900 s).
    deferral_horizon_seconds : float
        Age of a notification after which it is no longer deferred but dead-lettered (24 h).
    degraded_defer_seconds : int
        How long a notification the degradation mode holds back waits before it is looked at again.
    call_timeout_seconds : float
        The longest one provider call may take (less when the invocation has less time left).
    """

    max_receive_count: int
    backoff: RetryPolicy = QUEUE_BACKOFF
    deferral_horizon_seconds: float = 24 * 3600.0
    degraded_defer_seconds: int = 60
    call_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class _Refusal:
    """A provider that refused a notification in this attempt: its breaker, and why in plain words."""

    breaker: str
    reason: str


@dataclass(frozen=True)
class _Attempt:
    """One claimed message being delivered."""

    record: NotificationRecord
    message: QueueMessage
    owner: str
    receive_count: int
    lease_until: float  # the claim's lease: every write must land before it
    calls: list[ProviderCall] = field(default_factory=list)  # every provider call made so far, in order


class Deliverer:
    """Delivers queued notifications through their providers' circuit breakers.

    Parameters
    ----------
    store : StatusStore
        Status records (claim and conditional outcome writes).
    providers : Mapping[Channel, Sequence[Provider]]
        Each channel's providers, in the order they are tried.
    breakers : BreakerRegistry
        This execution environment's breakers; the caller flushes them once per batch.
    queues : DeliveryQueue
        Where deferred and expired notifications go.
    policy : DeliveryPolicy
        Backoff, horizon and timeouts.
    mode : Callable[[], Mode]
        The current degradation mode (NORMAL when none is stored).
    clock, random
        Injected time and randomness (jitter).
    requeue_dead_lettered : Callable[[NotificationRecord, str], bool] | None
        Puts a `dead_lettered` record back to `queued` with a history entry (the store's
        `requeue_dead_lettered`), for a message moved back from the dead-letter queue; without it such a
        message is dropped as a duplicate.
    """

    def __init__(
        self,
        store: StatusStore,
        providers: Mapping[Channel, Sequence[Provider]],
        breakers: BreakerRegistry,
        queues: DeliveryQueue,
        policy: DeliveryPolicy,
        *,
        mode: Callable[[], Mode] = lambda: Mode.NORMAL,
        clock: Clock = system_clock,
        random: Random = _random.random,
        requeue_dead_lettered: Callable[[NotificationRecord, str], bool] | None = None,
    ) -> None:
        self._store = store
        self._requeue_dead_lettered = requeue_dead_lettered
        self._router = ChannelRouter(providers, breakers)
        self.breakers = breakers
        self._queues = queues
        self.policy = policy
        self._mode = mode
        self._clock = clock
        self._random = random

    @property
    def slowest_call_seconds(self) -> float:
        """The longest one provider call may take: an invocation with less time left starts none."""
        return self.policy.call_timeout_seconds

    # ------------------------------------------------------------------ one message
    def deliver(self, message: QueueMessage, *, owner: str, receive_count: int, lease_seconds: float) -> DeliveryResult:
        """One delivery attempt; the lease must outlast the provider call (the invocation's remaining time)."""
        try:
            claim = self._store.claim(message.id, owner, lease_seconds)
            if self._requeue_dead_lettered is not None and _moved_back(claim):
                claim = self._claim_redriven(claim, message, owner, lease_seconds)
        except DependencyUnavailable as error:
            logger.warning("status store unavailable; message kept", extra={"notification_id": message.id})
            return DeliveryResult(Outcome.RETRY, error.message, self._backoff(receive_count, None))
        if not claim.granted:
            return self._refused(message.id, claim.refusal, receive_count)
        record = claim.record
        assert record is not None  # a granted claim always carries the record
        attempt = _Attempt(record, message, owner, receive_count, self._clock() + lease_seconds)
        try:
            result = self._deliver_claimed(attempt)
        except Exception as error:  # noqa: BLE001 - every path out must leave the record consistent
            result = self._unexpected(attempt, error)
        return _with_calls(result, attempt)

    def _claim_redriven(self, refused: Claim, message: QueueMessage, owner: str, lease_seconds: float) -> Claim:
        """A dead-lettered notification whose message is back on a work queue: redriven, then claimed."""
        record = refused.record
        assert record is not None and self._requeue_dead_lettered is not None  # checked by `_moved_back`
        requeued = self._requeue_dead_lettered(record, REDRIVEN_FROM_DLQ)
        # Not requeued: another copy or a redrive changed it first; the claim says what it is now.
        logger.info(
            "dead-lettered notification's message came back; redriven",
            extra={"notification_id": record.id, "requeued": requeued},
        )
        return self._store.claim(message.id, owner, lease_seconds)

    def _deliver_claimed(self, attempt: _Attempt) -> DeliveryResult:
        record, owner = attempt.record, attempt.owner
        mode = self._mode()
        if not admits(mode, record.priority.value):
            reason = f"service mode {mode}: {record.priority.value}-priority notifications wait"
            return self._wait(attempt, Wait(reason, self.policy.degraded_defer_seconds))
        if not self._router.has_provider(record):
            error = "no provider is configured for any of the notification's channels"
            self._store.mark_failed(record, owner, error)
            logger.error("notification failed", extra={"notification_id": record.id, "reason": error})
            return DeliveryResult(Outcome.FAILED, error)
        route = self._router.route(record)
        if isinstance(route, Wait):
            return self._wait(attempt, route)
        return self._call(attempt, route)

    # ------------------------------------------------------------------ calling the provider
    def _call(self, attempt: _Attempt, route: Route, failed_over: tuple[_Refusal, ...] = ()) -> DeliveryResult:
        """Call the route's provider; `failed_over` holds the providers that refused this notification just before."""
        record, owner = attempt.record, attempt.owner
        provider, permit = route.provider, route.permit
        log = {
            "notification_id": record.id,
            "attempt": record.attempts,
            "receive_count": attempt.receive_count,
            "channel": route.channel,
            "provider": provider.name,
            "breaker": route.breaker.name,
        }
        timeout = min(self.policy.call_timeout_seconds, attempt.lease_until - self._clock() - WRITE_MARGIN_SECONDS)
        if timeout < MIN_CALL_SECONDS:
            permit.record_ignored()
            self._store.release(record, owner)
            return DeliveryResult(Outcome.RETRY, "no time left for a provider call", 1)
        started = self._clock()
        try:
            receipt = provider.send(record, timeout=timeout)
        except Exception as error:  # noqa: BLE001 - judged by the classifier, whatever it is
            elapsed = self._clock() - started
            attempt.calls.append(ProviderCall(route.channel, provider.name, elapsed * 1000))
            verdict = permit.record_failure(error, elapsed)
            if not isinstance(error, DeliveryError):
                logger.warning(
                    "provider raised an unexpected exception", extra=log | {"error_type": type(error).__name__}
                )
            return self._failed(attempt, route, error, verdict, failed_over)
        elapsed = self._clock() - started
        attempt.calls.append(ProviderCall(route.channel, provider.name, elapsed * 1000))
        permit.record_success(elapsed)
        reason = f"delivered by {receipt.provider} via {route.channel}"
        if route.skipped:
            reason += f" (skipped: {', '.join(route.skipped)})"
        if failed_over:
            reason += f" (failover: {'; '.join(refusal.reason for refusal in failed_over)})"
        if route.passed_over:
            reason += f" (fallback: {'; '.join(route.passed_over)})"
        if not self._store.mark_sent(
            record,
            owner,
            channel=route.channel,
            provider=receipt.provider,
            provider_message_id=receipt.message_id,
            reason=reason,
        ):
            # The lease ran out while the provider call was in flight and another sender claimed it;
            # the provider got the notification id, so a second copy can be traced and dropped there.
            logger.warning("delivered after losing the lease", extra=log)
        logger.info("notification sent", extra=log | {"fallback": bool(route.passed_over)})
        return DeliveryResult(Outcome.SENT)

    def _failed(
        self,
        attempt: _Attempt,
        route: Route,
        error: Exception,
        verdict: ErrorClass,
        failed_over: tuple[_Refusal, ...] = (),
    ) -> DeliveryResult:
        record, owner = attempt.record, attempt.owner
        log = {"notification_id": record.id, "provider": route.provider.name, "breaker": route.breaker.name}
        text = _describe(error)
        if verdict is ErrorClass.PERMANENT:
            self._store.mark_failed(record, owner, text, provider=route.provider.name)
            logger.warning("notification failed permanently", extra=log | {"reason": text})
            return DeliveryResult(Outcome.FAILED, text)
        if verdict is ErrorClass.TRANSIENT and surely_not_delivered(error):
            # The provider refused the call (an error status, no connection): nothing went out, so the
            # channel's next provider can take it now without risking a second copy. After a timeout
            # the first may have delivered it: that one waits for a retry instead.
            refusals = (*failed_over, _Refusal(route.breaker.name, f"{route.provider.name}: {text}"))
            exclude = frozenset(refusal.breaker for refusal in refusals)
            alternative = self._router.next_provider(record, route.channel, exclude)
            if alternative is not None:
                logger.info("provider refused; failing over", extra=log | {"to": alternative.provider.name})
                return self._call(attempt, alternative, refusals)
        if verdict is ErrorClass.TRANSIENT and not route.breaker.permits_call():
            # This failure (or the fleet's) opened the breaker: retrying in seconds would only be
            # refused, so queue for later now, without using up a receive.
            reason = f"{self._router.unavailable_reason(record)} after: {text}"
            wait = self._router.route(record)
            if isinstance(wait, Route):  # a fallback channel is open: take it now
                return self._call(attempt, wait)
            return self._wait(attempt, Wait(reason, wait.delay_seconds), attempted=text)
        retry_after = retry_after_of(error, self._clock())
        return self._transient(attempt, text, retry_after=retry_after, provider=route.provider.name)

    def _transient(
        self, attempt: _Attempt, text: str, *, retry_after: float | None = None, provider: str | None = None
    ) -> DeliveryResult:
        record, owner, receive_count = attempt.record, attempt.owner, attempt.receive_count
        log = {"notification_id": record.id, "receive_count": receive_count, "reason": text}
        if receive_count >= self.policy.max_receive_count:
            reason = f"retries exhausted after {receive_count} receives: {text}"
            self._store.mark_dead_lettered(record, owner, text, reason=reason)
            logger.error("retries exhausted; dead-lettering", extra=log)
            return DeliveryResult(Outcome.DEAD_LETTERED, text, 0)
        visibility = self._backoff(receive_count, retry_after)
        self._store.record_retry(record, owner, text, next_attempt_at=self._clock() + visibility, provider=provider)
        logger.warning("delivery attempt failed; will retry", extra=log | {"retry_in_seconds": visibility})
        return DeliveryResult(Outcome.RETRY, text, visibility)

    def _backoff(self, receive_count: int, retry_after: float | None) -> int:
        return visibility_timeout(receive_count, self.policy.backoff, retry_after=retry_after, random=self._random)

    # ------------------------------------------------------------------ queue for later
    def _wait(self, attempt: _Attempt, wait: Wait, *, attempted: str | None = None) -> DeliveryResult:
        record, message, owner = attempt.record, attempt.message, attempt.owner
        now = self._clock()
        log = {"notification_id": record.id, "reason": wait.reason}
        age = now - epoch(record.created_at)
        if age >= self.policy.deferral_horizon_seconds:
            hours = self.policy.deferral_horizon_seconds / 3600
            reason = f"{wait.reason}; gave up after {hours:g} h without a channel"
            self._queues.dead_letter(message, reason)
            self._store.mark_dead_lettered(record, owner, attempted or wait.reason, reason=reason)
            logger.error("deferred past the horizon; dead-lettered", extra=log)
            return DeliveryResult(Outcome.EXPIRED, reason)
        delay = self._jittered(wait.delay_seconds)
        try:
            self._queues.defer(message, delay)
        except DependencyUnavailable:
            # The retry queue refused: keep this message instead, visible again after the same delay.
            self._store.release(record, owner)
            logger.warning("retry queue unavailable; message kept for later", extra=log)
            return DeliveryResult(Outcome.RETRY, wait.reason, delay)
        self._store.defer(record, owner, wait.reason, next_attempt_at=now + delay, error=attempted)
        logger.info("no channel available; queued for later", extra=log | {"delay_seconds": delay})
        return DeliveryResult(Outcome.DEFERRED, wait.reason)

    def _jittered(self, seconds: int) -> int:
        """Up to 10 % (at least 1 s) later, so deferred messages do not all come back in one instant."""
        spread = max(1.0, seconds * 0.1)
        return min(max(math.ceil(seconds + self._random() * spread), 1), SQS_MAX_DELAY_SECONDS)

    # ------------------------------------------------------------------ the rest
    def _unexpected(self, attempt: _Attempt, error: Exception) -> DeliveryResult:
        """An exception nobody expected after the claim: a transient failure, so the record never stays claimed."""
        record, receive_count = attempt.record, attempt.receive_count
        text = f"internal error ({type(error).__name__})"
        logger.exception(
            "unexpected error while delivering",
            extra={"notification_id": record.id, "error_type": type(error).__name__},
        )
        try:
            return self._transient(attempt, text)
        except Exception:  # noqa: BLE001 - the store is down too: the lease expires, SQS redelivers
            logger.exception("could not record the unexpected error", extra={"notification_id": record.id})
            last = receive_count >= self.policy.max_receive_count
            return DeliveryResult(Outcome.DEAD_LETTERED if last else Outcome.RETRY, text, 0 if last else None)

    def _refused(self, notification_id: str, refusal: ClaimRefusal | None, receive_count: int) -> DeliveryResult:
        log = {"notification_id": notification_id, "refusal": refusal}
        if refusal is ClaimRefusal.TERMINAL:
            logger.info("duplicate message for a finished notification; dropped", extra=log)
            return DeliveryResult(Outcome.DUPLICATE)
        if refusal is ClaimRefusal.LEASED:
            logger.info("notification is being delivered elsewhere; retry later", extra=log)
            return DeliveryResult(Outcome.RETRY, "in delivery elsewhere", self._backoff(receive_count, None))
        logger.warning("message for an unknown notification; dropped", extra=log)
        return DeliveryResult(Outcome.UNKNOWN)


def _moved_back(claim: Claim) -> bool:
    """Whether the claim was refused because the notification is dead-lettered: its message came back."""
    record = claim.record
    return claim.refusal is ClaimRefusal.TERMINAL and record is not None and record.status is Status.DEAD_LETTERED


def _with_calls(result: DeliveryResult, attempt: _Attempt) -> DeliveryResult:
    """`result` with the channel and provider of the attempt's last provider call (else the notification's
    channel), whether that channel is a fallback, and every provider call made."""
    calls = tuple(attempt.calls)
    channel = calls[-1].channel if calls else attempt.record.channel
    return dataclasses.replace(
        result,
        channel=channel,
        provider=calls[-1].provider if calls else None,
        fallback=channel is not attempt.record.channel,
        calls=calls,
    )


def _describe(error: Exception) -> str:
    """The notification's `error` text: our own message, or only the type of anything else (no details leak)."""
    if isinstance(error, DeliveryError):
        return error.message
    return f"provider call failed ({type(error).__name__})"
