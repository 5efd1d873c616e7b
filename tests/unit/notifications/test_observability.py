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
