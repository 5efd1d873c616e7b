"""Provider-events Lambda: SQS batch of delivery receipts -> status records -> partial batch response.

Each message holds one or more receipts (`notifications.receipts.events.parse_message`): a SendGrid
batch or a Twilio callback the API verified and queued, or the SNS envelope of an SES event. Every
receipt is applied by one conditional write (`ReceiptStore`). A message is deleted when each of its
receipts was applied, ignored (a duplicate, overtaken, or no status change) or is about no known
record; it is kept, to come back after the queue's visibility timeout, when a record is still pending
(the report outran the sender's own status write) or the table could not be reached. A malformed
message is logged and kept, so after the queue's receives it rests in the dead-letter queue.
Re-applying a kept message's receipts is harmless: a receipt that landed is ignored the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from notifications.clock import Clock, system_clock
from notifications.errors import DependencyUnavailable
from notifications.metric_catalog import (
    NOTIFICATIONS_FAILED,
    RECEIPT_APPLIED,
    RECEIPT_IGNORED,
    RECEIPT_MALFORMED,
    RECEIPT_NOT_YET,
    RECEIPT_UNKNOWN,
    MetricBuffer,
    MetricSpec,
    metric_buffer,
)
from notifications.models import Channel
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.receipts.events import MalformedReceipt, ReceiptOutcome, ReceiptProvider, parse_message
from notifications.receipts.store import ReceiptStore
from notifications.receipts.transitions import ReceiptResult
from notifications.settings import load_settings
from provider_events.settings import ProviderEventsSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient

METRIC_BY_RESULT: dict[ReceiptResult, MetricSpec] = {
    ReceiptResult.APPLIED: RECEIPT_APPLIED,
    ReceiptResult.IGNORED: RECEIPT_IGNORED,
    ReceiptResult.NOT_YET: RECEIPT_NOT_YET,
    ReceiptResult.UNKNOWN: RECEIPT_UNKNOWN,
}
# The one channel each reporting provider delivers: a failure it reports counts as NotificationsFailed there.
CHANNEL_OF: dict[ReceiptProvider, Channel] = {
    ReceiptProvider.SENDGRID: Channel.EMAIL,
    ReceiptProvider.SES: Channel.EMAIL,
    ReceiptProvider.TWILIO: Channel.SMS,
}


class KeepMessage(Exception):
    """Raised for a message that must stay on the queue (reported as a batch item failure)."""


@dataclass(frozen=True)
class Dependencies:
    store: ReceiptStore


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(ProviderEventsSettings))


def build_dependencies(
    settings: ProviderEventsSettings, *, dynamodb: DynamoDBClient | None = None, clock: Clock = system_clock
) -> Dependencies:
    return Dependencies(store=ReceiptStore(settings.notifications_table, client=dynamodb, clock=clock))


def handle_record(record: SQSRecord, deps: Dependencies, buffered: MetricBuffer) -> list[ReceiptResult]:
    """Apply every receipt of one message, oldest first; raise KeepMessage when it must come back."""
    try:
        receipts = parse_message(record.body)
    except MalformedReceipt as error:
        # Not a message Herald or SNS wrote: keep it, so after the retries it rests in the DLQ for inspection.
        logger.error(
            "malformed provider event message", extra={"message_id": record.message_id, "reason": error.message}
        )
        buffered.add(RECEIPT_MALFORMED)
        raise KeepMessage(error.message) from error
    results: list[ReceiptResult] = []
    for receipt in sorted(receipts, key=lambda receipt: receipt.occurred_at):
        log = {
            "message_id": record.message_id,
            "notification_id": receipt.notification_id,
            "provider": receipt.provider.value,
            "outcome": receipt.outcome.value,
            "event_id": receipt.event_id,
        }
        try:
            result = deps.store.apply(receipt)
        except DependencyUnavailable as error:
            logger.warning("status store unavailable; message kept", extra=log | {"reason": error.message})
            raise KeepMessage(error.message) from error
        buffered.add(METRIC_BY_RESULT[result])
        if result is ReceiptResult.APPLIED and receipt.outcome is ReceiptOutcome.FAILED:
            buffered.add(NOTIFICATIONS_FAILED, channel=CHANNEL_OF[receipt.provider].value)
        logger.info("receipt processed", extra=log | {"result": result.value})
        results.append(result)
    if ReceiptResult.NOT_YET in results:
        raise KeepMessage("a notification is still pending; the receipt comes back later")
    return results


def handle(event: dict[str, Any], context: LambdaContext, deps: Dependencies | None = None) -> dict[str, Any]:
    """Process one SQS batch; only the messages that must come back are reported as failures."""
    chosen = deps or default_dependencies()
    # A batch whose every message must come back is still a partial batch response: each is reported, none
    # raises, so the invocation succeeds and SQS keeps exactly those messages.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    with metric_buffer() as buffered:

        def record_handler(record: SQSRecord) -> list[ReceiptResult]:
            return handle_record(record, chosen, buffered)

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    return dict(response)


@with_lambda_context()
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
