"""Dead letters: what rests in the dead-letter queue, read without taking it; redrive; reconciliation.

**Reading never loses or delays a message.** A `Peek` receives the DLQ's messages in batches of 10, each
invisible for `PEEK_VISIBILITY_SECONDS` (longer than any reader runs: the admin function's timeout, the
monitor's reconciliation window), so one reading sees each message once. Whatever happens, leaving the peek
makes every message it received and did not delete visible again at once (`ChangeMessageVisibilityBatch`
to 0). A reader killed mid-way (a timeout) delays the messages it held by at most that visibility timeout;
nothing is ever deleted but a message whose notification was just sent again.

**What a dead letter is** (`DeadLetter`) comes from the notification's status record (read with
`BatchGetItem`), not from the message, which holds only the id. Its `error_class` says why it is there
(`DeadLetterClass`). The exception that dead-lettered it is gone by then, so the class is read from the record:
a notification only reaches the DLQ after `notifications.failures.delivery_classifier` judged its failures
TRANSIENT (a PERMANENT verdict ends it `failed`, never in the DLQ), and its history says which way it got
there. First and last failure times are the history's failure entries (retries, deferrals, the dead-lettering);
the history keeps the first entry and the newest 29, so on a long one "first" is the oldest kept.

**Redrive** (`DeadLetters.redrive`): a filtered redrive moves message by message, per batch of 10: each
matching notification's record goes back from `dead_lettered` to `queued` (a conditional write), then its
message is sent to the queue its priority uses, then the DLQ message is deleted. A crash between any two steps
loses nothing: a record queued without a copy is dead-lettered again by the monitor's reconciliation (its
message is still in the DLQ), and a copy sent before its DLQ message was deleted is a duplicate that the
sender drops (it cannot claim a notification already claimed or finished). An unfiltered redrive hands the
whole queue to an SQS move task (`StartMessageMoveTask`, when `REDRIVE_WITH_MOVE_TASK` is on), which changes
no record: the sender puts each record back to `queued` when its message arrives
(`notifications.delivery`, "redriven by an operator"), so a record says `queued` exactly when its message
is back on a work queue.

**Reconciliation** (`DeadLetterReconciler`, a step of the health monitor's run): a record still `queued` or
`deferred` whose message rests in the DLQ (a sender died holding the lease on the last receive, or could not
claim it at all) is marked `dead_lettered`, conditionally, with a reason. Bounded per run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

from notifications.budget import UNBOUNDED, TimeBudget
from notifications.dead_letter_queue import (
    MAX_SCAN_MESSAGES,
    PEEK_VISIBILITY_SECONDS,
    DeadLetterQueue,
    Peek,
    PeekedMessage,
)
from notifications.dead_letter_views import (
    ABANDONED_REASON,
    DeadLetter,
    DeadLetterClass,
    DeadLetterFilter,
    classify,
    describe,
)
from notifications.models import PENDING_STATUSES, QueueMessage, Status
from notifications.observability import logger
from notifications.ports import Outgoing

if TYPE_CHECKING:
    from collections.abc import Sequence

    from notifications.clock import Clock
    from notifications.models import NotificationRecord
    from notifications.ports import Enqueuer

# How many ids a redrive's answer lists.
NOTIFICATION_IDS_SHOWN = 100
# The history entry of a notification an operator redrove message by message.
REDRIVEN_BY_OPERATOR = "redriven by an operator"


class RedriveMethod(StrEnum):
    MESSAGE_BY_MESSAGE = "message_by_message"
    MOVE_TASK = "move_task"


# ---------------------------------------------------------------------- ports
class DeadLetterRecords(Protocol):
    """What dead letters need of the status store (`store.DynamoDBStatusStore`, the fake store)."""

    def get_many(self, notification_ids: Sequence[str]) -> dict[str, NotificationRecord]: ...

    def requeue_dead_lettered(self, record: NotificationRecord, detail: str) -> bool: ...

    def mark_abandoned(self, record: NotificationRecord, reason: str) -> bool: ...


# ---------------------------------------------------------------------- answers
class DeadLetterListing(BaseModel):
    """`GET /admin/dead-letters`: the matching dead letters, how many messages were read, whether it stopped
    before the end of the queue (the limit, the scan cap or the time: more may match)."""

    dead_letters: list[DeadLetter]
    scanned: int
    truncated: bool


class RedriveResult(BaseModel):
    """`POST /admin/dead-letters/redrive`: what matched, what moved (fewer when it stopped before its deadline:
    `truncated`), how, the first ids, and a move task's handle."""

    dry_run: bool
    matched: int
    moved: int
    method: RedriveMethod
    notification_ids: list[str]
    truncated: bool
    task_handle: str | None = None


@dataclass(frozen=True)
class RedriveOrder:
    """What a redrive is asked: which dead letters (`filters`), at most how many (`max_messages`: None, not
    given), and whether only to answer what would move."""

    filters: DeadLetterFilter = field(default_factory=DeadLetterFilter)
    max_messages: int | None = None
    dry_run: bool = False

    @property
    def unfiltered(self) -> bool:
        """Every message, however many: what a move task does."""
        return self.filters.is_empty and self.max_messages is None


DEFAULT_REDRIVE_MAX = 1000


# ---------------------------------------------------------------------- listing and redriving
class DeadLetters:
    """The admin API's dead letters: find (list) them, redrive them (see the module docstring).

    Parameters
    ----------
    queue : DeadLetterQueue
        The notifications' dead-letter queue.
    records : DeadLetterRecords
        The status store.
    enqueuer : Enqueuer
        The work queues a redriven message is sent to (by the record's queue, else its priority).
    move_task : bool
        Whether an unfiltered redrive hands the queue to an SQS move task (SQS in AWS; not in moto).
    wait_seconds : int
        Long polling of each receive.
    """

    def __init__(
        self,
        queue: DeadLetterQueue,
        records: DeadLetterRecords,
        enqueuer: Enqueuer,
        *,
        move_task: bool,
        wait_seconds: int = 1,
    ) -> None:
        self._queue = queue
        self._records = records
        self._enqueuer = enqueuer
        self._move_task = move_task
        self._wait = wait_seconds

    def find(self, filters: DeadLetterFilter, *, limit: int, budget: TimeBudget) -> DeadLetterListing:
        """The dead letters matching `filters`, at most `limit`, newest failure first; nothing is taken."""
        letters: list[DeadLetter] = []
        with self._peek(budget, MAX_SCAN_MESSAGES) as peek:
            for batch in peek.batches():
                found = self._records.get_many(_ids(batch))
                letters.extend(
                    letter
                    for message in batch
                    if filters.matches(letter := describe(message, _record_of(message, found)))
                )
                if len(letters) >= limit:
                    break
        letters.sort(key=lambda letter: (letter.last_failure_at or "", letter.message_id), reverse=True)
        return DeadLetterListing(dead_letters=letters[:limit], scanned=peek.scanned, truncated=not peek.exhausted)

    def redrive(self, order: RedriveOrder, *, budget: TimeBudget) -> RedriveResult:
        """Send dead-lettered notifications to their queues again (see the module docstring)."""
        if order.unfiltered and self._move_task:
            return self._redrive_with_move_task(order, budget)
        return self._redrive_message_by_message(order, budget)

    # ------------------------------------------------------------------ message by message
    def _redrive_message_by_message(self, order: RedriveOrder, budget: TimeBudget) -> RedriveResult:
        limit = DEFAULT_REDRIVE_MAX if order.max_messages is None else order.max_messages
        matched: list[str] = []
        handled: set[str] = set()
        moved = 0
        stopped = False
        with self._peek(budget, MAX_SCAN_MESSAGES) as peek:
            for batch in peek.batches():
                found = self._records.get_many(_ids(batch))
                chosen = []
                for message in batch:
                    record = _record_of(message, found)
                    # Once per notification a call: a copy this call moved may fail again at once and come back
                    # to the DLQ as a new message before the call ends; it is left for the next redrive.
                    if (
                        record is not None
                        and record.id not in handled
                        and record.status is Status.DEAD_LETTERED
                        and order.filters.matches(describe(message, record))
                    ):
                        handled.add(record.id)
                        chosen.append((message, record))
                chosen = chosen[: limit - len(matched)]
                matched.extend(record.id for _, record in chosen)
                if not order.dry_run:
                    done, stopped = self._move(chosen, peek, budget)
                    moved += done
                if stopped or len(matched) >= limit:
                    break
        result = RedriveResult(
            dry_run=order.dry_run,
            matched=len(matched),
            moved=moved,
            method=RedriveMethod.MESSAGE_BY_MESSAGE,
            notification_ids=matched[:NOTIFICATION_IDS_SHOWN],
            truncated=stopped or not peek.exhausted,
        )
        logger.info(
            "dead letters redriven",
            extra={"matched": result.matched, "moved": result.moved, "truncated": result.truncated},
        )
        return result

    def _move(
        self, chosen: list[tuple[PeekedMessage, NotificationRecord]], peek: Peek, budget: TimeBudget
    ) -> tuple[int, bool]:
        """Record to `queued`, copy to its queue, then the DLQ message deleted, in that order.

        Returns how many moved, and whether the redrive must stop here: the time ran out, or a queue refused.
        What did not move stays in the DLQ; a record put back to `queued` whose copy was not sent is
        dead-lettered again by reconciliation. A record that changed since it was read is left (not moved).
        """
        requeued: list[tuple[PeekedMessage, NotificationRecord]] = []
        stopped = False
        for message, record in chosen:
            if not budget.allows_call():
                stopped = True
                break
            if self._records.requeue_dead_lettered(record, REDRIVEN_BY_OPERATOR):
                requeued.append((message, record))
            else:  # changed since it was read (another redrive, a move task's copy): not ours to move
                logger.info("dead letter changed while redriving; left", extra={"notification_id": record.id})
        outgoing = [
            Outgoing(self._queue_url(record), QueueMessage(id=record.id), record.priority) for _, record in requeued
        ]
        # Not bounded by the budget: each record put back was allowed with time for a call after it, and a copy
        # not sent now would leave it queued without a message until reconciliation. (A record is requeued once,
        # so its id names one copy.)
        refused = {item.message.id for item in self._enqueuer.send_many(outgoing, UNBOUNDED)}
        sent = [message for message, record in requeued if record.id not in refused]
        if len(sent) < len(requeued):
            stopped = True
            logger.warning(
                "redriven notifications not queued; reconciliation dead-letters them again",
                extra={"notifications": len(requeued) - len(sent)},
            )
        if sent:
            deleted = peek.delete(sent)
            if deleted < len(sent):  # a duplicate for the sender to drop: nothing lost
                logger.warning("redriven messages left in the DLQ", extra={"messages": len(sent) - deleted})
        return len(sent), stopped

    def _queue_url(self, record: NotificationRecord) -> str:
        """The queue the notification was accepted on, else the one its priority uses."""
        urls = self._enqueuer.urls
        try:
            return urls.url_of(record.queue)
        except KeyError:
            return urls.for_priority(record.priority)[1]

    # ------------------------------------------------------------------ a move task
    def _redrive_with_move_task(self, order: RedriveOrder, budget: TimeBudget) -> RedriveResult:
        """The whole queue to SQS's move task; the answer lists the first ids (a peek, released before it starts)."""
        depth = self._queue.depth()
        ids: list[str] = []
        with self._peek(budget, NOTIFICATION_IDS_SHOWN) as peek:
            for batch in peek.batches():
                ids.extend(message.notification_id for message in batch if message.notification_id is not None)
        matched = max(depth, peek.scanned)
        handle = None if order.dry_run else self._queue.start_move_task()
        if handle is not None:
            logger.info("dead-letter move task started", extra={"task_handle": handle, "messages": matched})
        return RedriveResult(
            dry_run=order.dry_run,
            matched=matched,
            moved=0 if order.dry_run else matched,
            method=RedriveMethod.MOVE_TASK,
            notification_ids=ids[:NOTIFICATION_IDS_SHOWN],
            truncated=False,
            task_handle=handle,
        )

    def _peek(self, budget: TimeBudget, max_messages: int) -> Peek:
        return Peek(self._queue, allows_call=budget.allows_call, max_messages=max_messages, wait_seconds=self._wait)


# ---------------------------------------------------------------------- reconciliation
class DeadLetterReconciler:
    """Marks `dead_lettered` every pending record whose message rests in the DLQ (a step of the health monitor).

    Parameters
    ----------
    queue, records
        The dead-letter queue and the status store.
    clock : Clock
        Epoch seconds: the run's window is measured on it.
    max_messages : int
        The most messages one run reads (500): a deeper queue is covered over several runs.
    window_seconds : float
        How long one run may read and write.
    call_seconds : float
        The longest one AWS call may take (the monitor's fail-fast clients).
    wait_seconds : int
        Long polling of each receive.
    """

    def __init__(  # noqa: PLR0913 - the queue, the store and the run's bounds, each injected
        self,
        queue: DeadLetterQueue,
        records: DeadLetterRecords,
        *,
        clock: Clock,
        max_messages: int = 500,
        window_seconds: float = 12.0,
        call_seconds: float = 3.0,
        wait_seconds: int = 1,
    ) -> None:
        self._queue = queue
        self._records = records
        self._clock = clock
        self._max = max_messages
        self._window = window_seconds
        self._call_seconds = call_seconds
        self._wait = wait_seconds

    def run(self) -> int:
        """One pass over (at most `max_messages` of) the DLQ; how many records it marked `dead_lettered`."""
        deadline = self._clock() + self._window
        budget = TimeBudget(lambda: deadline - self._clock(), call_seconds=self._call_seconds, margin_seconds=0.5)
        reconciled = 0
        with Peek(self._queue, allows_call=budget.allows_call, max_messages=self._max, wait_seconds=self._wait) as peek:
            for batch in peek.batches():
                found = self._records.get_many(_ids(batch))
                for message in batch:
                    record = _record_of(message, found)
                    if record is None or record.status not in PENDING_STATUSES:
                        continue
                    if self._records.mark_abandoned(record, ABANDONED_REASON):
                        reconciled += 1
                        logger.warning(
                            "notification reconciled: its message is in the dead-letter queue",
                            extra={"notification_id": record.id, "was": record.status.value},
                        )
        logger.info("dead-letter reconciliation", extra={"scanned": peek.scanned, "reconciled": reconciled})
        return reconciled


def _ids(batch: Sequence[PeekedMessage]) -> list[str]:
    return [message.notification_id for message in batch if message.notification_id is not None]


def _record_of(message: PeekedMessage, found: dict[str, NotificationRecord]) -> NotificationRecord | None:
    return None if message.notification_id is None else found.get(message.notification_id)


__all__ = [
    "ABANDONED_REASON",
    "MAX_SCAN_MESSAGES",
    "PEEK_VISIBILITY_SECONDS",
    "REDRIVEN_BY_OPERATOR",
    "DeadLetter",
    "DeadLetterClass",
    "DeadLetterFilter",
    "DeadLetterListing",
    "DeadLetterQueue",
    "DeadLetterReconciler",
    "DeadLetterRecords",
    "DeadLetters",
    "Peek",
    "PeekedMessage",
    "RedriveMethod",
    "RedriveOrder",
    "RedriveResult",
    "classify",
    "describe",
]
