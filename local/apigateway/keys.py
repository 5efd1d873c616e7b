"""Which ``x-api-key`` values the API takes: the enabled keys on its usage plan, as the embedded AWS holds them.

API Gateway accepts a key on a stage when the key is enabled and on a usage plan of that stage. Keys live in
the embedded AWS, created by provisioning (the template's keys) or at run time by the admin function
(``create_api_key`` then ``create_usage_plan_key``), and revoked with ``delete_api_key``. API Gateway takes a
moment to propagate such a change; :class:`ApiKeyDirectory` plays that with a short-lived cache, refreshed at
a bounded rate so that requests with unknown keys cannot flood the embedded AWS.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_apigateway import APIGatewayClient

MIN_KEY_LENGTH = 20  # API Gateway (and moto) refuse a key value shorter than this
# Appended to a value under MIN_KEY_LENGTH (see stored_key_value); not alphanumeric, so no generated key ends so.
SHORT_KEY_SUFFIX = "~local-short-key-padding"
MAX_AGE_SECONDS = 1.0  # a created, deleted or disabled key takes effect within this long (API Gateway's propagation)
MIN_REFRESH_INTERVAL_SECONDS = 0.25  # at most 4 reads of the usage plan per second, however many unknown keys

logger = get_logger("api_keys")


def stored_key_value(value: str) -> str:
    """The value the embedded AWS holds for the key a client sends as ``value``.

    The local runtime's documented keys (``local-dev-key``, ``local-admin-key``) are shorter than the 20
    characters API Gateway requires, so a value that short is stored with :data:`SHORT_KEY_SUFFIX` appended,
    and the directory appends the same suffix to what a client sends before looking it up. A value of 20
    characters or more, as every key API Gateway or the admin function makes, is stored as it is.
    """
    return value if len(value) >= MIN_KEY_LENGTH else value + SHORT_KEY_SUFFIX


class ApiKeyLookupError(Exception):
    """The embedded AWS did not say which keys are valid, and the last answer is too old to use."""


class ApiKeyDirectory:
    """The enabled API keys on one usage plan, read from the embedded AWS and cached briefly; thread-safe.

    Parameters
    ----------
    apigateway : APIGatewayClient
        A client of the embedded AWS's API Gateway.
    usage_plan_id : str
        The usage plan whose keys the API takes (the physical id of the template's usage plan).
    max_age : float
        Seconds an answer is used before the keys are read again: a new key is honoured, and a deleted or
        disabled one refused, at most this long after the change (plus one read).
    min_refresh_interval : float
        Seconds between two reads at least. A key missing from a fresh answer triggers a read too (a key made a
        moment ago), but no sooner than this after the previous one, so a flood of unknown keys costs at most
        ``1 / min_refresh_interval`` reads per second.
    clock : Callable[[], float]
        Monotonic seconds; tests inject their own so they need not sleep.
    """

    def __init__(
        self,
        apigateway: APIGatewayClient,
        usage_plan_id: str,
        *,
        max_age: float = MAX_AGE_SECONDS,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_age <= 0 or min_refresh_interval <= 0:
            raise ValueError("max_age and min_refresh_interval must be positive")
        self._apigateway = apigateway
        self.usage_plan_id = usage_plan_id
        self._max_age = max_age
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._lock = threading.Lock()  # one reader of the embedded AWS at a time; guards everything below
        self._ids: dict[str, str] = {}  # stored key value -> key id
        self._read_at: float | None = None  # when _ids was last read successfully
        self._attempted_at: float | None = None  # when a read was last started, whatever its outcome
        self._last_error: Exception | None = None

    def key_id(self, value: str) -> str | None:
        """The id of the enabled key on the usage plan whose value is ``value``; None when there is none.

        Raises
        ------
        ApiKeyLookupError
            The keys could not be read and the last answer is older than ``max_age``: whether the key is valid
            is unknown, so it must not be taken (nor reported as invalid).
        """
        stored = stored_key_value(value)
        with self._lock:
            now = self._clock()
            if (self._is_stale(now) or stored not in self._ids) and self._may_read(now):
                self._read(now)
            if self._is_stale(now):
                message = f"cannot read the keys of usage plan {self.usage_plan_id}"
                raise ApiKeyLookupError(message) from self._last_error
            return self._ids.get(stored)

    def _is_stale(self, now: float) -> bool:
        return self._read_at is None or now - self._read_at >= self._max_age

    def _may_read(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refresh_interval

    def _read(self, now: float) -> None:
        """Replace the answer with the embedded AWS's; on failure keep the old one (it goes stale on its own)."""
        self._attempted_at = now
        try:
            self._ids = self._enabled_keys_on_plan()
        except Exception as error:  # botocore raises many types; any of them means "unknown for now"
            self._last_error = error
            logger.warning(
                "cannot read api keys", extra={"usage_plan_id": self.usage_plan_id, "error": type(error).__name__}
            )
            return
        self._read_at, self._last_error = now, None
        logger.debug("api keys read", extra={"usage_plan_id": self.usage_plan_id, "keys": len(self._ids)})

    def _enabled_keys_on_plan(self) -> dict[str, str]:
        """Stored value -> id of every key that is on the plan, still exists and is enabled.

        moto keeps a usage plan key after its API key is deleted (and the plan key's own copy of the value), and
        a plan key does not say whether its API key is enabled: so the plan gives only ids, and the keys
        themselves, listed with their values, give existence, ``enabled`` and the value.
        """
        on_plan: set[str] = set()
        for page in self._apigateway.get_paginator("get_usage_plan_keys").paginate(usagePlanId=self.usage_plan_id):
            on_plan.update(key["id"] for key in page.get("items", []) if key.get("type", "API_KEY") == "API_KEY")
        valid: dict[str, str] = {}
        if not on_plan:
            return valid
        for page in self._apigateway.get_paginator("get_api_keys").paginate(includeValues=True):
            for key in page.get("items", []):
                if key.get("id") in on_plan and key.get("enabled") and key.get("value"):
                    valid[key["value"]] = key["id"]
        return valid
