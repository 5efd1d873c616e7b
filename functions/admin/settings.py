"""The admin function's settings, read once per execution environment."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from notifications.signing import DEFAULT_GRACE_SECONDS


class AdminSettings(BaseModel):
    """Who the admin is, which usage plan clients' keys go on, and which keys the template owns."""

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
