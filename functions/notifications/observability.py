"""Logger, EMF metrics and the X-Ray tracer for every Herald function; log fields are structured and never
personal data.

The service name and the metrics namespace come from Powertools' own variables
(`POWERTOOLS_SERVICE_NAME`, `POWERTOOLS_METRICS_NAMESPACE`, set by template.yaml), with the resilience
library's defaults when they are unset, so every log line and metric of a function names one service.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities import jmespath_utils

from resilience.config import DEFAULT_NAMESPACE, DEFAULT_SERVICE, NAMESPACE_ENV, SERVICE_ENV

SERVICE = os.environ.get(SERVICE_ENV) or DEFAULT_SERVICE
NAMESPACE = os.environ.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@functools.cache
def tracer() -> Tracer:
    """The X-Ray tracer, built on first use, so importing a function costs no X-Ray import.

    Powertools switches it off outside Lambda (tests, the local runtime). Only AWS SDK calls are
    patched: webhook calls go out unpatched, so no trace header reaches a customer's endpoint.
    """
    return Tracer(service=SERVICE, patch_modules=["botocore"])


def with_tracing(handler: Handler) -> Handler:
    """Powertools' `capture_lambda_handler` (response not captured: it may hold personal data), applied
    when the handler first runs rather than at import."""
    traced: list[Handler] = []

    @functools.wraps(handler)
    def wrapper(event: dict[str, Any], context: Any) -> dict[str, Any]:
        if not traced:
            traced.append(tracer().capture_lambda_handler(handler, capture_response=False))
        return traced[0](event, context)

    return wrapper


_cold_start = True


def with_lambda_context(
    correlation_id_path: str | None = None,
) -> Callable[[Callable[[dict[str, Any], Any], dict[str, Any]]], Callable[[dict[str, Any], Any], dict[str, Any]]]:
    """Powertools' `inject_lambda_context`, but with per-thread keys.

    In Lambda each environment runs one invocation at a time, so both behave alike; the local runtime
    runs the api and the sender on threads of one process, where the shared keys of
    `inject_lambda_context` would tag one function's lines with the other's request id.
    """

    def decorate(
        handler: Callable[[dict[str, Any], Any], dict[str, Any]],
    ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
        @functools.wraps(handler)
        def wrapper(event: dict[str, Any], context: Any) -> dict[str, Any]:
            global _cold_start  # noqa: PLW0603 - one flag per execution environment, as Powertools keeps it
            keys: dict[str, Any] = {
                "cold_start": _cold_start,
                "function_name": getattr(context, "function_name", None),
                "function_request_id": getattr(context, "aws_request_id", None),
            }
            _cold_start = False
            if correlation_id_path:
                keys["correlation_id"] = jmespath_utils.query(envelope=correlation_id_path, data=event)
            logger.thread_safe_append_keys(**keys)
            try:
                return handler(event, context)
            finally:
                logger.thread_safe_remove_keys(keys)

        return wrapper

    return decorate
