"""Test doubles shared by the resilience unit tests (a module name no other test directory uses)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resilience import BreakerConfig

if TYPE_CHECKING:
    from collections.abc import Mapping


@dataclass
class RecordingMetrics:
    """Keeps every emission."""

    emitted: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def emit(self, breaker: str, values: Mapping[str, float]) -> None:
        self.emitted.append((breaker, dict(values)))

    def total(self, name: str) -> float:
        return sum(values.get(name, 0.0) for _, values in self.emitted)


SMALL = BreakerConfig(
    window_seconds=10,
    bucket_seconds=1,
    minimum_calls=10,
    failure_rate_threshold=0.5,
    slow_call_seconds=2,
    slow_call_rate_threshold=0.8,
    local_minimum_calls=5,
    wait_open_seconds=30,
    wait_open_multiplier=2,
    wait_open_max_seconds=100,
    half_open_permits=3,
    success_threshold=2,
    probe_lease_seconds=10,
    cache_ttl_seconds=5,
    suspect_cache_ttl_seconds=1,
)
"""A compact configuration with round numbers, used by most breaker tests."""
