"""Fuzz the local runtime from its own `/openapi.json`: no generated request yields a 5xx (but the documented 503
of a health view: no fresh snapshot, or what it watches down), and every 4xx body is Herald's JSON error shape
`{"error": {"code", "message", "details"?}}`.

Schemathesis generates requests for each operation from the served document, valid and invalid ones (invalid
only where an operation takes parameters), a bounded, derandomized number per operation. Every health report
carries the mode and the reason. Not fuzzed: `/provider-events/{provider}` (every request without a provider's
signature is refused before it is read; `tests/unit/notifications/test_receipt_signatures.py` covers those),
nor `/openapi.json` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

if TYPE_CHECKING:
    from schemathesis import Case
    from schemathesis.schemas import BaseSchema

    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
REQUEST_TIMEOUT_SECONDS = 10
DELIVERABLE = "deliverable"
FUZZ_RECIPIENT = {"email": "fuzz@example.com"}  # delivered by the runtime's sandbox provider
# The health views that may answer 503 (documented): no fresh snapshot, or (db, queues) what they watch down.
HEALTH_503 = {
    "/health/ready",
    "/health/detailed",
    "/health/db",
    "/health/queues",
    "/health/providers",
    "/health/circuit-breakers",
}
HEALTH = ["/health", "/health/live", "/health/system", *sorted(HEALTH_503)]
TAKES_NO_PARAMETERS = set(HEALTH) - {"/health/db", "/health/queues"}
FUZZED = [
    ("POST", "/notifications"),
    ("GET", "/notifications"),
    ("POST", "/notifications/batch"),
    ("GET", "/notifications/{id}"),
    *(("GET", path) for path in HEALTH),
]
# Each operation with valid and invalid requests (valid only, when it takes no parameters); each POST also with
# valid ones made deliverable.
RUNS = [
    (method, path, mode)
    for method, path in FUZZED
    for mode in [*GenerationMode, DELIVERABLE]
    if (mode != DELIVERABLE or method == "POST")
    and (mode == GenerationMode.POSITIVE or path not in TAKES_NO_PARAMETERS)
]


@pytest.fixture(scope="module")
def herald_openapi(herald: RunningHerald) -> BaseSchema:
    """The document the running API serves; requests go where it was loaded from (the runtime's base URL)."""
    return schemathesis.openapi.from_url(f"{herald.base_url}/openapi.json", timeout=REQUEST_TIMEOUT_SECONDS)


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
def test_no_generated_request_yields_a_5xx_or_an_error_outside_the_shape(
    herald_openapi: BaseSchema, herald: RunningHerald, method: str, path: str, mode: str
) -> None:
    # Given requests generated from the served document for one operation (valid, invalid, or valid and made
    # deliverable), sent with a valid key
    operation = herald_openapi[path][method]
    if mode == DELIVERABLE:
        cases = operation.as_strategy(GenerationMode.POSITIVE).map(_deliverable)
    else:
        cases = operation.as_strategy(GenerationMode(mode))

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Case) -> None:
        # When each is sent to the running API
        response = case.call(headers={"x-api-key": herald.api_key}, timeout=REQUEST_TIMEOUT_SECONDS)

        # Then it is no 5xx but a health view's documented 503 (with Retry-After), every 4xx is the JSON error
        # shape (a batch none of which was accepted also carries its results, each of them that shape), and
        # every health report carries the mode and the reason
        request = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        documented_503 = path in HEALTH_503 and response.status_code == 503
        assert response.status_code < 500 or documented_503, request
        if documented_503:
            assert "retry-after" in {name.lower() for name in response.headers}, request
        if path in HEALTH and (response.status_code < 400 or documented_503):
            body = response.json()
            assert _is_error(body) or {"mode", "reason"} <= set(body), request
        if response.status_code >= 400:
            body = response.json()
            if path == "/notifications/batch" and "results" in body:  # the error, and the results beside it
                assert set(body) == {"error", "accepted", "rejected", "results"}, request
                assert body["accepted"] == 0, request
                assert all(_is_error(result) for result in body["results"]), request
                body = {"error": body["error"]}
            assert _is_error(body), request

    fuzz()


def _deliverable(case: Case) -> Case:
    """The case with each notification addressed by email alone, so that it can be accepted: random recipients
    almost never satisfy the channel rules, and then no request would reach the store and the queues."""
    if isinstance(case.body, dict):
        if isinstance(case.body.get("notifications"), list):
            case.body = {**case.body, "notifications": [_addressed(item) for item in case.body["notifications"]]}
        else:
            case.body = _addressed(case.body)
    return case


def _addressed(notification: Any) -> Any:
    if not isinstance(notification, dict):
        return notification
    subject = notification.get("subject") or "Fuzzed"
    return {
        **notification,
        "channel": "email",
        "fallback_channels": [],
        "recipient": FUZZ_RECIPIENT,
        "subject": subject,
    }


def _is_error(body: Any) -> bool:
    """`{"error": {"code": str, "message": str, "details"?: [object]}}` and nothing else beside `index`."""
    if not isinstance(body, dict) or not set(body) <= {"error", "index"} or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    details = error.get("details", [])
    return (
        set(error) <= {"code", "message", "details"}
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and isinstance(details, list)
        and all(isinstance(detail, dict) for detail in details)
    )
