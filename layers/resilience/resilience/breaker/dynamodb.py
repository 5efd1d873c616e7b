"""DynamoDB breaker store: with `resilience.conditional.dynamodb`, the library's only code that imports boto3.

Item design (table ``RESILIENCE_TABLE``: ``pk`` S hash, ``sk`` S range, TTL ``expires_at``)
------------------------------------------------------------------------------------------
One item per breaker: ``pk = "breaker#<name>"``, ``sk = "state"``. It holds the state machine
(``state``, ``version``, ``opened_at``, ``open_until``, ``open_count``, ``window_start``,
``probe_successes``, probe slots ``lease<k>``/``lease<k>_until``) and the fleet-wide sliding window
as plain numeric attributes per bucket: ``c<bucket-start>`` calls, ``f<...>`` failures,
``s<...>`` slow calls.

Why buckets live in the state item rather than as ``sk = "bucket#<epoch>"`` items with a TTL:
the cost rule is one ``UpdateItem`` per breaker per write. Top-level numeric attributes take an
atomic ``ADD`` that creates them when missing, so one write increments every bucket it touches,
deletes (``REMOVE``) buckets that slid out of the window, and returns the whole item
(``ReturnValues=ALL_NEW``), fleet counters and state together, in that single request. One
``GetItem`` likewise reads state and window at once; bucket items would need a ``Query`` per read
and one write per bucket. Only an environment that has a failure or a slow call to report ever
writes (its successes with it), the window holds at most ``window_seconds / bucket_seconds + 1``
buckets, so the item stays small (a few dozen attributes at most, well under 1 KB), and a
healthy breaker has no item at all, or an idle one that TTL removes.

Reads are eventually consistent (half the price) except for admin operations: every write is
conditional, so a stale read can cost a lost race, never a wrong transition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from resilience.breaker.store import BreakerStore, ItemUpdate
from resilience.conditional.dynamodb import render
from resilience.errors import ConditionFailedError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import Condition

PARTITION_KEY = "pk"
SORT_KEY = "sk"
ITEM_SORT_KEY = "state"
KEY_PREFIX = "breaker#"

# A breaker must never hold a Lambda invocation hostage: short timeouts, one retry, then fail open.
DEFAULT_CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"max_attempts": 2, "mode": "standard"},
)


def item_key(name: str) -> dict[str, dict[str, str]]:
    """The primary key of breaker ``name``'s item."""
    return {PARTITION_KEY: {"S": f"{KEY_PREFIX}{name}"}, SORT_KEY: {"S": ITEM_SORT_KEY}}


def from_dynamodb(item: Mapping[str, Mapping[str, Any]]) -> dict[str, AttributeValue]:
    """Deserialise an item's string and number attributes (the key attributes are dropped)."""
    result: dict[str, AttributeValue] = {}
    for key, typed in item.items():
        if key in (PARTITION_KEY, SORT_KEY):
            continue
        if "N" in typed:
            text = str(typed["N"])
            result[key] = int(text) if text.lstrip("-").isdigit() else float(text)
        elif "S" in typed:
            result[key] = str(typed["S"])
    return result


class DynamoDBBreakerStore(BreakerStore):
    """Breaker items in a DynamoDB table, written with conditional ``UpdateItem`` calls.

    Parameters
    ----------
    table_name : str
        The table (``RESILIENCE_TABLE``).
    client : botocore client | None
        A DynamoDB client; when ``None`` one is created on first use (so importing or
        constructing makes no AWS call) with short timeouts and a single retry.
    """

    def __init__(self, table_name: str, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client, created on first use."""
        if self._client is None:
            self._client = boto3.client("dynamodb", config=DEFAULT_CLIENT_CONFIG)
        return self._client

    def load(self, name: str, *, consistent: bool = False) -> Attributes | None:
        """Read a breaker's item with ``GetItem`` (see :meth:`BreakerStore.load`)."""
        try:
            response = self.client.get_item(TableName=self.table_name, Key=item_key(name), ConsistentRead=consistent)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailableError(f"reading breaker {name!r} failed: {exc}") from exc
        item = response.get("Item")
        return from_dynamodb(item) if item else None

    def update(self, name: str, update: ItemUpdate, condition: Condition = ()) -> Attributes:
        """Apply a conditional update with one ``UpdateItem`` (see :meth:`BreakerStore.update`)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": item_key(name),
            **render(update, condition),
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            response = self.client.update_item(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                raise ConditionFailedError(from_dynamodb(old) if old else None) from exc
            raise StoreUnavailableError(f"updating breaker {name!r} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise StoreUnavailableError(f"updating breaker {name!r} failed: {exc}") from exc
        return from_dynamodb(response.get("Attributes", {}))
