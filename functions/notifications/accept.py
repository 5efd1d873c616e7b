"""Accepting notifications: validate, write the status record (conditional put), enqueue.

One at a time (`accept`: a `PutItem` and a `SendMessage`), or up to `requests.MAX_BATCH_NOTIFICATIONS` at once
(`accept_batch`: the same rules per notification, in a few batch requests). Either way a status record
never stays without its message: a record whose message could not be queued is taken back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notifications import ssrf
from notifications.budget import UNBOUNDED
from notifications.clock import Clock, iso, system_clock
from notifications.errors import (
    DependencyUnavailable,
    HeraldError,
    IdempotencyConflict,
    InvalidRequest,
    QueueUnavailable,
    StoreUnavailable,
    TargetRefused,
)
from notifications.ids import new_id
from notifications.models import (
    ERASABLE_ADDRESSES,
    AcceptedView,
    Channel,
    HistoryEntry,
    NotificationRecord,
    NotificationRequest,
    QueueMessage,
    Status,
)
from notifications.observability import logger
from notifications.ports import AlreadyExists, Creation, Outgoing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from notifications.budget import TimeBudget
    from notifications.ids import KeyedIds
    from notifications.ports import Enqueuer, StatusStore


@dataclass(frozen=True)
class AcceptPolicy:
    """What the accepting side checks beyond the request's own shape."""

    enabled_channels: frozenset[Channel]
    allow_private_webhook_targets: bool
    retention_seconds: int
    allowed_webhook_ports: frozenset[int] = ssrf.DEFAULT_ALLOWED_PORTS


@dataclass(frozen=True)
class Accepted:
    view: AcceptedView
    replayed: bool


@dataclass(frozen=True)
class ItemAccepted:
    """A notification of a batch that was accepted (or replayed: its key was seen with this request before)."""

    index: int
    accepted: Accepted


@dataclass(frozen=True)
class ItemRejected:
    """A notification of a batch that was not accepted, and why (the error the single path would raise)."""

    index: int
    error: HeraldError


@dataclass(frozen=True)
class BatchOutcome:
    """One result per notification of a batch, in the request's order."""

    results: tuple[ItemAccepted | ItemRejected, ...]

    @property
    def accepted(self) -> int:
        return sum(isinstance(result, ItemAccepted) for result in self.results)

    @property
    def rejected(self) -> int:
        return len(self.results) - self.accepted


@dataclass
class _Claim:
    """The notifications of a batch that share one id (one idempotency key), the first one first.

    Only the first is written; the others behave as if they were sent after it, one by one: replays of
    whatever record holds the id (`winner`) when their request matches it, conflicts when it does not.
    """

    index: int
    record: NotificationRecord
    followers: list[tuple[int, NotificationRecord]] = field(default_factory=list)
    winner: NotificationRecord | None = None  # the record stored under the id: ours if `created`
    created: bool = False
    failure: DependencyUnavailable | None = None


class NotificationAcceptor:
    def __init__(
        self,
        store: StatusStore,
        enqueuer: Enqueuer,
        policy: AcceptPolicy,
        clock: Clock = system_clock,
        *,
        ids: KeyedIds,
    ) -> None:
        self._store = store
        self._enqueuer = enqueuer
        self._policy = policy
        self._clock = clock
        self._ids = ids

    @property
    def ids(self) -> KeyedIds:
        """How keyed requests get their ids (the key lookup route derives the same id)."""
        return self._ids

    def accept(self, request: NotificationRequest, *, scope: str, batch: bool = False) -> Accepted:
        """Accept one validated request: exactly one record and one message per new notification."""
        self._check_policy(request)
        record = self._new_record(request, scope=scope, now=self._clock(), batch=batch)
        try:
            self._store.create(record)
        except AlreadyExists as exists:
            return self._replay(exists.existing, record)
        try:
            self._enqueuer.send(self._enqueuer.urls.url_of(record.queue), QueueMessage(id=record.id), record.priority)
        except DependencyUnavailable:
            # Nothing was queued, so nothing was accepted: take the record back and answer 503.
            self._store.delete_unqueued(record)
            raise
        logger.info(
            "notification accepted",
            extra={"notification_id": record.id, "channel": record.channel, "priority": record.priority},
        )
        return Accepted(view=AcceptedView.of(record), replayed=False)

    def accept_batch(
        self,
        items: Sequence[NotificationRequest | HeraldError],
        *,
        scope: str,
        bulk: bool = True,
        budget: TimeBudget = UNBOUNDED,
    ) -> BatchOutcome:
        """Accept each notification of a batch on its own, as `accept` would, in a few batch requests.

        Parameters
        ----------
        items : Sequence[NotificationRequest | HeraldError]
            The batch's notifications in order: validated requests, or the error that rejected one at the
            edge (it is reported at its index).
        scope : str
            The caller, whose idempotency keys these are.
        bulk : bool
            True for a batch a client sent as one (`normal` and `low` go to the batch queue); False for
            single notifications merely accepted together (they go where `accept` puts them).
        budget : TimeBudget
            The time the invocation has left: every write, read and send is made only if it allows it
            (keeping time for the take-back after it). What it stops is rejected as not stored or not
            queued ("retry it"), exactly as when the store or the queues fail.

        Returns
        -------
        BatchOutcome
            Per notification: accepted (new, or a replay of its key, which is never queued twice) or
            rejected (invalid, a key reused with another request, or not stored or queued).

        Raises
        ------
        DependencyUnavailable
            Nothing could be accepted because the store or the queues are unavailable (the API's 503).
        """
        now = self._clock()
        rejected: dict[int, HeraldError] = {}
        claims: dict[str, _Claim] = {}
        for index, item in enumerate(items):
            if isinstance(item, HeraldError):
                rejected[index] = item
                continue
            try:
                self._check_policy(item)
            except InvalidRequest as invalid:
                rejected[index] = invalid
                continue
            record = self._new_record(item, scope=scope, now=now, batch=bulk)
            claim = claims.get(record.id)
            if claim is None:
                claims[record.id] = _Claim(index, record)
            else:
                claim.followers.append((index, record))
        self._write(list(claims.values()), budget)
        self._enqueue(list(claims.values()), budget)
        results: list[ItemAccepted | ItemRejected] = [ItemRejected(i, error) for i, error in rejected.items()]
        for claim in claims.values():
            results.extend(self._results_of(claim))
        outcome = BatchOutcome(tuple(sorted(results, key=lambda result: result.index)))
        self._check_any_accepted(outcome)
        logger.info(
            "notification batch accepted",
            extra={
                "notifications": len(items),
                "accepted": outcome.accepted,
                "replayed": sum(isinstance(r, ItemAccepted) and r.accepted.replayed for r in outcome.results),
                "rejected": outcome.rejected,
            },
        )
        return outcome

    def _new_record(self, request: NotificationRequest, *, scope: str, now: float, batch: bool) -> NotificationRecord:
        key = request.idempotency_key
        queue_name, _ = self._enqueuer.urls.for_priority(request.priority, batch=batch)
        return NotificationRecord(
            id=self._ids.for_key(scope, key) if key else new_id(),
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
            client=scope,
            **{
                f"{kind}_hash": self._ids.for_address(kind, address)
                for kind in ERASABLE_ADDRESSES
                if (address := getattr(request.recipient, kind)) is not None
            },
            fingerprint=request.fingerprint(),
            queue=queue_name,
            created_at=iso(now),
            updated_at=iso(now),
            history=[HistoryEntry(status=Status.QUEUED, at=iso(now), detail="accepted")],
            expires_at=int(now) + self._policy.retention_seconds,
        )

    def _replay(self, existing: NotificationRecord, attempted: NotificationRecord) -> Accepted:
        if existing.fingerprint != attempted.fingerprint:
            raise _conflict(existing)
        if self._never_attempted(existing):
            queue_url = self._enqueuer.urls.url_of(existing.queue)
            self._enqueuer.send(queue_url, QueueMessage(id=existing.id), existing.priority)
            logger.info("replay queued a notification never attempted again", extra={"notification_id": existing.id})
        logger.info("idempotent replay", extra={"notification_id": existing.id})
        return Accepted(view=AcceptedView.of(existing), replayed=True)

    @staticmethod
    def _never_attempted(existing: NotificationRecord) -> bool:
        """A replay finds a record still queued and never attempted: its message may have been lost (a crash
        between the put and the send, whose client saw no 202 and retried), so it is always sent again. A
        second message costs a sender one claim, which drops it; a lost one would lose the notification."""
        return existing.status == Status.QUEUED and existing.attempts == 0

    # ------------------------------------------------------------------ batch steps
    def _write(self, claims: list[_Claim], budget: TimeBudget) -> None:
        """Write the first record of each id: fresh ids unconditionally, keyed ones only where the id is free."""
        fresh = [claim.record for claim in claims if claim.record.idempotency_key is None]
        keyed = [claim.record for claim in claims if claim.record.idempotency_key is not None]
        unkeyed = self._store.create_fresh(fresh, budget=budget) if fresh else Creation()
        creation = self._store.create_many(keyed, budget=budget) if keyed else Creation()
        created = unkeyed.created | creation.created
        for claim in claims:
            notification_id = claim.record.id
            if notification_id in created:
                claim.winner, claim.created = claim.record, True
            elif notification_id in creation.existing:
                claim.winner = creation.existing[notification_id]
            else:
                claim.failure = StoreUnavailable("the status store could not take this notification; retry it")

    def _enqueue(self, claims: list[_Claim], budget: TimeBudget) -> None:
        """Queue the new records (and replays found never attempted); take back the records left unqueued."""
        outgoing: dict[str, tuple[_Claim, Outgoing]] = {}
        for claim in claims:
            winner = claim.winner
            if winner is None or not (claim.created or self._replays(claim, winner)):
                continue
            queue_url = self._enqueuer.urls.url_of(winner.queue)
            outgoing[winner.id] = (claim, Outgoing(queue_url, QueueMessage(id=winner.id), winner.priority))
        if not outgoing:
            return
        unqueued: list[NotificationRecord] = []
        for message in self._enqueuer.send_many([message for _, message in outgoing.values()], budget=budget):
            claim, _ = outgoing.pop(message.message.id)
            claim.failure = QueueUnavailable("this notification could not be queued; retry it")
            if claim.created:
                unqueued.append(claim.record)
        if unqueued:
            self._take_back(unqueued, budget)
        for claim, _ in outgoing.values():
            if not claim.created:
                logger.warning(
                    "replay re-enqueued a notification never attempted", extra={"notification_id": claim.record.id}
                )

    def _replays(self, claim: _Claim, winner: NotificationRecord) -> bool:
        """Whether a request of the claim replays an existing record that is to be queued again."""
        requests = [claim.record, *(record for _, record in claim.followers)]
        return any(record.fingerprint == winner.fingerprint for record in requests) and self._never_attempted(winner)

    def _take_back(self, unqueued: list[NotificationRecord], budget: TimeBudget) -> None:
        """Take back, in one request, the records whose messages were not queued (the budget kept its time)."""
        for notification_id in self._store.delete_unqueued_many(unqueued, budget=budget):
            # The client is told to retry: a keyed retry replays the record and queues it again.
            logger.error("record left without a message", extra={"notification_id": notification_id})

    def _results_of(self, claim: _Claim) -> list[ItemAccepted | ItemRejected]:
        """The results of every notification sharing the claim's id, as if each came after the one before."""
        results: list[ItemAccepted | ItemRejected] = []
        for position, (index, record) in enumerate([(claim.index, claim.record), *claim.followers]):
            if claim.failure is not None or claim.winner is None:
                results.append(ItemRejected(index, claim.failure or StoreUnavailable("status store unavailable")))
            elif claim.winner.fingerprint != record.fingerprint:
                results.append(ItemRejected(index, _conflict(claim.winner)))
            else:
                replayed = position > 0 or not claim.created
                results.append(ItemAccepted(index, Accepted(view=AcceptedView.of(claim.winner), replayed=replayed)))
        return results

    @staticmethod
    def _check_any_accepted(outcome: BatchOutcome) -> None:
        """Nothing accepted because a dependency failed: the whole request gets the single path's 503."""
        if outcome.accepted:
            return
        for result in outcome.results:
            if isinstance(result, ItemRejected) and isinstance(result.error, DependencyUnavailable):
                raise type(result.error)(f"nothing was accepted: {result.error.message}")

    # ------------------------------------------------------------------ shared
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
                ssrf.check_url_shape(
                    url,
                    allow_private=self._policy.allow_private_webhook_targets,
                    allowed_ports=self._policy.allowed_webhook_ports,
                )
            except TargetRefused as refused:
                raise InvalidRequest(
                    "webhook target refused", details=[{"field": "recipient.webhook_url", "message": refused.message}]
                ) from refused


def _conflict(existing: NotificationRecord) -> IdempotencyConflict:
    return IdempotencyConflict(
        "this idempotency key was already used with a different request",
        details=[{"field": "idempotency_key", "notification_id": existing.id}],
    )
