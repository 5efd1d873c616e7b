"""Sender Lambda: SQS batch -> concurrent deliveries through circuit breakers -> partial batch response."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import EventType, process_partial_response
from pydantic import ValidationError

from notifications import aws
from notifications.clients import ClientSigningKeys
from notifications.delivery import Deliverer, DeliveryPolicy, DeliveryResult, Outcome
from notifications.errors import DependencyUnavailable
from notifications.failures import delivery_classifier
from notifications.metric_catalog import (
    CLAIM_RETRIED,
    DELIVERY_ATTEMPTS,
    DUPLICATE_DROPPED,
    FALLBACK_CHANNEL_USED,
    NOTIFICATIONS_DEAD_LETTERED,
    NOTIFICATIONS_DEFERRED,
    NOTIFICATIONS_FAILED,
    NOTIFICATIONS_SENT,
    PROVIDER_LATENCY,
    RETRY_SCHEDULED,
    UNKNOWN_DROPPED,
    MetricBuffer,
    MetricSpec,
    metric_buffer,
)
from notifications.models import Channel, QueueMessage
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.providers.registry import ProviderClients, build_providers
from notifications.providers.secrets import ProviderSecrets
from notifications.providers.webhook import WebhookProvider
from notifications.queues import SqsDeliveryQueues
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from resilience import BreakerRegistry, Jitter, RetryPolicy, system_clock
from resilience import load_settings as load_resilience_settings
from resilience.mode import ModeReader
from sender.batch import ConcurrentBatchProcessor
from sender.settings import SenderSettings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sesv2 import SESV2Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from notifications.providers import Provider
    from resilience import Clock

# Time kept back from the invocation's remaining time when sizing a delivery lease.
_LEASE_MARGIN_SECONDS = 5.0
# A message left for the next invocation (this one is nearly out of time) comes back after this.
_OUT_OF_TIME_VISIBILITY_SECONDS = 2
# One metric per outcome (`notifications.metric_catalog`); a RETRY of a notification never claimed is CLAIM_RETRIED.
_METRIC_BY_OUTCOME: dict[Outcome, MetricSpec] = {
    Outcome.SENT: NOTIFICATIONS_SENT,
    Outcome.DUPLICATE: DUPLICATE_DROPPED,
    Outcome.UNKNOWN: UNKNOWN_DROPPED,
    Outcome.FAILED: NOTIFICATIONS_FAILED,
    Outcome.RETRY: RETRY_SCHEDULED,
    Outcome.DEFERRED: NOTIFICATIONS_DEFERRED,
    Outcome.DEAD_LETTERED: NOTIFICATIONS_DEAD_LETTERED,
    Outcome.EXPIRED: NOTIFICATIONS_DEAD_LETTERED,
}


class KeepMessage(Exception):
    """Raised for a record whose message must stay on the queue (reported as a batch item failure)."""


@dataclass(frozen=True)
class Sender:
    """Everything one execution environment needs to deliver: built once, shared by every invocation."""

    deliverer: Deliverer
    queues: SqsDeliveryQueues
    concurrency: int


@cache
def default_sender() -> Sender:
    """Built once per execution environment: settings, clients, providers and breakers."""
    return build_sender(load_settings(SenderSettings))


def build_sender(
    settings: SenderSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    ses: SESV2Client | None = None,
    sqs: SQSClient | None = None,
    sns: SNSClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
    breakers: BreakerRegistry | None = None,
    providers: dict[Channel, list[Provider]] | None = None,
    clock: Clock = system_clock,
) -> Sender:
    dynamodb = dynamodb or aws.client("dynamodb")
    # The library reads its own tunables (RESILIENCE_BREAKER_*); the table is the sender's setting.
    resilience = dataclasses.replace(load_resilience_settings(), table_name=settings.resilience_table)
    registry = breakers or BreakerRegistry(
        settings=resilience, client=dynamodb, classifier=delivery_classifier, clock=clock
    )
    queues = SqsDeliveryQueues(
        [settings.priority_queue_url, settings.standard_queue_url, settings.batch_queue_url],
        settings.retry_queue_url,
        settings.dead_letter_queue_url,
        client=sqs,
    )
    policy = DeliveryPolicy(
        max_receive_count=settings.max_receive_count,
        backoff=RetryPolicy(
            base_seconds=settings.retry_base_seconds,
            cap_seconds=settings.retry_max_seconds,
            max_attempts=settings.max_receive_count,
            jitter=Jitter.FULL,
        ),
        deferral_horizon_seconds=settings.deferral_horizon_seconds,
        call_timeout_seconds=max(settings.webhook_timeout_seconds, aws.SLOWEST_CALL_SECONDS),
    )
    mode = ModeReader(settings.resilience_table, dynamodb, clock=clock, ttl_seconds=settings.mode_cache_seconds)
    store = DynamoDBStatusStore(settings.notifications_table, client=dynamodb, clock=clock)
    deliverer = Deliverer(
        store,
        providers
        if providers is not None
        else default_providers(
            settings, ProviderClients(dynamodb=dynamodb, ses=ses, sns=sns, secretsmanager=secretsmanager)
        ),
        registry,
        queues,
        policy,
        mode=mode.current,
        clock=clock,
        # A message moved back from the DLQ (an SQS move task) finds its record dead-lettered: redriven.
        requeue_dead_lettered=store.requeue_dead_lettered,
    )
    return Sender(deliverer=deliverer, queues=queues, concurrency=settings.delivery_concurrency)


def default_providers(
    settings: SenderSettings, clients: ProviderClients | None = None
) -> dict[Channel, list[Provider]]:
    """Each enabled channel's providers, in the order they are tried (`notifications.providers.registry`)."""
    clients = clients or ProviderClients()
    secrets = ProviderSecrets(settings.secrets_max_age_seconds, client=clients.secretsmanager)
    webhook = WebhookProvider(
        ClientSigningKeys(secrets, settings.default_client_id, max_age_seconds=settings.client_key_max_age_seconds),
        allow_private_targets=settings.webhook_allow_private_targets,
        allowed_ports=settings.webhook_allowed_ports,
        timeout_seconds=settings.webhook_timeout_seconds,
    )
    return build_providers(
        settings,
        settings.enabled_channels,
        notifications_table=settings.notifications_table,
        ses_configuration_set=settings.ses_configuration_set or None,
        webhook=webhook,
        clients=clients,
        secrets=secrets,  # one cache for the webhook key and the providers' credentials
    )


def handle_record(record: SQSRecord, context: LambdaContext, sender: Sender, buffered: MetricBuffer) -> DeliveryResult:
    try:
        message = QueueMessage.model_validate_json(record.body)
    except ValidationError as error:
        # Not a message Herald wrote: keep it, so after the retries it rests in the DLQ for inspection.
        logger.error("malformed queue message", extra={"message_id": record.message_id, "errors": error.error_count()})
        raise KeepMessage("malformed queue message") from error
    remaining = context.get_remaining_time_in_millis() / 1000
    if remaining < sender.deliverer.slowest_call_seconds + _LEASE_MARGIN_SECONDS:
        # Too little time left for one more provider call: report the message failed (unclaimed, no
        # attempt counted) rather than be stopped mid-call by Lambda's timeout, which would fail the
        # whole batch, successes included. It comes back in a moment, for the next invocation.
        logger.info("invocation nearly out of time; message left for later", extra={"message_id": record.message_id})
        _set_visibility(record, sender, _OUT_OF_TIME_VISIBILITY_SECONDS)
        raise KeepMessage("invocation out of time")
    result = sender.deliverer.deliver(
        message,
        owner=f"{context.aws_request_id}/{record.message_id}",
        receive_count=int(record.attributes.approximate_receive_count),
        lease_seconds=max(remaining - _LEASE_MARGIN_SECONDS, 1.0),
    )
    record_metrics(buffered, result)  # records are delivered on pool threads: the buffer is thread-safe
    if result.outcome.keeps_message:
        if result.visibility_seconds is not None:
            _set_visibility(record, sender, result.visibility_seconds)
        raise KeepMessage(result.detail)
    return result


def record_metrics(buffered: MetricBuffer, result: DeliveryResult) -> None:
    """The outcome's metric, plus one `DeliveryAttempts` and `ProviderLatency` per provider call, and
    `FallbackChannelUsed` when a fallback channel delivered it. Dimensions: channel and provider names only."""
    for call in result.calls:
        buffered.add(DELIVERY_ATTEMPTS, channel=call.channel.value, provider=call.provider)
        buffered.add(PROVIDER_LATENCY, call.latency_ms, provider=call.provider)
    if result.channel is None:  # never claimed: no record was read, so no channel is known
        buffered.add(CLAIM_RETRIED if result.outcome is Outcome.RETRY else _METRIC_BY_OUTCOME[result.outcome])
        return
    metric = _METRIC_BY_OUTCOME[result.outcome]
    known = {"channel": result.channel.value, "provider": result.provider or ""}
    buffered.add(metric, **{name: known[name] for name in metric.dimensions})
    if result.outcome is Outcome.SENT and result.fallback:
        buffered.add(FALLBACK_CHANNEL_USED, channel=result.channel.value)


def _set_visibility(record: SQSRecord, sender: Sender, seconds: int) -> None:
    """The message's backoff; if SQS refuses, it comes back after the queue's own visibility timeout."""
    try:
        sender.queues.retry_after(record.event_source_arn, record.receipt_handle, seconds)
    except DependencyUnavailable as error:
        logger.warning(
            "could not set the message's backoff", extra={"message_id": record.message_id, "error": error.message}
        )


def handle(event: dict[str, Any], context: LambdaContext, sender: Sender | None = None) -> dict[str, Any]:
    """Process one SQS batch; only the records that must come back are reported as failures."""
    chosen = sender or default_sender()
    processor = ConcurrentBatchProcessor(EventType.SQS, max_workers=chosen.concurrency)

    with metric_buffer() as buffered:  # written once the batch is done: one EMF document per dimension values

        def record_handler(record: SQSRecord) -> DeliveryResult:
            return handle_record(record, context, chosen, buffered)

        try:
            response = process_partial_response(
                event=event, record_handler=record_handler, processor=processor, context=context
            )
        finally:
            chosen.deliverer.breakers.flush()  # at most one write per breaker, none while all is well
    return dict(response)


@with_lambda_context()
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
