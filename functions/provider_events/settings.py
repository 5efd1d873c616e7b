"""The provider-events function's settings, read once per execution environment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ProviderEventsSettings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
