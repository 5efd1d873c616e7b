"""The health monitor's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field

from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.settings import StackTablesAndQueues, channel_set


class HealthMonitorSettings(ProviderSettings, StackTablesAndQueues):
    """The tables and queues it probes, the channels in use (and their providers: `ProviderSettings`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    inbound_queue_url: str = Field(default="", alias="INBOUND_QUEUE_URL")
    inbound_dead_letter_queue_url: str = Field(default="", alias="INBOUND_DEAD_LETTER_QUEUE_URL")
    provider_events_queue_url: str = Field(default="", alias="PROVIDER_EVENTS_QUEUE_URL")
    provider_events_dead_letter_queue_url: str = Field(default="", alias="PROVIDER_EVENTS_DEAD_LETTER_QUEUE_URL")
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    # Each probe's deadline; one that has not answered by then is a failed check ("timed out").
    probe_timeout_seconds: float = Field(default=5.0, alias="PROBE_TIMEOUT_SECONDS", gt=0, le=20)
    # Queue ages from CloudWatch (AWS/SQS ApproximateAgeOfOldestMessage); off where there is no CloudWatch.
    queue_age_from_cloudwatch: bool = Field(default=True, alias="QUEUE_AGE_FROM_CLOUDWATCH")
    # Dead-letter reconciliation: the most DLQ messages one run reads, and how long it may take.
    reconcile_max_messages: int = Field(default=500, alias="RECONCILE_MAX_MESSAGES", ge=0, le=5000)
    reconcile_seconds: float = Field(default=12.0, alias="RECONCILE_SECONDS", gt=0, le=20)
    # Long polling of each DLQ receive: an empty answer then means no message is left to read.
    dead_letter_wait_seconds: int = Field(default=1, alias="DEAD_LETTER_WAIT_SECONDS", ge=0, le=5)
