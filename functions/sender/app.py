"""Sender Lambda: SQS batch -> one delivery per record -> partial batch response."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from pydantic import ValidationError

from notifications import aws
from notifications.delivery import Deliverer, DeliveryResult, Outcome
from notifications.models import Channel, QueueMessage
from notifications.observability import logger, metrics, with_lambda_context
from notifications.providers.ses import SesEmailProvider
from notifications.providers.webhook import WebhookProvider
from notifications.settings import load_settings
from notifications.store import StatusStore
from sender.settings import SenderSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from notifications.providers import Provider

# Time kept back from the invocation's remaining time when sizing a delivery lease.
_LEASE_MARGIN_SECONDS = 5.0
_METRIC_BY_OUTCOME = {
    Outcome.SENT: "NotificationSent",
    Outcome.DUPLICATE: "DuplicateDropped",
    Outcome.UNKNOWN: "UnknownDropped",
    Outcome.FAILED: "NotificationFailed",
    Outcome.RETRY: "DeliveryRetried",
    Outcome.DEAD_LETTERED: "NotificationDeadLettered",
}


class KeepMessage(Exception):
    """Raised for a record whose message must stay on the queue (reported as a batch item failure)."""


@cache
def default_deliverer() -> Deliverer:
    """Built once per execution environment: settings, clients and providers."""
    return build_deliverer(load_settings(SenderSettings))


def build_deliverer(settings: SenderSettings, *, dynamodb: Any = None, ses: Any = None) -> Deliverer:
    providers: dict[Channel, Provider] = {}
    if Channel.EMAIL in settings.enabled_channels:
        providers[Channel.EMAIL] = SesEmailProvider(settings.email_from, client=ses)
    if Channel.WEBHOOK in settings.enabled_channels:
        providers[Channel.WEBHOOK] = WebhookProvider(
            settings.webhook_signing_secret.get_secret_value(),
            allow_private_targets=settings.webhook_allow_private_targets,
            timeout_seconds=settings.webhook_timeout_seconds,
        )
    return Deliverer(
        StatusStore(settings.notifications_table, client=dynamodb),
        providers,
        max_receive_count=settings.max_receive_count,
        slowest_call_seconds=max(settings.webhook_timeout_seconds, aws.SLOWEST_CALL_SECONDS),
    )


def handle_record(record: SQSRecord, context: LambdaContext, deliverer: Deliverer) -> DeliveryResult:
    try:
        message = QueueMessage.model_validate_json(record.body)
    except ValidationError as error:
        # Not a message Herald wrote: keep it, so after the retries it rests in the DLQ for inspection.
        logger.error("malformed queue message", extra={"message_id": record.message_id, "errors": error.error_count()})
        raise KeepMessage("malformed queue message") from error
    remaining = context.get_remaining_time_in_millis() / 1000
    if remaining < deliverer.slowest_call_seconds + _LEASE_MARGIN_SECONDS:
        # Too little time left for one more provider call: report the message failed (unclaimed, no
        # attempt counted) rather than be stopped mid-call by Lambda's timeout, which would fail the
        # whole batch, successes included. It comes back after its visibility timeout.
        logger.info("invocation nearly out of time; message left for later", extra={"message_id": record.message_id})
        raise KeepMessage("invocation out of time")
    lease_seconds = max(remaining - _LEASE_MARGIN_SECONDS, 1.0)
    result = deliverer.deliver(
        message,
        owner=f"{context.aws_request_id}/{record.message_id}",
        receive_count=int(record.attributes.approximate_receive_count),
        lease_seconds=lease_seconds,
    )
    metrics.add_metric(name=_METRIC_BY_OUTCOME[result.outcome], unit=MetricUnit.Count, value=1)
    if result.outcome.keeps_message:
        raise KeepMessage(result.detail)
    return result


def handle(event: dict[str, Any], context: LambdaContext, deliverer: Deliverer | None = None) -> dict[str, Any]:
    """Process one SQS batch; only the records that must come back are reported as failures."""
    chosen = deliverer or default_deliverer()
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> DeliveryResult:
        return handle_record(record, context, chosen)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


@with_lambda_context()
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
