"""Health monitor Lambda (scheduled every minute): one `HealthMonitor` run, then its metrics.

Thin: the run is `notifications.monitor` (with the dead-letter reconciliation of `notifications.dead_letters` as
its last step); this builds it once per execution environment, and reports DegradationMode, ProviderBreakersOpen,
HealthSnapshotWritten, HealthProbeFailures and NotificationsReconciled (EMF, through Powertools).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from health_monitor.settings import HealthMonitorSettings
from notifications import aws
from notifications.clock import system_clock
from notifications.dead_letter_queue import SqsDeadLetterQueue
from notifications.dead_letters import DeadLetterReconciler
from notifications.health_snapshot import BreakerView, SnapshotStore
from notifications.monitor import BreakersUnreadable, HealthMonitor, breaker_kind
from notifications.observability import logger, metrics, with_lambda_context, with_tracing
from notifications.probes import DependencyProbes, QueueTarget
from notifications.settings import load_settings
from notifications.store import DynamoDBStatusStore
from resilience import BreakerRegistry, BreakerState, DynamoDBBreakerStore, load_health_thresholds
from resilience.errors import StoreUnavailableError
from resilience.health import DOWN_STATES
from resilience.mode import Mode

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from notifications.clock import Clock
    from notifications.monitor import RunResult

MODE_VALUE = {Mode.NORMAL: 0, Mode.PARTIAL: 1, Mode.DEGRADED: 2, Mode.CRITICAL: 3}
# The longest one call of the monitor's fail-fast clients may take (`notifications.aws`: connect 1 s, read 2 s,
# one attempt): reconciliation stops reading while two of them still fit in its window.
_PROBE_CALL_SECONDS = 3.0


@dataclass(frozen=True)
class Dependencies:
    monitor: HealthMonitor


@cache
def default_dependencies() -> Dependencies:
    """Built once per execution environment, from the environment's settings."""
    return build_dependencies(load_settings(HealthMonitorSettings))


def build_dependencies(
    settings: HealthMonitorSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sqs: SQSClient | None = None,
    cloudwatch: CloudWatchClient | None = None,
    clock: Clock = system_clock,
) -> Dependencies:
    """The monitor over probe clients (they fail fast: a probe must not outlast its deadline)."""
    dynamodb = dynamodb or aws.client("dynamodb", probe=True)
    sqs = sqs or aws.client("sqs", probe=True)
    if settings.queue_age_from_cloudwatch:
        cloudwatch = cloudwatch or aws.client("cloudwatch", probe=True)
    probes = DependencyProbes(
        {"notifications": settings.notifications_table, "resilience": settings.resilience_table},
        _queues(settings),
        dynamodb=dynamodb,
        sqs=sqs,
        cloudwatch=cloudwatch if settings.queue_age_from_cloudwatch else None,
        clock=clock,
        timeout_seconds=settings.probe_timeout_seconds,
    )
    registry = BreakerRegistry(store=DynamoDBBreakerStore(settings.resilience_table, client=dynamodb), clock=clock)

    def breakers() -> list[BreakerView]:
        try:
            statuses = registry.describe_all()
        except StoreUnavailableError as error:
            cause = error.__cause__
            raise BreakersUnreadable(type(cause or error).__name__) from error
        return [
            BreakerView(
                name=status.name,
                kind=breaker_kind(status.name),
                state=status.state.value,
                permits_calls=status.state not in DOWN_STATES,
                open_until=status.next_probe_at if status.state is BreakerState.OPEN else None,
                failure_rate=round(status.failure_rate, 4),
                calls=status.calls_in_window,
            )
            for status in statuses
        ]

    # Every pending record whose message rests in the DLQ becomes dead_lettered (a sender died holding its lease).
    reconciler = DeadLetterReconciler(
        SqsDeadLetterQueue(settings.dead_letter_queue_url, sqs),
        DynamoDBStatusStore(settings.notifications_table, client=dynamodb, clock=clock),
        clock=clock,
        max_messages=settings.reconcile_max_messages,
        window_seconds=settings.reconcile_seconds,
        call_seconds=_PROBE_CALL_SECONDS,
        wait_seconds=settings.dead_letter_wait_seconds,
    )
    monitor = HealthMonitor(
        probes,
        breakers,
        SnapshotStore(settings.resilience_table, dynamodb),
        {channel: names for channel, names in settings.usable(settings.enabled_channels).items() if names},
        load_health_thresholds(),
        clock=clock,
        version=os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "local"),
        reconcile=reconciler.run if settings.reconcile_max_messages else None,
    )
    return Dependencies(monitor)


def _queues(settings: HealthMonitorSettings) -> list[QueueTarget]:
    named = [
        ("priority", settings.priority_queue_url, False),
        ("standard", settings.standard_queue_url, False),
        ("batch", settings.batch_queue_url, False),
        ("retry", settings.retry_queue_url, False),
        ("dead_letter", settings.dead_letter_queue_url, True),
        ("inbound", settings.inbound_queue_url, False),
        ("inbound_dead_letter", settings.inbound_dead_letter_queue_url, True),
        ("provider_events", settings.provider_events_queue_url, False),
        ("provider_events_dead_letter", settings.provider_events_dead_letter_queue_url, True),
    ]
    return [QueueTarget(name, url, dead_letter) for name, url, dead_letter in named if url]


def handle(event: dict[str, Any], context: LambdaContext, deps: Dependencies | None = None) -> dict[str, Any]:
    result = (deps or default_dependencies()).monitor.run()
    _report(result)
    snapshot = result.snapshot
    return {"mode": snapshot.mode.value, "reason": snapshot.reason, "written": result.written}


def _report(result: RunResult) -> None:
    snapshot = result.snapshot
    # Catalogued in notifications.metric_catalog (its tests check these names and units); no dimensions of their
    # own, so the invocation's buffer takes them, under the `service` dimension the alarms name.
    metrics.add_metric(name="DegradationMode", unit=MetricUnit.Count, value=MODE_VALUE[snapshot.mode])
    open_providers = sum(not provider.up for provider in snapshot.providers)
    metrics.add_metric(name="ProviderBreakersOpen", unit=MetricUnit.Count, value=open_providers)
    metrics.add_metric(name="HealthProbeFailures", unit=MetricUnit.Count, value=sum(not c.ok for c in snapshot.checks))
    if result.written:
        metrics.add_metric(name="HealthSnapshotWritten", unit=MetricUnit.Count, value=1)
    if result.reconciled is not None:
        metrics.add_metric(name="NotificationsReconciled", unit=MetricUnit.Count, value=result.reconciled)
    logger.info(
        "health snapshot",
        extra={
            "mode": snapshot.mode.value,
            "providers_down": open_providers,
            "duration_ms": snapshot.duration_ms,
            "reconciled": result.reconciled,
        },
    )


@with_lambda_context()
@with_tracing
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, context)
