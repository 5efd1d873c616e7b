"""Injectable time: every component that reads the time or waits takes these callables.

Tests pass a fake clock and a recording sleep, so nothing in the suite ever sleeps for real.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""A callable returning the current time as epoch seconds (``time.time`` by default)."""

Sleep = Callable[[float], None]
"""A callable that blocks for the given number of seconds (``time.sleep`` by default)."""

Random = Callable[[], float]
"""A callable returning a float in ``[0, 1)`` (``random.random`` by default); used for jitter."""

system_clock: Clock = time.time
system_sleep: Sleep = time.sleep
