"""Fault injection: per provider, how its send endpoint misbehaves (errors, latency, no answer) and for how long."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from collections.abc import Callable

MAX_LATENCY_MS = 120_000


class Provider(StrEnum):
    SENDGRID = "sendgrid"
    TWILIO = "twilio"
    FCM = "fcm"


class FaultSpec(BaseModel):
    """What `POST /_faults` takes: one provider's fault; a new one replaces the provider's previous fault.

    While the fault is active every call to the provider's send endpoint waits `latency_ms` first; then, with
    probability `error_rate`, it fails: it answers `status` (with the provider's error body, and `Retry-After`
    when `retry_after` is set), or, with `timeout`, never answers. After `count` calls the provider recovers.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Provider
    error_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    status: int = Field(default=503, ge=400, le=599)
    latency_ms: int = Field(default=0, ge=0, le=MAX_LATENCY_MS)
    retry_after: int | None = Field(default=None, ge=0)
    timeout: bool = False
    count: int | None = Field(default=None, ge=1)


@dataclass
class Fault:
    """An active fault: its spec and the calls it still applies to (None: until cleared)."""

    spec: FaultSpec
    remaining: int | None

    def as_dict(self) -> dict[str, Any]:
        """The fault as `/_faults` shows it: the spec, with `count` the calls it still applies to."""
        return {**self.spec.model_dump(mode="json"), "count": self.remaining}


@dataclass(frozen=True)
class Strike:
    """What an active fault does to one call."""

    latency_seconds: float
    fails: bool
    status: int
    retry_after: int | None
    timeout: bool


class FaultBook:
    """The active faults, one per provider, under a lock; `random` decides which calls fail (inject it in tests)."""

    def __init__(self, random: Callable[[], float]) -> None:
        self._random = random
        self._faults: dict[Provider, Fault] = {}
        self._lock = threading.Lock()

    def set(self, spec: FaultSpec) -> Fault:
        fault = Fault(spec, spec.count)
        with self._lock:
            self._faults[spec.provider] = fault
            return Fault(spec, fault.remaining)

    def clear(self, provider: Provider | None = None) -> int:
        """Forget one provider's fault, or every fault; how many were forgotten."""
        with self._lock:
            if provider is None:
                cleared = len(self._faults)
                self._faults.clear()
                return cleared
            return 1 if self._faults.pop(provider, None) is not None else 0

    def active(self) -> list[Fault]:
        with self._lock:
            return [Fault(fault.spec, fault.remaining) for fault in self._faults.values()]

    def strike(self, provider: Provider) -> Strike | None:
        """What the provider's fault does to this call (counting it), or None when the provider is healthy."""
        with self._lock:
            fault = self._faults.get(provider)
            if fault is None:
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    del self._faults[provider]
            spec = fault.spec
            fails = self._random() < spec.error_rate
        return Strike(spec.latency_ms / 1000, fails, spec.status, spec.retry_after, spec.timeout)


def describe(error: ValidationError) -> str:
    """A validation error in one line a person can act on: `status: Input should be ... ; count: ...`."""
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"]) or "body"
        parts.append(f"{where}: {detail['msg']}")
    return "; ".join(parts)


def retry_headers(strike: Strike) -> dict[str, str]:
    """`Retry-After` when the fault sets one."""
    return {} if strike.retry_after is None else {"Retry-After": str(strike.retry_after)}


def reason_phrase(status: int) -> str:
    """`Service Unavailable` for 503; `Error` for a status HTTP has no name for."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
