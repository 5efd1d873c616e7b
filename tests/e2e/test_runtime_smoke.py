"""Smoke test of ``python -m local``: the API answers through the runtime, with the template's gateway errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningHerald

pytestmark = pytest.mark.e2e


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback runtime
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_liveness_answers_through_the_runtime(herald: RunningHerald) -> None:
    # Given the runtime started by `python -m local`
    # When the liveness route is called without a key
    status, body = _get(f"{herald.base_url}/health/live")

    # Then the API handler answers that it is alive
    assert status == 200
    assert body["status"] == "alive" and {"mode", "reason", "snapshot_age_seconds"} <= set(body)


def test_unknown_route_returns_the_template_not_found_json(herald: RunningHerald) -> None:
    # Given the runtime
    # When a route the template does not declare is called
    status, body = _get(f"{herald.base_url}/no/such/route")

    # Then the template's MISSING_AUTHENTICATION_TOKEN gateway response answers
    assert status == 404
    assert body == {"error": {"code": "not_found", "message": "No such route"}}
