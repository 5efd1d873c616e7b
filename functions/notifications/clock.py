"""The clock, injected wherever time matters so tests never sleep."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> float:
        """Seconds since the epoch."""
        ...


def system_clock() -> float:
    return time.time()


def iso(epoch_seconds: float) -> str:
    """An RFC 3339 UTC timestamp with milliseconds, e.g. 2026-11-29T03:15:35.123Z."""
    return datetime.fromtimestamp(epoch_seconds, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
