"""The status store: one DynamoDB item per notification, changed only by conditional writes.

The item is at once the notification, its idempotency record (the id of a keyed request is derived from
the key) and its delivery history. A sender *claims* an item with a lease before it calls a provider, so
two copies of one SQS message (SQS is at-least-once) never deliver twice while the lease holds, and a
sender that dies mid-delivery does not wedge the notification: its lease expires and the redelivered
message claims it again.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from notifications.clock import Clock, iso, system_clock
from notifications.errors import StoreUnavailable
from notifications.models import PENDING_STATUSES, Channel, HistoryEntry, NotificationRecord, Status
from notifications.ports import AlreadyExists, Claim, ClaimRefusal, bounded_history

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(record: NotificationRecord) -> dict[str, Any]:
    """A record as a DynamoDB item; `data` is kept as a JSON string so floats survive unchanged."""
    plain = record.model_dump(mode="json", exclude_none=True, exclude={"data"})
    if record.data is not None:
        plain["data_json"] = json.dumps(record.data, separators=(",", ":"))
    return {key: _serializer.serialize(value) for key, value in plain.items()}


def from_item(item: Mapping[str, Any]) -> NotificationRecord:
    plain = {key: _plain(_deserializer.deserialize(value)) for key, value in item.items()}
    if "data_json" in plain:
        plain["data"] = json.loads(plain.pop("data_json"))
    return NotificationRecord.model_validate(plain, strict=False)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class DynamoDBStatusStore:
    """The status store (`notifications.ports.StatusStore`) on the notifications table: conditional writes only."""

    def __init__(self, table_name: str, client: DynamoDBClient | None = None, clock: Clock = system_clock) -> None:
        self._table = table_name
        self._client = client or aws.client("dynamodb")
        self._clock = clock

    # ------------------------------------------------------------------ accept side
    def create(self, record: NotificationRecord) -> None:
        """Write a new record; raise AlreadyExists with the stored one if the id is taken."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=to_item(record),
                # Race prevented: two requests with one idempotency key (same derived id) both creating
                # a notification. Exactly one put wins; the other sees the winner's record.
                ConditionExpression="attribute_not_exists(id)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                raise AlreadyExists(from_item(error.response["Item"])) from error
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    def get(self, notification_id: str) -> NotificationRecord | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"id": {"S": notification_id}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise _unavailable(error) from error
        item = response.get("Item")
        return from_item(item) if item else None

    def delete_unqueued(self, record: NotificationRecord) -> None:
        """Take back a record whose message never reached SQS, so a retry of the request starts clean."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key={"id": {"S": record.id}},
                # Race prevented: deleting a record that something has already moved on (a replay that
                # re-enqueued it and a sender that claimed it); then it is no longer ours to take back.
                ConditionExpression="version = :version AND #status = :queued",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":version": {"N": str(record.version)},
                    ":queued": {"S": Status.QUEUED.value},
                },
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error

    # ------------------------------------------------------------------ delivery side
    def claim(self, notification_id: str, owner: str, lease_seconds: float) -> Claim:
        """Take a lease on a pending record for one delivery attempt, counting the attempt."""
        now = self._clock()
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": notification_id}},
                UpdateExpression=(
                    "SET lease_owner = :owner, lease_until = :until, attempts = attempts + :one, "
                    "version = version + :one, updated_at = :at"
                ),
                # Race prevented: two copies of one message (or a replay's re-enqueue) delivering the
                # same notification at once, and any delivery after a terminal status was written.
                ConditionExpression=(
                    "#status IN (:queued, :deferred) AND (attribute_not_exists(lease_until) OR lease_until < :now)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":owner": {"S": owner},
                    ":until": {"N": _number(now + lease_seconds)},
                    ":now": {"N": _number(now)},
                    ":one": {"N": "1"},
                    ":at": {"S": iso(now)},
                    ":queued": {"S": Status.QUEUED.value},
                    ":deferred": {"S": Status.DEFERRED.value},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except BotoCoreError as error:
            raise _unavailable(error) from error
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise _unavailable(error) from error
            item = error.response.get("Item")
            if not item:
                return Claim(record=None, refusal=ClaimRefusal.MISSING)
            record = from_item(item)
            refusal = ClaimRefusal.LEASED if record.status in PENDING_STATUSES else ClaimRefusal.TERMINAL
            return Claim(record=record, refusal=refusal)
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
        fields: dict[str, Any] = {"channel_used": channel.value, "provider": provider, "reason": reason}
        if provider_message_id:
            fields["provider_message_id"] = provider_message_id
        return self._write_owned(record, owner, Status.SENT, reason, fields=fields, remove=("error", "next_attempt_at"))

    def mark_failed(self, record: NotificationRecord, owner: str, error: str, *, provider: str | None = None) -> bool:
        """A permanent failure: not retried."""
        fields: dict[str, Any] = {"error": error, "reason": f"failed permanently: {error}"}
        if provider:
            fields["provider"] = provider
        return self._write_owned(record, owner, Status.FAILED, error, fields=fields, remove=("next_attempt_at",))

    def mark_dead_lettered(self, record: NotificationRecord, owner: str, error: str, *, reason: str) -> bool:
        """Retries (or deferrals) are exhausted; the message rests in the dead-letter queue, redrivable."""
        return self._write_owned(
            record,
            owner,
            Status.DEAD_LETTERED,
            reason,
            fields={"error": error, "reason": reason},
            remove=("next_attempt_at",),
        )

    def record_retry(
        self, record: NotificationRecord, owner: str, error: str, *, next_attempt_at: float, provider: str | None
    ) -> bool:
        """A transient failure: back to `queued` with the attempt in history; the lease is released."""
        detail = f"attempt {record.attempts} failed, will retry: {error}"
        fields: dict[str, Any] = {
            "error": error,
            "reason": f"retrying after a transient failure: {error}",
            "next_attempt_at": iso(next_attempt_at),
        }
        if provider:
            fields["provider"] = provider
        return self._write_owned(record, owner, Status.QUEUED, detail, fields=fields)

    def defer(
        self, record: NotificationRecord, owner: str, reason: str, *, next_attempt_at: float, error: str | None = None
    ) -> bool:
        """ "Queue for later": no channel can be tried now.

        `error` is the failure of an attempt made before the breaker opened; without one nothing was
        tried, and the claim's attempt is given back.
        """
        detail = f"{reason}; next attempt at {iso(next_attempt_at)}"
        fields = {"reason": reason, "next_attempt_at": iso(next_attempt_at)}
        if error is not None:
            fields["error"] = error
        return self._write_owned(
            record, owner, Status.DEFERRED, detail, fields=fields, attempts_delta=0 if error else -1
        )

    def release(self, record: NotificationRecord, owner: str) -> bool:
        """Give the lease back untouched (nothing was tried): the claim's attempt is not counted."""
        return self._write_owned(record, owner, None, None, fields={}, attempts_delta=-1)

    # ------------------------------------------------------------------ helpers
    def _write_owned(
        self,
        record: NotificationRecord,
        owner: str,
        status: Status | None,
        detail: str | None,
        *,
        fields: Mapping[str, Any],
        remove: tuple[str, ...] = (),
        attempts_delta: int = 0,
    ) -> bool:
        """One conditional write by the lease holder: new status, history entry, fields; the lease released."""
        now = self._clock()
        values: dict[str, Any] = {}
        names: dict[str, str] = {}
        sets: list[str] = []

        def assign(attribute: str, value: Any) -> None:
            index = len(names)
            names[f"#a{index}"] = attribute
            values[f":v{index}"] = _serializer.serialize(value)
            sets.append(f"#a{index} = :v{index}")

        assign("updated_at", iso(now))
        if status is not None:
            entry = HistoryEntry(status=status, at=iso(now), detail=detail)
            history = bounded_history([*record.history, entry])
            assign("status", status.value)
            assign("history", [item.model_dump(mode="json", exclude_none=True) for item in history])
        for attribute, value in fields.items():
            assign(attribute, value)
        names["#version"] = "version"
        update = f"SET {', '.join(sets)}, #version = #version + :one"
        if attempts_delta:
            names["#attempts"] = "attempts"
            update += ", #attempts = #attempts + :attempts"
            values[":attempts"] = {"N": str(attempts_delta)}
        removals = ["lease_owner", "lease_until"]
        for attribute in remove:
            names[f"#r{len(removals)}"] = attribute
            removals.append(f"#r{len(removals)}")
        update += f" REMOVE {', '.join(removals)}"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": record.id}},
                UpdateExpression=update,
                # Race prevented: a sender whose lease expired (it was too slow) overwriting the outcome
                # of the sender that claimed the notification after it. Only the lease holder writes,
                # which is also why the history can be rewritten whole from the claimed copy.
                ConditionExpression="lease_owner = :owner",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={**values, ":owner": {"S": owner}, ":one": {"N": "1"}},
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise _unavailable(error) from error
        except BotoCoreError as error:
            raise _unavailable(error) from error
        return True


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _number(value: float) -> str:
    return f"{value:.3f}"


def _unavailable(error: Exception) -> StoreUnavailable:
    return StoreUnavailable(f"status store unavailable ({type(error).__name__})")
