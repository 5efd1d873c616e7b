"""Log context per invocation: two functions logging at once on threads keep their own request ids."""

from __future__ import annotations

import io
import json
import threading
from types import SimpleNamespace
from typing import Any

from notifications.observability import logger, with_lambda_context


def test_concurrent_invocations_keep_their_own_context_keys() -> None:
    # Given two handlers that log while both are inside their invocation
    barrier = threading.Barrier(2)

    @with_lambda_context()
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        barrier.wait()
        logger.info("working", extra={"who": event["who"]})
        barrier.wait()
        return {}

    stream = io.StringIO()
    previous = logger.registered_handler.setStream(stream)  # type: ignore[union-attr]
    try:
        # When both run at once, as the api and the sender do in the local runtime
        threads = [
            threading.Thread(
                target=handler, args=({"who": name}, SimpleNamespace(function_name=name, aws_request_id=name))
            )
            for name in ("api", "sender")
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        logger.registered_handler.setStream(previous)  # type: ignore[union-attr]

    # Then every line carries the request id of the invocation that wrote it, and none is left behind
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted((line["who"], line["function_name"], line["function_request_id"]) for line in lines) == [
        ("api", "api", "api"),
        ("sender", "sender", "sender"),
    ]
    assert "function_request_id" not in logger.thread_safe_get_current_keys()


def test_the_tracer_is_built_on_the_first_invocation_and_traces_nothing_outside_lambda() -> None:
    # Given: a handler wrapped for tracing, in a process that is not a Lambda environment
    from notifications import observability  # noqa: PLC0415 - the module under test, its cache reset first

    observability.tracer.cache_clear()
    calls: list[dict[str, object]] = []

    @observability.with_tracing
    def handler(event: dict[str, object], context: object) -> dict[str, object]:
        calls.append(event)
        return {"ok": True}

    built_at_import = observability.tracer.cache_info().currsize

    # When
    first = handler({"n": 1}, None)
    second = handler({"n": 2}, None)

    # Then: nothing was built until the handler ran; Powertools switched tracing off outside Lambda
    assert built_at_import == 0
    assert observability.tracer.cache_info().currsize == 1
    assert observability.tracer().disabled is True
    assert (first, second, calls) == ({"ok": True}, {"ok": True}, [{"n": 1}, {"n": 2}])


def test_logs_and_metrics_name_the_service_from_powertools_variables() -> None:
    # Given / When
    from notifications import observability  # noqa: PLC0415

    # Then: the template's POWERTOOLS_SERVICE_NAME, or the one default every package shares
    assert observability.logger.service == observability.SERVICE == "herald"
    assert observability.metrics.namespace == observability.NAMESPACE == "Herald"
