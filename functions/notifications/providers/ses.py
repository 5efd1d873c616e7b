"""Email through Amazon SES v2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.errors import DeliveryError
from notifications.providers import ProviderReceipt

if TYPE_CHECKING:
    from notifications.models import NotificationRecord

# Errors about this one message: retrying cannot help.
_PERMANENT = frozenset({"MessageRejected", "BadRequestException", "InvalidParameterValue"})
# Errors about the account or its configuration are *not* permanent for the message: once an operator
# fixes them, a retry or a redrive from the dead-letter queue delivers it.


class SesEmailProvider:
    name = "ses"

    def __init__(self, sender: str, client: Any = None, configuration_set: str | None = None) -> None:
        self._sender = sender
        self._client = client or aws.client("sesv2")
        self._configuration_set = configuration_set

    def send(self, record: NotificationRecord) -> ProviderReceipt:
        if record.recipient.email is None:
            raise DeliveryError("recipient has no email address", permanent=True)
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
            raise DeliveryError(f"SES refused the message ({code})", permanent=code in _PERMANENT) from error
        except BotoCoreError as error:
            raise DeliveryError(f"SES unreachable ({type(error).__name__})", permanent=False) from error
        return ProviderReceipt(provider=self.name, message_id=response.get("MessageId"))
