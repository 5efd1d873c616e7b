"""Providers' delivery reports as pydantic models, each normalised to one `ReceiptEvent`.

Three providers report, each in its own shape:

- SendGrid's Event Webhook: a JSON array of events; Herald's `notification_id` custom arg is a
  top-level key of each (contract A).
- Twilio's status callback: form fields, with Herald's `notification_id` in the callback URL's query
  string (contract B).
- SES event publishing, through SNS to SQS: an SNS envelope whose `Message` is the SES event JSON,
  with the `notification_id` email tag (contract C).

The models keep only what a status change needs. Addresses, phone numbers, IP addresses, user agents,
URLs and providers' free-text reasons (which often quote the address) are never read, so they are
never queued, logged or stored; free-form words a provider reports (an SMTP status, a bounce type) are
kept only when they look like the enumerations the providers document.

The API queues SendGrid and Twilio reports as `SendGridReceipts` / `TwilioReceipt` messages; the
`provider_events` function reads those and SNS envelopes with `parse_message`.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from notifications.errors import HeraldError

ModelT = TypeVar("ModelT", bound=BaseModel)


class ReceiptProvider(StrEnum):
    SENDGRID = "sendgrid"
    TWILIO = "twilio"
    SES = "ses"


class ReceiptOutcome(StrEnum):
    """What a report means for the notification's status."""

    DELIVERED = "delivered"
    FAILED = "failed"
    NOTHING = "nothing"  # progress or engagement (processed, deferred, open, click...): no status change


class MalformedReceipt(HeraldError):
    """A report (or a queued message) is not in the provider's documented shape."""

    code = "malformed_body"


def _enumeration_word(value: object) -> object:
    """A provider's enumeration value (`Permanent`, `5.1.1`, `blocked`), or None for anything else."""
    if isinstance(value, str) and _WORD.fullmatch(value):
        return value
    return None


_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SMTP_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")

NotificationId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
EnumerationWord = Annotated[str | None, BeforeValidator(_enumeration_word)]
EventName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_]{1,64}$")]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ReceiptEvent(BaseModel):
    """One provider report, normalised: which notification, what it means, and plain words without personal data."""

    model_config = ConfigDict(frozen=True)

    notification_id: NotificationId
    provider: ReceiptProvider
    outcome: ReceiptOutcome
    event_id: Identifier  # the provider's id of the report (or of the delivery, plus its status)
    occurred_at: float  # epoch seconds: when the provider says it happened (or when Herald heard of it)
    detail: str  # e.g. "sendgrid reported bounce (type bounce, SMTP status 5.1.1)"


# ---------------------------------------------------------------------- SendGrid (contract A)
SENDGRID_OUTCOMES: dict[str, ReceiptOutcome] = {
    "delivered": ReceiptOutcome.DELIVERED,
    "bounce": ReceiptOutcome.FAILED,
    "dropped": ReceiptOutcome.FAILED,
    "spamreport": ReceiptOutcome.FAILED,
}  # processed, deferred, open, click, unsubscribe, group_unsubscribe and any later event type: NOTHING


def _smtp_status(value: object) -> object:
    return value if isinstance(value, str) and _SMTP_STATUS.fullmatch(value) else None


def _bounce_type(value: object) -> object:
    return value if value in {"bounce", "blocked"} else None


class SendGridEvent(BaseModel):
    """One event of SendGrid's Event Webhook: only the keys a status change needs (no `email`, no `reason`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event: EventName
    sg_event_id: Identifier
    sg_message_id: Identifier | None = None
    timestamp: int = Field(ge=0)
    notification_id: NotificationId | None = None  # Herald's custom arg; absent on mail Herald did not send
    status: Annotated[str | None, BeforeValidator(_smtp_status)] = None  # SMTP status, e.g. 5.1.1
    type: Annotated[Literal["bounce", "blocked"] | None, BeforeValidator(_bounce_type)] = None

    @property
    def outcome(self) -> ReceiptOutcome:
        return SENDGRID_OUTCOMES.get(self.event, ReceiptOutcome.NOTHING)

    def receipt(self) -> ReceiptEvent | None:
        """The normalised event, or None when it is not about a Herald notification."""
        if self.notification_id is None:
            return None
        facts = [f"type {self.type}" if self.type else "", f"SMTP status {self.status}" if self.status else ""]
        return ReceiptEvent(
            notification_id=self.notification_id,
            provider=ReceiptProvider.SENDGRID,
            outcome=self.outcome,
            event_id=self.sg_event_id,
            occurred_at=float(self.timestamp),
            detail=_detail(ReceiptProvider.SENDGRID, self.event, facts),
        )


# ---------------------------------------------------------------------- Twilio (contract B)
TWILIO_OUTCOMES: dict[str, ReceiptOutcome] = {
    "delivered": ReceiptOutcome.DELIVERED,
    "undelivered": ReceiptOutcome.FAILED,
    "failed": ReceiptOutcome.FAILED,
}  # queued, sending, sent (and accepted, scheduled, read...): NOTHING


def _error_code(value: object) -> object:
    return value if isinstance(value, str) and value.isdigit() and len(value) <= 10 else None


class TwilioStatusCallback(BaseModel):
    """The form fields of a Twilio status callback that a status change needs (no `To`, `From` or `Body`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_sid: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{2,64}$")] = Field(
        validation_alias=AliasChoices("MessageSid", "SmsSid", "message_sid"), serialization_alias="MessageSid"
    )
    message_status: EventName = Field(
        validation_alias=AliasChoices("MessageStatus", "SmsStatus", "message_status"),
        serialization_alias="MessageStatus",
    )
    error_code: Annotated[str | None, BeforeValidator(_error_code)] = Field(
        default=None, validation_alias=AliasChoices("ErrorCode", "error_code"), serialization_alias="ErrorCode"
    )

    @property
    def outcome(self) -> ReceiptOutcome:
        return TWILIO_OUTCOMES.get(self.message_status, ReceiptOutcome.NOTHING)

    def receipt(self, notification_id: str, *, received_at: float) -> ReceiptEvent:
        """The normalised event; Twilio's callback has no time of its own, so it is when Herald received it."""
        return ReceiptEvent(
            notification_id=notification_id,
            provider=ReceiptProvider.TWILIO,
            outcome=self.outcome,
            # Twilio has no event id: a delivery and its status identify the report (a retry repeats both).
            event_id=f"{self.message_sid}/{self.message_status}",
            occurred_at=received_at,
            detail=_detail(
                ReceiptProvider.TWILIO, self.message_status, [f"error {self.error_code}" if self.error_code else ""]
            ),
        )


# ---------------------------------------------------------------------- SES (contract C)
SES_OUTCOMES: dict[str, ReceiptOutcome] = {
    "Delivery": ReceiptOutcome.DELIVERED,
    "Bounce": ReceiptOutcome.FAILED,
    "Complaint": ReceiptOutcome.FAILED,
    "Reject": ReceiptOutcome.FAILED,
}  # Send, DeliveryDelay, RenderingFailure, Open, Click, Subscription...: NOTHING

NOTIFICATION_TAG = "notification_id"


class SesMail(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    message_id: Identifier = Field(alias="messageId")
    timestamp: str | None = None
    tags: dict[str, list[str]] = Field(default_factory=dict)


class SesBounce(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    bounce_type: EnumerationWord = Field(default=None, alias="bounceType")
    bounce_sub_type: EnumerationWord = Field(default=None, alias="bounceSubType")
    timestamp: str | None = None


class SesComplaint(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    complaint_feedback_type: EnumerationWord = Field(default=None, alias="complaintFeedbackType")
    timestamp: str | None = None


class SesDelivery(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    timestamp: str | None = None


class SesEvent(BaseModel):
    """An SES event (configuration-set event publishing): only what a status change needs (no recipients)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: EventName = Field(validation_alias=AliasChoices("eventType", "notificationType"))
    mail: SesMail
    bounce: SesBounce | None = None
    complaint: SesComplaint | None = None
    delivery: SesDelivery | None = None

    @property
    def outcome(self) -> ReceiptOutcome:
        return SES_OUTCOMES.get(self.event_type, ReceiptOutcome.NOTHING)

    @property
    def notification_id(self) -> str | None:
        values = [value.strip() for value in self.mail.tags.get(NOTIFICATION_TAG, []) if value.strip()]
        return values[0] if values and len(values[0]) <= 128 else None

    def receipt(self, event_id: str, *, fallback_time: float) -> ReceiptEvent | None:
        """The normalised event, or None when the mail carries no Herald `notification_id` tag."""
        notification_id = self.notification_id
        if notification_id is None:
            return None
        facts: list[str | None] = []
        stamps: list[str | None] = [self.mail.timestamp]
        if self.bounce is not None:
            facts += [self.bounce.bounce_type, self.bounce.bounce_sub_type]
            stamps.insert(0, self.bounce.timestamp)
        if self.complaint is not None:
            facts.append(self.complaint.complaint_feedback_type)
            stamps.insert(0, self.complaint.timestamp)
        if self.delivery is not None:
            stamps.insert(0, self.delivery.timestamp)
        occurred_at = next((t for t in map(_epoch_or_none, stamps) if t is not None), fallback_time)
        return ReceiptEvent(
            notification_id=notification_id,
            provider=ReceiptProvider.SES,
            outcome=self.outcome,
            event_id=event_id,
            occurred_at=occurred_at,
            detail=_detail(ReceiptProvider.SES, self.event_type, [", ".join(fact for fact in facts if fact)]),
        )


class SnsNotification(BaseModel):
    """The SNS envelope SQS receives from a topic without raw message delivery."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: Literal["Notification"] = Field(alias="Type")
    message_id: Identifier = Field(alias="MessageId")
    topic_arn: str = Field(alias="TopicArn")
    message: str = Field(alias="Message")
    timestamp: str | None = Field(default=None, alias="Timestamp")


# ---------------------------------------------------------------------- what the API queues
class SendGridReceipts(BaseModel):
    """A queue message: SendGrid events of one webhook request (a large request is split across several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal[ReceiptProvider.SENDGRID]
    events: list[SendGridEvent] = Field(min_length=1)


class TwilioReceipt(BaseModel):
    """A queue message: one Twilio status callback, with the notification id from its URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal[ReceiptProvider.TWILIO]
    notification_id: NotificationId
    received_at: float
    callback: TwilioStatusCallback


QueuedReceipts = Annotated[SendGridReceipts | TwilioReceipt, Field(discriminator="provider")]
_queued: TypeAdapter[SendGridReceipts | TwilioReceipt] = TypeAdapter(QueuedReceipts)


def parse_message(body: str) -> list[ReceiptEvent]:
    """Every Herald receipt a provider-events queue message holds (reports about other mail are left out).

    Reads what `ReceiptIntake` queued (SendGrid and Twilio), the SNS envelope of an SES event and, should
    the subscription use raw message delivery, a bare SES event.

    Raises
    ------
    MalformedReceipt
        The body is none of these (the message is kept, to end in the dead-letter queue).
    """
    payload = _json(body, "the message body")
    if not isinstance(payload, dict):
        raise MalformedReceipt("the message body is not a JSON object")
    if "Type" in payload:
        envelope = _validated(SnsNotification, payload, "an SNS notification")
        fallback = _epoch_or_none(envelope.timestamp) or 0.0
        return _present([_ses(_json(envelope.message, "the SNS message"), envelope.message_id, fallback)])
    if "provider" in payload:
        try:
            queued = _queued.validate_python(payload)
        except ValidationError as error:
            raise MalformedReceipt(f"not a queued provider report ({error.error_count()} problems)") from None
        if isinstance(queued, TwilioReceipt):
            return [queued.callback.receipt(queued.notification_id, received_at=queued.received_at)]
        return _present([event.receipt() for event in queued.events])
    if "eventType" in payload or "notificationType" in payload:
        mail = payload.get("mail")
        event_id = str(mail.get("messageId") or "") if isinstance(mail, dict) else ""
        return _present([_ses(payload, event_id, 0.0)])
    raise MalformedReceipt("the message body is not a provider report")


def parse_sendgrid_batch(body: bytes) -> tuple[list[SendGridEvent], int]:
    """The events of a SendGrid webhook body that are well formed, and how many were not.

    Raises
    ------
    MalformedReceipt
        The body is not a JSON array.
    """
    payload = _json(body, "the request body")
    if not isinstance(payload, list):
        raise MalformedReceipt("the request body is not a JSON array of events")
    events: list[SendGridEvent] = []
    malformed = 0
    for item in payload:
        try:
            events.append(SendGridEvent.model_validate(item))
        except ValidationError:
            malformed += 1
    return events, malformed


def _ses(payload: Any, event_id: str, fallback_time: float) -> ReceiptEvent | None:
    if not isinstance(payload, dict):
        raise MalformedReceipt("the SES event is not a JSON object")
    if not event_id:
        raise MalformedReceipt("the SES event has no message id")
    return _validated(SesEvent, payload, "an SES event").receipt(event_id, fallback_time=fallback_time)


def _present(receipts: list[ReceiptEvent | None]) -> list[ReceiptEvent]:
    return [receipt for receipt in receipts if receipt is not None]


def _validated(model: type[ModelT], payload: Any, what: str) -> ModelT:
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        # The count only: pydantic's messages could quote the input, which may hold personal data.
        raise MalformedReceipt(f"not {what} ({error.error_count()} problems)") from None


def _json(text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise MalformedReceipt(f"{what} is not valid JSON") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity: no report carries such a number
        raise ValueError("a number beyond a 64-bit float")
    return number


def _epoch_or_none(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _detail(provider: ReceiptProvider, event: str, facts: list[str]) -> str:
    shown = ", ".join(fact for fact in facts if fact)
    return f"{provider} reported {event}" + (f" ({shown})" if shown else "")
