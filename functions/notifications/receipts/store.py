"""Applying delivery receipts to status records on the notifications table: one conditional write each.

A receipt reads the record (a consistent `GetItem`), asks `transitions.judge` what the receipt does to
it, and, when it applies, writes `transitions.change` with one `UpdateItem` conditioned on the version
it read and on the statuses the receipt applies from. If the record changed in between (another
receipt landed first), DynamoDB answers with the record as it now is and the receipt is judged again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws, records
from notifications.clock import Clock, system_clock
from notifications.errors import StoreUnavailable
from notifications.receipts import transitions
from notifications.receipts.events import ReceiptOutcome
from notifications.receipts.transitions import ReceiptResult, Verdict
from notifications.store import DynamoDBStatusStore, from_item
from resilience.conditional.dynamodb import render

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from notifications.models import NotificationRecord
    from notifications.receipts.events import ReceiptEvent

# Writes tried for one receipt while other writers keep changing the record; then the message is kept.
MAX_WRITE_ATTEMPTS = 3


class ReceiptStore:
    """Moves status records on as receipts report (`delivered`, `failed`), never backwards.

    Parameters
    ----------
    table_name : str
        The notifications table (hash key `id`).
    client : DynamoDBClient | None
        Injected in tests; a real client by default.
    clock : Clock
        The time written as `updated_at` and in the history.

    Every failure to reach DynamoDB is raised as `StoreUnavailable`: the caller keeps the report and
    tries it again later.
    """

    def __init__(self, table_name: str, client: DynamoDBClient | None = None, clock: Clock = system_clock) -> None:
        self._table = table_name
        self._client = client or aws.client("dynamodb")
        self._clock = clock
        self._records = DynamoDBStatusStore(table_name, client=self._client, clock=clock)

    def apply(self, event: ReceiptEvent) -> ReceiptResult:
        """Apply one receipt: `APPLIED`, `IGNORED`, `NOT_YET` (the caller retries later) or `UNKNOWN`."""
        if event.outcome is ReceiptOutcome.NOTHING:
            return ReceiptResult.IGNORED  # nothing to write, so nothing to read
        record = self._records.get(event.notification_id)
        for _ in range(MAX_WRITE_ATTEMPTS):
            if record is None:
                return ReceiptResult.UNKNOWN
            verdict = transitions.judge(record.status, event.outcome)
            if verdict is not Verdict.APPLY:
                return transitions.result_of(verdict)
            written, record = self._write(record, event)
            if written:
                return ReceiptResult.APPLIED
        raise StoreUnavailable("the status record kept changing; the receipt is left for a retry")

    def _write(self, record: NotificationRecord, event: ReceiptEvent) -> tuple[bool, NotificationRecord | None]:
        """One conditional write: (True, the record as read) or (False, the record as it now is)."""
        update, condition = transitions.change(record, event, now=self._clock())
        try:
            self._client.update_item(
                TableName=self._table,
                Key={records.ID: {"S": record.id}},
                **render(update, condition),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
            item = error.response.get("Item")
            return False, from_item(item) if item else None
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return True, record


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _unavailable(error: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"status store unavailable ({type(error).__name__})")
