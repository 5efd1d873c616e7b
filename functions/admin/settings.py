"""The admin function's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.settings import channel_set
from notifications.signing import DEFAULT_GRACE_SECONDS


class AdminSettings(ProviderSettings):
    """Who the admin is, which usage plan clients' keys go on, which keys the template owns; the breakers' table,
    the dead-letter queue and the work queues a redrive sends to (and the providers: `ProviderSettings`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The admin key's id: the only caller the admin routes answer (403 for any other key).
    admin_client_id: str = Field(alias="ADMIN_CLIENT_ID", min_length=1)
    # The stack's default client (the template's key): readable here, never revoked here.
    default_client_id: str = Field(alias="DEFAULT_CLIENT_ID", min_length=1)
    usage_plan_id: str = Field(alias="USAGE_PLAN_ID", min_length=1)
    # Erasure by recipient: the status table, and the server key the addresses' hashes are keyed with.
    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
    idempotency_secret_name: str = Field(alias="IDEMPOTENCY_SECRET_NAME", min_length=1)
    secrets_max_age_seconds: int = Field(default=300, alias="SECRETS_MAX_AGE_SECONDS", ge=0, le=3600)
    rotation_grace_seconds: int = Field(
        default=DEFAULT_GRACE_SECONDS, alias="ROTATION_GRACE_SECONDS", ge=0, le=30 * 86_400
    )
    max_request_bytes: int = Field(default=16 * 1024, alias="ADMIN_MAX_REQUEST_BYTES", ge=1024, le=1024 * 1024)
    # Circuit breakers: their table, and the channels whose providers are listed even without a stored state.
    resilience_table: str = Field(alias="RESILIENCE_TABLE", min_length=1)
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    # Dead letters: the DLQ, and the work queues a redriven notification goes back to (by its queue).
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
    priority_queue_url: str = Field(alias="PRIORITY_QUEUE_URL", min_length=1)
    standard_queue_url: str = Field(alias="STANDARD_QUEUE_URL", min_length=1)
    batch_queue_url: str = Field(alias="BATCH_QUEUE_URL", min_length=1)
    # An unfiltered redrive as one SQS move task (StartMessageMoveTask) from the DLQ to the redrive destination
    # (the standard queue); off where SQS has no move tasks (moto: the local runtime sets it "false").
    redrive_with_move_task: bool = Field(default=False, alias="REDRIVE_WITH_MOVE_TASK")
    dead_letter_queue_arn: str = Field(default="", alias="DEAD_LETTER_QUEUE_ARN")
    redrive_destination_arn: str = Field(default="", alias="REDRIVE_DESTINATION_ARN")
    # Long polling of each DLQ receive: an empty answer then means no message is left to read.
    dead_letter_wait_seconds: int = Field(default=1, alias="DEAD_LETTER_WAIT_SECONDS", ge=0, le=5)

    @model_validator(mode="after")
    def _move_task_has_its_queues(self) -> Self:
        if self.redrive_with_move_task and not (self.dead_letter_queue_arn and self.redrive_destination_arn):
            raise ValueError("REDRIVE_WITH_MOVE_TASK needs DEAD_LETTER_QUEUE_ARN and REDRIVE_DESTINATION_ARN")
        return self
