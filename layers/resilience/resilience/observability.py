"""Logs and EMF metrics of the resilience library (Powertools Logger and Metrics).

Breakers talk to a :class:`BreakerMetrics` sink so tests and benchmarks can record or drop metrics;
the default sink writes CloudWatch Embedded Metric Format through Powertools, one EMF document per
breaker per emission, with the breaker's name as the ``breaker`` dimension.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Protocol

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from collections.abc import Mapping

METRIC_STATE = "CircuitBreakerState"
METRIC_OPEN = "CircuitBreakerOpen"
METRIC_SUCCESS = "CircuitBreakerSuccess"
METRIC_FAILURE = "CircuitBreakerFailure"
METRIC_REJECTED = "CircuitBreakerRejected"
METRIC_STORE_ERROR = "CircuitBreakerStoreError"
DIMENSION = "breaker"

_UNITS: Mapping[str, MetricUnit] = {
    METRIC_STATE: MetricUnit.NoUnit,
}


class BreakerMetrics(Protocol):
    """Receives a breaker's metric values; implementations decide where they go."""

    def emit(self, breaker: str, values: Mapping[str, float]) -> None:
        """Publish ``values`` (metric name to value) for breaker ``breaker``."""


class PowertoolsBreakerMetrics:
    """Write breaker metrics as CloudWatch EMF through Powertools.

    Parameters
    ----------
    namespace : str
        CloudWatch namespace (``POWERTOOLS_METRICS_NAMESPACE``, default ``Herald``).
    service : str
        Service name, added by Powertools as the ``service`` dimension.
    """

    def __init__(self, namespace: str, service: str) -> None:
        self.namespace = namespace
        self.service = service

    def emit(self, breaker: str, values: Mapping[str, float]) -> None:
        """Print one EMF document holding every value, dimensioned by breaker name."""
        if not values:
            return
        metrics = EphemeralMetrics(namespace=self.namespace, service=self.service)
        metrics.add_dimension(name=DIMENSION, value=breaker)
        for name, value in values.items():
            metrics.add_metric(name=name, unit=_UNITS.get(name, MetricUnit.Count), value=value)
        metrics.flush_metrics()


class NullBreakerMetrics:
    """Drop every metric: for benchmarks and callers that publish metrics their own way."""

    def emit(self, breaker: str, values: Mapping[str, float]) -> None:
        """Discard the values."""


StructuredLogger = logging.Logger | Logger
"""A stdlib logger or a Powertools logger: both take structured fields through ``extra``."""


@functools.cache
def get_logger(service: str) -> Logger:
    """The library's structured (JSON) logger for ``service``.

    Parameters
    ----------
    service : str
        Service name (``POWERTOOLS_SERVICE_NAME``).

    Returns
    -------
    aws_lambda_powertools.Logger
        A Powertools logger; log calls take structured fields through ``extra``.
    """
    return Logger(service=service)
