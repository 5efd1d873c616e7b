"""DynamoDB breaker store: the only module of the library that imports boto3.

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

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from resilience.breaker.state import LEASE_DONE, VERSION, lease_attribute, lease_until_attribute
from resilience.breaker.store import (
    AtLeast,
    AtMost,
    BreakerStore,
    Equals,
    ItemUpdate,
    SlotClaimable,
    StateIs,
    VersionIs,
)
from resilience.errors import ConditionFailedError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import Condition, Predicate

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


def to_dynamodb(value: AttributeValue) -> dict[str, str]:
    """Serialise a string or number to DynamoDB's wire format."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"cannot store non-finite number {value!r}")
    return {"N": format(Decimal(repr(value)) if isinstance(value, float) else Decimal(value), "f")}


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


class _Expression:
    """Accumulates placeholder names and values while an expression is built."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, dict[str, str]] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, value in self.names.items():
            if value == attribute:
                return existing
        self.names[placeholder] = attribute
        return placeholder

    def value(self, value: AttributeValue) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = to_dynamodb(value)
        return placeholder

    def update(self, update: ItemUpdate) -> str:
        clauses = []
        if update.set:
            clauses.append("SET " + ", ".join(f"{self.name(k)} = {self.value(v)}" for k, v in update.set.items()))
        if update.add:
            clauses.append("ADD " + ", ".join(f"{self.name(k)} {self.value(v)}" for k, v in update.add.items()))
        if update.remove:
            clauses.append("REMOVE " + ", ".join(self.name(k) for k in sorted(update.remove)))
        return " ".join(clauses)

    def predicate(self, predicate: Predicate) -> str:
        text: str
        match predicate:
            case VersionIs(version):
                attribute = self.name(VERSION)
                text = f"{attribute} = {self.value(version)}"
                if version == 0:  # no item yet, or an item that only ever received window counters
                    text = f"(attribute_not_exists({attribute}) OR {text})"
            case StateIs(state):
                attribute = self.name("state")
                text = f"{attribute} = {self.value(state)}"
                if state == "CLOSED":  # a breaker without a state attribute is CLOSED
                    text = f"(attribute_not_exists({attribute}) OR {text})"
            case AtMost(attribute, value):
                text = f"{self.name(attribute)} <= {self.value(value)}"
            case AtLeast(attribute, value):
                text = f"{self.name(attribute)} >= {self.value(value)}"
            case Equals(attribute, value):
                text = f"{self.name(attribute)} = {self.value(value)}"
            case SlotClaimable(slot, now):
                holder, until = self.name(lease_attribute(slot)), self.name(lease_until_attribute(slot))
                done = self.value(LEASE_DONE)
                text = f"(attribute_not_exists({holder}) OR ({until} <= {self.value(now)} AND {holder} <> {done}))"
            case _:  # pragma: no cover - the match is exhaustive
                raise TypeError(f"unknown predicate {predicate!r}")
        return text


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
        expression = _Expression()
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": item_key(name),
            "UpdateExpression": expression.update(update),
            "ReturnValues": "ALL_NEW",
        }
        if condition:
            request["ConditionExpression"] = " AND ".join(expression.predicate(p) for p in condition)
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if expression.names:
            request["ExpressionAttributeNames"] = expression.names
        if expression.values:
            request["ExpressionAttributeValues"] = expression.values
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
