"""The ingest function's settings, read once per execution environment."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from notifications.accept_settings import AcceptSettings


class IngestSettings(AcceptSettings):
    """Accepting (`AcceptSettings`: the API's table, queues, channels and limits), plus the inbound queue's
    dead-letter queue and the client the inbound queue belongs to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    inbound_dead_letter_queue_url: str = Field(alias="INBOUND_DEAD_LETTER_QUEUE_URL", min_length=1)
    # The client whose notifications these are (its API key id): its idempotency keys, its lookups.
    inbound_client_id: str = Field(alias="INBOUND_CLIENT_ID", min_length=1)
