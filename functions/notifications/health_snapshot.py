"""The health snapshot: what the monitor saw at its last run, stored once in the resilience table.

The health monitor (``functions/health_monitor``) writes it every minute; the API's health views serve it (saying
how old it is) and the senders read its ``mode`` (``resilience.mode.ModeReader``). It is one item, the degradation
mode's own: ``pk = "degradation#mode"``, ``sk = "current"``, with ``mode``, ``reason``, ``updated_at`` (epoch
seconds) and ``snapshot`` (this model as JSON). Writes are conditional on being newer than what is stored, so a
late run never replaces a newer snapshot.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from notifications.models import Channel
from notifications.observability import logger
from resilience.mode import MODE_ATTRIBUTE, MODE_PARTITION_KEY, MODE_SORT_KEY, Mode

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from notifications.clock import Clock

SNAPSHOT_ATTRIBUTE = "snapshot"
REASON_ATTRIBUTE = "reason"
UPDATED_AT_ATTRIBUTE = "updated_at"
# The breaker name of a provider: `provider:<name>`; SNS serves two channels under two names.
_PROVIDER_NAMES = {(Channel.SMS, "sns"): "sns-sms", (Channel.PUSH, "sns"): "sns-push"}


def provider_name(channel: Channel, listed: str) -> str:
    """The provider's own name (its breaker is `provider:<name>`) for a name as the channel's list gives it."""
    return _PROVIDER_NAMES.get((channel, listed), listed)


class CheckView(BaseModel):
    """One probe: a table or a queue reachable, how fast, and when."""

    model_config = ConfigDict(frozen=True)

    name: str  # "dynamodb:notifications", "sqs:standard", ...
    ok: bool
    latency_ms: float
    error: str | None = None  # the error's type, or "timed out"; never a message that may hold data
    checked_at: float


class QueueView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None = None  # None: not known (no CloudWatch datapoint yet, or locally)
    dead_letter: bool = False


class BreakerView(BaseModel):
    """A breaker as the monitor read it. One with no stored item has never failed: CLOSED, and not listed."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["provider", "webhook", "other"]
    state: str
    permits_calls: bool
    open_until: float | None = None
    failure_rate: float | None = None
    calls: int | None = None


class ProviderView(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str  # the provider's own name: ses, sendgrid, sns-sms, twilio, fcm, sns-push, webhook
    channel: Channel
    state: str  # its breaker's state (CLOSED when its breaker never stored anything)
    up: bool


class Snapshot(BaseModel):
    """The monitor's view of Herald at one moment."""

    model_config = ConfigDict(frozen=True)

    mode: Mode
    reason: str
    taken_at: float  # epoch seconds
    duration_ms: float
    checks: list[CheckView]
    queues: list[QueueView]
    providers: list[ProviderView]
    breakers: list[BreakerView]
    notices: dict[str, str] = {}  # channel -> a plain sentence for callers while it is not fully well
    version: str = ""  # the monitor's code version (the Lambda function version or "local")

    def age_seconds(self, now: float) -> float:
        return max(0.0, now - self.taken_at)


class SnapshotStore:
    """Writes and reads the snapshot item (see the module docstring)."""

    def __init__(self, table_name: str, client: DynamoDBClient) -> None:
        self._table = table_name
        self._client = client

    def write(self, snapshot: Snapshot) -> bool:
        """Store `snapshot` unless a newer one is stored; True if written."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "pk": {"S": MODE_PARTITION_KEY},
                    "sk": {"S": MODE_SORT_KEY},
                    MODE_ATTRIBUTE: {"S": snapshot.mode.value},
                    REASON_ATTRIBUTE: {"S": snapshot.reason},
                    UPDATED_AT_ATTRIBUTE: {"N": repr(snapshot.taken_at)},
                    SNAPSHOT_ATTRIBUTE: {"S": snapshot.model_dump_json()},
                },
                # Race prevented: two runs overlapping (a slow one and the next minute's) writing out of order.
                ConditionExpression="attribute_not_exists(#u) OR #u < :u",
                ExpressionAttributeNames={"#u": UPDATED_AT_ATTRIBUTE},
                ExpressionAttributeValues={":u": {"N": repr(snapshot.taken_at)}},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def read(self) -> Snapshot | None:
        """The stored snapshot; None when there is none (or only a bare mode item, as tests or operators write)."""
        response = self._client.get_item(
            TableName=self._table, Key={"pk": {"S": MODE_PARTITION_KEY}, "sk": {"S": MODE_SORT_KEY}}
        )
        raw = response.get("Item", {}).get(SNAPSHOT_ATTRIBUTE, {}).get("S")
        if raw is None:
            return None
        try:
            return Snapshot.model_validate_json(raw)
        except ValidationError:
            logger.warning("stored health snapshot unreadable; ignored")
            return None


class SnapshotReader:
    """The stored snapshot, read at most once per `ttl_seconds` per execution environment (thread-safe).

    An unreadable table reads as "no snapshot" (the views then say so), never as an error.
    """

    def __init__(self, store: SnapshotStore, *, clock: Clock, ttl_seconds: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_seconds
        self._snapshot: Snapshot | None = None
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def current(self) -> Snapshot | None:
        with self._lock:
            now = self._clock()
            if now - self._read_at >= self._ttl:
                try:
                    self._snapshot = self._store.read()
                except (ClientError, BotoCoreError) as error:
                    logger.warning("health snapshot unreadable", extra={"error_type": type(error).__name__})
                    self._snapshot = None
                self._read_at = now
            return self._snapshot

    def cached(self) -> Snapshot | None:
        """The snapshot this execution environment last read, however old; never calls AWS (None: none read)."""
        with self._lock:
            return self._snapshot

    @property
    def has_read(self) -> bool:
        """Whether this execution environment has tried to read the snapshot at all."""
        with self._lock:
            return self._read_at > -math.inf
