"""Logger and EMF metrics for every Herald function; log fields are structured and never personal data."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities import jmespath_utils

if TYPE_CHECKING:
    from collections.abc import Callable

logger = Logger(service="herald")
metrics = Metrics(namespace="Herald", service="herald")

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
