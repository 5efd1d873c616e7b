"""The status store: one DynamoDB item per notification, changed only by conditional writes.

The item is at once the notification, its idempotency record (the id of a keyed request is derived from
the key) and its delivery history. A sender *claims* an item with a lease before it calls a provider, so
two copies of one SQS message (SQS is at-least-once) never deliver twice while the lease holds, and a
sender that dies mid-delivery does not wedge the notification: its lease expires and the redelivered
message claims it again.

A batch accept writes many records in few requests, and takes back in one those whose messages could
not be queued: `batch_store.BatchWrites`, which the store delegates its batch methods to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws, records
from notifications.batch_store import (
    BATCH_GET_MAX_KEYS,
    BATCH_RETRY,
    BatchWrites,
    error_code,
    from_item,
    key_of,
    serialized,
    to_item,
)
from notifications.budget import UNBOUNDED
from notifications.clock import Clock, system_clock
from notifications.errors import StoreUnavailable
from notifications.ports import AlreadyExists, Claim
from resilience.clock import Sleep, system_sleep
from resilience.conditional.dynamodb import render

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mypy_boto3_dynamodb import DynamoDBClient

    from notifications.budget import TimeBudget
    from notifications.models import Channel, NotificationRecord
    from notifications.ports import Creation
    from resilience.conditional import Condition, ItemUpdate

# The item codec, imported from here by other stores (`receipts.store`), lives with the batch writes.
__all__ = ["DynamoDBStatusStore", "from_item", "to_item"]


class DynamoDBStatusStore:
    """The status store (`notifications.ports.StatusStore`) on the notifications table: conditional writes only.

    Every write is built as data by `notifications.records` (where each condition says which race it
    prevents) and rendered here to one `PutItem`, `DeleteItem` or `UpdateItem`.
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        clock: Clock = system_clock,
        sleep: Sleep = system_sleep,
    ) -> None:
        self._table = table_name
        self._client = client or aws.client("dynamodb")
        self._clock = clock
        self._sleep = sleep
        self._batch = BatchWrites(table_name, self._client, sleep)

    # ------------------------------------------------------------------ accept side
    def create(self, record: NotificationRecord) -> None:
        """Write a new record; raise AlreadyExists with the stored one if the id is taken."""
        item, condition = records.create(record)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=serialized(item),
                **render(condition=condition),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise AlreadyExists(from_item(error.response["Item"])) from error
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def create_many(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Create each record unless its id exists, in few transactions (`BatchWrites.create_many`)."""
        return self._batch.create_many(new_records, budget)

    def create_fresh(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Put records whose ids are fresh uuid4s, 25 to a `BatchWriteItem` (`BatchWrites.create_fresh`)."""
        return self._batch.create_fresh(new_records, budget)

    def delete_unqueued_many(self, unqueued: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> list[str]:
        """Take back records whose messages never reached SQS, in one transaction; the ids left behind."""
        return self._batch.delete_unqueued_many(unqueued, budget)

    def get(self, notification_id: str) -> NotificationRecord | None:
        try:
            response = self._client.get_item(TableName=self._table, Key=key_of(notification_id), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        item = response.get("Item")
        # The table also caches SNS push endpoints (`push-endpoint#...`): only a notification has a fingerprint.
        return from_item(item) if item and "fingerprint" in item else None

    def delete_unqueued(self, record: NotificationRecord) -> None:
        """Take back a record whose message never reached SQS, so a retry of the request starts clean."""
        try:
            self._client.delete_item(
                TableName=self._table, Key=key_of(record.id), **render(condition=records.delete_unqueued(record))
            )
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    # ------------------------------------------------------------------ delivery side
    def claim(self, notification_id: str, owner: str, lease_seconds: float) -> Claim:
        """Take a lease on a pending record for one delivery attempt, counting the attempt."""
        update, condition = records.claim(owner, lease_seconds, now=self._clock())
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key=key_of(notification_id),
                **render(update, condition),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except BotoCoreError as error:
            raise _unavailable(error) from error
        except ClientError as error:
            if error_code(error) != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
            item = error.response.get("Item")
            return records.refused_claim(from_item(item) if item else None)
        return Claim(record=from_item(response["Attributes"]))

    def mark_sent(
        self,
        record: NotificationRecord,
        owner: str,
        *,
        channel: Channel,
        provider: str,
        provider_message_id: str | None,
        reason: str,
    ) -> bool:
        """Record a delivery the provider accepted; False if our lease was lost meanwhile."""
        change = records.mark_sent(
            record,
            owner,
            channel=channel,
            provider=provider,
            provider_message_id=provider_message_id,
            reason=reason,
            now=self._clock(),
        )
        return self._write_owned(record, change)

    def mark_failed(self, record: NotificationRecord, owner: str, error: str, *, provider: str | None = None) -> bool:
        """A permanent failure: not retried."""
        change = records.mark_failed(record, owner, error, provider=provider, now=self._clock())
        return self._write_owned(record, change)

    def mark_dead_lettered(self, record: NotificationRecord, owner: str, error: str, *, reason: str) -> bool:
        """Retries (or deferrals) are exhausted; the message rests in the dead-letter queue, redrivable."""
        change = records.mark_dead_lettered(record, owner, error, reason=reason, now=self._clock())
        return self._write_owned(record, change)

    def record_retry(
        self, record: NotificationRecord, owner: str, error: str, *, next_attempt_at: float, provider: str | None
    ) -> bool:
        """A transient failure: back to `queued` with the attempt in history; the lease is released."""
        change = records.record_retry(
            record, owner, error, next_attempt_at=next_attempt_at, provider=provider, now=self._clock()
        )
        return self._write_owned(record, change)

    def defer(
        self, record: NotificationRecord, owner: str, reason: str, *, next_attempt_at: float, error: str | None = None
    ) -> bool:
        """ "Queue for later": no channel can be tried now (see `records.defer`)."""
        change = records.defer(record, owner, reason, next_attempt_at=next_attempt_at, error=error, now=self._clock())
        return self._write_owned(record, change)

    def release(self, record: NotificationRecord, owner: str) -> bool:
        """Give the lease back untouched (nothing was tried): the claim's attempt is not counted."""
        return self._write_owned(record, records.release(record, owner, now=self._clock()))

    # ------------------------------------------------------------------ dead letters
    def get_many(self, notification_ids: Sequence[str]) -> dict[str, NotificationRecord]:
        """The records of these ids that exist, by id: `BatchGetItem`, 100 keys a request, consistent reads.

        Keys DynamoDB leaves unprocessed (throttling) are asked again after a short backoff, a few times;
        any still unread then, or any failure, raises StoreUnavailable.
        """
        found: dict[str, NotificationRecord] = {}
        unique = list(dict.fromkeys(notification_ids))
        for start in range(0, len(unique), BATCH_GET_MAX_KEYS):
            keys: list[dict[str, Any]] = [key_of(i) for i in unique[start : start + BATCH_GET_MAX_KEYS]]
            for attempt in range(1, BATCH_RETRY.max_attempts + 1):
                keys = self._get_batch(keys, found)
                if not keys:
                    break
                if attempt == BATCH_RETRY.max_attempts:
                    raise StoreUnavailable(f"status store throttled reads of {len(keys)} records")
                self._sleep(BATCH_RETRY.delay(attempt))
        return found

    def requeue_dead_lettered(self, record: NotificationRecord, detail: str) -> bool:
        """A dead-lettered record back to `queued` (a redrive); False if it is no longer the one read."""
        return self._write_owned(record, records.requeue_dead_lettered(record, detail, now=self._clock()))

    def mark_abandoned(self, record: NotificationRecord, reason: str) -> bool:
        """A pending record whose message reached the DLQ: `dead_lettered`; False if it moved on meanwhile."""
        return self._write_owned(record, records.mark_abandoned(record, reason, now=self._clock()))

    def _get_batch(self, keys: list[dict[str, Any]], found: dict[str, NotificationRecord]) -> list[dict[str, Any]]:
        """One `BatchGetItem`: adds the notifications it returns to `found`; returns the keys left unprocessed."""
        try:
            response = self._client.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        for item in response.get("Responses", {}).get(self._table, []):
            if "fingerprint" in item:  # a notification, not a cached push endpoint sharing the table
                record = from_item(item)
                found[record.id] = record
        unprocessed: Any = response.get("UnprocessedKeys", {}).get(self._table)
        return list(unprocessed["Keys"]) if unprocessed else []

    # ------------------------------------------------------------------ helpers
    def _write_owned(self, record: NotificationRecord, change: tuple[ItemUpdate, Condition]) -> bool:
        """One conditional write (`records` builds it); False if its condition failed (the lease was lost, or
        the record moved on)."""
        update, condition = change
        try:
            self._client.update_item(TableName=self._table, Key=key_of(record.id), **render(update, condition))
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return True


def _unavailable(error: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"status store unavailable ({type(error).__name__})")
