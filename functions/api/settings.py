"""The API's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from notifications.models import Channel
from notifications.settings import channel_set


class ApiSettings(BaseModel):
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
