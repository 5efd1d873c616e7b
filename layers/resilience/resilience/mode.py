"""The degradation mode: what the fleet may attempt while dependencies are down.

The scheduled health function computes the mode and stores it in the resilience table; every sender
reads it (cached) and applies :func:`admits` before it calls a provider:

* NORMAL and PARTIAL: every priority is attempted (PARTIAL means a fallback still exists).
* DEGRADED: ``low`` waits ("queue for later"); the rest is attempted.
* CRITICAL: only ``critical`` is attempted.

Stored item (table ``RESILIENCE_TABLE``): ``pk = "degradation#mode"``, ``sk = "current"``, attribute
``mode`` (one of the names below), ``updated_at`` (epoch seconds). No item means NORMAL.
"""

from __future__ import annotations

import math
import threading
from enum import StrEnum
from typing import TYPE_CHECKING

from resilience.clock import system_clock
from resilience.config import DEFAULT_SERVICE
from resilience.observability import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from resilience.clock import Clock
    from resilience.observability import StructuredLogger

MODE_PARTITION_KEY = "degradation#mode"
MODE_SORT_KEY = "current"
MODE_ATTRIBUTE = "mode"


class Mode(StrEnum):
    """How degraded the service is, from all well to unable to deliver."""

    NORMAL = "NORMAL"
    PARTIAL = "PARTIAL"
    DEGRADED = "DEGRADED"
    CRITICAL = "CRITICAL"


def admits(mode: Mode, priority: str) -> bool:
    """Whether a message of ``priority`` (``critical`` / ``high`` / ``normal`` / ``low``) is attempted now.

    Examples
    --------
    >>> admits(Mode.DEGRADED, "low"), admits(Mode.DEGRADED, "normal"), admits(Mode.CRITICAL, "high")
    (False, True, False)
    """
    match mode:
        case Mode.CRITICAL:
            return priority == "critical"
        case Mode.DEGRADED:
            return priority != "low"
    return True


class ModeReader:
    """The stored mode, read at most once per ``ttl_seconds`` per execution environment.

    A missing item, an unknown value or an unreadable table all read as NORMAL: the mode only ever
    holds work back, so not knowing it must never stop deliveries (the breakers still protect every
    provider). Thread-safe.

    Parameters
    ----------
    table_name : str
        The resilience table.
    client : botocore DynamoDB client
        The client to read with (the caller's, so this module imports no AWS SDK).
    clock : Callable[[], float]
        Epoch seconds.
    ttl_seconds : float
        How long a read is trusted (default 10).
    """

    def __init__(
        self,
        table_name: str,
        client: DynamoDBClient,
        *,
        clock: Clock = system_clock,
        ttl_seconds: float = 10.0,
        logger: StructuredLogger | None = None,
    ) -> None:
        self._table = table_name
        self._client = client
        self._clock = clock
        self._ttl = ttl_seconds
        self._logger: StructuredLogger = logger or get_logger(DEFAULT_SERVICE)
        self._mode = Mode.NORMAL
        self._read_at = -math.inf
        self._lock = threading.Lock()

    def current(self) -> Mode:
        """The mode (cached)."""
        with self._lock:
            now = self._clock()
            if now - self._read_at >= self._ttl:
                self._mode = self._read()
                self._read_at = now
            return self._mode

    def _read(self) -> Mode:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key={"pk": {"S": MODE_PARTITION_KEY}, "sk": {"S": MODE_SORT_KEY}},
            )
        except Exception as error:  # botocore's errors, named here without importing it  # noqa: BLE001
            self._logger.warning(
                "degradation mode unreadable; assuming NORMAL", extra={"error_type": type(error).__name__}
            )
            return Mode.NORMAL
        value = response.get("Item", {}).get(MODE_ATTRIBUTE, {}).get("S")
        try:
            return Mode(value) if value else Mode.NORMAL
        except ValueError:
            self._logger.warning("unknown degradation mode stored; assuming NORMAL", extra={"mode": value})
            return Mode.NORMAL
