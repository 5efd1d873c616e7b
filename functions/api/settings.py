"""The API's settings, read once per execution environment."""

from __future__ import annotations

from pydantic import AliasChoices, ConfigDict, Field

from notifications.accept_settings import AcceptSettings
from notifications.health import HealthConfig
from notifications.probes import QueueTarget


class ApiSettings(AcceptSettings):
    """The API's one settings object: accepting (`AcceptSettings`, with the providers' part, which tells
    which channels can be delivered at all), health, batches and delivery receipts."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    retry_queue_url: str = Field(alias="RETRY_QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    # Batch accept: a larger body than one notification, still far under Lambda's 6 MB payload limit.
    max_batch_request_bytes: int = Field(
        default=1024 * 1024, alias="MAX_BATCH_REQUEST_BYTES", ge=1024, le=5 * 1024 * 1024
    )
    # Delivery receipts (`POST /provider-events/{provider}`): where verified events are queued, and what
    # the signatures are checked with.
    provider_events_queue_url: str = Field(default="", alias="PROVIDER_EVENTS_QUEUE_URL")
    sendgrid_event_public_key: str = Field(default="", alias="SENDGRID_EVENT_PUBLIC_KEY")  # base64 DER, ECDSA P-256
    # The admin key's id: it manages clients (the admin function) and may not send notifications here; on the
    # health views it alone sees the webhook breakers (named after clients' endpoints).
    admin_client_id: str = Field(default="", alias="ADMIN_CLIENT_ID")
    receipt_tolerance_seconds: int = Field(default=300, alias="RECEIPT_TOLERANCE_SECONDS", ge=30, le=3600)
    # Health: the monitor's snapshot lives in the resilience table; how long this environment keeps a read of it,
    # when it is too old to serve, and how long `/health/ready` keeps its live answer.
    resilience_table: str = Field(alias="RESILIENCE_TABLE", min_length=1)
    snapshot_cache_seconds: float = Field(default=10.0, alias="SNAPSHOT_CACHE_SECONDS", ge=1, le=60)
    snapshot_stale_seconds: float = Field(default=180.0, alias="SNAPSHOT_STALE_SECONDS", ge=60, le=3600)
    ready_cache_seconds: int = Field(default=5, alias="READY_CACHE_SECONDS", ge=1, le=60)
    # What `/health/system` names: Lambda's own variables ("local" and "unknown" outside Lambda).
    function_version: str = Field(default="local", alias="AWS_LAMBDA_FUNCTION_VERSION", min_length=1)
    region: str = Field(
        default="unknown", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"), min_length=1
    )

    @property
    def health(self) -> HealthConfig:
        """What the health views watch: the table, the queues accepting sends to, and every queue it knows."""
        queues = [
            QueueTarget("priority", self.priority_queue_url),
            QueueTarget("standard", self.standard_queue_url),
            QueueTarget("batch", self.batch_queue_url),
            QueueTarget("retry", self.retry_queue_url),
            QueueTarget("dead_letter", self.dead_letter_queue_url, dead_letter=True),
        ]
        if self.provider_events_queue_url:
            queues.append(QueueTarget("provider_events", self.provider_events_queue_url))
        return HealthConfig(
            notifications_table=self.notifications_table,
            resilience_table=self.resilience_table,
            accepting_queues={
                "priority": self.priority_queue_url,
                "standard": self.standard_queue_url,
                "batch": self.batch_queue_url,
            },
            queues=queues,
            ready_cache_seconds=self.ready_cache_seconds,
            snapshot_cache_seconds=self.snapshot_cache_seconds,
            stale_after_seconds=self.snapshot_stale_seconds,
            version=self.function_version,
            region=self.region,
        )
