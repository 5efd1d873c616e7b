"""Erasure by recipient: delete every notification sent to one email address, phone number or device token.

Records carry a keyed hash of each personal address (`KeyedIds.for_address`), and the status table has one
sparse index per kind (`by-email`, `by-phone`, `by-device-token`, keys only), so an erasure reads just the
ids it deletes. A message still queued for an erased notification finds no record and is dropped by the
sender (a claim of a missing record); a delivery in flight cannot write its outcome back (its writes are
conditional on the record's lease). The index is eventually consistent: a notification accepted while the
erasure runs may be missed, so run it again after a few seconds to be sure (it answers 0 when nothing is
left).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications.errors import StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient

    from notifications.ids import KeyedIds

INDEX_BY_KIND = {"email": "by-email", "phone": "by-phone", "device_token": "by-device-token"}
_BATCH = 25  # BatchWriteItem's most requests
_ROUNDS = 8  # attempts at the items DynamoDB left unprocessed (throttling), with the SDK's own backoff between


class RecipientEraser:
    """Finds a recipient's notifications through the index of their address's kind and deletes them."""

    def __init__(self, table: str, *, client: DynamoDBClient, ids: KeyedIds) -> None:
        self._table = table
        self._client = client
        self._ids = ids

    def erase(self, kind: str, address: str) -> int:
        """Delete every notification to `address` (of `kind`: email, phone, device_token); how many were."""
        index = INDEX_BY_KIND[kind]
        attribute = f"{kind}_hash"
        removed = 0
        batch: list[str] = []
        try:
            for notification_id in self._ids_of(index, attribute, self._ids.for_address(kind, address)):
                batch.append(notification_id)
                if len(batch) == _BATCH:
                    removed += self._delete(batch)
                    batch = []
            if batch:
                removed += self._delete(batch)
        except (ClientError, BotoCoreError) as error:
            raise StoreUnavailable(
                f"the status table failed after {removed} notifications were erased; run the erasure again"
            ) from error
        return removed

    def _ids_of(self, index: str, attribute: str, hashed: str) -> Iterator[str]:
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=index,
            KeyConditionExpression="#h = :h",
            ExpressionAttributeNames={"#h": attribute},
            ExpressionAttributeValues={":h": {"S": hashed}},
            ProjectionExpression="id",
        ):
            for item in page.get("Items", []):
                yield item["id"]["S"]

    def _delete(self, ids: list[str]) -> int:
        requests: list[dict[str, Any]] = [{"DeleteRequest": {"Key": {"id": {"S": value}}}} for value in ids]
        for _ in range(_ROUNDS):
            response = self._client.batch_write_item(RequestItems={self._table: requests})  # type: ignore[dict-item]
            requests = [dict(request) for request in response.get("UnprocessedItems", {}).get(self._table, [])]
            if not requests:
                return len(ids)
        raise StoreUnavailable("the status table kept throttling the erasure; run it again")
