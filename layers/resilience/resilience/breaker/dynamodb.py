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

Listing every breaker without a scan: the ``by-kind`` index
------------------------------------------------------------
The health monitor must read every breaker's state each minute. A ``Scan`` reads the whole table
(the degradation mode's item and whatever else shares it), so its cost grows with the table, not
with the breakers. Instead every ``UpdateItem`` this store sends also sets ``kind = "breaker"``
(:data:`KIND_ATTRIBUTE`, :data:`BREAKER_KIND`), and the table has a sparse, keys-only global secondary
index on it (:data:`BREAKER_INDEX` ``by-kind``: hash key ``kind``, projection ``KEYS_ONLY``;
:data:`INDEX_ATTRIBUTE_DEFINITION` and :data:`INDEX_DEFINITION` give the table's declaration). Only
breaker items carry ``kind``, so the index holds exactly one small entry per breaker item.
:meth:`DynamoDBBreakerStore.list_names` queries it (one ``Query`` per 1 MB page: thousands of
breakers per page) and :meth:`DynamoDBBreakerStore.load_many` reads the items with ``BatchGetItem``
(100 keys a request, unprocessed keys retried with backoff). N breakers cost
``1 + ceil(N / 100)`` requests, whatever else the table holds.

What it costs the hot path: nothing in requests. The attribute rides in the write the breaker makes
anyway, and no write is added (a healthy breaker still has no item and writes nothing). The index is
written when an item is created (its first write) and when TTL deletes it; a later write sets
``kind`` to the value it already has and projects nothing else (``KEYS_ONLY``), so it changes no
index entry and DynamoDB writes nothing to the index for it. Setting it in every write rather than
only in the transitions that create items also marks the items written before the index existed on
their next write, and keeps the rule in one place. ``kind`` is storage bookkeeping: reads drop it,
as they drop ``pk`` and ``sk``, so the breaker sees the same attributes from both stores.

Considered and rejected: a ``sk = "index"`` item listing the names (an extra conditional write the
first time each breaker writes, and a hot item); keying every breaker under one partition
(``pk = "breaker"``, ``sk = <name>``: a Query without an index, but a new key schema for live items
and one partition for every breaker's hot-path writes). The index is eventually consistent: a
breaker whose first write happened a moment ago may be missing from one listing, and then it is
listed by the next; its state is read from the table itself.

IAM for a lister: ``dynamodb:Query`` on ``<table arn>/index/by-kind`` and ``dynamodb:BatchGetItem``
on the table (which :meth:`load_many`, hence ``BreakerRegistry.describe``, now uses).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from resilience.backoff import RetryPolicy
from resilience.breaker.store import BreakerStore, ItemUpdate
from resilience.clock import system_sleep
from resilience.conditional.dynamodb import render
from resilience.errors import ConditionFailedError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import KeysAndAttributesUnionTypeDef

    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import Condition
    from resilience.clock import Sleep

PARTITION_KEY = "pk"
SORT_KEY = "sk"
ITEM_SORT_KEY = "state"
KEY_PREFIX = "breaker#"
KIND_ATTRIBUTE = "kind"
"""Set on every breaker item, in every write: the hash key of the sparse index that lists breakers."""
BREAKER_KIND = "breaker"
BREAKER_INDEX = "by-kind"
"""The sparse, keys-only global secondary index listing every breaker item."""
INDEX_ATTRIBUTE_DEFINITION: Mapping[str, str] = {"AttributeName": KIND_ATTRIBUTE, "AttributeType": "S"}
"""The ``AttributeDefinitions`` entry the table needs for :data:`BREAKER_INDEX`."""
INDEX_DEFINITION: Mapping[str, Any] = {
    "IndexName": BREAKER_INDEX,
    "KeySchema": [{"AttributeName": KIND_ATTRIBUTE, "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}
"""The ``GlobalSecondaryIndexes`` entry of :data:`BREAKER_INDEX` (on-demand tables need no throughput)."""
BATCH_GET_LIMIT = 100
"""Keys ``BatchGetItem`` accepts in one request."""
UNPROCESSED_KEYS_RETRY = RetryPolicy(base_seconds=0.05, cap_seconds=1.0, max_attempts=5)
"""Backoff between the rounds of a ``BatchGetItem`` that left keys unprocessed (throttling)."""

# A breaker must never hold a Lambda invocation hostage: short timeouts, one retry, then fail open.
DEFAULT_CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"max_attempts": 2, "mode": "standard"},
)


def item_key(name: str) -> dict[str, dict[str, str]]:
    """The primary key of breaker ``name``'s item."""
    return {PARTITION_KEY: {"S": f"{KEY_PREFIX}{name}"}, SORT_KEY: {"S": ITEM_SORT_KEY}}


def name_of(item: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The breaker name of an item (or index entry), ``None`` when it is not a breaker's state item."""
    partition = str(item.get(PARTITION_KEY, {}).get("S", ""))
    sort = item.get(SORT_KEY, {}).get("S")
    if sort != ITEM_SORT_KEY or not partition.startswith(KEY_PREFIX):
        return None
    return partition[len(KEY_PREFIX) :]


def from_dynamodb(item: Mapping[str, Mapping[str, Any]]) -> dict[str, AttributeValue]:
    """Deserialise an item's string and number attributes (the keys and ``kind`` are dropped)."""
    result: dict[str, AttributeValue] = {}
    for key, typed in item.items():
        if key in (PARTITION_KEY, SORT_KEY, KIND_ATTRIBUTE):
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
    index_name : str
        The sparse index listing breakers (default :data:`BREAKER_INDEX`, ``by-kind``).
    list_page_size : int | None
        ``Limit`` of each ``Query`` page of :meth:`list_names` (default ``None``: DynamoDB's 1 MB pages).
    sleep : Callable[[float], None]
        How to wait between the rounds of a ``BatchGetItem`` with unprocessed keys (``time.sleep``).
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient | None = None,
        *,
        index_name: str = BREAKER_INDEX,
        list_page_size: int | None = None,
        sleep: Sleep = system_sleep,
    ) -> None:
        self.table_name = table_name
        self.index_name = index_name
        self._client = client
        self._page_size = list_page_size
        self._sleep = sleep

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
        """Apply a conditional update with one ``UpdateItem`` (see :meth:`BreakerStore.update`).

        The same request sets ``kind = "breaker"``, which puts a new item in the ``by-kind`` index
        and changes nothing on an existing one (see the module docstring).
        """
        marked = ItemUpdate(set={**update.set, KIND_ATTRIBUTE: BREAKER_KIND}, add=update.add, remove=update.remove)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": item_key(name),
            **render(marked, condition),
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

    def list_names(self) -> list[str]:
        """Every breaker with an item, from the ``by-kind`` index: one ``Query`` per page, no scan.

        A breaker that never wrote has no item and is not listed: it is CLOSED by definition. The
        index is eventually consistent, so an item created a moment ago may be missing from one
        listing (see :meth:`BreakerStore.list_names`).

        Raises
        ------
        StoreUnavailableError
            The index could not be queried (unreachable, or a table without the index).
        """
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "IndexName": self.index_name,
            "KeyConditionExpression": "#kind = :breaker",
            "ExpressionAttributeNames": {"#kind": KIND_ATTRIBUTE},
            "ExpressionAttributeValues": {":breaker": {"S": BREAKER_KIND}},
        }
        if self._page_size is not None:
            request["Limit"] = self._page_size
        names: set[str] = set()
        while True:
            try:
                response = self.client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise StoreUnavailableError(f"listing breakers from index {self.index_name!r} failed: {exc}") from exc
            names.update(name for name in map(name_of, response.get("Items", [])) if name is not None)
            last = response.get("LastEvaluatedKey")
            if not last:
                return sorted(names)
            request["ExclusiveStartKey"] = last

    def load_many(self, names: list[str], *, consistent: bool = False) -> dict[str, Attributes | None]:
        """Read several breakers' items with ``BatchGetItem``: 100 keys a request (see :meth:`BreakerStore.load_many`).

        Keys DynamoDB leaves unprocessed (throttling) are asked for again after a backoff
        (:data:`UNPROCESSED_KEYS_RETRY`: up to 5 rounds per 100 keys).

        Raises
        ------
        StoreUnavailableError
            A request failed, or keys were still unprocessed after the last round.
        """
        wanted = list(dict.fromkeys(names))
        result: dict[str, Attributes | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            chunk = wanted[start : start + BATCH_GET_LIMIT]
            request: KeysAndAttributesUnionTypeDef = {
                "Keys": [item_key(name) for name in chunk],
                "ConsistentRead": consistent,
            }
            for attempt in range(1, UNPROCESSED_KEYS_RETRY.max_attempts + 1):
                try:
                    response = self.client.batch_get_item(RequestItems={self.table_name: request})
                except (ClientError, BotoCoreError) as exc:
                    raise StoreUnavailableError(f"reading {len(chunk)} breakers failed: {exc}") from exc
                for item in response.get("Responses", {}).get(self.table_name, []):
                    name = name_of(item)
                    if name is not None:
                        result[name] = from_dynamodb(item)
                unprocessed = response.get("UnprocessedKeys", {}).get(self.table_name)
                if not unprocessed or not unprocessed.get("Keys"):
                    break
                if not UNPROCESSED_KEYS_RETRY.allows_another(attempt):
                    left = len(unprocessed["Keys"])
                    raise StoreUnavailableError(f"{left} breaker keys still unprocessed after {attempt} rounds")
                self._sleep(UNPROCESSED_KEYS_RETRY.delay(attempt))
                request = unprocessed
        return result
