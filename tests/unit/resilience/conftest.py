"""Fixtures of the resilience unit tests: a fake clock, an in-memory store, recording observers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

from resilience import BreakerRegistry, CircuitBreaker, InMemoryBreakerStore, ResilienceSettings
from tests.support.breaker_fakes import SMALL, RecordingMetrics
from tests.support.clock import FakeClock

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from resilience.breaker.circuit import Transition


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryBreakerStore:
    return InMemoryBreakerStore()


@pytest.fixture
def metrics() -> RecordingMetrics:
    return RecordingMetrics()


@pytest.fixture
def transitions() -> list[Transition]:
    return []


@pytest.fixture
def quiet_logger() -> logging.Logger:
    logger = logging.getLogger("tests.resilience")
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.fixture
def make_breaker(
    store: InMemoryBreakerStore,
    clock: FakeClock,
    metrics: RecordingMetrics,
    transitions: list[Transition],
    quiet_logger: logging.Logger,
) -> Callable[..., CircuitBreaker]:
    """Build a breaker (one execution environment) on the shared store; ``**overrides`` tune SMALL."""

    def build(name: str = "provider:test", **overrides: Any) -> CircuitBreaker:
        return CircuitBreaker(
            name,
            store,
            SMALL.with_overrides(overrides),
            clock=clock,
            metrics=metrics,
            logger=quiet_logger,
            on_transition=transitions.append,
        )

    return build


@pytest.fixture
def registry(
    store: InMemoryBreakerStore,
    clock: FakeClock,
    metrics: RecordingMetrics,
    transitions: list[Transition],
    quiet_logger: logging.Logger,
) -> Iterator[BreakerRegistry]:
    yield BreakerRegistry(
        settings=ResilienceSettings(table_name="unused"),
        store=store,
        clock=clock,
        defaults=SMALL,
        metrics=metrics,
        logger=quiet_logger,
        on_transition=transitions.append,
    )
