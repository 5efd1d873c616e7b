"""Delivering one queued notification: claim it, call the provider for its channel, record the outcome."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from notifications.errors import DeliveryError
from notifications.models import Channel
from notifications.observability import logger
from notifications.store import ClaimRefusal
from resilience import degradation

if TYPE_CHECKING:
    from collections.abc import Mapping

    from notifications.models import NotificationRecord, QueueMessage
    from notifications.providers import Provider
    from notifications.store import StatusStore


class Outcome(StrEnum):
    SENT = "sent"  # the provider accepted it
    DUPLICATE = "duplicate"  # already terminal: a second copy of the message; drop it
    UNKNOWN = "unknown"  # no such record (never accepted); drop it
    FAILED = "failed"  # permanent failure; not retried
    RETRY = "retry"  # transient failure or in delivery elsewhere; SQS delivers it again
    DEAD_LETTERED = "dead_lettered"  # transient failure on the last receive; SQS moves it to the DLQ

    @property
    def keeps_message(self) -> bool:
        """True when the SQS message must stay (reported as a batch item failure)."""
        return self in {Outcome.RETRY, Outcome.DEAD_LETTERED}


@dataclass(frozen=True)
class DeliveryResult:
    outcome: Outcome
    detail: str = ""
    retry_after_seconds: float | None = None


def choose_channel(record: NotificationRecord, providers: Mapping[Channel, Provider]) -> Channel | None:
    """The channel to try now: the first of the primary and its fallbacks that has a provider.

    The one place the choice is made, through the resilience library's degradation rule; the delivery
    engine will add breaker state to `available` and turn a deferral into "queue for later".
    """
    decision = degradation.choose_channel(
        record.channel, record.fallback_channels, available=lambda channel: channel in providers
    )
    return None if decision.channel is None else Channel(decision.channel)


class Deliverer:
    def __init__(
        self,
        store: StatusStore,
        providers: Mapping[Channel, Provider],
        *,
        max_receive_count: int,
        slowest_call_seconds: float = 10.0,
    ) -> None:
        self._store = store
        self._providers = providers
        self._max_receive_count = max_receive_count
        self.slowest_call_seconds = slowest_call_seconds  # the longest one provider call may take

    def deliver(self, message: QueueMessage, *, owner: str, receive_count: int, lease_seconds: float) -> DeliveryResult:
        """One delivery attempt; the lease must outlast the provider call (the invocation's remaining time)."""
        claim = self._store.claim(message.id, owner, lease_seconds)
        if not claim.granted:
            return self._refused(message.id, claim.refusal)
        record = claim.record
        assert record is not None  # a granted claim always carries the record
        log = {"notification_id": record.id, "attempt": record.attempts, "receive_count": receive_count}

        channel = choose_channel(record, self._providers)
        if channel is None:
            error = "no provider is configured for any of the notification's channels"
            self._store.mark_failed(record.id, owner, error)
            logger.error("notification failed", extra={**log, "reason": error})
            return DeliveryResult(Outcome.FAILED, error)

        provider = self._providers[channel]
        try:
            receipt = provider.send(record)
        except DeliveryError as failure:
            return self._failed(record, owner, failure, receive_count, log | {"provider": provider.name})

        if not self._store.mark_sent(
            record.id, owner, channel=channel, provider=receipt.provider, provider_message_id=receipt.message_id
        ):
            # The lease ran out while the provider call was in flight and another sender claimed it;
            # the provider got the notification id, so a second copy can be traced and dropped there.
            logger.warning("delivered after losing the lease", extra=log | {"provider": receipt.provider})
        logger.info("notification sent", extra=log | {"channel": channel, "provider": receipt.provider})
        return DeliveryResult(Outcome.SENT)

    def _failed(
        self, record: NotificationRecord, owner: str, failure: DeliveryError, receive_count: int, log: dict[str, object]
    ) -> DeliveryResult:
        if failure.permanent:
            self._store.mark_failed(record.id, owner, failure.message)
            logger.warning("notification failed permanently", extra=log | {"reason": failure.message})
            return DeliveryResult(Outcome.FAILED, failure.message)
        if receive_count >= self._max_receive_count:
            self._store.mark_dead_lettered(record.id, owner, failure.message)
            logger.error("retries exhausted; dead-lettering", extra=log | {"reason": failure.message})
            return DeliveryResult(Outcome.DEAD_LETTERED, failure.message)
        self._store.record_retry(record.id, owner, failure.message)
        logger.warning("delivery attempt failed; will retry", extra=log | {"reason": failure.message})
        return DeliveryResult(Outcome.RETRY, failure.message, failure.retry_after_seconds)

    @staticmethod
    def _refused(notification_id: str, refusal: ClaimRefusal | None) -> DeliveryResult:
        log = {"notification_id": notification_id, "refusal": refusal}
        if refusal is ClaimRefusal.TERMINAL:
            logger.info("duplicate message for a finished notification; dropped", extra=log)
            return DeliveryResult(Outcome.DUPLICATE)
        if refusal is ClaimRefusal.LEASED:
            logger.info("notification is being delivered elsewhere; retry later", extra=log)
            return DeliveryResult(Outcome.RETRY, "in delivery elsewhere")
        logger.warning("message for an unknown notification; dropped", extra=log)
        return DeliveryResult(Outcome.UNKNOWN)
