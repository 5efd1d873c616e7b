"""Email through SendGrid's v3 Mail Send API, over the shared provider HTTP transport.

One call to `SendGridEmailProvider.send` reads the API key (`credentials()`, cached by the caller, asked on
every send so a rotated key is picked up), posts one v3 message to `{base_url}/v3/mail/send` and answers
SendGrid's message id (its `X-Message-Id` header). The notification id travels as `custom_args` (SendGrid
copies them into every Event Webhook event, so receipts find the notification) and as an
`X-Notification-Id` header.

A refusal becomes a `SendGridError` with SendGrid's status, the first error's `field` and how long to wait
(`Retry-After`, else `X-RateLimit-Reset`); SendGrid's own messages are not copied, as they may quote the
address. `classify_sendgrid_error` judges it, following SendGrid's documented status codes.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, StringConstraints

from notifications.clock import Clock, system_clock
from notifications.errors import DeliveryError, NothingSent, UndeliverableError
from notifications.models import Channel
from notifications.providers import ProviderReceipt
from notifications.providers.http import ProviderHttp
from resilience import ErrorClass

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from notifications.models import NotificationRecord
    from notifications.providers.http import HttpAnswer

PROVIDER = "sendgrid"
SEND_PATH = "/v3/mail/send"
_MAX_WAIT_SECONDS = 3600.0
_MAX_FIELD_CHARS = 100
# What a SendGrid error `field` may carry into our error text ("personalizations.0.to.0.email").
_FIELD = re.compile(r"^[A-Za-z0-9_.\[\]-]+$")

# SendGrid's status codes for Mail Send, by what they are about.
# 400 Bad Request and 413 Payload Too Large: this message is malformed or too big; resending it cannot help.
_ABOUT_THE_MESSAGE = frozenset({400, 413})
# 401 Requires authentication (the key is invalid, revoked or lacks the mail.send scope) and 403 Forbidden
# (the From address is not a verified Sender Identity, or the account is temporarily blocked): our account
# or configuration. Counted against the breaker, so email fails over to the next provider; once an operator
# fixes the key or the sender, a retry delivers.
_ABOUT_THE_ACCOUNT = frozenset({401, 403})


class SendGridError(DeliveryError):
    """SendGrid refused the message (its status in `status_code`), or its credentials are unavailable (no
    status). `provider_code` is the first error's `field`, when SendGrid named one."""


class SendGridCredentialsUnavailable(SendGridError, NothingSent):
    """The secret could not be read or is not valid: nothing was sent."""


class SendGridCredentials(BaseModel):
    """The SendGrid secret: `{"api_key": "SG...."}`; printable ASCII only, as it travels in a header."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[\x21-\x7e]+$")]


def classify_sendgrid_error(error: BaseException) -> ErrorClass | None:
    """SendGrid's rules: 400 and 413 are about the message (permanent); 401, 403, 429 and 5xx are about our
    account or SendGrid's service (transient); missing credentials are an operator's to fix (transient).
    Any other status, and any other error, is left to the rest of the chain."""
    if not isinstance(error, SendGridError):
        return None
    status = error.status_code
    if status is None or status in _ABOUT_THE_ACCOUNT or status == 429 or status >= 500:
        return ErrorClass.TRANSIENT
    if status in _ABOUT_THE_MESSAGE:
        return ErrorClass.PERMANENT
    return None


def mail_send_payload(record: NotificationRecord, *, sender: str, to: str) -> dict[str, Any]:
    """The v3 Mail Send body for one notification to one address."""
    return {
        "personalizations": [{"to": [{"email": to}], "custom_args": {"notification_id": record.id}}],
        "from": {"email": sender},
        "subject": record.subject or "",
        "content": [{"type": "text/plain", "value": record.body}],
        "custom_args": {"notification_id": record.id},
        "headers": {"X-Notification-Id": record.id},
    }


class SendGridEmailProvider:
    """SendGrid v3 Mail Send, bounded by the call's timeout (see the module docstring).

    Parameters
    ----------
    sender : str
        The From address (a verified Sender Identity in the SendGrid account).
    credentials : Callable[[], Mapping[str, Any]]
        Returns the secret's JSON, `{"api_key": ...}`; called on every send, cached by the caller.
    base_url : str
        SendGrid's API (`https://api.sendgrid.com`), or a sandbox's.
    http : ProviderHttp | None
        The transport; a pool of its own by default.
    clock : Clock
        Epoch seconds, to turn `X-RateLimit-Reset` and HTTP-date `Retry-After` values into a wait.
    """

    name = PROVIDER
    channel = Channel.EMAIL

    def __init__(
        self,
        *,
        sender: str,
        credentials: Callable[[], Mapping[str, Any]],
        base_url: str,
        http: ProviderHttp | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._sender = sender
        self._credentials = credentials
        self._url = base_url.rstrip("/") + SEND_PATH
        self._http = http or ProviderHttp(PROVIDER)
        self._clock = clock

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        """Post the email; SendGrid's 2xx (202 Accepted, or 200 in sandbox mode) is a receipt."""
        if record.recipient.email is None:
            raise UndeliverableError("recipient has no email address")
        api_key = self._api_key()
        answer = self._http.post_json(
            self._url,
            mail_send_payload(record, sender=self._sender, to=record.recipient.email),
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
        )
        if not answer.ok:
            raise self._refusal(answer)
        return ProviderReceipt(provider=self.name, message_id=answer.headers.get("x-message-id") or None)

    def _api_key(self) -> str:
        try:
            return SendGridCredentials.model_validate(self._credentials()).api_key
        except Exception as error:  # noqa: BLE001 - any failure to read the secret is the same failure
            raise SendGridCredentialsUnavailable(
                f"{PROVIDER} credentials unavailable ({type(error).__name__})"
            ) from None

    def _refusal(self, answer: HttpAnswer) -> SendGridError:
        field = _first_error_field(answer.json())
        message = f"{PROVIDER} answered HTTP {answer.status}" + (f" (field {field})" if field else "")
        return SendGridError(
            message,
            status_code=answer.status,
            retry_after=self._wait(answer),
            provider_code=field,
        )

    def _wait(self, answer: HttpAnswer) -> float | None:
        """Retry-After when SendGrid sends one; for a 429 without it, the time until X-RateLimit-Reset."""
        now = self._clock()
        wait = answer.retry_after(now)
        if wait is not None or answer.status != 429:
            return wait
        try:
            reset = float(answer.headers.get("x-ratelimit-reset", ""))
        except ValueError:
            return None
        return min(max(reset - now, 0.0), _MAX_WAIT_SECONDS) if math.isfinite(reset) else None


def _first_error_field(body: Any) -> str | None:
    """The `field` of SendGrid's first error (`{"errors": [{"message", "field", "help"}]}`), when it is a
    plain field path; nothing else of the answer is kept."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors else None
    field = first.get("field") if isinstance(first, dict) else None
    if isinstance(field, str) and len(field) <= _MAX_FIELD_CHARS and _FIELD.match(field):
        return field
    return None
