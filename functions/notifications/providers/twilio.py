"""SMS through Twilio's Programmable Messaging API, over the shared provider HTTP transport.

One call to `TwilioSmsProvider.send` reads the account's credentials (`credentials()`, cached by the caller,
asked on every send so a rotated token is picked up) and creates one Message:
`POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP Basic auth and the form fields
`To`, `From` (an E.164 number or an alphanumeric sender ID) or `MessagingServiceSid` (a sender starting with
`MG`), `Body` and, when configured, `StatusCallback`: the provider-events URL with the notification id in
its query, so Twilio's delivery callbacks name the notification they are about.

A refusal becomes a `TwilioError` with Twilio's status, its error code (`provider_code`) and Retry-After;
Twilio's own message is not copied, as it quotes the phone number. `classify_twilio_error` judges it by
Twilio's documented error codes.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

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

PROVIDER = "twilio"
API_VERSION = "2010-04-01"
MESSAGING_SERVICE_PREFIX = "MG"

# Twilio error codes about this message or this recipient: resending the same message cannot help, and the
# breaker must not count them (Twilio answered correctly).
PERMANENT_CODES = frozenset(
    {
        "21211",  # Invalid 'To' Phone Number
        "21214",  # 'To' phone number cannot be reached
        "21217",  # Phone number does not appear to be valid
        # Permission to send an SMS has not been enabled for the region indicated by the 'To' number. It is
        # an account setting (Messaging Geo Permissions), but operators switch regions off on purpose, to stop
        # toll fraud (SMS pumping). Were it transient, a flood of requests to a blocked region would open
        # Twilio's breaker for every recipient and push those very messages through the next SMS provider,
        # defeating the policy; so it is a verdict on this recipient.
        "21408",
        "21602",  # Message body is required
        "21610",  # Attempt to send to unsubscribed recipient (the recipient replied STOP)
        "21612",  # The 'To' phone number is not currently reachable via SMS (from this sender)
        "21614",  # 'To' number is not a valid mobile number
        "21617",  # The concatenated message body exceeds the 1600 character limit
    }
)
# Twilio error codes about our account, its configuration or its throughput: counted against the breaker,
# so SMS fails over to the next provider; retries deliver once the load drops or an operator fixes it.
TRANSIENT_CODES = frozenset(
    {
        "20003",  # Authentication Error: wrong Account SID or Auth Token
        "20404",  # The requested resource was not found: the Account SID names no account
        "20429",  # Too Many Requests
        "21212",  # Invalid 'From' Phone Number: our TWILIO_FROM
        "21606",  # The 'From' phone number is not a valid, message-capable Twilio number for this account
        "21608",  # The 'To' number is not yet verified for this account: a trial account's restriction
        "21611",  # This 'From' number has exceeded the maximum number of queued messages
        "30001",  # Queue overflow: more messages than the sender's throughput can take
    }
)


class TwilioError(DeliveryError):
    """Twilio refused the message (its status in `status_code`, its error code in `provider_code`), or its
    credentials are unavailable (no status)."""


class TwilioCredentialsUnavailable(TwilioError, NothingSent):
    """The secret could not be read or is not valid: nothing was sent."""


class TwilioCredentials(BaseModel):
    """The Twilio secret: `{"account_sid": "AC...", "auth_token": "..."}`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # The SID is a path segment of the API's URL: letters and digits only.
    account_sid: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[A-Za-z0-9]+$")]
    auth_token: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[\x21-\x7e]+$")]


def classify_twilio_error(error: BaseException) -> ErrorClass | None:
    """Twilio's rules: its error codes about the recipient or the message are permanent; those about our
    account, its configuration or throughput are transient, as are 401 (authentication), 429 and 5xx and
    missing credentials. Another 4xx with an unknown code, and any other error, is left to the chain."""
    if not isinstance(error, TwilioError):
        return None
    status = error.status_code
    if status is None or status in (401, 429) or status >= 500:
        return ErrorClass.TRANSIENT
    if error.provider_code in PERMANENT_CODES:
        return ErrorClass.PERMANENT
    if error.provider_code in TRANSIENT_CODES:
        return ErrorClass.TRANSIENT
    return None


class TwilioSmsProvider:
    """Twilio's Messages API, bounded by the call's timeout (see the module docstring).

    Parameters
    ----------
    sender : str
        An E.164 number or alphanumeric sender ID (sent as `From`), or a messaging service SID starting
        with `MG` (sent as `MessagingServiceSid`).
    credentials : Callable[[], Mapping[str, Any]]
        Returns the secret's JSON, `{"account_sid": ..., "auth_token": ...}`; called on every send.
    base_url : str
        Twilio's API (`https://api.twilio.com`), or a sandbox's.
    status_callback_url : str | None
        Where Twilio posts delivery status (`{PROVIDER_EVENTS_URL}/provider-events/twilio`); the notification
        id is added to its query. No callbacks when None.
    http : ProviderHttp | None
        The transport; a pool of its own by default.
    clock : Clock
        Epoch seconds, to turn an HTTP-date `Retry-After` into a wait.
    """

    name = PROVIDER
    channel = Channel.SMS

    def __init__(
        self,
        *,
        sender: str,
        credentials: Callable[[], Mapping[str, Any]],
        base_url: str,
        status_callback_url: str | None = None,
        http: ProviderHttp | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self._sender_field = "MessagingServiceSid" if sender.startswith(MESSAGING_SERVICE_PREFIX) else "From"
        self._sender = sender
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._status_callback_url = status_callback_url or None
        self._http = http or ProviderHttp(PROVIDER)
        self._clock = clock

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def status_callback(self, record: NotificationRecord) -> str | None:
        """The StatusCallback URL for this notification: the configured URL with `notification_id` added."""
        if self._status_callback_url is None:
            return None
        separator = "&" if "?" in self._status_callback_url else "?"
        return f"{self._status_callback_url}{separator}notification_id={quote(record.id, safe='')}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        """Create the message; Twilio's 201 Created is a receipt with the message SID."""
        if record.recipient.phone is None:
            raise UndeliverableError("recipient has no phone number")
        credentials = self._read_credentials()
        fields = {"To": record.recipient.phone, self._sender_field: self._sender, "Body": record.body}
        callback = self.status_callback(record)
        if callback is not None:
            fields["StatusCallback"] = callback
        basic = base64.b64encode(f"{credentials.account_sid}:{credentials.auth_token}".encode()).decode()
        answer = self._http.post_form(
            f"{self._base_url}/{API_VERSION}/Accounts/{credentials.account_sid}/Messages.json",
            fields,
            timeout=timeout,
            headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
        )
        if not answer.ok:
            raise self._refusal(answer)
        body = answer.json()
        sid = body.get("sid") if isinstance(body, dict) else None
        # A 2xx means Twilio took the message: without a readable SID it is still sent, never sent again.
        return ProviderReceipt(provider=self.name, message_id=sid if isinstance(sid, str) and sid else None)

    def _read_credentials(self) -> TwilioCredentials:
        try:
            return TwilioCredentials.model_validate(self._credentials())
        except Exception as error:  # noqa: BLE001 - any failure to read the secret is the same failure
            raise TwilioCredentialsUnavailable(f"{PROVIDER} credentials unavailable ({type(error).__name__})") from None

    def _refusal(self, answer: HttpAnswer) -> TwilioError:
        code = _error_code(answer.json())
        message = f"{PROVIDER} answered HTTP {answer.status}" + (f" (code {code})" if code else "")
        return TwilioError(
            message, status_code=answer.status, retry_after=answer.retry_after(self._clock()), provider_code=code
        )


def _error_code(body: Any) -> str | None:
    """Twilio's error code (`{"code": 21211, "message", "more_info", "status"}`) as text, if it has one."""
    code = body.get("code") if isinstance(body, dict) else None
    if isinstance(code, bool):
        return None
    if isinstance(code, int) or (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) <= 10):
        return str(code)
    return None
