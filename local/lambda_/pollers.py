"""SQS event source mappings played locally: receive batches, invoke the function, delete what succeeded.

Each ``AWS::Lambda::EventSourceMapping`` on an SQS queue becomes an :class:`SqsPoller` that behaves as
Lambda's poller does: batch size and batching window, records shaped exactly like Lambda's SQS
events, and on return either every message deleted, or (with ``ReportBatchItemFailures``) every
message but the reported failures. Failed messages are left alone: they reappear after their
visibility timeout, and SQS (moto) moves them to the dead-letter queue after ``maxReceiveCount``.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from local.logs import get_logger

if TYPE_CHECKING:
    from local.aws.template import Stack

Invoke = Callable[[dict[str, Any]], Any]

SQS_RECEIVE_MAX = 10  # messages per ReceiveMessage call
EMPTY_SHORT_POLL_PAUSE_SECONDS = 0.1  # after a short poll (WaitTimeSeconds 0) that found nothing
DEFAULT_SQS_BATCH_SIZE = 10
MAX_BATCH_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_ATTRIBUTE_ORDER = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp")

logger = get_logger("pollers")


@dataclass(frozen=True)
class SqsEventSource:
    """One SQS event source mapping of the template, resolved."""

    logical_id: str
    function_logical_id: str
    queue_arn: str
    queue_url: str
    batch_size: int = DEFAULT_SQS_BATCH_SIZE
    batching_window_seconds: float = 0
    report_batch_item_failures: bool = False
    enabled: bool = True

    @property
    def region(self) -> str:
        return self.queue_arn.split(":")[3]


def sqs_event_sources(stack: Stack) -> list[SqsEventSource]:
    """Every enabled SQS ``AWS::Lambda::EventSourceMapping`` of the stack (queues must be provisioned)."""
    queues = stack.of_type("AWS::SQS::Queue")
    queue_by_arn = {arn: logical for logical, arn in stack.arns.items() if logical in queues}
    function_by_name = {stack.physical_ids[logical]: logical for logical in stack.of_type("AWS::Lambda::Function")}
    sources: list[SqsEventSource] = []
    for logical_id, raw in stack.of_type("AWS::Lambda::EventSourceMapping").items():
        properties = stack.resolve(raw)
        arn = str(properties.get("EventSourceArn", ""))
        if arn not in queue_by_arn:
            logger.warning("event source is not an SQS queue of the template; not polled", extra={"esm": logical_id})
            continue
        if properties.get("FilterCriteria"):
            logger.warning(
                "FilterCriteria is not emulated locally: every message is delivered", extra={"esm": logical_id}
            )
        function = str(properties["FunctionName"]).rsplit(":", 1)[-1]
        source = SqsEventSource(
            logical_id=logical_id,
            function_logical_id=function_by_name[function],
            queue_arn=arn,
            queue_url=stack.physical_ids[queue_by_arn[arn]],
            batch_size=int(properties.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
            batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
            report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            enabled=str(properties.get("Enabled", True)).lower() != "false",
        )
        if source.enabled:
            sources.append(source)
    return sources


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """boto3's MessageAttributeValue -> the shape Lambda puts in ``messageAttributes``."""
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [
        base64.b64encode(item).decode("ascii") for item in value.get("BinaryListValues", [])
    ]
    attribute["dataType"] = value["DataType"]
    return attribute


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from a ReceiveMessage message (all attributes requested)."""
    system = message.get("Attributes", {})
    attributes = {key: system[key] for key in _ATTRIBUTE_ORDER if key in system}
    attributes.update({key: value for key, value in system.items() if key not in attributes})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    record.update({"eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region})
    return record


class InvalidBatchResponseError(ValueError):
    """The function's partial batch response is not one Lambda accepts; the whole batch failed."""


def failed_message_ids(response: Any, message_ids: set[str]) -> set[str]:
    """Message ids a ReportBatchItemFailures response reports failed (Lambda's success/failure rules).

    Success of the whole batch: a null/empty response or a null/empty ``batchItemFailures``. Failure of
    the whole batch (raised): anything that is not such an object, an item without a non-empty
    ``itemIdentifier``, or an identifier that is not a message of the batch.
    """
    if response is None:
        return set()
    if not isinstance(response, dict):
        raise InvalidBatchResponseError(f"response is {type(response).__name__}, not an object")
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        raise InvalidBatchResponseError("batchItemFailures is not a list")
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            raise InvalidBatchResponseError("a batch item failure has no itemIdentifier")
        if identifier not in message_ids:
            raise InvalidBatchResponseError("an itemIdentifier is not a message of the batch")
        failed.add(identifier)
    return failed


@dataclass
class SqsPoller:
    """Play one SQS event source mapping with ``concurrency`` polling threads.

    ``sqs`` is a boto3 SQS client for the embedded AWS; ``invoke`` runs the mapped function.
    ``wait_seconds`` is the ReceiveMessage long poll (0: short polls). The batching window is measured on
    ``clock`` (monotonic seconds); between two short polls that found nothing the window pauses with
    ``sleep`` (seconds), by default on the stop event so that :meth:`stop` cuts the pause short. Tests pass
    a fake clock and a ``sleep`` that advances it, so a window closes without anyone waiting for it.
    """

    source: SqsEventSource
    invoke: Invoke
    sqs: Any
    concurrency: int = 1
    wait_seconds: int = 1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)

    def start(self) -> SqsPoller:
        self._stop.clear()
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"poller-{self.source.logical_id}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def request_stop(self) -> None:
        """Ask every thread to stop after its current receive or batch (returns at once)."""
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        """Stop polling; wait for an invocation in progress to finish (up to ``timeout`` s)."""
        self._stop.set()
        deadline = time.monotonic() + timeout  # real time, not ``clock``: it bounds real thread joins
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def __enter__(self) -> SqsPoller:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_once()
                if not handled and self.wait_seconds == 0:
                    self._pause(EMPTY_SHORT_POLL_PAUSE_SECONDS)  # short polls that find nothing: do not spin
            except Exception:  # keep polling, as Lambda's poller does, but say what happened
                if self._stop.is_set():
                    break  # the embedded AWS may already be gone when shutting down
                logger.exception("poll failed", extra={"esm": self.source.logical_id})
                self._stop.wait(1)

    # ------------------------------------------------------------------ one batch
    def poll_once(self) -> int:
        """Receive one batch, invoke the function, delete the successes; the number of messages handled."""
        messages = self._receive_batch()
        if not messages:
            return 0
        records = [sqs_record(message, self.source.queue_arn, self.source.region) for message in messages]
        ids = {record["messageId"] for record in records}
        log_fields: dict[str, Any] = {"esm": self.source.logical_id, "batch_size": len(records)}
        try:
            response = self.invoke({"Records": records})
            failed = failed_message_ids(response, ids) if self.source.report_batch_item_failures else set()
        except InvalidBatchResponseError as error:
            logger.error(
                "invalid partial batch response: whole batch failed", extra={**log_fields, "reason": str(error)}
            )
            return len(records)
        except Exception:  # the function failed: nothing is deleted
            logger.exception("function error, whole batch failed", extra=log_fields)
            return len(records)
        self._delete([record for record in records if record["messageId"] not in failed])
        logger.info("batch processed", extra={**log_fields, "failed": len(failed)})
        return len(records)

    def _receive(self, max_messages: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _receive_batch(self) -> list[dict[str, Any]]:
        """Up to BatchSize messages: one receive, then more until the batching window closes or it is full.

        A message whose visibility timeout runs out during the window is received again; like Lambda's
        poller, a batch holds it once, with its latest receipt (the earlier receipt handle is stale).
        """
        messages = self._receive(min(SQS_RECEIVE_MAX, self.source.batch_size), self.wait_seconds)
        if not messages or self.source.batching_window_seconds <= 0:
            return messages
        batch = {message["MessageId"]: message for message in messages}
        closes = self.clock() + self.source.batching_window_seconds
        size = sum(len(message["Body"]) for message in messages)
        while len(batch) < self.source.batch_size and size < MAX_BATCH_PAYLOAD_BYTES and not self._stop.is_set():
            remaining = closes - self.clock()
            if remaining <= 0:
                break
            wait = int(min(self.wait_seconds, remaining))
            more = self._receive(min(SQS_RECEIVE_MAX, self.source.batch_size - len(batch)), wait)
            if not more and wait == 0:
                self._pause(min(EMPTY_SHORT_POLL_PAUSE_SECONDS, remaining))  # a short poll found nothing: do not spin
            for message in more:
                if message["MessageId"] not in batch:
                    size += len(message["Body"])
                batch[message["MessageId"]] = message
        return list(batch.values())

    def _pause(self, seconds: float) -> None:
        """Wait between two short polls of a batching window that found nothing."""
        if self.sleep is None:
            self._stop.wait(seconds)
        else:
            self.sleep(seconds)

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), SQS_RECEIVE_MAX):
            chunk = records[start : start + SQS_RECEIVE_MAX]
            result = self.sqs.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(index), "ReceiptHandle": r["receiptHandle"]} for index, r in enumerate(chunk)],
            )
            for failure in result.get("Failed", []):
                logger.warning("delete failed", extra={"esm": self.source.logical_id, "code": failure.get("Code")})
