"""The API side of delivery receipts: verify a provider's request, then queue it for `provider_events`.

Nothing is applied here: the API answers as soon as SQS holds the report, so a provider's burst of
callbacks never waits on DynamoDB, and a report that cannot be applied yet (the record is still
`queued`) waits on the queue. Only what a status change needs is queued (`receipts.events`): no
address, phone number or provider text. Reports that change nothing (SendGrid's `processed`, `open`,
`click`; Twilio's `queued`, `sent`...) and SendGrid events about mail Herald did not send are
dropped here, once verified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.clock import Clock, system_clock
from notifications.errors import DependencyUnavailable, HeraldError, QueueUnavailable
from notifications.observability import logger
from notifications.providers.config import TWILIO_CALLBACK_PATH
from notifications.providers.secrets import ProviderSecrets
from notifications.receipts.events import (
    MalformedReceipt,
    ReceiptOutcome,
    ReceiptProvider,
    SendGridEvent,
    TwilioReceipt,
    TwilioStatusCallback,
    parse_sendgrid_batch,
)
from notifications.receipts.signatures import SignatureMissing, load_sendgrid_key, verify_sendgrid, verify_twilio
from notifications.settings import SettingsError

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

    from api.settings import ApiSettings

# SQS's largest message; a message's attributes count towards it, and the margin covers them.
SQS_MAX_MESSAGE_BYTES = 256 * 1024
_ATTRIBUTE_MARGIN_BYTES = 1024


class ReceiptsNotEnabled(HeraldError):
    """Herald takes no reports from this provider here (unknown, or not configured): HTTP 404."""

    code = "not_found"


class CredentialsUnavailable(DependencyUnavailable):
    """The provider's signing secret could not be read: HTTP 503, and the provider retries."""


@dataclass(frozen=True)
class Queued:
    """What one provider request put on the queue."""

    events: int  # reports queued
    messages: int  # SQS messages they took
    dropped: int = 0  # well-formed reports that change nothing or are not about a Herald notification
    malformed: int = 0  # events of a SendGrid batch that were not in SendGrid's shape


class ReceiptIntake:
    """Verifies providers' delivery reports and queues them on the provider-events queue.

    Parameters
    ----------
    queue_url : str
        The provider-events queue; empty: no provider is enabled.
    sendgrid_key : str | None
        SendGrid's verification key (base64 DER, ECDSA P-256); None: SendGrid is not enabled.
    twilio_credentials : Callable[[], Mapping[str, Any]] | None
        Answers the Twilio secret (`{"account_sid", "auth_token"}`), cached by whoever provides it;
        None: Twilio is not enabled.
    callback_base_url : str
        The API's public base URL (`PROVIDER_EVENTS_URL`): the Twilio URL is rebuilt from it, never
        from the request's Host header. Empty: Twilio is not enabled.
    tolerance_seconds : float
        How old (or how far ahead) a SendGrid signature's timestamp may be.
    sqs : SQSClient | None
        Injected in tests; a real client by default.
    clock : Clock
        The time signatures are checked against.
    """

    def __init__(
        self,
        queue_url: str,
        *,
        sendgrid_key: str | None = None,
        twilio_credentials: Callable[[], Mapping[str, Any]] | None = None,
        callback_base_url: str = "",
        tolerance_seconds: float = 300,
        sqs: SQSClient | None = None,
        clock: Clock = system_clock,
        max_message_bytes: int = SQS_MAX_MESSAGE_BYTES,
    ) -> None:
        self._queue_url = queue_url
        self._sendgrid_key = sendgrid_key or None
        self._twilio_credentials = twilio_credentials
        self._callback_base_url = callback_base_url.rstrip("/")
        self._tolerance = tolerance_seconds
        self._sqs = sqs or aws.client("sqs")
        self._clock = clock
        self._max_message_bytes = max_message_bytes - _ATTRIBUTE_MARGIN_BYTES

    @property
    def enabled(self) -> frozenset[ReceiptProvider]:
        """The providers whose reports this API takes (SES reports arrive through SNS instead)."""
        if not self._queue_url:
            return frozenset()
        enabled = set()
        if self._sendgrid_key:
            enabled.add(ReceiptProvider.SENDGRID)
        if self._twilio_credentials is not None:
            enabled.add(ReceiptProvider.TWILIO)
        return frozenset(enabled)

    # ------------------------------------------------------------------ SendGrid
    def sendgrid(self, *, timestamp: str | None, signature: str | None, body: bytes) -> Queued:
        """Verify and queue one SendGrid Event Webhook request (a batch too big for one message is split).

        Raises
        ------
        ReceiptsNotEnabled, SignatureMissing, SignatureInvalid, MalformedReceipt, QueueUnavailable
        """
        key = self._sendgrid_key
        if key is None or ReceiptProvider.SENDGRID not in self.enabled:
            raise ReceiptsNotEnabled("Herald takes no reports from this provider")
        verify_sendgrid(key, signature, timestamp, body, now=self._clock(), tolerance_seconds=self._tolerance)
        events, malformed = parse_sendgrid_batch(body)
        wanted = [event for event in events if _changes_status(event)]
        messages = self._pack(ReceiptProvider.SENDGRID, wanted)
        for message in messages:
            self._send(ReceiptProvider.SENDGRID, message)
        queued = Queued(len(wanted), len(messages), dropped=len(events) - len(wanted), malformed=malformed)
        if malformed:
            logger.warning("malformed provider events skipped", extra={"provider": "sendgrid", "count": malformed})
        logger.info("provider events queued", extra={"provider": "sendgrid", **asdict(queued)})
        return queued

    def _pack(self, provider: ReceiptProvider, events: Sequence[SendGridEvent]) -> list[str]:
        """`SendGridReceipts` message bodies, as few as fit SQS's message size."""
        head, tail = f'{{"provider":"{provider}","events":['.encode(), b"]}"
        bodies: list[str] = []
        chunk: list[bytes] = []
        size = len(head) + len(tail)
        for event in events:
            encoded = event.model_dump_json(exclude_none=True).encode()
            if chunk and size + len(encoded) + 1 > self._max_message_bytes:
                bodies.append((head + b",".join(chunk) + tail).decode())
                chunk, size = [], len(head) + len(tail)
            chunk.append(encoded)
            size += len(encoded) + 1
        if chunk:
            bodies.append((head + b",".join(chunk) + tail).decode())
        return bodies

    # ------------------------------------------------------------------ Twilio
    def twilio(
        self, *, query: Sequence[tuple[str, str]], signature: str | None, body: bytes, request_base_url: str = ""
    ) -> Queued:
        """Verify and queue one Twilio status callback.

        Parameters
        ----------
        request_base_url : str
            The API's own base URL as API Gateway saw the request (`https://{domainName}/{stage}`), used
            when `PROVIDER_EVENTS_URL` is not configured (the API function cannot name its own URL in
            the template without a circular reference).
        query : Sequence[tuple[str, str]]
            The query string's fields, decoded, in the order received (`notification_id` among them).
        signature : str | None
            The `X-Twilio-Signature` header.
        body : bytes
            The raw form-encoded body.

        Raises
        ------
        ReceiptsNotEnabled, SignatureMissing, SignatureInvalid, MalformedReceipt, CredentialsUnavailable,
        QueueUnavailable
        """
        credentials = self._twilio_credentials
        if credentials is None or ReceiptProvider.TWILIO not in self.enabled:
            raise ReceiptsNotEnabled("Herald takes no reports from this provider")
        if not signature:
            raise SignatureMissing("the request carries no X-Twilio-Signature header")
        try:
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise MalformedReceipt("the request body is not UTF-8 form data") from None
        verify_twilio(_auth_token(credentials), self.twilio_url(query, request_base_url), fields, signature)
        notification_id = next((value for name, value in query if name == "notification_id"), "")
        try:
            callback = TwilioStatusCallback.model_validate(dict(fields))
            receipt = TwilioReceipt(
                provider=ReceiptProvider.TWILIO,
                notification_id=notification_id,
                received_at=self._clock(),
                callback=callback,
            )
        except ValueError:  # pydantic's ValidationError; its text could quote a phone number
            raise MalformedReceipt("the request is not a Twilio status callback for a notification") from None
        if callback.outcome is ReceiptOutcome.NOTHING:
            logger.info(
                "provider event changes nothing", extra={"provider": "twilio", "status": callback.message_status}
            )
            return Queued(0, 0, dropped=1)
        self._send(ReceiptProvider.TWILIO, receipt.model_dump_json(by_alias=True, exclude_none=True))
        logger.info(
            "provider event queued",
            extra={"provider": "twilio", "notification_id": notification_id, "status": callback.message_status},
        )
        return Queued(1, 1)

    def twilio_url(self, query: Sequence[tuple[str, str]], request_base_url: str = "") -> str:
        """The URL Twilio called: `PROVIDER_EVENTS_URL` (else the request's own base URL) + the callback
        path + the query, encoded as the Twilio provider encodes it when it sets `StatusCallback`."""
        encoded = urlencode(list(query), quote_via=quote, safe="")
        base = self._callback_base_url or request_base_url.rstrip("/")
        return f"{base}{TWILIO_CALLBACK_PATH}" + (f"?{encoded}" if encoded else "")

    # ------------------------------------------------------------------ queue
    def _send(self, provider: ReceiptProvider, body: str) -> None:
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url,
                MessageBody=body,
                MessageAttributes={"provider": {"DataType": "String", "StringValue": provider.value}},
            )
        except (ClientError, BotoCoreError) as error:
            raise QueueUnavailable(f"provider-events queue unavailable ({type(error).__name__})") from error


def _auth_token(credentials: Callable[[], Mapping[str, Any]]) -> str:
    """Twilio's auth token from its secret; the secret's reader caches it."""
    try:
        token = credentials().get("auth_token")
    except Exception as error:  # noqa: BLE001 - whatever the secret reader raises, the answer is 503
        logger.error("twilio credentials unreadable", extra={"error_type": type(error).__name__})
        raise CredentialsUnavailable("the provider's signing secret is unavailable") from error
    if not isinstance(token, str) or not token:
        logger.error("twilio secret has no auth_token")
        raise CredentialsUnavailable("the provider's signing secret is unavailable")
    return token


def _changes_status(event: SendGridEvent) -> bool:
    receipt = event.receipt()
    return receipt is not None and receipt.outcome is not ReceiptOutcome.NOTHING


def build_receipt_intake(
    settings: ApiSettings,
    *,
    sqs: SQSClient | None = None,
    twilio_credentials: Callable[[], Mapping[str, Any]] | None = None,
    secretsmanager: SecretsManagerClient | None = None,
    clock: Clock = system_clock,
) -> ReceiptIntake:
    """The API's `ReceiptIntake`, from its settings.

    SendGrid is enabled by `SENDGRID_EVENT_PUBLIC_KEY`, Twilio by `TWILIO_SECRET` (or injected
    `twilio_credentials`); both need `PROVIDER_EVENTS_QUEUE_URL`. Twilio's signed URL is rebuilt from
    `PROVIDER_EVENTS_URL`, else from the request's own domain and stage.

    Raises
    ------
    SettingsError
        `SENDGRID_EVENT_PUBLIC_KEY` is set but is not an ECDSA P-256 public key.
    """
    key = settings.sendgrid_event_public_key.strip() or None
    if key is not None:
        try:
            load_sendgrid_key(key)
        except ValueError as error:
            raise SettingsError(f"invalid configuration: SENDGRID_EVENT_PUBLIC_KEY: {error}") from error
    if twilio_credentials is None and settings.twilio_secret:
        secrets = ProviderSecrets(settings.secrets_max_age_seconds, client=secretsmanager)
        twilio_credentials = secrets.json(settings.twilio_secret)
    return ReceiptIntake(
        settings.provider_events_queue_url,
        sendgrid_key=key,
        twilio_credentials=twilio_credentials,
        callback_base_url=settings.provider_events_url,
        tolerance_seconds=settings.receipt_tolerance_seconds,
        sqs=sqs,
        clock=clock,
    )
