"""The status store's batch writes: a batch accept's records in few requests, and taken back in one.

Fresh random ids go in `BatchWriteItem`s (25 a request, no condition needed), idempotency keys in
`TransactWriteItems` (up to 100 conditional puts and 4 MB). When some keys of a transaction exist already
DynamoDB cancels it all, says which items failed their condition (`CancellationReasons`, in request order,
with the stored item thanks to `ReturnValuesOnConditionCheckFailure`), and the others are sent again.
Each forward request (write, read back, retry) is sent only if the caller's `TimeBudget` allows it; what it
stops is reported failed. Records whose messages could not be queued are taken back in one transaction of
conditional deletes, whose time the budget kept. The item codec (`to_item`, `from_item`) lives here too.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from notifications import records
from notifications.budget import UNBOUNDED
from notifications.errors import StoreUnavailable
from notifications.observability import logger
from notifications.ports import Creation
from resilience.backoff import RetryPolicy
from resilience.conditional.dynamodb import render, serialize

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

    from notifications.budget import TimeBudget
    from notifications.models import NotificationRecord
    from resilience.clock import Sleep
    from resilience.conditional import Value

_deserializer = TypeDeserializer()
_T = TypeVar("_T")

# DynamoDB's limits per request.
BATCH_WRITE_MAX_ITEMS = 25
BATCH_GET_MAX_KEYS = 100
TRANSACTION_MAX_ITEMS = 100
TRANSACTION_MAX_BYTES = 4 * 1024 * 1024  # the items' aggregate size; `_size_of` overestimates it
# Unprocessed batch items and transaction items cancelled by contention (not by their own condition) are
# sent again after a short full-jitter backoff: 4 rounds at most, each only if the budget allows it.
BATCH_RETRY = RetryPolicy(base_seconds=0.05, cap_seconds=0.4, max_attempts=4)
_CONDITION_FAILED = "ConditionalCheckFailed"
_INNOCENT = "None"  # this item was fine: the transaction failed for another item's reason
# Reasons of a cancellation that a later transaction can get past: another writer holding the item,
# throttling. Any other reason (a validation error) would fail again.
_CONTENDED = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


class BatchWrites:
    """The batch writes of `store.DynamoDBStatusStore` (which delegates to it) on the notifications table."""

    def __init__(self, table_name: str, client: DynamoDBClient, sleep: Sleep) -> None:
        self._table = table_name
        self._client = client
        self._sleep = sleep  # the backoff between a batch's retries (tests record it instead of waiting)

    def create_many(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Create each record unless its id exists (`records.create`'s condition), in few transactions.

        Records whose id exists come back in `Creation.existing` with the stored record; records not written
        (the store unavailable, contention beyond the retries, the budget spent) in `Creation.failed`. When a
        transaction's answer is lost, its records are read back: one stored exactly as sent was written; one
        left unread (no time) is failed, and may stay stored: its key's replay finds it and queues it.
        """
        batch = _KeyedBatch({record.id: record for record in new_records})
        for attempt in range(1, BATCH_RETRY.max_attempts + 1):
            contended = False
            for chunk in _transactions(list(batch.pending.values())):
                if batch.in_doubt:
                    break  # learn what the failed transaction did before sending more
                if not batch.stopped and not budget.allows_call():
                    batch.out_of_time()
                contended |= self._transact(chunk, batch)
            if batch.unread and not batch.stopped:
                self._read_back(batch, budget)
            if not batch.pending or batch.stopped or attempt == BATCH_RETRY.max_attempts:
                break
            if contended:
                self._sleep(BATCH_RETRY.delay(attempt))
        batch.failed.update(batch.pending)
        return Creation(created=frozenset(batch.created), existing=batch.existing, failed=frozenset(batch.failed))

    def create_fresh(self, new_records: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> Creation:
        """Put records whose ids are fresh uuid4s (`records.create_fresh`), 25 to a `BatchWriteItem`.

        A request that fails after it may have landed (a lost response) is followed by deleting its records
        again, so every id in `Creation.failed` is absent from the table: nothing is left without a message.
        """
        created: set[str] = set()
        failed: set[str] = set()
        stopped = False
        for chunk in _chunks(new_records, BATCH_WRITE_MAX_ITEMS):
            ids = [record.id for record in chunk]
            if not stopped and not budget.allows_call():
                stopped = True
                logger.warning("batch write stopped: out of time", extra={"records": len(new_records) - len(failed)})
            if stopped:
                failed.update(ids)
                continue
            puts: list[dict[str, Any]] = [
                {"PutRequest": {"Item": serialized(records.create_fresh(record))}} for record in chunk
            ]
            try:
                unprocessed = self._until_processed(self._write_batch, puts, budget)
            except (ClientError, BotoCoreError) as error:
                # Whatever the chunk's fate, the next chunks would meet the same outage: stop there.
                stopped = True
                failed.update(ids)
                if may_have_landed(error):
                    self._take_back_fresh(ids, budget)
                logger.warning("batch write failed", extra={"records": len(ids), "error_type": type(error).__name__})
                continue
            not_written = {str(request["PutRequest"]["Item"][records.ID]["S"]) for request in unprocessed}
            failed.update(not_written)
            created.update(set(ids) - not_written)
        return Creation(created=frozenset(created), failed=frozenset(failed))

    def delete_unqueued_many(self, unqueued: Sequence[NotificationRecord], budget: TimeBudget = UNBOUNDED) -> list[str]:
        """Take back records whose messages never reached SQS (`records.delete_unqueued`'s conditional deletes,
        100 to a transaction); returns the ids it could not take back. The first transaction is sent whatever
        the budget (it kept that time); a second, or the one retry of a cancelled one, only if it allows."""
        left: list[str] = []
        for position, chunk in enumerate(_chunks(unqueued, TRANSACTION_MAX_ITEMS)):
            if position and not budget.allows_call():
                left.extend(record.id for record in chunk)
            else:
                left.extend(self._take_back(chunk, budget))
        return left

    # ------------------------------------------------------------------ keyed records
    def _transact(self, chunk: list[NotificationRecord], batch: _KeyedBatch) -> bool:
        """One transaction of conditional puts; sorts its records into `batch`. True if contention cancelled it."""
        if batch.stopped:
            batch.fail(chunk)
            return False
        try:
            self._client.transact_write_items(TransactItems=[self._conditional_put(record) for record in chunk])
        except (ClientError, BotoCoreError) as error:
            if isinstance(error, ClientError) and error_code(error) == "TransactionCanceledException":
                response: dict[str, Any] = dict(error.response)
                return batch.cancelled(chunk, response.get("CancellationReasons"))
            if may_have_landed(error):
                # botocore's own retries carried one ClientRequestToken, so the transaction landed once or
                # not at all; reading the records back tells which. (A keyed record is never deleted on a
                # guess: a concurrent request with the key may own it.)
                batch.doubt(chunk, error)
            else:
                batch.fail(chunk, error)
        else:
            batch.created.update(record.id for record in chunk)
            for record in chunk:
                del batch.pending[record.id]
        return False

    def _conditional_put(self, record: NotificationRecord) -> TransactWriteItemTypeDef:
        item, condition = records.create(record)
        put: Any = {
            "TableName": self._table,
            "Item": serialized(item),
            **render(condition=condition),
            # The stored item comes back in the cancellation reason: no read is needed to replay it.
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        return {"Put": put}

    def _read_back(self, batch: _KeyedBatch, budget: TimeBudget) -> None:
        """Read the records a transaction left in doubt, or whose stored item its cancellation did not return."""
        ids, batch.unread, batch.in_doubt = batch.unread, [], False
        try:
            found = self._read_many(ids, budget)
        except (ClientError, BotoCoreError, StoreUnavailable) as error:
            batch.fail(list(batch.pending.values()), error)
            return
        for notification_id in ids:
            stored = found.get(notification_id)
            if stored is None:
                continue  # not written (or taken back since): it stays pending, to create again
            if stored == batch.pending[notification_id]:
                batch.created.add(notification_id)  # exactly what this batch sent: the transaction landed
            else:
                batch.existing[notification_id] = stored
            del batch.pending[notification_id]

    def _read_many(self, ids: list[str], budget: TimeBudget) -> dict[str, NotificationRecord]:
        found: dict[str, NotificationRecord] = {}

        def read(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
            response = self._client.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
            for item in response.get("Responses", {}).get(self._table, []):
                record = from_item(item)
                found[record.id] = record
            unprocessed: Any = response.get("UnprocessedKeys", {}).get(self._table)
            return list(unprocessed["Keys"]) if unprocessed else []

        for chunk in _chunks(ids, BATCH_GET_MAX_KEYS):
            if not budget.allows_call():
                raise StoreUnavailable(f"no time left to read back {len(ids)} records")
            unread = self._until_processed(read, [key_of(notification_id) for notification_id in chunk], budget)
            if unread:
                raise StoreUnavailable(f"status store throttled reads of {len(unread)} records")
        return found

    # ------------------------------------------------------------------ fresh records
    def _write_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One `BatchWriteItem` of put or delete requests; returns the ones DynamoDB left unprocessed."""
        written: list[Any] = requests
        response = self._client.batch_write_item(RequestItems={self._table: written})
        unprocessed: list[Any] = response.get("UnprocessedItems", {}).get(self._table, [])
        return unprocessed

    def _until_processed(self, call: Callable[[list[_T]], list[_T]], items: list[_T], budget: TimeBudget) -> list[_T]:
        """`call(items)` returns what DynamoDB left unprocessed; send that again after a backoff, a few times
        (the first call is the caller's to allow, each retry the budget's). Returns what is still unprocessed
        after the last attempt (unprocessed means not applied)."""
        for attempt in range(1, BATCH_RETRY.max_attempts + 1):
            items = call(items)
            if not items or attempt == BATCH_RETRY.max_attempts:
                break
            self._sleep(BATCH_RETRY.delay(attempt))
            if not budget.allows_call():
                logger.warning("batch retry stopped: out of time", extra={"requests": len(items)})
                break
        return items

    def _take_back_fresh(self, ids: list[str], budget: TimeBudget) -> None:
        """Delete records whose write may have landed after all: they have no message and never will."""
        # Unconditional, and safe so: a fresh uuid4 is known to no other request, and its record was
        # never enqueued, so nothing else can have read or changed it.
        deletes: list[dict[str, Any]] = [{"DeleteRequest": {"Key": key_of(notification_id)}} for notification_id in ids]
        try:
            left = self._until_processed(self._write_batch, deletes, budget)
        except (ClientError, BotoCoreError) as error:
            left = deletes
            logger.error("batch take-back failed", extra={"error_type": type(error).__name__})
        for request in left:
            logger.error(
                "record may remain without a message",
                extra={"notification_id": request["DeleteRequest"]["Key"][records.ID]["S"]},
            )

    # ------------------------------------------------------------------ taking back unqueued records
    def _take_back(self, chunk: list[NotificationRecord], budget: TimeBudget) -> list[str]:
        """One transaction of conditional deletes, and once more for the others of a cancelled one."""
        for attempt in (1, 2):
            if attempt == 2 and not budget.allows_call():
                break
            try:
                self._client.transact_write_items(TransactItems=[self._conditional_delete(r) for r in chunk])
                return []
            except (ClientError, BotoCoreError) as error:
                cancelled = isinstance(error, ClientError) and error_code(error) == "TransactionCanceledException"
                reasons: list[Any] = (dict(error.response).get("CancellationReasons") or []) if cancelled else []
                if len(reasons) != len(chunk):  # not cancelled, or no telling which deletes would pass
                    logger.warning("batch take-back failed", extra={"error_type": type(error).__name__})
                    break
            # A failed condition: the record was moved on (a replay queued it, a sender claimed it) or is gone,
            # no longer ours to take back. The others were cancelled with it: once more.
            chunk = [r for r, reason in zip(chunk, reasons, strict=True) if reason.get("Code") != _CONDITION_FAILED]
            if not chunk:
                return []
        return [record.id for record in chunk]

    def _conditional_delete(self, record: NotificationRecord) -> TransactWriteItemTypeDef:
        condition = render(condition=records.delete_unqueued(record))
        delete: Any = {"TableName": self._table, "Key": key_of(record.id), **condition}
        return {"Delete": delete}


class _KeyedBatch:
    """Where each record of a `create_many` stands: pending (to send), created, existing or failed."""

    def __init__(self, pending: dict[str, NotificationRecord]) -> None:
        self.pending = pending
        self.created: set[str] = set()
        self.existing: dict[str, NotificationRecord] = {}
        self.failed: set[str] = set()
        self.unread: list[str] = []  # to read back: condition failed without the stored item, or in doubt
        self.in_doubt = False  # a transaction failed after it may have landed (its answer lost)
        # A request failed before DynamoDB could apply it (unreachable, refused), or the budget allows no
        # more: the rest of the batch fails at once instead of waiting on each.
        self.stopped = False

    def cancelled(self, chunk: list[NotificationRecord], reasons: list[dict[str, Any]] | None) -> bool:
        """Sort a cancelled transaction's records by their reasons; True if contention was among them."""
        if reasons is None or len(reasons) != len(chunk):
            # No reasons to go by (an SDK that does not parse them): read every record; those found exist,
            # the others are sent again.
            self.unread.extend(record.id for record in chunk)
            return False
        contended = False
        for record, reason in zip(chunk, reasons, strict=True):
            code = str(reason.get("Code") or _INNOCENT)
            if code == _CONDITION_FAILED:
                item = reason.get("Item")
                if item:
                    self.existing[record.id] = from_item(item)
                    del self.pending[record.id]
                else:
                    self.unread.append(record.id)
            elif code in _CONTENDED:
                contended = True
            elif code != _INNOCENT:
                self.failed.add(record.id)
                del self.pending[record.id]
                logger.warning("transaction item refused", extra={"notification_id": record.id, "reason": code})
        return contended

    def doubt(self, chunk: list[NotificationRecord], error: Exception) -> None:
        self.unread.extend(record.id for record in chunk)
        self.in_doubt = True
        logger.warning("batch create in doubt", extra={"records": len(chunk), "error_type": type(error).__name__})

    def fail(self, chunk: list[NotificationRecord], error: Exception | None = None) -> None:
        """The chunk's records were not written (`error`: the request that failed, which stops the batch)."""
        for record in chunk:
            self.failed.add(record.id)
            self.pending.pop(record.id, None)
        if error is not None:
            self.stopped = True
            logger.warning("batch create failed", extra={"records": len(chunk), "error_type": type(error).__name__})

    def out_of_time(self) -> None:
        """The budget allows no more requests: what is pending fails (records in doubt stay unread)."""
        self.stopped = True
        logger.warning("batch create stopped: out of time", extra={"records": len(self.pending)})


def _chunks(items: Sequence[_T], size: int) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _transactions(pending: list[NotificationRecord]) -> Iterator[list[NotificationRecord]]:
    """Chunks within a transaction's limits: `TRANSACTION_MAX_ITEMS` items and `TRANSACTION_MAX_BYTES`."""
    chunk: list[NotificationRecord] = []
    size = 0
    for record in pending:
        item_size = _size_of(record)
        if chunk and (len(chunk) == TRANSACTION_MAX_ITEMS or size + item_size > TRANSACTION_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += item_size
    if chunk:
        yield chunk


def _size_of(record: NotificationRecord) -> int:
    """An upper bound of the item's size as DynamoDB counts it (its JSON adds quotes and type tags)."""
    return len(json.dumps(to_item(record), separators=(",", ":"), default=str).encode())


# ---------------------------------------------------------------------- items and errors (shared with `store`)
def to_item(record: NotificationRecord) -> dict[str, Any]:
    """A record as a DynamoDB item; `data` is kept as a JSON string so floats survive unchanged."""
    return serialized(records.to_attributes(record))


def from_item(item: Mapping[str, Any]) -> NotificationRecord:
    return records.from_attributes({key: _plain(_deserializer.deserialize(value)) for key, value in item.items()})


def serialized(attributes: Mapping[str, Value]) -> dict[str, Any]:
    return {key: serialize(value) for key, value in attributes.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def may_have_landed(error: Exception) -> bool:
    """Whether a failed request may have been applied all the same (its response lost on the way back)."""
    if isinstance(error, ClientError):
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return not isinstance(error, EndpointConnectionError)  # connect failures never reached DynamoDB


def key_of(notification_id: str) -> dict[str, Any]:
    return {records.ID: {"S": notification_id}}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
