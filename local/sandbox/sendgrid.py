"""SendGrid's v3 mail send, and its signed Event Webhook back to Herald.

`POST /v3/mail/send` answers 202 with `X-Message-Id`, 401 to a wrong API key and 400 with SendGrid's
`errors[]` when the mail lacks what SendGrid requires. Each recipient of an accepted mail then gets a
"processed" event and a "delivered" one, or "bounce" (5.1.1, unknown user) when the address's local part
starts with "bounce"; each event is POSTed on its own to the events URL, signed as SendGrid signs them
(ECDSA P-256 over SHA-256 of the timestamp header's value followed by the body).
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from local.sandbox.callbacks import CallbackPost
from local.sandbox.exchange import Answer
from local.sandbox.faults import Provider, reason_phrase, retry_headers
from local.sandbox.messages import SentMessage, iso_time

if TYPE_CHECKING:
    from collections.abc import Callable

    from local.sandbox.callbacks import CallbackWorker
    from local.sandbox.credentials import SandboxCredentials
    from local.sandbox.exchange import Request
    from local.sandbox.faults import Strike
    from local.sandbox.messages import MessageLog

SEND_PATH = "/v3/mail/send"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
BOUNCE_PREFIX = "bounce"  # a recipient whose local part starts with it bounces
RATE_LIMIT = 600  # what X-RateLimit-Limit says under a 429 fault

_UNAUTHORISED = "The provided authorization grant is invalid, expired, or revoked"
_NO_PERSONALIZATIONS = "The personalizations field is required and must have at least one personalization."
_NO_TO = (
    "The to array is required for all personalization objects, and must have at least one email object with a "
    "valid email address."
)
_NO_FROM = (
    "The from object must be provided for every email send. It is an object that requires the email parameter, "
    "but may also contain a name parameter."
)
_NO_SUBJECT = (
    "The subject is required. You can get around this requirement if you use a template with a subject defined "
    "or if every personalization has a subject defined."
)
_NO_CONTENT = (
    "Unless a valid template_id is provided, the content parameter is required. There must be at least one "
    "defined content block."
)
_BAD_ADDRESS = "Does not contain a valid address."


def errors_answer(status: int, problems: list[tuple[str, str | None]], headers: dict[str, str] | None = None) -> Answer:
    """SendGrid's error body: `{"errors": [{"message", "field", "help"}]}`."""
    errors = [{"message": message, "field": where, "help": None} for message, where in problems]
    return Answer.json(status, {"errors": errors}, headers)


def fault_answer(strike: Strike, now: float) -> Answer:
    """What SendGrid answers when it fails: its error body; a 429 carries its rate-limit headers."""
    headers = retry_headers(strike)
    if strike.status == 429:
        reset = int(now) + (strike.retry_after if strike.retry_after is not None else 1)
        headers |= {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
        return errors_answer(429, [("too many requests", None)], headers)
    return errors_answer(strike.status, [(reason_phrase(strike.status), None)], headers)


def sign_event_body(key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """The Event Webhook signature: base64 of the DER ECDSA signature over SHA-256 of `timestamp + body`."""
    return base64.b64encode(key.sign(timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))).decode("ascii")


def _is_address(value: object) -> bool:
    if not isinstance(value, str):
        return False
    local, at, domain = value.rpartition("@")
    return bool(local and at and "." in domain)


def _problems(mail: dict[str, Any]) -> list[tuple[str, str | None]]:
    """What SendGrid would refuse in this mail, each with the field it names."""
    personalizations = mail.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        problems: list[tuple[str, str | None]] = [(_NO_PERSONALIZATIONS, "personalizations")]
        personalizations = []
    else:
        problems = _recipient_problems(personalizations)
    sender = mail.get("from")
    if not (isinstance(sender, dict) and _is_address(sender.get("email"))):
        problems.append((_NO_FROM, "from.email"))
    templated = bool(mail.get("template_id"))
    every_has_subject = bool(personalizations) and all(
        isinstance(p, dict) and isinstance(p.get("subject"), str) and p["subject"] for p in personalizations
    )
    subject = mail.get("subject")
    if not (templated or every_has_subject or (isinstance(subject, str) and subject)):
        problems.append((_NO_SUBJECT, "subject"))
    if not templated:
        problems.extend(_content_problems(mail.get("content")))
    return problems


def _recipient_problems(personalizations: list[Any]) -> list[tuple[str, str | None]]:
    problems: list[tuple[str, str | None]] = []
    for index, personalization in enumerate(personalizations):
        recipients = personalization.get("to") if isinstance(personalization, dict) else None
        if not isinstance(recipients, list) or not recipients:
            problems.append((_NO_TO, f"personalizations.{index}.to"))
            continue
        problems.extend(
            (_BAD_ADDRESS, f"personalizations.{index}.to.{position}.email")
            for position, recipient in enumerate(recipients)
            if not (isinstance(recipient, dict) and _is_address(recipient.get("email")))
        )
    return problems


def _content_problems(content: object) -> list[tuple[str, str | None]]:
    if not isinstance(content, list) or not content:
        return [(_NO_CONTENT, "content")]
    problems: list[tuple[str, str | None]] = []
    for index, block in enumerate(content):
        for part in ("type", "value"):
            value = block.get(part) if isinstance(block, dict) else None
            if not (isinstance(value, str) and value):
                message = f"The content {part} must be a string at least one character in length."
                problems.append((message, f"content.{index}.{part}"))
    return problems


def _custom_args(mail: dict[str, Any], personalization: dict[str, Any]) -> dict[str, str]:
    """The mail's custom_args, a personalization's over them (as SendGrid merges them)."""
    merged: dict[str, str] = {}
    for source in (mail.get("custom_args"), personalization.get("custom_args")):
        if isinstance(source, dict):
            merged.update({str(key): str(value) for key, value in source.items()})
    return merged


def _notification_id(mail: dict[str, Any]) -> str | None:
    first = mail["personalizations"][0]
    args = _custom_args(mail, first)
    if "notification_id" in args:
        return args["notification_id"]
    headers = mail.get("headers")
    value = headers.get("X-Notification-Id") if isinstance(headers, dict) else None
    return str(value) if value is not None else None


def _text(mail: dict[str, Any]) -> str | None:
    """The mail's text: its text/plain block, else its first block."""
    blocks = [block for block in mail.get("content") or [] if isinstance(block, dict)]
    for block in blocks:
        if block.get("type") == "text/plain":
            return str(block.get("value"))
    return str(blocks[0].get("value")) if blocks else None


class SendGridApi:
    """The mail send endpoint and the events it sends back."""

    def __init__(
        self,
        credentials: SandboxCredentials,
        messages: MessageLog,
        callbacks: CallbackWorker,
        events_url: str | None,
        clock: Callable[[], float],
    ) -> None:
        self._credentials = credentials
        self._messages = messages
        self._callbacks = callbacks
        self._events_url = events_url
        self._clock = clock

    def send(self, request: Request, params: dict[str, str]) -> Answer:
        expected = f"Bearer {self._credentials.sendgrid_api_key}"
        if not secrets.compare_digest(request.header("authorization").encode(), expected.encode()):
            return errors_answer(401, [(_UNAUTHORISED, None)])
        try:
            mail = request.json()
        except ValueError:
            return errors_answer(400, [("Bad Request", None)])
        if not isinstance(mail, dict):
            return errors_answer(400, [("Bad Request", None)])
        problems = _problems(mail)
        if problems:
            return errors_answer(400, problems)
        message_id = secrets.token_urlsafe(16)
        subject = mail.get("subject") or mail["personalizations"][0].get("subject")
        now = self._clock()
        self._messages.add(
            SentMessage(
                provider=Provider.SENDGRID.value,
                notification_id=_notification_id(mail),
                message_id=message_id,
                to=mail["personalizations"][0]["to"][0]["email"],
                subject=str(subject) if subject is not None else None,
                body=_text(mail),
                at=iso_time(now),
                status=202,
            )
        )
        if self._events_url is not None:
            for personalization in mail["personalizations"]:
                for recipient in personalization["to"]:
                    self._queue_events(message_id, recipient["email"], _custom_args(mail, personalization))
        return Answer(202, headers={"X-Message-Id": message_id})

    def _queue_events(self, message_id: str, address: str, custom_args: dict[str, str]) -> None:
        bounces = address.partition("@")[0].lower().startswith(BOUNCE_PREFIX)
        last: dict[str, Any] = (
            {"event": "bounce", "type": "bounce", "status": "5.1.1", "reason": "550 5.1.1 unknown user"}
            if bounces
            else {"event": "delivered", "response": "250 OK"}
        )
        posts = [self._post(message_id, address, custom_args, fields) for fields in ({"event": "processed"}, last)]
        self._callbacks.submit(posts)

    def _post(self, message_id: str, address: str, custom_args: dict[str, str], fields: dict[str, Any]) -> CallbackPost:
        assert self._events_url is not None
        event_id = secrets.token_urlsafe(16)  # the same on every attempt, as a redelivered event keeps its id
        key = self._credentials.event_signing_key

        def build() -> tuple[bytes, dict[str, str]]:
            now = int(self._clock())
            event = {
                **custom_args,  # SendGrid puts custom_args beside its own keys, which win
                "email": address,
                "timestamp": now,
                "sg_event_id": event_id,
                "sg_message_id": f"{message_id}.sandbox.0",
                "smtp-id": f"<{message_id}@sandbox.herald.local>",
                **fields,
            }
            body = json.dumps([event]).encode()
            timestamp = str(now)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "SendGrid Event API",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign_event_body(key, timestamp, body),
            }
            return body, headers

        notification_id = custom_args.get("notification_id")
        return CallbackPost(Provider.SENDGRID.value, notification_id, str(fields["event"]), self._events_url, build)
