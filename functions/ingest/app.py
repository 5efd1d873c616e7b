"""Ingest Lambda: inbound SQS messages -> accepted notifications, with partial batch responses.

A message that can never be accepted goes to the inbound dead-letter queue at once and is done; one
that meets an unreachable table or queue is reported failed, so SQS hands it out again (and after
`MaxReceiveCount` receives its redrive policy moves it to the same dead-letter queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

from ingest.settings import IngestSettings
from notifications.accept import ItemAccepted, NotificationAcceptor
from notifications.accept_settings import build_acceptor
from notifications.budget import UNBOUNDED
from notifications.ingest import InboundMessage, Ingested, Ingestor
from notifications.metric_catalog import (
    INGEST_ACCEPTED,
    INGEST_REJECTED,
    INGEST_REPLAYED,
    MetricBuffer,
    count_accepted,
    metric_buffer,
)
from notifications.observability import metrics, with_lambda_context, with_tracing
from notifications.queues import SqsRejectQueue
from notifications.settings import load_settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

    from notifications.accept import Accepted, BatchOutcome
    from notifications.budget import TimeBudget
    from notifications.errors import HeraldError
    from notifications.ids import KeyedIds
    from notifications.models import NotificationRequest


class CountingAcceptor:
    """The acceptor, counting every notification it accepts anew as `NotificationsAccepted` (channel, priority).

    The ingestor accepts through it: only the acceptor's answers tell which notifications were new, and of
    which channel and priority (`Ingested` holds counts per message).
    """

    def __init__(self, acceptor: NotificationAcceptor) -> None:
        self._acceptor = acceptor

    @property
    def ids(self) -> KeyedIds:
        return self._acceptor.ids

    def accept(self, request: NotificationRequest, *, scope: str, batch: bool = False) -> Accepted:
        accepted = self._acceptor.accept(request, scope=scope, batch=batch)
        count_accepted([accepted])
        return accepted

    def accept_batch(
        self,
        items: Sequence[NotificationRequest | HeraldError],
        *,
        scope: str,
        bulk: bool = True,
        budget: TimeBudget = UNBOUNDED,
    ) -> BatchOutcome:
        outcome = self._acceptor.accept_batch(items, scope=scope, bulk=bulk, budget=budget)
        count_accepted(result.accepted for result in outcome.results if isinstance(result, ItemAccepted))
        return outcome


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
    counting = cast("NotificationAcceptor", CountingAcceptor(acceptor))  # the same calls, counted
    ingestor = Ingestor(counting, rejects, scope=settings.inbound_client_id, max_item_bytes=settings.max_request_bytes)
    return Dependencies(ingestor)


def handle_record(record: SQSRecord, outcomes: dict[str, Ingested | Exception], buffered: MetricBuffer) -> Ingested:
    """One message's outcome; an exception (DependencyUnavailable, or anything unexpected) keeps it."""
    ingested = outcomes[record.message_id]
    if isinstance(ingested, Exception):
        raise ingested
    for metric, value in (
        (INGEST_ACCEPTED, ingested.accepted),
        (INGEST_REPLAYED, ingested.replayed),
        (INGEST_REJECTED, ingested.rejected),
    ):
        if value:
            buffered.add(metric, value)
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

    with metric_buffer() as buffered:

        def record_handler(record: SQSRecord) -> Ingested:
            return handle_record(record, outcomes, buffered)

        response = process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    return dict(response)


@with_lambda_context()
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
