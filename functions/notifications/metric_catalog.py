"""Every CloudWatch metric Herald emits, in one catalogue, and the one way Herald's functions emit them.

Each `MetricSpec` names a metric, its unit, its dimensions, the functions that emit it and what it means.
The alarms and the dashboard in template.yaml name metrics from here, and tests hold the code and the
template to it (`tests/unit/notifications/test_metric_catalog.py`,
`tests/infrastructure/test_alarms_and_dashboard.py`).

Every metric goes out as CloudWatch EMF in the `POWERTOOLS_METRICS_NAMESPACE` namespace (`Herald`), with
Powertools' `service` dimension (`herald`) on every dimension set. A metric with dimensions of its own is
published twice over, in one EMF document: with `service` and its dimensions, and with `service` alone, the
total that alarms watch (an alarm cannot add up a metric across dimension values). The dimension values
are bounded: channel, priority and provider names only, never an address, a webhook origin or an id.

Functions emit through a `MetricBuffer`: any thread may add to it, and it writes when it closes. A
metric without dimensions joins the function's shared Powertools `metrics` buffer, which
`@metrics.log_metrics` writes at the end of the invocation; one with dimensions is written as EMF
documents of its own, one per combination of dimension values, since the dimensions of a document apply to
every metric in it (and the shared buffer's would apply to the whole invocation).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from notifications.observability import NAMESPACE, SERVICE, metrics

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from notifications.accept import Accepted

SERVICE_DIMENSION = "service"
# Powertools' `Metrics` keeps one buffer per process (a class attribute), shared by every thread: the
# sender's pool threads, and in the local runtime the functions that run on threads of one process.
SHARED_METRICS_LOCK = threading.Lock()


class Emitter(StrEnum):
    """The functions (the packages under functions/) that emit metrics."""

    API = "api"
    INGEST = "ingest"
    SENDER = "sender"
    PROVIDER_EVENTS = "provider_events"
    ADMIN = "admin"
    HEALTH_MONITOR = "health_monitor"


class Origin(StrEnum):
    """Whose code writes a metric."""

    FUNCTIONS = "functions"  # Herald's handlers, through a MetricBuffer
    HEALTH_MONITOR = "health_monitor"  # the scheduled health monitor
    RESILIENCE_LAYER = "resilience_layer"  # the resilience layer's breakers (resilience.observability)


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its name, unit and dimensions (besides `service`), who emits it, and what it means."""

    name: str
    unit: MetricUnit
    dimensions: tuple[str, ...]
    emitted_by: tuple[Emitter, ...]
    meaning: str
    origin: Origin = Origin.FUNCTIONS

    @property
    def dimension_sets(self) -> tuple[frozenset[str], ...]:
        """The dimension sets CloudWatch receives the metric under: an alarm must name one of them exactly.

        The resilience layer publishes its breaker metrics per breaker only; Herald's own metrics with
        dimensions also go out with `service` alone, as a total.
        """
        full = frozenset({SERVICE_DIMENSION, *self.dimensions})
        if not self.dimensions or self.origin is Origin.RESILIENCE_LAYER:
            return (full,)
        return (full, frozenset({SERVICE_DIMENSION}))


_COUNT = MetricUnit.Count
_API, _INGEST, _SENDER = Emitter.API, Emitter.INGEST, Emitter.SENDER
_RECEIPTS, _MONITOR = Emitter.PROVIDER_EVENTS, Emitter.HEALTH_MONITOR

# ---------------------------------------------------------------------- accepting
NOTIFICATIONS_ACCEPTED = MetricSpec(
    "NotificationsAccepted", _COUNT, ("channel", "priority"), (_API, _INGEST),
    "A new notification was stored and queued (a replay of an idempotency key is not counted).",
)  # fmt: skip
INGEST_ACCEPTED = MetricSpec(
    "IngestAccepted", _COUNT, (), (_INGEST,),
    "New notifications an inbound message made (its share of NotificationsAccepted, per message).",
)  # fmt: skip
INGEST_REPLAYED = MetricSpec(
    "IngestReplayed", _COUNT, (), (_INGEST,),
    "Notifications of an inbound message that its idempotency keys had already made (nothing new).",
)  # fmt: skip
INGEST_REJECTED = MetricSpec(
    "IngestRejected", _COUNT, (), (_INGEST,),
    "Notifications of an inbound message that can never be accepted, put on the inbound dead-letter queue.",
)  # fmt: skip

# ---------------------------------------------------------------------- delivering
NOTIFICATIONS_SENT = MetricSpec(
    "NotificationsSent", _COUNT, ("channel", "provider"), (_SENDER,),
    "A provider accepted a notification (status sent), on this channel, by this provider.",
)  # fmt: skip
NOTIFICATIONS_FAILED = MetricSpec(
    "NotificationsFailed", _COUNT, ("channel",), (_SENDER, _RECEIPTS),
    "A notification failed for good: refused permanently, no provider, or a bounce or complaint receipt.",
)  # fmt: skip
NOTIFICATIONS_DEFERRED = MetricSpec(
    "NotificationsDeferred", _COUNT, ("channel",), (_SENDER,),
    "No channel could be tried now (breakers open) or the degradation mode held it: a copy waits to retry.",
)  # fmt: skip
NOTIFICATIONS_DEAD_LETTERED = MetricSpec(
    "NotificationsDeadLettered", _COUNT, ("channel",), (_SENDER,),
    "Retries exhausted on the last receive, or deferred past the horizon: in the DLQ, redrivable.",
)  # fmt: skip
DELIVERY_ATTEMPTS = MetricSpec(
    "DeliveryAttempts", _COUNT, ("channel", "provider"), (_SENDER,),
    "One provider call, whatever came of it (a failover makes several for one message).",
)  # fmt: skip
RETRY_SCHEDULED = MetricSpec(
    "RetryScheduled", _COUNT, ("channel",), (_SENDER,),
    "A claimed notification goes back on its queue for another attempt after a backoff (transient failure).",
)  # fmt: skip
CLAIM_RETRIED = MetricSpec(
    "ClaimRetried", _COUNT, (), (_SENDER,),
    "A message whose notification could not be claimed (in delivery elsewhere, table unreachable) comes back.",
)  # fmt: skip
FALLBACK_CHANNEL_USED = MetricSpec(
    "FallbackChannelUsed", _COUNT, ("channel",), (_SENDER,),
    "A notification was sent on one of its fallback channels (channel: the fallback that delivered it).",
)  # fmt: skip
PROVIDER_LATENCY = MetricSpec(
    "ProviderLatency", MetricUnit.Milliseconds, ("provider",), (_SENDER,),
    "How long one provider call took, whatever came of it.",
)  # fmt: skip
DUPLICATE_DROPPED = MetricSpec(
    "DuplicateDropped", _COUNT, (), (_SENDER,),
    "A message for a notification already finished (a second SQS copy) was dropped.",
)  # fmt: skip
UNKNOWN_DROPPED = MetricSpec(
    "UnknownDropped", _COUNT, (), (_SENDER,),
    "A message for a notification Herald does not know (never accepted, or expired) was dropped.",
)  # fmt: skip

# ---------------------------------------------------------------------- delivery receipts
RECEIPT_APPLIED = MetricSpec(
    "ReceiptApplied", _COUNT, (), (_RECEIPTS,),
    "A provider's receipt moved a notification on (delivered, or failed after a bounce or complaint).",
)  # fmt: skip
RECEIPT_IGNORED = MetricSpec(
    "ReceiptIgnored", _COUNT, (), (_RECEIPTS,),
    "A receipt changed nothing: a duplicate, overtaken by a more authoritative one, or progress only.",
)  # fmt: skip
RECEIPT_NOT_YET = MetricSpec(
    "ReceiptNotYet", _COUNT, (), (_RECEIPTS,),
    "A receipt outran the sender's own status write: its message comes back later.",
)  # fmt: skip
RECEIPT_UNKNOWN = MetricSpec(
    "ReceiptUnknown", _COUNT, (), (_RECEIPTS,),
    "A receipt about no notification Herald knows (not Herald's, or expired) was dropped.",
)  # fmt: skip
RECEIPT_MALFORMED = MetricSpec(
    "ReceiptMalformed", _COUNT, (), (_RECEIPTS,),
    "A provider-events message in no known shape: kept, so it ends in the provider-events DLQ.",
)  # fmt: skip

# ---------------------------------------------------------------------- the health monitor
DEGRADATION_MODE = MetricSpec(
    "DegradationMode", _COUNT, (), (_MONITOR,),
    "The degradation mode the monitor computed: 0 NORMAL, 1 PARTIAL, 2 DEGRADED, 3 CRITICAL.",
    Origin.HEALTH_MONITOR,
)  # fmt: skip
PROVIDER_BREAKERS_OPEN = MetricSpec(
    "ProviderBreakersOpen", _COUNT, (), (_MONITOR,),
    "Provider circuit breakers OPEN (or forced open) at the monitor's run.",
    Origin.HEALTH_MONITOR,
)  # fmt: skip
HEALTH_SNAPSHOT_WRITTEN = MetricSpec(
    "HealthSnapshotWritten", _COUNT, (), (_MONITOR,),
    "1 for each run that stored its health snapshot: none means the monitor is not running.",
    Origin.HEALTH_MONITOR,
)  # fmt: skip
HEALTH_PROBE_FAILURES = MetricSpec(
    "HealthProbeFailures", _COUNT, (), (_MONITOR,),
    "Probes (DynamoDB, each queue) that failed or timed out in the monitor's run.",
    Origin.HEALTH_MONITOR,
)  # fmt: skip
NOTIFICATIONS_RECONCILED = MetricSpec(
    "NotificationsReconciled", _COUNT, (), (_MONITOR,),
    "Notifications still queued or deferred whose message was in the DLQ, marked dead_lettered by the run.",
    Origin.HEALTH_MONITOR,
)  # fmt: skip

# ---------------------------------------------------------------------- the resilience layer's breakers
_BREAKER = ("breaker",)
_LAYER = Origin.RESILIENCE_LAYER
CIRCUIT_BREAKER_STATE = MetricSpec(
    "CircuitBreakerState", MetricUnit.NoUnit, _BREAKER, (_SENDER, Emitter.ADMIN),
    "A breaker's state at a transition or tally: 0 CLOSED, 1 HALF_OPEN, 2 OPEN, 3 FORCED_OPEN, 4 DISABLED.",
    _LAYER,
)  # fmt: skip
CIRCUIT_BREAKER_OPEN = MetricSpec(
    "CircuitBreakerOpen", _COUNT, _BREAKER, (_SENDER, Emitter.ADMIN),
    "A breaker opened (or was forced open): 1 per transition to OPEN.",
    _LAYER,
)  # fmt: skip
CIRCUIT_BREAKER_SUCCESS = MetricSpec(
    "CircuitBreakerSuccess", _COUNT, _BREAKER, (_SENDER,),
    "Calls through the breaker that succeeded, since its last tally.",
    _LAYER,
)  # fmt: skip
CIRCUIT_BREAKER_FAILURE = MetricSpec(
    "CircuitBreakerFailure", _COUNT, _BREAKER, (_SENDER,),
    "Calls through the breaker that failed (as the classifier judged), since its last tally.",
    _LAYER,
)  # fmt: skip
CIRCUIT_BREAKER_REJECTED = MetricSpec(
    "CircuitBreakerRejected", _COUNT, _BREAKER, (_SENDER,),
    "Calls the breaker refused because it was open, since its last tally.",
    _LAYER,
)  # fmt: skip
CIRCUIT_BREAKER_STORE_ERROR = MetricSpec(
    "CircuitBreakerStoreError", _COUNT, _BREAKER, (_SENDER,),
    "Times the breaker could not reach its DynamoDB state and failed open, since its last tally.",
    _LAYER,
)  # fmt: skip

CATALOG: Mapping[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        NOTIFICATIONS_ACCEPTED, INGEST_ACCEPTED, INGEST_REPLAYED, INGEST_REJECTED,
        NOTIFICATIONS_SENT, NOTIFICATIONS_FAILED, NOTIFICATIONS_DEFERRED, NOTIFICATIONS_DEAD_LETTERED,
        DELIVERY_ATTEMPTS, RETRY_SCHEDULED, CLAIM_RETRIED, FALLBACK_CHANNEL_USED, PROVIDER_LATENCY,
        DUPLICATE_DROPPED, UNKNOWN_DROPPED,
        RECEIPT_APPLIED, RECEIPT_IGNORED, RECEIPT_NOT_YET, RECEIPT_UNKNOWN, RECEIPT_MALFORMED,
        DEGRADATION_MODE, PROVIDER_BREAKERS_OPEN, HEALTH_SNAPSHOT_WRITTEN, HEALTH_PROBE_FAILURES,
        NOTIFICATIONS_RECONCILED,
        CIRCUIT_BREAKER_STATE, CIRCUIT_BREAKER_OPEN, CIRCUIT_BREAKER_SUCCESS, CIRCUIT_BREAKER_FAILURE,
        CIRCUIT_BREAKER_REJECTED, CIRCUIT_BREAKER_STORE_ERROR,
    )
}  # fmt: skip
"""Every metric Herald emits, by name."""


class MetricBuffer:
    """Metrics added from any thread during one unit of work (an invocation, a batch), written by `flush`.

    Parameters
    ----------
    namespace, service : str
        The CloudWatch namespace and the `service` dimension (Powertools' variables, as every function's).
    """

    def __init__(self, namespace: str = NAMESPACE, service: str = SERVICE) -> None:
        self._namespace = namespace
        self._service = service
        self._lock = threading.Lock()
        # dimension values (sorted) -> metric -> values, in the order they were added
        self._pending: dict[tuple[tuple[str, str], ...], dict[MetricSpec, list[float]]] = {}

    def add(self, metric: MetricSpec, value: float = 1.0, /, **dimensions: str) -> None:
        """Add one value of `metric`, with a value for each of its dimensions (exactly those).

        Raises
        ------
        ValueError
            The dimensions are not the metric's own, a value is empty, or the metric is the resilience
            layer's (its breakers publish their own).
        """
        if metric.origin is Origin.RESILIENCE_LAYER:
            raise ValueError(f"{metric.name} is published by the resilience layer's breakers")
        if set(dimensions) != set(metric.dimensions) or not all(dimensions.values()):
            raise ValueError(f"{metric.name} takes a value for each of {metric.dimensions}, not {dimensions}")
        key = tuple(sorted(dimensions.items()))
        with self._lock:
            self._pending.setdefault(key, {}).setdefault(metric, []).append(float(value))

    def flush(self) -> None:
        """Write what was added: dimensioned metrics as EMF now, the others into the shared buffer."""
        with self._lock:
            pending, self._pending = self._pending, {}
        for key, values in pending.items():
            if key:
                self._write_document(dict(key), values)
                continue
            with SHARED_METRICS_LOCK:
                for metric, numbers in values.items():
                    for number in numbers:
                        metrics.add_metric(name=metric.name, unit=metric.unit, value=number)

    def _write_document(self, dimensions: dict[str, str], values: dict[MetricSpec, list[float]]) -> None:
        """One EMF document: these dimension values plus `service`, and the `service`-only total."""
        document = EphemeralMetrics(namespace=self._namespace, service=self._service)
        for name, value in dimensions.items():
            document.add_dimension(name=name, value=value)
        document.add_dimensions(**{SERVICE_DIMENSION: self._service})
        for metric, numbers in values.items():
            for number in numbers:
                document.add_metric(name=metric.name, unit=metric.unit, value=number)
        if document.metric_set:  # Powertools writes a document itself at a metric's 100th value
            document.flush_metrics()


@contextmanager
def metric_buffer() -> Iterator[MetricBuffer]:
    """A `MetricBuffer` flushed when the block ends, whether or not it raised."""
    buffer = MetricBuffer()
    try:
        yield buffer
    finally:
        buffer.flush()


def count_accepted(accepted: Iterable[Accepted]) -> None:
    """`NotificationsAccepted` for each notification accepted anew (a replay of a key made nothing new)."""
    with metric_buffer() as buffer:
        for one in accepted:
            if not one.replayed:
                view = one.view
                buffer.add(NOTIFICATIONS_ACCEPTED, channel=view.channel.value, priority=view.priority.value)
