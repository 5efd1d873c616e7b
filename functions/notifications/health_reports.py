"""What the API's health views answer: one pydantic model per report (`notifications.health` fills them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from notifications.health_snapshot import BreakerView, CheckView, ProviderView, QueueView


class ModeReport(BaseModel):
    """What every health report carries: the degradation mode, why, and how old the snapshot saying so is."""

    model_config = ConfigDict(frozen=True)

    mode: str  # NORMAL, PARTIAL, DEGRADED, CRITICAL; UNKNOWN when no snapshot was read
    reason: str  # plain words
    snapshot_age_seconds: float | None  # None: no snapshot


class HealthStatus(ModeReport):
    """`GET /health` (`ok`) and `GET /health/live` (`alive`): the function answers; no AWS call was made."""

    status: Literal["ok", "alive"]


class CheckOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    latency_ms: float
    error: str | None = None  # the error's type, or "timed out"


class Readiness(ModeReport):
    """`GET /health/ready`: whether notifications can be accepted now (503 when not)."""

    status: Literal["ready", "not_ready"]
    checked_seconds_ago: float  # the live check's answer is kept a few seconds per execution environment
    checks: dict[str, CheckOutcome]  # "dynamodb:notifications", "sqs:standard", ...


class DetailedReport(ModeReport):
    """`GET /health/detailed`: the whole snapshot (webhook breakers listed for the admin key only)."""

    taken_at: float  # epoch seconds
    duration_ms: float
    version: str
    checks: list[CheckView]
    queues: list[QueueView]
    providers: list[ProviderView]
    breakers: list[BreakerView]
    webhook_breakers_open: int
    notices: dict[str, str]


class DatabaseReport(ModeReport):
    """`GET /health/db`: the tables' checks, from the snapshot or (`?live=true`) probed now; 503 when down."""

    status: Literal["ok", "down"]
    source: Literal["snapshot", "live"]
    checks: list[CheckView]


class QueuesReport(ModeReport):
    """`GET /health/queues`: each queue reachable and its depth, from the snapshot or probed now; 503 when one
    is unreachable. A live probe knows no oldest-message age (CloudWatch has it; the snapshot carries it)."""

    status: Literal["ok", "down"]
    source: Literal["snapshot", "live"]
    checks: list[CheckView]
    queues: list[QueueView]


class ProvidersReport(ModeReport):
    """`GET /health/providers`: every provider of every channel in use, with its breaker's state."""

    providers: list[ProviderView]


class BreakersReport(ModeReport):
    """`GET /health/circuit-breakers`: breakers that stored a state (one that never did is CLOSED)."""

    breakers: list[BreakerView]
    webhook_breakers_open: int


class SystemReport(ModeReport):
    """`GET /health/system`: the execution environment answering."""

    runtime: str  # "python 3.13.1"
    memory_limit_mb: int
    cold_start: bool  # this invocation is the environment's first
    version: str  # the function version, "local" outside Lambda
    region: str
    function_name: str
