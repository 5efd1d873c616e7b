"""Accepting a notification: validate, write the status record (conditional put), enqueue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifications import ssrf
from notifications.clock import Clock, epoch, iso, system_clock
from notifications.errors import DependencyUnavailable, IdempotencyConflict, InvalidRequest, TargetRefused
from notifications.ids import id_for_key, new_id
from notifications.models import (
    AcceptedView,
    Channel,
    HistoryEntry,
    NotificationRecord,
    NotificationRequest,
    QueueMessage,
    Status,
)
from notifications.observability import logger
from notifications.ports import AlreadyExists

if TYPE_CHECKING:
    from notifications.ports import Enqueuer, StatusStore


@dataclass(frozen=True)
class AcceptPolicy:
    """What the accepting side checks beyond the request's own shape."""

    enabled_channels: frozenset[Channel]
    allow_private_webhook_targets: bool
    retention_seconds: int
    # A replay of a record still `queued` with no attempt after this long re-sends its message: it covers
    # a crash between the put and the send (the client saw no 202 and retried). Senders drop duplicates.
    reenqueue_after_seconds: float = 60.0


@dataclass(frozen=True)
class Accepted:
    view: AcceptedView
    replayed: bool


class NotificationAcceptor:
    def __init__(self, store: StatusStore, enqueuer: Enqueuer, policy: AcceptPolicy, clock: Clock = system_clock):
        self._store = store
        self._enqueuer = enqueuer
        self._policy = policy
        self._clock = clock

    def accept(self, request: NotificationRequest, *, scope: str, batch: bool = False) -> Accepted:
        """Accept one validated request: exactly one record and one message per new notification."""
        self._check_policy(request)
        now = self._clock()
        key = request.idempotency_key
        queue_name, queue_url = self._enqueuer.urls.for_priority(request.priority, batch=batch)
        record = NotificationRecord(
            id=id_for_key(scope, key) if key else new_id(),
            status=Status.QUEUED,
            channel=request.channel,
            fallback_channels=request.fallback_channels,
            recipient=request.recipient,
            subject=request.subject,
            body=request.body,
            data=request.data,
            priority=request.priority,
            metadata=request.metadata,
            idempotency_key=key,
            fingerprint=request.fingerprint(),
            queue=queue_name,
            created_at=iso(now),
            updated_at=iso(now),
            history=[HistoryEntry(status=Status.QUEUED, at=iso(now), detail="accepted")],
            expires_at=int(now) + self._policy.retention_seconds,
        )
        try:
            self._store.create(record)
        except AlreadyExists as exists:
            return self._replay(exists.existing, record)
        try:
            self._enqueuer.send(queue_url, QueueMessage(id=record.id), record.priority)
        except DependencyUnavailable:
            # Nothing was queued, so nothing was accepted: take the record back and answer 503.
            self._store.delete_unqueued(record)
            raise
        logger.info(
            "notification accepted",
            extra={"notification_id": record.id, "channel": record.channel, "priority": record.priority},
        )
        return Accepted(view=AcceptedView.of(record), replayed=False)

    def _replay(self, existing: NotificationRecord, attempted: NotificationRecord) -> Accepted:
        if existing.fingerprint != attempted.fingerprint:
            raise IdempotencyConflict(
                "this idempotency key was already used with a different request",
                details=[{"field": "idempotency_key", "notification_id": existing.id}],
            )
        age = self._clock() - epoch(existing.created_at)
        if existing.status == Status.QUEUED and existing.attempts == 0 and age >= self._policy.reenqueue_after_seconds:
            queue_url = self._enqueuer.urls.url_of(existing.queue)
            self._enqueuer.send(queue_url, QueueMessage(id=existing.id), existing.priority)
            logger.warning("replay re-enqueued a notification never attempted", extra={"notification_id": existing.id})
        logger.info("idempotent replay", extra={"notification_id": existing.id})
        return Accepted(view=AcceptedView.of(existing), replayed=True)

    def _check_policy(self, request: NotificationRequest) -> None:
        unavailable = [channel for channel in request.channels if channel not in self._policy.enabled_channels]
        if unavailable:
            enabled = ", ".join(sorted(self._policy.enabled_channels))
            raise InvalidRequest(
                "channel not available",
                details=[
                    {
                        "field": "channel",
                        "message": f"channel '{channel}' has no provider configured; enabled: {enabled}",
                    }
                    for channel in unavailable
                ],
            )
        url = request.recipient.webhook_url
        if url is not None:
            try:
                ssrf.check_url_shape(url, allow_private=self._policy.allow_private_webhook_targets)
            except TargetRefused as refused:
                raise InvalidRequest(
                    "webhook target refused", details=[{"field": "recipient.webhook_url", "message": refused.message}]
                ) from refused
