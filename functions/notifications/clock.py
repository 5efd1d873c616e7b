"""Time in the domain: the injectable clock is the resilience library's; timestamps are RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime

from resilience.clock import Clock, system_clock

__all__ = ["Clock", "epoch", "iso", "system_clock"]


def iso(epoch_seconds: float) -> str:
    """An RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-29T03:15:35.123Z."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch(timestamp: str) -> float:
    """Epoch seconds of an RFC 3339 timestamp such as `iso` writes."""
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
