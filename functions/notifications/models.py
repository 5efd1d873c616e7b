"""Pydantic models at each edge: the HTTP request, the status record, the queue message and the HTTP view."""

from __future__ import annotations

import hashlib
import json
import math
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
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

# The recipient's addresses that are personal data: each is indexed by a keyed hash, for erasure by recipient.
# (A webhook URL is the client's own endpoint, not a person's address.)
ERASABLE_ADDRESSES = ("email", "phone", "device_token")

MAX_BODY_CHARS = 10_000
MAX_SUBJECT_CHARS = 998  # RFC 5322 line limit
MAX_METADATA_ENTRIES = 20
MAX_DATA_BYTES = 64 * 1024
MAX_DATA_DEPTH = 32  # levels of objects and arrays, `data` itself the first

# What a subject (one line of a mail header) must not hold: control characters (C0 with CR, LF, TAB and NUL,
# DEL, C1), which could end the header line or drive a terminal; the line and paragraph separators; the
# bidirectional controls (ALM U+061C, LRM, RLM, the embeddings and overrides U+202A-U+202E, the isolates
# U+2066-U+2069), which can show a subject other than the one sent; and invisible format characters with no
# use in a subject (the deprecated U+206A-U+206F, the byte order mark U+FEFF, the interlinear annotations
# U+FFF9-U+FFFB). Other format characters (category Cf) stay: the zero-width joiners (emoji sequences, Persian
# and Indic scripts), the soft hyphen and the tag characters of flag emoji.
_SUBJECT_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SUBJECT_FORMAT = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u206f\ufeff\ufff9-\ufffb]")
# A body is multi-line text: newline and tab are its only control characters (no CR, NUL, ESC, DEL or C1).
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Unpaired surrogates (which JSON's \ud800 can spell) cannot be encoded as UTF-8: refused in subject, body and data.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


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


def _one_line_of_text(value: Any) -> Any:
    # Before stripping and the length rules, so a control character is refused wherever it stands.
    if isinstance(value, str):
        if _SUBJECT_CONTROL.search(value):
            raise ValueError(
                "must be one line of text: no control characters (U+0000-U+001F, U+007F-U+009F) or line separators"
            )
        if _SUBJECT_FORMAT.search(value):
            raise ValueError(
                "must not contain bidirectional controls (such as U+202E) or invisible format "
                "characters (such as U+FEFF)"
            )
        _valid_unicode(value)
    return value


def _multiline_text(value: Any) -> Any:
    if isinstance(value, str):
        if _BODY_CONTROL.search(value):
            raise ValueError(
                "must not contain control characters other than newline and tab (no CR, NUL, ESC, DEL or U+0080-U+009F)"
            )
        _valid_unicode(value)
    return value


def _valid_unicode(value: str) -> None:
    if _LONE_SURROGATE.search(value):
        raise ValueError("must be valid Unicode: no unpaired surrogates (U+D800-U+DFFF)")


def _json_data(value: Any) -> Any:
    """`data` as JSON a receiver can read, checked without recursion before anything else walks it.

    At most `MAX_DATA_DEPTH` levels of objects and arrays (so no later walk, such as the fingerprint's
    serialisation, can exhaust the stack), string keys, finite numbers (`inf` and `nan` would reach a
    webhook receiver as the non-JSON `Infinity` and `NaN`) and valid Unicode. A value that is not an
    object at all is left to the field's type check.
    """
    if not isinstance(value, dict):
        return value
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DATA_DEPTH:  # a cycle, nested without end, is refused here too
                raise ValueError(f"must nest at most {MAX_DATA_DEPTH} levels of objects and arrays")
            pending.extend((child, depth + 1) for child in _children(node))
        else:
            _json_scalar(node)
    return value


def _children(node: dict[Any, Any] | list[Any]) -> list[Any]:
    """An array's items, or an object's keys and values (keys are checked as strings)."""
    if isinstance(node, list):
        return node
    if not all(isinstance(key, str) for key in node):
        raise ValueError("object keys must be strings")
    return [*node, *node.values()]


def _json_scalar(node: Any) -> None:
    if isinstance(node, float):
        if not math.isfinite(node):
            raise ValueError("numbers must be finite: no NaN or infinity, and none beyond about 1.8e308")
    elif isinstance(node, str):
        _valid_unicode(node)
    elif node is not None and not isinstance(node, int):  # bool is an int
        raise ValueError("must hold only JSON values: objects, arrays, strings, numbers, true, false, null")


PhoneNumber = Annotated[str, AfterValidator(_e164)]
WebhookUrl = Annotated[str, StringConstraints(max_length=2048), AfterValidator(_https_or_http_url)]
NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")]
# Metadata goes back to clients in the status and to receivers in webhooks: one line of text, as a subject.
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64), BeforeValidator(_one_line_of_text)]
MetadataValue = Annotated[str, StringConstraints(max_length=256), BeforeValidator(_one_line_of_text)]


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
    subject: (
        Annotated[NonBlank, StringConstraints(max_length=MAX_SUBJECT_CHARS), BeforeValidator(_one_line_of_text)] | None
    ) = None
    body: Annotated[NonBlank, StringConstraints(max_length=MAX_BODY_CHARS), BeforeValidator(_multiline_text)]
    data: Annotated[dict[str, Any], BeforeValidator(_json_data)] | None = None
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
    # The client that created it (its API key id): only that client can read it. None: made before
    # records had owners, and readable by no client.
    client: str | None = None
    # Keyed hashes of the recipient's addresses (`KeyedIds.for_address`), each the key of a sparse index that
    # erasure by recipient reads (`notifications.erasure`); never shown.
    email_hash: str | None = None
    phone_hash: str | None = None
    device_token_hash: str | None = None
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
    # While the channel is not fully well (the health monitor's mode is not NORMAL): what that means for this
    # notification, in plain words, e.g. "SMS delivery is delayed: ...; your message is queued and will be sent
    # when one recovers". Not stored: it says how things stand when the response is sent.
    notice: str | None = None

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
    def of(cls, record: NotificationRecord) -> NotificationView:  # the owner (`client`) is not shown
        return cls.model_validate(record.model_dump(include=set(cls.model_fields)))
