"""The API's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.settings import channel_set


class ApiSettings(ProviderSettings):
    """The API's one settings object; the providers' part tells which channels can be delivered at all."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
    priority_queue_url: str = Field(alias="PRIORITY_QUEUE_URL", min_length=1)
    standard_queue_url: str = Field(alias="STANDARD_QUEUE_URL", min_length=1)
    batch_queue_url: str = Field(alias="BATCH_QUEUE_URL", min_length=1)
    retry_queue_url: str = Field(alias="RETRY_QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    webhook_allow_private_targets: bool = Field(default=False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    retention_days: int = Field(default=30, alias="NOTIFICATION_RETENTION_DAYS", ge=1)
    # SQS takes 256 KiB messages and DynamoDB 400 KiB items; a request beyond this is refused with 413.
    max_request_bytes: int = Field(default=256 * 1024, alias="MAX_REQUEST_BYTES", ge=1024, le=10 * 1024 * 1024)
    # Batch accept: a larger body than one notification, still far under Lambda's 6 MB payload limit.
    max_batch_request_bytes: int = Field(
        default=1024 * 1024, alias="MAX_BATCH_REQUEST_BYTES", ge=1024, le=5 * 1024 * 1024
    )
    # Delivery receipts (`POST /provider-events/{provider}`): where verified events are queued, and what
    # the signatures are checked with.
    provider_events_queue_url: str = Field(default="", alias="PROVIDER_EVENTS_QUEUE_URL")
    sendgrid_event_public_key: str = Field(default="", alias="SENDGRID_EVENT_PUBLIC_KEY")  # base64 DER, ECDSA P-256
    receipt_tolerance_seconds: int = Field(default=300, alias="RECEIPT_TOLERANCE_SECONDS", ge=30, le=3600)

    @property
    def deliverable_channels(self) -> frozenset[Channel]:
        """Enabled channels with at least one configured provider: the channels the API accepts."""
        return frozenset(channel for channel, names in self.usable(self.enabled_channels).items() if names)
