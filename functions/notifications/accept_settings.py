"""What every function that accepts notifications reads (the API, and ingest from the inbound queue)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from notifications.accept import AcceptPolicy, NotificationAcceptor
from notifications.ids import KeyedIds
from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.providers.secrets import ProviderSecrets
from notifications.queues import QueueUrls, SqsEnqueuer
from notifications.settings import WebhookPorts, channel_set
from notifications.store import DynamoDBStatusStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient


class AcceptSettings(ProviderSettings):
    """The table, the queues, the channels a notification may use, and the limits of one request."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
    priority_queue_url: str = Field(alias="PRIORITY_QUEUE_URL", min_length=1)
    standard_queue_url: str = Field(alias="STANDARD_QUEUE_URL", min_length=1)
    batch_queue_url: str = Field(alias="BATCH_QUEUE_URL", min_length=1)
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    webhook_allow_private_targets: bool = Field(default=False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    # Webhook ports besides 443 that clients may target (any, when private targets are allowed: locally).
    webhook_allowed_ports: WebhookPorts = Field(default=frozenset({443}), alias="WEBHOOK_ALLOWED_PORTS")
    retention_days: int = Field(default=30, alias="NOTIFICATION_RETENTION_DAYS", ge=1)
    # SQS takes 256 KiB messages and DynamoDB 400 KiB items; a request beyond this is refused with 413.
    max_request_bytes: int = Field(default=256 * 1024, alias="MAX_REQUEST_BYTES", ge=1024, le=10 * 1024 * 1024)
    # The secret whose key derives keyed notification ids (`notifications.ids.KeyedIds`): its name only.
    idempotency_secret_name: str = Field(alias="IDEMPOTENCY_SECRET_NAME", min_length=1)

    @property
    def deliverable_channels(self) -> frozenset[Channel]:
        """Enabled channels with at least one configured provider: the channels accepted at all."""
        return frozenset(channel for channel, names in self.usable(self.enabled_channels).items() if names)


def build_acceptor(
    settings: AcceptSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sqs: SQSClient | None = None,
    secretsmanager: SecretsManagerClient | None = None,
) -> NotificationAcceptor:
    """The acceptor over DynamoDB and SQS, with the policy the settings give and the stack's idempotency key."""
    urls = QueueUrls(
        priority=settings.priority_queue_url, standard=settings.standard_queue_url, batch=settings.batch_queue_url
    )
    policy = AcceptPolicy(
        enabled_channels=settings.deliverable_channels,
        allow_private_webhook_targets=settings.webhook_allow_private_targets,
        retention_seconds=settings.retention_days * 86_400,
        allowed_webhook_ports=settings.webhook_allowed_ports,
    )
    store = DynamoDBStatusStore(settings.notifications_table, client=dynamodb)
    secrets = ProviderSecrets(settings.secrets_max_age_seconds, client=secretsmanager)
    ids = KeyedIds.from_secret(secrets.json(settings.idempotency_secret_name)())
    return NotificationAcceptor(store, SqsEnqueuer(urls, client=sqs), policy, ids=ids)
