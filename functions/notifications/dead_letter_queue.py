"""Reading the dead-letter queue without taking from it: `Peek`, and the SQS adapter `SqsDeadLetterQueue`.

A `Peek` receives the DLQ's messages in batches of 10, each invisible for `PEEK_VISIBILITY_SECONDS` (longer than
any reader runs), so one reading sees each message once; leaving it, however, makes every message it received
and did not delete visible again at once. `notifications.dead_letters` lists, redrives and reconciles with it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Self

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from notifications.errors import QueueUnavailable
from notifications.models import QueueMessage
from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from types import TracebackType

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef


# Every message a reader receives stays invisible this long: more than any reader runs (the admin function's
# timeout, tests/infrastructure checks it; the monitor's reconciliation window), so one reading sees each
# message once, and a reader killed mid-way delays what it held by at most this.
PEEK_VISIBILITY_SECONDS = 30
RECEIVE_MAX_MESSAGES = 10  # ReceiveMessage's limit
CHANGE_BATCH_MAX_ENTRIES = 10  # ChangeMessageVisibilityBatch's and DeleteMessageBatch's limit
# The most messages one reading holds: it makes them all visible again as it ends, 10 to a request.
MAX_SCAN_MESSAGES = 10_000
_RELEASE_THREADS = 16


@dataclass(frozen=True)
class PeekedMessage:
    """A message received from the dead-letter queue: its SQS identity and the notification it names."""

    message_id: str
    receipt_handle: str
    notification_id: str | None  # None: its body is not `{"id": ...}`


class DeadLetterQueue(Protocol):
    """The dead-letter queue as readers use it (`SqsDeadLetterQueue`; a fake in tests/support/fakes.py)."""

    def receive(self, count: int, *, visibility_seconds: int, wait_seconds: int) -> list[PeekedMessage]:
        """Up to `count` (<= 10) visible messages, each invisible for `visibility_seconds` now."""
        ...

    def release(self, messages: Sequence[PeekedMessage]) -> None:
        """Make received messages visible again at once; never raises (they come back on their own)."""
        ...

    def delete(self, messages: Sequence[PeekedMessage]) -> list[PeekedMessage]:
        """Delete received messages; returns those it could not delete (they stay in the queue)."""
        ...

    def depth(self) -> int:
        """About how many messages the queue holds (visible and in flight)."""
        ...

    def start_move_task(self) -> str:
        """Start an SQS move task of every message to the redrive destination; its task handle."""
        ...


# ---------------------------------------------------------------------- reading without taking
class Peek:
    """One reading of the dead-letter queue: a context manager; leaving it, however, releases what it holds.

    Parameters
    ----------
    queue : DeadLetterQueue
        The queue.
    allows_call : Callable[[], bool]
        Asked before each receive: False ends the reading (no time left for it and the release after it).
    max_messages : int
        The most distinct messages it receives.
    wait_seconds : int
        Long polling of each receive (0 to 20): an empty answer then means the queue has no visible message.
    """

    def __init__(
        self, queue: DeadLetterQueue, *, allows_call: Callable[[], bool], max_messages: int, wait_seconds: int
    ) -> None:
        self._queue = queue
        self._allows_call = allows_call
        self._max = max_messages
        self._wait = wait_seconds
        self._held: dict[str, PeekedMessage] = {}  # message id -> its latest receipt, until released or deleted
        self._seen: set[str] = set()  # every message id received
        self.exhausted = False  # True once a receive came back empty: every visible message was seen

    @property
    def scanned(self) -> int:
        """Distinct messages received."""
        return len(self._seen)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        held = list(self._held.values())
        self._held.clear()
        if not held:
            return
        try:
            self._queue.release(held)
        except Exception:  # noqa: BLE001 - never mask the reading's own outcome; they come back on their own
            logger.exception(
                "dead letters not made visible at once; they come back after their visibility timeout",
                extra={"messages": len(held), "visibility_seconds": PEEK_VISIBILITY_SECONDS},
            )

    def batches(self) -> Iterator[list[PeekedMessage]]:
        """Each receive's messages not seen before, until the queue has no more, the cap, or the time is up."""
        while self.scanned < self._max:
            if not self._allows_call():
                logger.info("dead-letter reading stopped: out of time", extra={"scanned": self.scanned})
                return
            count = min(RECEIVE_MAX_MESSAGES, self._max - self.scanned)
            received = self._queue.receive(count, visibility_seconds=PEEK_VISIBILITY_SECONDS, wait_seconds=self._wait)
            if not received:
                self.exhausted = True
                return
            fresh = [message for message in received if message.message_id not in self._seen]
            for message in received:  # a second receipt of one message (at-least-once): keep the newest
                self._held[message.message_id] = message
                self._seen.add(message.message_id)
            if fresh:
                yield fresh

    def delete(self, messages: Sequence[PeekedMessage]) -> int:
        """Delete messages this reading holds (theirs were sent again); returns how many went."""
        current = [self._held[message.message_id] for message in messages if message.message_id in self._held]
        kept = {message.message_id for message in self._queue.delete(current)}
        for message in current:
            if message.message_id not in kept:
                del self._held[message.message_id]
        return len(current) - len(kept)


# ---------------------------------------------------------------------- the SQS adapter
class SqsDeadLetterQueue:
    """The dead-letter queue on SQS (`DeadLetterQueue`); every client failure is a `QueueUnavailable`.

    Parameters
    ----------
    url, arn : str
        The queue.
    client : SQSClient
        Its client (the caller's, with timeouts that fit the caller).
    move_to_arn : str
        Where a move task sends every message: the standard queue. One destination for all: the messages the
        sender copied to the DLQ itself (deferred past the horizon) have no source queue to go back to.
    """

    def __init__(self, url: str, client: SQSClient, *, arn: str = "", move_to_arn: str = "") -> None:
        self.url = url
        self._client = client
        self._arn = arn
        self._move_to_arn = move_to_arn

    def receive(self, count: int, *, visibility_seconds: int, wait_seconds: int) -> list[PeekedMessage]:
        try:
            response = self._client.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=count,
                VisibilityTimeout=visibility_seconds,
                WaitTimeSeconds=wait_seconds,
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        return [
            PeekedMessage(message["MessageId"], message["ReceiptHandle"], _notification_id(message.get("Body", "")))
            for message in response.get("Messages", [])
        ]

    def release(self, messages: Sequence[PeekedMessage]) -> None:
        chunks = [
            messages[start : start + CHANGE_BATCH_MAX_ENTRIES]
            for start in range(0, len(messages), CHANGE_BATCH_MAX_ENTRIES)
        ]
        with ThreadPoolExecutor(max_workers=min(_RELEASE_THREADS, len(chunks))) as pool:
            not_released = sum(pool.map(self._release_chunk, chunks))
        if not_released:
            logger.warning(
                "dead letters not made visible at once; they come back after their visibility timeout",
                extra={"messages": not_released, "visibility_seconds": PEEK_VISIBILITY_SECONDS},
            )

    def _release_chunk(self, chunk: Sequence[PeekedMessage]) -> int:
        entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
            {"Id": str(position), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
            for position, message in enumerate(chunk)
        ]
        try:
            response = self._client.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)
        except (ClientError, BotoCoreError):
            return len(chunk)
        return len(response.get("Failed", []))

    def delete(self, messages: Sequence[PeekedMessage]) -> list[PeekedMessage]:
        kept: list[PeekedMessage] = []
        for start in range(0, len(messages), CHANGE_BATCH_MAX_ENTRIES):
            chunk = messages[start : start + CHANGE_BATCH_MAX_ENTRIES]
            try:
                response = self._client.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(n), "ReceiptHandle": m.receipt_handle} for n, m in enumerate(chunk)],
                )
            except (ClientError, BotoCoreError):
                kept.extend(chunk)
                continue
            failed = {entry["Id"] for entry in response.get("Failed", [])}
            kept.extend(message for position, message in enumerate(chunk) if str(position) in failed)
        return kept

    def depth(self) -> int:
        try:
            response = self._client.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        attributes = response.get("Attributes", {})
        return sum(
            int(attributes.get(name, "0"))
            for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
        )

    def start_move_task(self) -> str:
        try:
            response = self._client.start_message_move_task(SourceArn=self._arn, DestinationArn=self._move_to_arn)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise QueueUnavailable(
                f"SQS did not start the move task ({code or type(error).__name__}); one may already be running: "
                "retry when it ends",
                retry_after_seconds=60,
            ) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return str(response["TaskHandle"])


def _notification_id(body: str) -> str | None:
    try:
        return QueueMessage.model_validate_json(body).id
    except ValidationError:
        return None


def _unavailable(error: Exception) -> QueueUnavailable:
    return QueueUnavailable(f"dead-letter queue unavailable ({type(error).__name__})")
