"""The sender's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from notifications.clients import CLIENT_KEY_SECONDS
from notifications.models import Channel
from notifications.providers.config import ProviderSettings
from notifications.settings import StackTablesAndQueues, WebhookPorts, channel_set


class SenderSettings(ProviderSettings, StackTablesAndQueues):
    """The sender's one settings object: its own fields and the providers' (`ProviderSettings`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    max_receive_count: int = Field(alias="MAX_RECEIVE_COUNT", ge=1)
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    # SES events (delivery, bounce, complaint) are published through this configuration set.
    ses_configuration_set: str = Field(default="", alias="SES_CONFIGURATION_SET")
    # Each client's webhook signing key is at herald-clients/<client id>/webhook-signing
    # (`notifications.clients`); a record made before records had owners is signed with this client's.
    default_client_id: str = Field(alias="DEFAULT_CLIENT_ID", min_length=1)
    # How long a client's signing key is kept before it is read again: a rotation is in use within this.
    client_key_max_age_seconds: int = Field(
        default=CLIENT_KEY_SECONDS, alias="CLIENT_KEY_MAX_AGE_SECONDS", ge=0, le=CLIENT_KEY_SECONDS
    )
    webhook_allow_private_targets: bool = Field(default=False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    # Webhook ports besides 443 that may be called (any, when private targets are allowed: locally).
    webhook_allowed_ports: WebhookPorts = Field(default=frozenset({443}), alias="WEBHOOK_ALLOWED_PORTS")
    webhook_timeout_seconds: float = Field(default=10.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=30)
    # How many deliveries of one batch run at once.
    delivery_concurrency: int = Field(default=10, alias="DELIVERY_CONCURRENCY", ge=1, le=100)
    # Visibility backoff after a transient failure: full jitter under min(max, base * 2 ** (receive - 1)).
    retry_base_seconds: float = Field(default=5.0, alias="RETRY_BASE_SECONDS", gt=0, le=900)
    retry_max_seconds: float = Field(default=900.0, alias="RETRY_MAX_SECONDS", gt=0, le=43_200)
    # Age after which a notification that still has no channel is dead-lettered instead of deferred again.
    deferral_horizon_seconds: float = Field(default=86_400.0, alias="DEFERRAL_HORIZON_SECONDS", gt=0, le=345_600)
    # How long the stored degradation mode is trusted before it is read again.
    mode_cache_seconds: float = Field(default=10.0, alias="MODE_CACHE_SECONDS", ge=0, le=300)

    @model_validator(mode="after")
    def _backoff_is_ordered(self) -> SenderSettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("RETRY_MAX_SECONDS must not be below RETRY_BASE_SECONDS")
        return self
