"""The API's settings, read once per execution environment."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from notifications.accept_settings import AcceptSettings


class ApiSettings(AcceptSettings):
    """The API's one settings object: accepting (`AcceptSettings`, with the providers' part, which tells
    which channels can be delivered at all), probing, batches and delivery receipts."""

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
    # The admin key's id: it manages clients (the admin function) and may not send notifications here.
    admin_client_id: str = Field(default="", alias="ADMIN_CLIENT_ID")
    receipt_tolerance_seconds: int = Field(default=300, alias="RECEIPT_TOLERANCE_SECONDS", ge=30, le=3600)
