"""Sending accepted notifications to SQS: the queue is chosen by priority."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.errors import ServiceUnavailable
from notifications.models import Priority, QueueMessage


@dataclass(frozen=True)
class QueueUrls:
    priority: str
    standard: str
    batch: str

    def for_priority(self, priority: Priority, *, batch: bool = False) -> tuple[str, str]:
        """(queue name, URL): critical and high go to the priority queue, /batch to the batch queue."""
        if priority in {Priority.CRITICAL, Priority.HIGH}:
            return "priority", self.priority
        if batch:
            return "batch", self.batch
        return "standard", self.standard

    def url_of(self, name: str) -> str:
        urls: dict[str, str] = {"priority": self.priority, "standard": self.standard, "batch": self.batch}
        return urls[name]


class Enqueuer:
    """Puts notification ids on their queue."""

    def __init__(self, urls: QueueUrls, client: Any = None) -> None:
        self.urls = urls
        self._client = client or aws.client("sqs")

    def send(self, queue_url: str, message: QueueMessage, priority: Priority) -> str:
        """Send one message; raise ServiceUnavailable when SQS cannot take it."""
        try:
            response = self._client.send_message(
                QueueUrl=queue_url,
                MessageBody=message.model_dump_json(),
                MessageAttributes={"priority": {"DataType": "String", "StringValue": priority.value}},
            )
        except (ClientError, BotoCoreError) as error:
            raise ServiceUnavailable(f"queue unavailable ({type(error).__name__})") from error
        return str(response["MessageId"])
