"""Ingest Lambda: inbound SQS messages -> accepted notifications, with partial batch responses.

A message that can never be accepted goes to the inbound dead-letter queue at once and is done; one
that meets an unreachable table or queue is reported failed, so SQS hands it out again (and after
`MaxReceiveCount` receives its redrive policy moves it to the same dead-letter queue).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from ingest.settings import IngestSettings
from notifications.accept_settings import build_acceptor
from notifications.ingest import InboundMessage, Ingested, Ingestor
from notifications.observability import metrics, with_lambda_context, with_tracing
from notifications.queues import SqsRejectQueue
from notifications.settings import load_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

_METRICS_LOCK = threading.Lock()


@dataclass(frozen=True)
class Dependencies:
    ingestor: Ingestor


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(IngestSettings))


def build_dependencies(
    settings: IngestSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sqs: SQSClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
) -> Dependencies:
    acceptor = build_acceptor(settings, dynamodb=dynamodb, sqs=sqs, secretsmanager=secretsmanager)
    rejects = SqsRejectQueue(settings.inbound_dead_letter_queue_url, client=sqs)
    ingestor = Ingestor(acceptor, rejects, scope=settings.inbound_client_id, max_item_bytes=settings.max_request_bytes)
    return Dependencies(ingestor)


def handle_record(record: SQSRecord, outcomes: dict[str, Ingested | Exception]) -> Ingested:
    """One message's outcome; an exception (DependencyUnavailable, or anything unexpected) keeps it."""
    ingested = outcomes[record.message_id]
    if isinstance(ingested, Exception):
        raise ingested
    with _METRICS_LOCK:
        for name, value in (
            ("IngestAccepted", ingested.accepted),
            ("IngestReplayed", ingested.replayed),
            ("IngestRejected", ingested.rejected),
        ):
            if value:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    return ingested


def handle(event: dict[str, Any], context: LambdaContext, deps: Dependencies | None = None) -> dict[str, Any]:
    """Process one SQS batch; only the messages that must come back are reported as failures."""
    chosen = deps or default_dependencies()
    processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    # The batch's notifications are accepted together; the processor then reports each message's outcome.
    # No `TimeBudget` here (unlike the API's batch route): with this function's 10 s Timeout none would allow
    # a single call and its take-back (2 x 7 s + 1 s), and none is needed to lose nothing: every inbound
    # notification is keyed, and a message whose invocation is cut short comes back; its replay then queues
    # the records it left never attempted.
    messages = [InboundMessage(record["messageId"], record["body"]) for record in event.get("Records", [])]
    outcomes = chosen.ingestor.ingest_all(messages)

    def record_handler(record: SQSRecord) -> Ingested:
        return handle_record(record, outcomes)

    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(response)


@with_lambda_context()
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
