"""The registry: one breaker per name, per-name configuration, flush, describe and admin operations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from resilience import (
    BreakerRegistry,
    BreakerState,
    CircuitOpenError,
    InMemoryBreakerStore,
    ResilienceSettings,
    TransientError,
)
from resilience.observability import METRIC_SUCCESS

if TYPE_CHECKING:
    from breaker_fakes import RecordingMetrics

    from tests.support.clock import FakeClock


def test_get_returns_one_breaker_per_name(registry: BreakerRegistry) -> None:
    # Given a registry
    # When the same name is asked twice, and another name once
    first, again, other = registry.get("provider:a"), registry.get("provider:a"), registry.get("provider:b")

    # Then the instance is shared per name
    assert first is again
    assert first is not other


def test_configuration_precedence_defaults_env_code_operator(store: InMemoryBreakerStore, clock: FakeClock) -> None:
    # Given environment defaults, per-name code configuration, and an operator override for one name
    settings = ResilienceSettings(
        table_name="t",
        breaker_defaults={"wait_open_seconds": "10", "minimum_calls": "40"},
        breaker_overrides={"provider:b": {"wait_open_seconds": 99}},
    )
    registry = BreakerRegistry(
        settings=settings, store=store, clock=clock, configs={"provider:a": {"minimum_calls": 7}, "provider:b": {}}
    )

    # When the effective configurations are computed
    a, b, c = (registry.config_for(name) for name in ("provider:a", "provider:b", "provider:c"))

    # Then each layer overrides the one before it
    assert (a.wait_open_seconds, a.minimum_calls) == (10, 7)
    assert (b.wait_open_seconds, b.minimum_calls) == (99, 40)
    assert (c.wait_open_seconds, c.minimum_calls) == (10, 40)
    assert registry.names() == ["provider:a", "provider:b"]


def test_configure_after_first_use_is_refused(registry: BreakerRegistry) -> None:
    # Given a breaker already in use
    registry.get("provider:a")

    # When it is reconfigured
    # Then the registry refuses rather than silently ignoring it
    with pytest.raises(ValueError, match="already in use"):
        registry.configure("provider:a", wait_open_seconds=5)


def test_flush_flushes_every_breaker_and_emits_their_counts(
    registry: BreakerRegistry, metrics: RecordingMetrics
) -> None:
    # Given two breakers with successful calls
    registry.get("provider:a").call(lambda: None)
    registry.get("provider:b").call(lambda: None)
    registry.get("provider:b").call(lambda: None)

    # When the batch ends
    registry.flush()

    # Then each breaker emitted its own success count
    assert metrics.emitted == [
        ("provider:a", {METRIC_SUCCESS: 1.0, "CircuitBreakerState": 0}),
        ("provider:b", {METRIC_SUCCESS: 2.0, "CircuitBreakerState": 0}),
    ]


def test_describe_and_admin_operations_by_name(registry: BreakerRegistry, clock: FakeClock) -> None:
    # Given one breaker opened by failures and one never used but configured
    registry.configure("provider:idle")
    failing = registry.get("provider:down")
    for _ in range(5):
        with pytest.raises(TransientError):
            failing.call(lambda: (_ for _ in ()).throw(TransientError("down")))

    # When they are described, then an operator disables the idle one and resets the other
    before = {s.name: s.state for s in registry.describe()}
    registry.disable("provider:idle")
    registry.reset("provider:down")
    after = {s.name: s.state for s in registry.describe()}

    # Then the health view and the admin operations agree
    assert before == {"provider:down": BreakerState.OPEN, "provider:idle": BreakerState.CLOSED}
    assert after == {"provider:down": BreakerState.CLOSED, "provider:idle": BreakerState.DISABLED}


def test_the_protect_decorator_rejects_when_open(registry: BreakerRegistry) -> None:
    # Given a function protected by name, and that breaker forced open
    calls: list[str] = []

    @registry.protect("provider:a")
    def send(text: str) -> str:
        calls.append(text)
        return text.upper()

    assert send("hi") == "HI"
    registry.force_open("provider:a")

    # When it is called again
    # Then the call is rejected without running
    with pytest.raises(CircuitOpenError):
        send("again")
    assert calls == ["hi"]


def test_importing_the_library_reads_nothing_and_calls_nothing() -> None:
    # Given a fresh interpreter with no AWS configuration at all
    code = (
        "import sys, resilience\n"
        "assert resilience.breakers._settings is None and resilience.breakers._store is None\n"
        "print('ok')\n"
    )

    # When the library is imported (and its default registry touched)
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3] / "layers" / "resilience")},
    )

    # Then nothing was read nor created
    assert result.stdout.strip() == "ok", result.stderr
