"""Email through Amazon SES v2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.errors import DeliveryError, UndeliverableError
from notifications.models import Channel
from notifications.providers import ProviderReceipt
from resilience import ErrorClass

if TYPE_CHECKING:
    from mypy_boto3_sesv2 import SESV2Client

    from notifications.models import NotificationRecord

# Errors about this one message: retrying cannot help.
_PERMANENT = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
# Errors about the account or its configuration are *not* permanent for the message: once an operator
# fixes them, a retry or a redrive from the dead-letter queue delivers it.
PROVIDER = "ses"


class SesError(DeliveryError):
    """SES answered with an error (its code in `provider_code`) or could not be reached (no code)."""


def classify_ses_error(error: BaseException) -> ErrorClass | None:
    """SES's rules: a refused message is permanent; anything else SES says is about the account or the
    service (sending paused, quota, throttling, an unverified identity), so the message is retried."""
    if not isinstance(error, SesError) or error.provider_code is None:
        return None
    return ErrorClass.PERMANENT if error.provider_code in _PERMANENT else ErrorClass.TRANSIENT


class SesEmailProvider:
    """Amazon SES v2 `SendEmail`; the client's own timeouts bound the call (`notifications.aws`)."""

    name = PROVIDER
    channel = Channel.EMAIL

    def __init__(self, sender: str, client: SESV2Client | None = None, configuration_set: str | None = None) -> None:
        self._sender = sender
        self._client = client or aws.client("sesv2")
        self._configuration_set = configuration_set

    def breaker_name(self, record: NotificationRecord) -> str:
        return f"provider:{self.name}"

    def send(self, record: NotificationRecord, *, timeout: float) -> ProviderReceipt:
        if record.recipient.email is None:
            raise UndeliverableError("recipient has no email address")
        request: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": [record.recipient.email]},
            "Content": {
                "Simple": {
                    "Subject": {"Data": record.subject or "", "Charset": "UTF-8"},
                    "Body": {"Text": {"Data": record.body, "Charset": "UTF-8"}},
                    "Headers": [{"Name": "X-Notification-Id", "Value": record.id}],
                }
            },
            # Carried into SES events, so receipts and duplicates can be traced to the notification.
            "EmailTags": [{"Name": "notification_id", "Value": record.id}],
        }
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        try:
            response = self._client.send_email(**request)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", "Unknown"))
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            raise SesError(f"SES refused the message ({code})", provider_code=code, status_code=status) from error
        except BotoCoreError as error:
            raise SesError(f"SES unreachable ({type(error).__name__})") from error
        return ProviderReceipt(provider=self.name, message_id=response.get("MessageId"))
