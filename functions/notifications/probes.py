"""The health monitor's probes: each table and queue reachable (and each queue's depth), each on a deadline.

Every probe runs on its own thread with the same deadline; one that has not answered by then is counted as
failed ("timed out") and left behind, so a hanging dependency can never hang the monitor. The clients are the
probe clients of `notifications.aws` (1 s to connect, 2 s to read, no retry), so a probe left behind ends soon.
"""

from __future__ import annotations

import functools
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from notifications.health_snapshot import CheckView, QueueView
from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeFilterType

    from notifications.clock import Clock

_QUEUE_ATTRIBUTES: list[QueueAttributeFilterType] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]
_AGE_WINDOW = timedelta(minutes=5)  # SQS publishes its metrics every minute, a little late


@dataclass(frozen=True)
class QueueTarget:
    name: str  # "standard", "dead_letter", ...
    url: str
    dead_letter: bool = False

    @property
    def queue_name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ProbeResults:
    checks: list[CheckView]
    queues: list[QueueView]


class DependencyProbes:
    """Probes the tables (DescribeTable) and queues (GetQueueAttributes) at once, each within `timeout_seconds`;
    the queues' oldest-message ages come from CloudWatch (AWS/SQS ApproximateAgeOfOldestMessage) when it has
    them, and are unknown otherwise (not a failure: the metric lags, and the local runtime has none)."""

    def __init__(
        self,
        tables: Mapping[str, str],
        queues: list[QueueTarget],
        *,
        dynamodb: DynamoDBClient,
        sqs: SQSClient,
        cloudwatch: CloudWatchClient | None,
        clock: Clock,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._tables = dict(tables)
        self._queues = list(queues)
        self._dynamodb = dynamodb
        self._sqs = sqs
        self._cloudwatch = cloudwatch
        self._clock = clock
        self._timeout = timeout_seconds
        self._pool = ThreadPoolExecutor(max_workers=len(self._tables) + len(self._queues) + 1)

    def run(self) -> ProbeResults:
        started = self._clock()
        calls: dict[str, Callable[[], Any]] = {
            f"dynamodb:{name}": functools.partial(self._dynamodb.describe_table, TableName=table)
            for name, table in self._tables.items()
        }
        for queue in self._queues:
            calls[f"sqs:{queue.name}"] = functools.partial(
                self._sqs.get_queue_attributes, QueueUrl=queue.url, AttributeNames=_QUEUE_ATTRIBUTES
            )
        if self._cloudwatch is not None:
            calls["cloudwatch:queue-age"] = self._queue_ages
        futures = {name: self._pool.submit(_timed, call) for name, call in calls.items()}
        wait(futures.values(), timeout=self._timeout)
        outcomes: dict[str, tuple[Any, float, str | None]] = {}
        for name, future in futures.items():
            if future.done():
                outcomes[name] = future.result()
            else:
                future.cancel()
                outcomes[name] = (None, self._timeout * 1000, "timed out")
                logger.warning("health probe timed out", extra={"probe": name, "timeout_seconds": self._timeout})
        ages: dict[str, float] = outcomes.pop("cloudwatch:queue-age", ({}, 0.0, None))[0] or {}
        checks = [
            CheckView(name=name, ok=error is None, latency_ms=round(latency, 1), error=error, checked_at=started)
            for name, (_, latency, error) in outcomes.items()
        ]
        queues = []
        for queue in self._queues:
            answer, _, error = outcomes[f"sqs:{queue.name}"]
            if error is not None:
                continue
            attributes = answer.get("Attributes", {})
            queues.append(
                QueueView(
                    name=queue.name,
                    visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
                    in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                    delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
                    oldest_age_seconds=ages.get(queue.queue_name),
                    dead_letter=queue.dead_letter,
                )
            )
        return ProbeResults(checks, queues)

    def _queue_ages(self) -> dict[str, float]:
        """Each queue's latest ApproximateAgeOfOldestMessage (seconds) in the last few minutes, in one request."""
        assert self._cloudwatch is not None
        end = datetime.fromtimestamp(self._clock(), UTC)
        queries: list[Any] = [
            {
                "Id": f"q{index}",
                "Label": queue.queue_name,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/SQS",
                        "MetricName": "ApproximateAgeOfOldestMessage",
                        "Dimensions": [{"Name": "QueueName", "Value": queue.queue_name}],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
            for index, queue in enumerate(self._queues)
        ]
        response = self._cloudwatch.get_metric_data(
            MetricDataQueries=queries, StartTime=end - _AGE_WINDOW, EndTime=end, ScanBy="TimestampDescending"
        )
        labels = {f"q{index}": queue.queue_name for index, queue in enumerate(self._queues)}
        return {
            labels[result["Id"]]: float(result["Values"][0])
            for result in response.get("MetricDataResults", [])
            if result.get("Values") and result.get("Id") in labels
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _timed(call: Callable[[], Any]) -> tuple[Any, float, str | None]:
    started = time.perf_counter()
    try:
        answer = call()
    except (ClientError, BotoCoreError) as error:
        return None, (time.perf_counter() - started) * 1000, type(error).__name__
    return answer, (time.perf_counter() - started) * 1000, None
