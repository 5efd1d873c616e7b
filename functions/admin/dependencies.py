"""What the admin routes work with, built once per execution environment over clients that fit the API's timeout."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from admin.breakers import BreakerAdmin
from admin.settings import AdminSettings
from notifications import aws
from notifications.clients import ClientRegistry
from notifications.clock import Clock, system_clock
from notifications.dead_letter_queue import SqsDeadLetterQueue
from notifications.dead_letters import DeadLetters
from notifications.erasure import RecipientEraser
from notifications.health_snapshot import provider_name
from notifications.ids import KeyedIds
from notifications.models import Channel
from notifications.providers.config import KNOWN_PROVIDERS
from notifications.providers.secrets import ProviderSecrets
from notifications.queues import QueueUrls, SqsEnqueuer
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from resilience import BreakerRegistry, DynamoDBBreakerStore
from resilience import load_settings as load_resilience_settings

if TYPE_CHECKING:
    from mypy_boto3_apigateway import APIGatewayClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Dependencies:
    settings: AdminSettings
    clients: ClientRegistry
    eraser: RecipientEraser
    breakers: BreakerAdmin
    dead_letters: DeadLetters


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(AdminSettings))


def build_dependencies(  # noqa: PLR0913 - one optional client per AWS service, and the clock
    settings: AdminSettings,
    *,
    apigateway: APIGatewayClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
    dynamodb: DynamoDBClient | None = None,
    sqs: SQSClient | None = None,
    clock: Clock = system_clock,
) -> Dependencies:
    """The registry, the eraser, the breakers and the dead letters over real clients that fit the API's timeout,
    unless given others."""
    secretsmanager = secretsmanager or aws.client("secretsmanager", api=True)
    dynamodb = dynamodb or aws.client("dynamodb", api=True)
    sqs = sqs or aws.client("sqs", api=True)
    secrets_cache = ProviderSecrets(settings.secrets_max_age_seconds, client=secretsmanager)
    clients = ClientRegistry(
        settings.usage_plan_id,
        apigateway=apigateway or aws.client("apigateway", api=True),
        secretsmanager=secretsmanager,
        clock=clock,
        protected=frozenset({settings.admin_client_id, settings.default_client_id}),
    )
    ids = KeyedIds.from_secret(secrets_cache.json(settings.idempotency_secret_name)())
    eraser = RecipientEraser(settings.notifications_table, client=dynamodb, ids=ids)
    # The library reads its own tunables (RESILIENCE_BREAKER_*); the table is this function's setting.
    resilience = dataclasses.replace(load_resilience_settings(), table_name=settings.resilience_table)
    registry = BreakerRegistry(
        settings=resilience, store=DynamoDBBreakerStore(settings.resilience_table, client=dynamodb), clock=clock
    )
    breakers = BreakerAdmin(registry, listed=_configured_providers(settings), known=_known_providers())
    dead_letters = DeadLetters(
        SqsDeadLetterQueue(
            settings.dead_letter_queue_url,
            sqs,
            arn=settings.dead_letter_queue_arn,
            move_to_arn=settings.redrive_destination_arn,
        ),
        DynamoDBStatusStore(settings.notifications_table, client=dynamodb, clock=clock),
        SqsEnqueuer(
            QueueUrls(settings.priority_queue_url, settings.standard_queue_url, settings.batch_queue_url), client=sqs
        ),
        move_task=settings.redrive_with_move_task,
        wait_seconds=settings.dead_letter_wait_seconds,
    )
    return Dependencies(settings, clients, eraser, breakers, dead_letters)


def _configured_providers(settings: AdminSettings) -> tuple[str, ...]:
    """The providers in use (their breakers are listed, CLOSED until they store a state), as the health monitor
    names them. Webhooks have a breaker per destination origin instead."""
    usable = settings.usable(settings.enabled_channels)
    return tuple(
        provider_name(channel, name)
        for channel, names in usable.items()
        if channel is not Channel.WEBHOOK
        for name in names
    )


def _known_providers() -> frozenset[str]:
    """Every provider Herald has (an operator may act on one's breaker whether or not it is in use)."""
    return frozenset(
        provider_name(channel, name)
        for channel, names in KNOWN_PROVIDERS.items()
        if channel is not Channel.WEBHOOK
        for name in names
    )
