"""Pydantic models at each edge: the HTTP request, the status record, the queue message and the HTTP view."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from notifications.errors import UndeliverableError
from notifications.ssrf import webhook_origin


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Status(StrEnum):
    QUEUED = "queued"
    DEFERRED = "deferred"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"

    @property
    def is_terminal(self) -> bool:
        """Terminal statuses end delivery; `sent` only moves on through a provider event."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.SENT, Status.DELIVERED, Status.FAILED, Status.DEAD_LETTERED})
PENDING_STATUSES = frozenset({Status.QUEUED, Status.DEFERRED})

# Which recipient field each channel needs.
RECIPIENT_FIELD: dict[Channel, str] = {
    Channel.EMAIL: "email",
    Channel.SMS: "phone",
    Channel.PUSH: "device_token",
    Channel.WEBHOOK: "webhook_url",
}

MAX_BODY_CHARS = 10_000
MAX_SUBJECT_CHARS = 998  # RFC 5322 line limit
MAX_METADATA_ENTRIES = 20
MAX_DATA_BYTES = 64 * 1024


def _e164(value: str) -> str:
    digits = value[1:]
    if not (value.startswith("+") and digits.isdigit() and 8 <= len(digits) <= 15 and digits[0] != "0"):
        raise ValueError("must be an E.164 phone number such as +447700900123")
    return value


def _https_or_http_url(value: str) -> str:
    from urllib.parse import urlsplit  # noqa: PLC0415 - only needed for webhook recipients

    parts = urlsplit(value)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        raise ValueError("must be an absolute https URL")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials")
    try:
        webhook_origin(value)  # the port and host name a call could use: one rule with the sender's
    except UndeliverableError as error:
        raise ValueError(error.message.removeprefix("webhook URL ")) from None
    return value


PhoneNumber = Annotated[str, AfterValidator(_e164)]
WebhookUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https_or_http_url)]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=256)]


class Recipient(BaseModel):
    """Where to deliver: one address per channel the request names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: EmailStr | None = None
    phone: PhoneNumber | None = None
    device_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    webhook_url: WebhookUrl | None = None


class NotificationRequest(BaseModel):
    """The body of `POST /notifications` (DESIGN.md section 3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    fallback_channels: list[Channel] = Field(default_factory=list, max_length=3)
    recipient: Recipient
    subject: Annotated[NonBlank, StringConstraints(max_length=MAX_SUBJECT_CHARS)] | None = None
    body: Annotated[NonBlank, StringConstraints(max_length=MAX_BODY_CHARS)]
    data: dict[str, Any] | None = None
    priority: Priority = Priority.NORMAL
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=MAX_METADATA_ENTRIES)
    idempotency_key: IdempotencyKey | None = None

    @field_validator("data")
    @classmethod
    def _data_is_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_DATA_BYTES:
            raise ValueError(f"must serialise to at most {MAX_DATA_BYTES} bytes of JSON")
        return value

    @model_validator(mode="after")
    def _channels_are_addressable(self) -> NotificationRequest:
        if self.channel in self.fallback_channels:
            raise ValueError("fallback_channels must not repeat the primary channel")
        if len(set(self.fallback_channels)) != len(self.fallback_channels):
            raise ValueError("fallback_channels must not repeat a channel")
        for channel in self.channels:
            field = RECIPIENT_FIELD[channel]
            if getattr(self.recipient, field) is None:
                raise ValueError(f"recipient.{field} is required for channel '{channel}'")
        if Channel.EMAIL in self.channels and self.subject is None:
            raise ValueError("subject is required for channel 'email'")
        return self

    @property
    def channels(self) -> list[Channel]:
        """The primary channel, then the fallbacks, in the order they are tried."""
        return [self.channel, *self.fallback_channels]

    def fingerprint(self) -> str:
        """A hash of what was asked for, to tell an idempotent replay from a conflicting reuse of a key."""
        canonical = self.model_dump(mode="json", exclude={"idempotency_key"})
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


class HistoryEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: Status
    at: str
    detail: str | None = None


class NotificationRecord(BaseModel):
    """The status record in DynamoDB: the notification, its idempotency record and its delivery history."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: Status
    channel: Channel
    fallback_channels: list[Channel] = Field(default_factory=list)
    recipient: Recipient
    subject: str | None = None
    body: str
    data: dict[str, Any] | None = None
    priority: Priority
    metadata: dict[str, str] = Field(default_factory=dict)
    idempotency_key: str | None = None
    fingerprint: str
    queue: str
    attempts: int = 0
    channel_used: Channel | None = None
    provider: str | None = None
    provider_message_id: str | None = None
    error: str | None = None
    reason: str | None = None  # plain words: why the notification is in its current status
    next_attempt_at: str | None = None  # when a queued or deferred notification is tried again
    created_at: str
    updated_at: str
    history: list[HistoryEntry] = Field(default_factory=list)
    version: int = 1
    expires_at: int


class QueueMessage(BaseModel):
    """The SQS message body: only the id; the record in DynamoDB holds the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class AcceptedView(BaseModel):
    """The 202 body of `POST /notifications`."""

    id: str
    status: Status
    channel: Channel
    priority: Priority
    created_at: str
    idempotency_key: str | None = None

    @classmethod
    def of(cls, record: NotificationRecord) -> AcceptedView:
        # The original response: replays of the same key answer exactly what the first request got.
        return cls(
            id=record.id,
            status=Status.QUEUED,
            channel=record.channel,
            priority=record.priority,
            created_at=record.created_at,
            idempotency_key=record.idempotency_key,
        )


class NotificationView(BaseModel):
    """The 200 body of `GET /notifications/{id}`; no recipient address or body, which are personal data."""

    id: str
    status: Status
    channel: Channel
    channel_used: Channel | None
    provider: str | None
    priority: Priority
    attempts: int
    created_at: str
    updated_at: str
    error: str | None
    reason: str | None
    next_attempt_at: str | None
    metadata: dict[str, str]
    history: list[HistoryEntry]

    @classmethod
    def of(cls, record: NotificationRecord) -> NotificationView:
        return cls.model_validate(record.model_dump(include=set(cls.model_fields)))
