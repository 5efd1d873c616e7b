"""Probing Herald's dependencies (DynamoDB and SQS) and naming the degradation mode they allow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications import aws
from resilience.mode import Mode

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "latency_ms": round(self.latency_ms, 1), **({"error": self.error} if self.error else {})}


def mode_of(checks: list[Check]) -> Mode:
    """Without DynamoDB or SQS Herald can neither accept nor deliver: CRITICAL. Else NORMAL.

    The scheduled health function refines this with breaker and backlog state (PARTIAL, DEGRADED).
    """
    return Mode.NORMAL if all(check.ok for check in checks) else Mode.CRITICAL


class DependencyProbe:
    """Cheap reachability checks: DescribeTable for the table, GetQueueAttributes for each queue."""

    def __init__(
        self,
        table_name: str,
        queue_urls: Mapping[str, str],
        dynamodb: DynamoDBClient | None = None,
        sqs: SQSClient | None = None,
    ) -> None:
        self._table = table_name
        self._queues = dict(queue_urls)
        self._dynamodb = dynamodb or aws.client("dynamodb", probe=True)
        self._sqs = sqs or aws.client("sqs", probe=True)

    def run(self) -> list[Check]:
        checks = [self._timed("dynamodb", lambda: self._dynamodb.describe_table(TableName=self._table))]
        for name, url in self._queues.items():
            checks.append(
                self._timed(
                    f"sqs:{name}",
                    lambda url=url: self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]),
                )
            )
        return checks

    @staticmethod
    def _timed(name: str, probe: Any) -> Check:
        started = time.perf_counter()
        try:
            probe()
        except (ClientError, BotoCoreError) as error:
            return Check(name, False, (time.perf_counter() - started) * 1000, type(error).__name__)
        return Check(name, True, (time.perf_counter() - started) * 1000)
