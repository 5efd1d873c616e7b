"""Eight environments (threads, each with its own breaker, cache and boto3 client) share one breaker
through DynamoDB on moto's server over HTTP, while a provider fails and then recovers.

A shared fake clock runs ten times faster than real time, so the 3 s wait costs 0.3 s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resilience import (
    BreakerConfig,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    DynamoDBBreakerStore,
    NullBreakerMetrics,
    PermitKind,
    Transition,
)

if TYPE_CHECKING:
    from collections.abc import Callable

ENVIRONMENTS = 8
SPEED = 10.0  # fake seconds per real second
CONFIG = BreakerConfig(
    window_seconds=10,
    bucket_seconds=1,
    minimum_calls=20,
    failure_rate_threshold=0.5,
    local_minimum_calls=5,
    wait_open_seconds=3,
    wait_open_multiplier=2,
    wait_open_max_seconds=12,
    half_open_permits=3,
    success_threshold=2,
    probe_lease_seconds=5,
    cache_ttl_seconds=1,
    suspect_cache_ttl_seconds=0.3,
)


class SharedClock:
    """Fake epoch seconds, advanced by a ticker thread at SPEED x real time."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def __call__(self) -> float:
        return self.now

    def _tick(self) -> None:
        while not self._stop.wait(0.005):
            self.now += 0.005 * SPEED

    def __enter__(self) -> SharedClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Provider:
    """Fails until `recovered` is set; counts calls, and probes per half-open period."""

    recovered: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    normal_failures: int = 0
    probes: Counter[int] = field(default_factory=Counter)  # half-open version -> probes run
    probes_in_flight: int = 0
    max_probes_in_flight: int = 0

    def call(self, permit_kind: PermitKind, version: int) -> None:
        probe = permit_kind is PermitKind.PROBE
        with self.lock:
            if probe:
                self.probes[version] += 1
                self.probes_in_flight += 1
                self.max_probes_in_flight = max(self.max_probes_in_flight, self.probes_in_flight)
            elif not self.recovered.is_set():
                self.normal_failures += 1
        try:
            time.sleep(0.01)  # long enough for probes from several environments to overlap
            if not self.recovered.is_set():
                raise TimeoutError("provider timed out")
        finally:
            if probe:
                with self.lock:
                    self.probes_in_flight -= 1


def environment(
    breaker: CircuitBreaker, provider: Provider, stop: threading.Event, flowing: Callable[[], None]
) -> None:
    """One Lambda environment: call, record, flush every 10 calls; report when calls flow after recovery."""
    made = 0
    while not stop.is_set():
        try:
            permit = breaker.allow()
        except CircuitOpenError:
            time.sleep(0.003)
            continue
        try:
            provider.call(permit.kind, permit.version)
        except TimeoutError as exc:
            permit.record_failure(exc)
        else:
            permit.record_success()
            if permit.kind is PermitKind.NORMAL and breaker.state is BreakerState.CLOSED:
                flowing()
        made += 1
        if made % 10 == 0:
            breaker.flush()
    breaker.flush()


def test_eight_environments_agree_on_one_breaker(client_factory: Callable[[], Any], resilience_table: str) -> None:
    # Given 8 environments, each with its own breaker instance and client, all on one breaker item
    transitions: list[Transition] = []
    record = threading.Lock()

    def observe(transition: Transition) -> None:
        with record:
            transitions.append(transition)

    provider, stop = Provider(), threading.Event()
    flowing: set[int] = set()
    logger = logging.getLogger("tests.resilience.fleet")
    with SharedClock() as clock:
        breakers = [
            CircuitBreaker(
                "provider:fleet",
                DynamoDBBreakerStore(resilience_table, client=client_factory()),
                CONFIG,
                clock=clock,
                metrics=NullBreakerMetrics(),
                logger=logger,
                on_transition=observe,
            )
            for _ in range(ENVIRONMENTS)
        ]
        threads = [
            threading.Thread(target=environment, args=(b, provider, stop, lambda i=i: flowing.add(i)), daemon=True)
            for i, b in enumerate(breakers)
        ]

        # When the provider fails until the breaker has reopened once after a failed probe round, then recovers
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline and sum(t.to_state is BreakerState.OPEN for t in transitions) < 2:
            time.sleep(0.01)
        provider.recovered.set()
        while time.monotonic() < deadline and len(flowing) < ENVIRONMENTS:
            time.sleep(0.01)
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        final = breakers[0].describe()

    # Then the breaker opened, reopened after a failed probe, and closed again; traffic flows everywhere
    chain = sorted(transitions, key=lambda t: t.to_version)
    states = [(t.from_state.value, t.to_state.value) for t in chain]
    assert states[:4] == [("CLOSED", "OPEN"), ("OPEN", "HALF_OPEN"), ("HALF_OPEN", "OPEN"), ("OPEN", "HALF_OPEN")]
    assert states[-1] == ("HALF_OPEN", "CLOSED")
    assert len(flowing) == ENVIRONMENTS
    # And no transition was lost or duplicated: versions 1..N, each from the one before, N stored
    assert [t.to_version for t in chain] == list(range(1, len(chain) + 1))
    assert all(t.from_version == t.to_version - 1 for t in chain)
    assert final.version == len(chain) and final.state is BreakerState.CLOSED
    # And no half-open period ran more than half_open_permits probes, fleet-wide
    assert provider.probes and max(provider.probes.values()) <= CONFIG.half_open_permits
    assert provider.max_probes_in_flight <= CONFIG.half_open_permits
    # And while the provider was dead and the breaker closed, each environment failed at most local_minimum_calls
    assert provider.normal_failures <= ENVIRONMENTS * CONFIG.local_minimum_calls
