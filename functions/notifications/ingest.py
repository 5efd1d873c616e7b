"""Accepting notifications that producers put on the inbound queue, as the API accepts them.

A message holds what `POST /notifications` takes, or the batch envelope `{"notifications": [...]}`.
It is read with the API's own rules (`notifications.requests`) and accepted by the same acceptor: the
same status record, priority queues and idempotency, for the client the inbound queue belongs to.

Idempotency: a notification's own `idempotency_key`, else the SQS message id (`<message id>:<index>`
for the notifications of an envelope), so SQS delivering a message twice never makes two
notifications, and a message retried after a partial failure replays what it already accepted.

A message that can never be accepted (not JSON, not a notification, over the limits, a channel with no
provider, a key reused with another request) is not retried: it goes to the inbound dead-letter queue
at once with the reasons as attributes. For an envelope, only the rejected notifications go there,
each with the key it was given, so sending them again once fixed makes no duplicate. A failure that
can pass (the table or a queue unreachable) raises `DependencyUnavailable`: the message stays, and SQS
hands it out again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from notifications import requests
from notifications.accept import Accepted, ItemAccepted, ItemRejected
from notifications.errors import DependencyUnavailable, HeraldError, PayloadTooLarge
from notifications.models import NotificationRequest
from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from notifications.accept import NotificationAcceptor


class RejectQueue(Protocol):
    """Where messages that can never be accepted go, with why."""

    def reject(self, body: str, *, reason: str, fields: Sequence[str], source_message_id: str) -> None:
        """Keep `body` for an operator; raise `QueueUnavailable` when that is not possible now."""
        ...


@dataclass(frozen=True)
class InboundMessage:
    """One SQS message of the inbound queue: its id and its body."""

    message_id: str
    body: str


@dataclass(frozen=True)
class Ingested:
    """What became of one inbound message."""

    accepted: int = 0  # new notifications
    replayed: int = 0  # notifications this message (or its key) had already made
    rejected: int = 0  # notifications sent to the dead-letter queue


class Ingestor:
    """Reads inbound messages and accepts their notifications for one client.

    Parameters
    ----------
    acceptor : NotificationAcceptor
        The API's acceptor.
    rejects : RejectQueue
        The inbound dead-letter queue.
    scope : str
        The client the inbound queue belongs to: its notifications' idempotency keys are this client's,
        and the client finds them with `GET /notifications?idempotency_key=...`.
    max_item_bytes : int
        The largest notification (the API's `MAX_REQUEST_BYTES`).
    """

    def __init__(self, acceptor: NotificationAcceptor, rejects: RejectQueue, *, scope: str, max_item_bytes: int):
        self._acceptor = acceptor
        self._rejects = rejects
        self._scope = scope
        self._max_item_bytes = max_item_bytes

    def ingest(self, message_id: str, body: str) -> Ingested:
        """Accept one message's notifications; raise `DependencyUnavailable` to have SQS retry the message."""
        outcome = self.ingest_all([InboundMessage(message_id, body)])[message_id]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def ingest_all(self, messages: Sequence[InboundMessage]) -> dict[str, Ingested | Exception]:
        """Every message of one invocation, by message id: what became of it, or the exception that keeps it.

        Messages of one notification each are accepted together, as a batch of single notifications (one
        transaction and one `SendMessageBatch` for an invocation's ten instead of ten of each); an
        envelope is accepted on its own. A message's exception (`DependencyUnavailable`, or anything
        unexpected) concerns that message alone: SQS hands it out again.
        """
        outcomes: dict[str, Ingested | Exception] = {}
        singles: list[tuple[InboundMessage, NotificationRequest]] = []
        for message in messages:
            try:
                read = self._read(message)
            except Exception as error:  # noqa: BLE001 - kept for a retry, whatever it is
                outcomes[message.message_id] = error
                continue
            if isinstance(read, Ingested):
                outcomes[message.message_id] = read
            else:
                singles.append((message, read))
        outcomes.update(self._singles(singles))
        return outcomes

    def _read(self, message: InboundMessage) -> Ingested | NotificationRequest:
        """A single notification to accept, or what became of the message (rejected, or an envelope's outcome)."""
        message_id, body = message.message_id, message.body
        try:
            payload = requests.json_object(body, requests.SQS_MAX_MESSAGE_BYTES)
        except HeraldError as error:
            return self._reject(message_id, body, [error], count=1)
        if requests.is_batch(payload):
            return self._envelope(message_id, body, payload)
        if len(body.encode()) > self._max_item_bytes:  # as the API refuses it with 413
            too_large = PayloadTooLarge(f"the notification exceeds {self._max_item_bytes} bytes")
            return self._reject(message_id, body, [too_large], count=1)
        if payload.get("idempotency_key") is None:
            payload["idempotency_key"] = message_id
        try:
            return requests.notification(payload)
        except HeraldError as error:
            return self._reject(message_id, body, [error], count=1)

    # ------------------------------------------------------------------ single notifications
    def _singles(
        self, singles: Sequence[tuple[InboundMessage, NotificationRequest]]
    ) -> dict[str, Ingested | Exception]:
        """Accept the messages' notifications together; each message's own outcome."""
        if len(singles) == 1:  # alone (the usual batch at low traffic): a PutItem costs half a transaction
            message, request = singles[0]
            try:
                return {message.message_id: self._settled(message, self._acceptor.accept(request, scope=self._scope))}
            except HeraldError as error:
                return {message.message_id: self._settled(message, error)}
            except Exception as error:  # noqa: BLE001 - kept for a retry, whatever it is
                return {message.message_id: error}
        if not singles:
            return {}
        try:
            outcome = self._acceptor.accept_batch([request for _, request in singles], scope=self._scope, bulk=False)
        except Exception as error:  # noqa: BLE001 - nothing was accepted: every one of them is kept
            return {message.message_id: error for message, _ in singles}
        return {
            singles[result.index][0].message_id: self._settled(
                singles[result.index][0], result.accepted if isinstance(result, ItemAccepted) else result.error
            )
            for result in outcome.results
        }

    def _settled(self, message: InboundMessage, result: Accepted | HeraldError) -> Ingested | Exception:
        """What became of a message given its notification's result: accepted, rejected, or kept for a retry."""
        if isinstance(result, DependencyUnavailable):
            return result
        if isinstance(result, HeraldError):  # a channel without provider, a key reused with another body
            try:
                return self._reject(message.message_id, message.body, [result], count=1)
            except Exception as refused:  # noqa: BLE001 - the dead-letter queue refused: kept for a retry
                return refused
        log = {"notification_id": result.view.id, "message_id": message.message_id, "replayed": result.replayed}
        logger.info("inbound notification accepted", extra=log)
        return Ingested(accepted=int(not result.replayed), replayed=int(result.replayed))

    # ------------------------------------------------------------------ the batch envelope
    def _envelope(self, message_id: str, body: str, payload: dict[str, Any]) -> Ingested:
        try:
            items = requests.batch(payload, self._max_item_bytes)
        except HeraldError as error:  # not an envelope of 1 to 100 notifications
            return self._reject(message_id, body, [error], count=1)
        keyed = [self._keyed(item, f"{message_id}:{index}") for index, item in enumerate(items)]
        outcome = self._acceptor.accept_batch(keyed, scope=self._scope)  # DependencyUnavailable: nothing taken
        rejected = [result for result in outcome.results if isinstance(result, ItemRejected)]
        if any(isinstance(result.error, DependencyUnavailable) for result in rejected):
            # Some were not stored or queued: SQS hands the whole message out again; what was accepted
            # this time replays then (same keys), and only the rest is new.
            raise DependencyUnavailable("some notifications of the message could not be accepted now")
        accepted = [result for result in outcome.results if isinstance(result, ItemAccepted)]
        replayed = sum(result.accepted.replayed for result in accepted)
        if rejected:
            self._reject_items(message_id, payload, keyed, rejected)
        logger.info(
            "inbound batch accepted",
            extra={"message_id": message_id, "accepted": len(accepted), "rejected": len(rejected)},
        )
        return Ingested(accepted=len(accepted) - replayed, replayed=replayed, rejected=len(rejected))

    @staticmethod
    def _keyed(item: NotificationRequest | HeraldError, key: str) -> NotificationRequest | HeraldError:
        if isinstance(item, NotificationRequest) and item.idempotency_key is None:
            return item.model_copy(update={"idempotency_key": key})
        return item

    def _reject_items(
        self,
        message_id: str,
        payload: dict[str, Any],
        keyed: Sequence[NotificationRequest | HeraldError],
        rejected: Sequence[ItemRejected],
    ) -> None:
        """The rejected notifications, as an envelope of their own, each with the key it was given."""
        originals = payload["notifications"]
        notifications = []
        for result in rejected:
            original = originals[result.index]
            item = keyed[result.index]
            if isinstance(original, dict) and isinstance(item, NotificationRequest) and item.idempotency_key:
                original = {**original, "idempotency_key": item.idempotency_key}
            elif isinstance(original, dict) and original.get("idempotency_key") is None:
                original = {**original, "idempotency_key": f"{message_id}:{result.index}"}
            notifications.append(original)
        errors = [
            HeraldError(
                result.error.message,
                requests.item_details(result.index, result.error) or [{"field": f"notifications[{result.index}]"}],
            )
            for result in rejected
        ]
        body = json.dumps({"notifications": notifications}, separators=(",", ":"))
        self._reject(message_id, body, errors, count=len(rejected))

    # ------------------------------------------------------------------ rejecting
    def _reject(self, message_id: str, body: str, errors: Sequence[HeraldError], *, count: int) -> Ingested:
        reason = "; ".join(dict.fromkeys(error.message for error in errors))
        fields = requests.fields_of(errors)
        self._rejects.reject(body, reason=reason, fields=fields, source_message_id=message_id)
        logger.warning(
            "inbound message rejected",
            extra={"message_id": message_id, "reason": reason, "fields": fields, "notifications": count},
        )
        return Ingested(rejected=count)
