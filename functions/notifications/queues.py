"""Sending accepted notifications to SQS: the queue is chosen by priority."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.budget import UNBOUNDED
from notifications.errors import QueueUnavailable
from notifications.models import Priority, QueueMessage
from notifications.observability import logger
from resilience.degradation import SQS_MAX_DELAY_SECONDS

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, SendMessageBatchRequestEntryTypeDef

    from notifications.budget import TimeBudget
    from notifications.ports import Outgoing

SEND_BATCH_MAX_ENTRIES = 10  # SendMessageBatch's limit (our messages, an id each, are far under its 256 KiB)


@dataclass(frozen=True)
class QueueUrls:
    priority: str
    standard: str
    batch: str

    def for_priority(self, priority: Priority, *, batch: bool = False) -> tuple[str, str]:
        """(queue name, URL): critical and high go to the priority queue, /batch to the batch queue."""
        if priority in {Priority.CRITICAL, Priority.HIGH}:
            return "priority", self.priority
        if batch:
            return "batch", self.batch
        return "standard", self.standard

    def url_of(self, name: str) -> str:
        urls: dict[str, str] = {"priority": self.priority, "standard": self.standard, "batch": self.batch}
        return urls[name]


class SqsEnqueuer:
    """Puts notification ids on their queue."""

    def __init__(self, urls: QueueUrls, client: SQSClient | None = None) -> None:
        self.urls = urls
        self._client = client or aws.client("sqs")

    def send(self, queue_url: str, message: QueueMessage, priority: Priority) -> str:
        """Send one message; raise QueueUnavailable when SQS cannot take it."""
        try:
            response = self._client.send_message(
                QueueUrl=queue_url, MessageBody=message.model_dump_json(), MessageAttributes=_attributes(priority)
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"queue unavailable ({type(error).__name__})") from error
        return str(response["MessageId"])

    def send_many(self, messages: Sequence[Outgoing], budget: TimeBudget = UNBOUNDED) -> list[Outgoing]:
        """Send messages with `SendMessageBatch`, 10 to a request per queue; return those not queued.

        Entries SQS refuses (the response's `Failed` list) are sent once more, and those it refuses again
        are returned. A request that raises returns its entries too (SQS may or may not hold them: the
        caller takes their records back, and a sender drops a message whose record is missing), and ends
        the sending: the other requests would meet the same outage. So does a request the budget does not
        allow (no time left for it and the caller's take-back): it and the rest are returned unsent.
        """
        not_queued: list[Outgoing] = []
        stopped = False
        for chunk in _per_queue(messages):
            remaining = chunk
            for _ in range(2):  # the request, and once more for the entries SQS refused
                if stopped or not remaining:
                    break
                if not budget.allows_call():
                    stopped = True
                    logger.warning("queue batch stopped: out of time", extra={"messages": len(remaining)})
                    break
                try:
                    remaining = self._send_batch(remaining)
                except (ClientError, BotoCoreError) as error:
                    stopped = True
                    logger.warning(
                        "queue batch failed", extra={"messages": len(remaining), "error_type": type(error).__name__}
                    )
            not_queued.extend(remaining)
        return not_queued

    def _send_batch(self, chunk: list[Outgoing]) -> list[Outgoing]:
        """One `SendMessageBatch` to one queue; returns the entries SQS refused."""
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {
                "Id": str(position),  # unique within the request, as SQS requires
                "MessageBody": outgoing.message.model_dump_json(),
                "MessageAttributes": _attributes(outgoing.priority),
            }
            for position, outgoing in enumerate(chunk)
        ]
        response = self._client.send_message_batch(QueueUrl=chunk[0].queue_url, Entries=entries)
        failed = response.get("Failed", [])
        if failed:
            codes = sorted({entry["Code"] for entry in failed})
            logger.warning("queue refused batch entries", extra={"messages": len(failed), "codes": codes})
        refused = {entry["Id"] for entry in failed}
        return [outgoing for position, outgoing in enumerate(chunk) if str(position) in refused]


def _attributes(priority: Priority) -> dict[str, MessageAttributeValueTypeDef]:
    return {"priority": {"DataType": "String", "StringValue": priority.value}}


def _per_queue(messages: Sequence[Outgoing]) -> Iterator[list[Outgoing]]:
    """The messages grouped by queue, in chunks of at most `SEND_BATCH_MAX_ENTRIES`."""
    by_queue: dict[str, list[Outgoing]] = {}
    for outgoing in messages:
        by_queue.setdefault(outgoing.queue_url, []).append(outgoing)
    for queued in by_queue.values():
        for start in range(0, len(queued), SEND_BATCH_MAX_ENTRIES):
            yield queued[start : start + SEND_BATCH_MAX_ENTRIES]


def queue_name_of(url_or_arn: str) -> str:
    """The queue's name: the last segment of its URL (`.../123456789012/name`) or ARN (`...:name`)."""
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


class SqsDeliveryQueues:
    """What the sender does to queues besides consuming them: backoff, "queue for later", dead-lettering.

    Parameters
    ----------
    queue_urls : Iterable[str]
        Every queue the sender consumes (to find a record's queue URL from its event source ARN).
    retry_url : str
        The retry queue, where deferred notifications wait (SQS `DelaySeconds`, at most 900 s).
    dead_letter_url : str
        The dead-letter queue, for a notification whose deferrals ran past the horizon.
    """

    def __init__(
        self, queue_urls: Iterable[str], retry_url: str, dead_letter_url: str, client: SQSClient | None = None
    ) -> None:
        self._by_name = {queue_name_of(url): url for url in [*queue_urls, retry_url]}
        self._retry_url = retry_url
        self._dead_letter_url = dead_letter_url
        self._client = client or aws.client("sqs")

    def defer(self, message: QueueMessage, delay_seconds: int) -> None:
        """Put a new copy of the message on the retry queue, invisible for `delay_seconds` (<= 900)."""
        self._send(self._retry_url, message, DelaySeconds=min(max(delay_seconds, 0), SQS_MAX_DELAY_SECONDS))

    def dead_letter(self, message: QueueMessage, reason: str) -> None:
        """Put a copy of the message on the dead-letter queue, with the reason as an attribute."""
        attributes = {"reason": {"DataType": "String", "StringValue": reason[:256]}}
        self._send(self._dead_letter_url, message, MessageAttributes=attributes)

    def retry_after(self, event_source_arn: str, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again after `seconds` (its backoff); 0 = at once."""
        url = self._by_name.get(queue_name_of(event_source_arn))
        if url is None:
            raise QueueUnavailable(f"not a queue of this function: {queue_name_of(event_source_arn)}")
        try:
            self._client.change_message_visibility(
                QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"queue unavailable ({type(error).__name__})") from error

    def _send(self, url: str, message: QueueMessage, **extra: Any) -> None:
        try:
            self._client.send_message(QueueUrl=url, MessageBody=message.model_dump_json(), **extra)
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"queue unavailable ({type(error).__name__})") from error


class SqsRejectQueue:
    """The inbound queue's dead-letter queue: a producer's message that can never be accepted, with why.

    The reasons travel as message attributes (`reason`, the `fields` at fault, the `source_message_id`),
    so an operator reads them without parsing the body, which is the producer's own, ready to send again
    once fixed.
    """

    def __init__(self, url: str, client: SQSClient | None = None) -> None:
        self.url = url
        self._client = client or aws.client("sqs")

    def reject(self, body: str, *, reason: str, fields: Sequence[str], source_message_id: str) -> None:
        """Put `body` on the dead-letter queue; raise QueueUnavailable when SQS cannot take it."""
        attributes: dict[str, MessageAttributeValueTypeDef] = {
            "reason": {"DataType": "String", "StringValue": reason[:1024] or "rejected"},
            "source_message_id": {"DataType": "String", "StringValue": source_message_id},
        }
        if fields:
            attributes["fields"] = {"DataType": "String", "StringValue": ", ".join(fields)[:1024]}
        try:
            self._client.send_message(QueueUrl=self.url, MessageBody=body, MessageAttributes=attributes)
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"inbound dead-letter queue unavailable ({type(error).__name__})") from error
