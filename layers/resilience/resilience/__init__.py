"""Herald's resilience library: circuit breakers shared across Lambda environments, retry policies,
error classification and degradation rules. It knows nothing about notifications.

Quick reference::

    from resilience import breakers, retry, RetryPolicy, choose_channel

    breakers.get("provider:sendgrid").call(send, message)     # or @breakers.protect("provider:sendgrid")
    permit = breakers.get("provider:sendgrid").allow()         # batch form: record the outcome on the permit
    breakers.flush()                                           # once at the end of each batch

    retry.call(lambda: client.get_item(...), RetryPolicy(max_attempts=3))

    breakers.describe_all()                                    # every stored breaker: a Query and a BatchGetItem
    assess(checks, providers, queues, channels, load_health_thresholds()).mode   # the degradation mode

Importing the package reads no environment variable and makes no AWS call: the default registry
``breakers`` reads its settings and creates its DynamoDB client on first use.
"""

from __future__ import annotations

from resilience.backoff import QUEUE_BACKOFF, Jitter, RetryPolicy, parse_retry_after, visibility_timeout
from resilience.breaker import (
    BreakerRecord,
    BreakerRegistry,
    BreakerState,
    BreakerStatus,
    BreakerStore,
    CircuitBreaker,
    DynamoDBBreakerStore,
    InMemoryBreakerStore,
    Permit,
    PermitKind,
    Transition,
)
from resilience.classification import (
    Classifier,
    ClassifierChain,
    ErrorClass,
    default_classifier,
    http_status,
    retry_after_of,
)
from resilience.clock import Clock, system_clock
from resilience.config import BreakerConfig, HealthThresholds, ResilienceSettings, load_health_thresholds, load_settings
from resilience.degradation import ChannelDecision, choose_channel
from resilience.errors import (
    CircuitOpenError,
    ConditionFailedError,
    ConfigurationError,
    PermanentError,
    PermitAlreadyRecordedError,
    ResilienceError,
    StoreError,
    StoreUnavailableError,
    TransientError,
)
from resilience.health import (
    Assessment,
    ChannelUse,
    DependencyCheck,
    Finding,
    ProviderHealth,
    QueueHealth,
    assess,
)
from resilience.mode import Mode, ModeReader, admits
from resilience.observability import BreakerMetrics, NullBreakerMetrics, PowertoolsBreakerMetrics
from resilience.retrying import Retry, retry

breakers = BreakerRegistry()
"""The default registry of this execution environment (settings from the environment, on first use)."""

__all__ = [
    "QUEUE_BACKOFF",
    "Assessment",
    "BreakerConfig",
    "BreakerMetrics",
    "BreakerRecord",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStatus",
    "BreakerStore",
    "ChannelDecision",
    "ChannelUse",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classifier",
    "ClassifierChain",
    "Clock",
    "ConditionFailedError",
    "ConfigurationError",
    "DependencyCheck",
    "DynamoDBBreakerStore",
    "ErrorClass",
    "Finding",
    "HealthThresholds",
    "InMemoryBreakerStore",
    "Jitter",
    "Mode",
    "ModeReader",
    "NullBreakerMetrics",
    "PermanentError",
    "Permit",
    "PermitAlreadyRecordedError",
    "PermitKind",
    "PowertoolsBreakerMetrics",
    "ProviderHealth",
    "QueueHealth",
    "ResilienceError",
    "ResilienceSettings",
    "Retry",
    "RetryPolicy",
    "StoreError",
    "StoreUnavailableError",
    "TransientError",
    "Transition",
    "admits",
    "assess",
    "breakers",
    "choose_channel",
    "default_classifier",
    "http_status",
    "load_health_thresholds",
    "load_settings",
    "parse_retry_after",
    "retry",
    "retry_after_of",
    "system_clock",
    "visibility_timeout",
]
