"""A clock tests move by hand, injected wherever the code reads the time."""

from __future__ import annotations

from dataclasses import dataclass

START = 1_700_000_000.0  # a fixed epoch second, aligned to every bucket width the tests use


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
