"""The sender's settings, read once per execution environment."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from notifications.models import Channel
from notifications.settings import channel_set


class SenderSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
    max_receive_count: int = Field(alias="MAX_RECEIVE_COUNT", ge=1)
    enabled_channels: Annotated[frozenset[Channel], BeforeValidator(channel_set)] = Field(alias="ENABLED_CHANNELS")
    email_from: str = Field(alias="EMAIL_FROM", min_length=3)
    webhook_signing_secret: SecretStr = Field(alias="WEBHOOK_SIGNING_SECRET")
    webhook_allow_private_targets: bool = Field(default=False, alias="WEBHOOK_ALLOW_PRIVATE_TARGETS")
    webhook_timeout_seconds: float = Field(default=10.0, alias="WEBHOOK_TIMEOUT_SECONDS", gt=0, le=30)
