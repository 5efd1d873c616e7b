"""Reading a function's settings object from the environment, once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed: the function cannot start."""


def load_settings(model: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Validate environment variables (the fields' aliases) into a settings object."""
    source = os.environ if environ is None else environ
    try:
        return model.model_validate(dict(source))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"invalid configuration for {model.__name__}: {problems}") from error


def channel_set(value: object) -> object:
    """`"email,webhook"` -> {"email", "webhook"} for set-valued settings."""
    if isinstance(value, str):
        return {part.strip() for part in value.split(",") if part.strip()}
    return value


def webhook_ports(value: object) -> object:
    """`"8443"` -> {443, 8443}: the webhook ports setting, which always holds 443."""
    if isinstance(value, str):
        return {443} | {int(part) for part in value.split(",") if part.strip()}
    return value


WebhookPorts = Annotated[frozenset[Annotated[int, Field(ge=1, le=65535)]], BeforeValidator(webhook_ports)]
"""The webhook ports setting (`WEBHOOK_ALLOWED_PORTS`): 443 always, plus the ports it lists."""


class StackTablesAndQueues(BaseModel):
    """The tables and the delivery queues (work queues, retry queue and DLQ): the part of the settings the
    sender and the health monitor share."""

    notifications_table: str = Field(alias="NOTIFICATIONS_TABLE", min_length=1)
    resilience_table: str = Field(alias="RESILIENCE_TABLE", min_length=1)
    priority_queue_url: str = Field(alias="PRIORITY_QUEUE_URL", min_length=1)
    standard_queue_url: str = Field(alias="STANDARD_QUEUE_URL", min_length=1)
    batch_queue_url: str = Field(alias="BATCH_QUEUE_URL", min_length=1)
    retry_queue_url: str = Field(alias="RETRY_QUEUE_URL", min_length=1)
    dead_letter_queue_url: str = Field(alias="DEAD_LETTER_QUEUE_URL", min_length=1)
