"""Benchmark: Herald's fleet-wide circuit breaker against Powertools' ``utilities.circuit_breaker``.

A fleet of execution environments (separate processes, each with its own breaker instance, cache
and boto3 client, like Lambda environments) calls a provider that fails with a given probability,
through one shared moto server on a loopback port. Both breakers run with their default
configuration on the same workload (same environments, rate, seeds and failure sequences).

Per failure rate it prints the calls that reached the provider, the failures there, the calls the
breaker rejected, when the last environment stopped calling the provider (time to open), and the
DynamoDB requests per protected call (counted with a ``before-call.dynamodb`` event hook on every
environment's client). A recovery run then fails the provider until the breaker opens, heals it,
and measures when traffic flows again in every environment.

Run::

    .venv/bin/python -m benchmarks.breaker                      # the full run (about 6 minutes)
    .venv/bin/python -m benchmarks.breaker --batch-size 1       # the same, a flush after every call
    .venv/bin/python -m benchmarks.breaker --quick              # a smoke run (about 1 minute)
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event

HERALD = "herald"
PEER = "powertools"
PEER_TABLE = "powertools-circuit-breaker"
HERALD_TABLE = "herald-resilience"
START_DELAY_SECONDS = 1.0
QUICK = {"environments": 4, "seconds": 6.0, "failure_rates": "0,1.0,0.5"}


class ProviderError(ConnectionResetError):
    """The simulated provider failed (a connection reset: transient for Herald, an exception for the peer)."""


@dataclass(frozen=True)
class Scenario:
    """One run of the fleet against one breaker implementation."""

    kind: str
    failure_rate: float
    environments: int
    rate: float
    seconds: float
    batch_size: int
    endpoint: str
    breaker_name: str
    seed: int
    recover_at: float | None = None  # seconds after start when the provider stops failing
    overrides: dict[str, float] = field(default_factory=dict)


@dataclass
class EnvironmentResult:
    """What one environment observed."""

    provider_calls: int = 0
    provider_failures: int = 0
    rejected: int = 0
    protected_calls: int = 0
    dynamodb_requests: int = 0
    stopped_at: float | None = None  # last provider call before a rejection that lasted to the end
    flowing_again_at: float | None = None  # first success after recovery, once calls flowed unhindered
    call_times: list[float] = field(default_factory=list)


# ---------------------------------------------------------------------------- environment (child process)
def _make_caller(scenario: Scenario, client: Any) -> tuple[Any, Any, Any]:
    """Build (attempt, flush, open_error) for one environment's breaker implementation."""
    if scenario.kind == HERALD:
        import logging

        from resilience import BreakerConfig, BreakerRegistry, NullBreakerMetrics, ResilienceSettings

        quiet = logging.getLogger("benchmark.herald")
        quiet.setLevel(logging.ERROR)
        registry = BreakerRegistry(
            settings=ResilienceSettings(table_name=HERALD_TABLE),
            client=client,
            defaults=BreakerConfig().with_overrides(scenario.overrides),
            metrics=NullBreakerMetrics(),
            logger=quiet,
        )
        breaker = registry.get(scenario.breaker_name)

        def attempt(provider: Any) -> None:
            breaker.call(provider)

        from resilience import CircuitOpenError

        return attempt, registry.flush, CircuitOpenError

    from aws_lambda_powertools.utilities.circuit_breaker import (
        CircuitBreakerConfig,
        CircuitBreakerOpenError,
        circuit_breaker,
    )
    from aws_lambda_powertools.utilities.circuit_breaker.persistence import CircuitBreakerDynamoDBPersistence

    persistence = CircuitBreakerDynamoDBPersistence(table_name=PEER_TABLE, boto3_client=client)
    peer_settings: dict[str, Any] = {k: int(v) for k, v in scenario.overrides.items()}
    config = CircuitBreakerConfig(**peer_settings)

    @circuit_breaker(name=scenario.breaker_name, persistence_store=persistence, config=config)
    def peer_attempt(provider: Any) -> None:
        provider()

    return peer_attempt, lambda: None, CircuitBreakerOpenError


@dataclass(frozen=True)
class Channels:
    """How the parent and an environment process talk (multiprocessing primitives)."""

    ready: Any
    go: Event
    start: Any
    results: Any


def _environment(scenario: Scenario, index: int, channels: Channels) -> None:
    """One execution environment: calls at a fixed rate through its own breaker and client."""
    import boto3

    client = boto3.session.Session().client("dynamodb")
    counter = {"requests": 0}

    def count(**_: Any) -> None:
        counter["requests"] += 1

    client.meta.events.register("before-call.dynamodb", count)
    caller = _make_caller(scenario, client)
    channels.ready.put(index)
    channels.go.wait()
    result = _run_calls(scenario, index, caller, channels.start.value)
    result.dynamodb_requests = counter["requests"]
    channels.results.put((index, result))


def _one_call(attempt: Any, open_error: type[Exception], *, failing: bool) -> tuple[bool, bool]:
    """One protected call: (did it reach the provider, was it rejected by the breaker)."""
    reached: list[bool] = []

    def provider() -> None:
        reached.append(True)
        if failing:
            raise ProviderError("provider failed")

    try:
        attempt(provider)
    except open_error:
        return False, True
    except ProviderError:
        pass
    return bool(reached), False


def _run_calls(scenario: Scenario, index: int, caller: tuple[Any, Any, Any], started: float) -> EnvironmentResult:
    """Make the environment's calls on schedule; flush every batch; note what reached the provider."""
    attempt, flush, open_error = caller
    rng = random.Random(scenario.seed * 1000 + index)
    result = EnvironmentResult()
    offset = index / (scenario.rate * scenario.environments)  # environments interleave within each period
    rejected_last = False
    for number in range(int(scenario.rate * scenario.seconds)):
        pause = started + offset + number / scenario.rate - time.time()
        if pause > 0:
            time.sleep(pause)
        now = time.time() - started
        recovered = scenario.recover_at is not None and now >= scenario.recover_at
        failing = not recovered and rng.random() < scenario.failure_rate
        reached, rejected = _one_call(attempt, open_error, failing=failing)
        result.protected_calls += 1
        result.rejected += int(rejected)
        if recovered and reached and result.flowing_again_at is None and result.rejected:
            result.flowing_again_at = now
        rejected_last = not reached
        if reached:
            result.provider_calls += 1
            result.provider_failures += int(failing)
            result.call_times.append(now)
        if (number + 1) % scenario.batch_size == 0:
            flush()
    flush()
    if rejected_last:
        result.stopped_at = result.call_times[-1] if result.call_times else 0.0
    return result


# ---------------------------------------------------------------------------- fleet (parent process)
@dataclass
class FleetResult:
    """A scenario's totals."""

    scenario: Scenario
    environments: list[EnvironmentResult]

    @property
    def provider_calls(self) -> int:
        return sum(e.provider_calls for e in self.environments)

    @property
    def provider_failures(self) -> int:
        return sum(e.provider_failures for e in self.environments)

    @property
    def rejected(self) -> int:
        return sum(e.rejected for e in self.environments)

    @property
    def requests_per_call(self) -> float:
        calls = sum(e.protected_calls for e in self.environments)
        return sum(e.dynamodb_requests for e in self.environments) / calls if calls else 0.0

    @property
    def time_to_open(self) -> str:
        stopped = [e.stopped_at for e in self.environments]
        if all(s is None for s in stopped):
            return "never"
        if any(s is None for s in stopped):
            return f"partial ({sum(s is not None for s in stopped)}/{len(stopped)})"
        return f"{max(s for s in stopped if s is not None):.1f} s"


def run_fleet(scenario: Scenario) -> FleetResult:
    """Start one process per environment, release them together, collect their results."""
    context = multiprocessing.get_context("spawn")
    channels = Channels(
        ready=context.Queue(), go=context.Event(), start=context.Value("d", 0.0), results=context.Queue()
    )
    processes = [
        context.Process(target=_environment, args=(scenario, index, channels), daemon=True)
        for index in range(scenario.environments)
    ]
    for process in processes:
        process.start()
    try:
        for _ in processes:
            channels.ready.get(timeout=120)
        channels.start.value = time.time() + START_DELAY_SECONDS
        channels.go.set()
        collected = dict(channels.results.get(timeout=scenario.seconds + 120) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
    return FleetResult(scenario, [collected[index] for index in sorted(collected)])


def create_tables(endpoint: str) -> None:
    """Herald's table from template.yaml's key schema; the peer's with its default ``id`` key."""
    import boto3

    from local.aws.template import Stack

    client = boto3.client("dynamodb", endpoint_url=endpoint)
    properties = Stack.from_file().of_type("AWS::DynamoDB::Table")["ResilienceTable"]
    client.create_table(
        TableName=HERALD_TABLE,
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        GlobalSecondaryIndexes=properties["GlobalSecondaryIndexes"],  # by-kind: the breakers' listing
        BillingMode="PAY_PER_REQUEST",
    )
    client.create_table(
        TableName=PEER_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


PROBE_ROUND_SECONDS = 1.5
"""One probe round: the probes' calls plus the other environments' next state read (suspect cache TTL, 1 s)."""


def recovery_report(result: FleetResult, wait_open: float) -> str:
    """When the breaker stopped traffic, when traffic flowed again everywhere, against the bound."""
    recover_at = result.scenario.recover_at or 0.0
    stopped = max(max((t for t in e.call_times if t < recover_at), default=0.0) for e in result.environments)
    flowing = [e.flowing_again_at for e in result.environments]
    bound = wait_open + PROBE_ROUND_SECONDS
    if any(f is None for f in flowing):
        again, met = "not within the run", "no"
    else:
        last = max(f for f in flowing if f is not None)
        again = f"{last:.1f} s ({last - stopped:.1f} s after the stop)"
        met = "yes" if last - stopped <= bound else "no"
    return f"| {result.scenario.kind} | {stopped:.1f} s | {recover_at:.1f} s | {again} | {bound:g} s | {met} |"


def main(argv: list[str] | None = None) -> int:
    """Parse options, start moto, run every scenario for both breakers, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environments", type=int, default=8, help="execution environments (processes)")
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second per environment")
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each failure-rate run")
    parser.add_argument("--failure-rates", default="0,1.0,0.5,0.3,0.2", help="comma-separated probabilities")
    parser.add_argument("--batch-size", type=int, default=10, help="calls per batch (Herald flushes per batch)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the provider's failures")
    parser.add_argument("--no-recovery", action="store_true", help="skip the recovery run")
    parser.add_argument("--quick", action="store_true", help="4 environments, 6 s, rates 0,1.0,0.5, short waits")
    args = parser.parse_args(argv)
    if args.quick:
        args.environments, args.seconds, args.failure_rates = (
            QUICK["environments"],
            QUICK["seconds"],
            QUICK["failure_rates"],
        )
    rates = [float(r) for r in args.failure_rates.split(",") if r.strip()]

    from local.aws.moto_server import MotoServer, aws_environment, free_port

    with MotoServer(free_port()) as server:
        os.environ.update(aws_environment(server.url))
        create_tables(server.url)
        command = "python -m benchmarks.breaker" + (" --quick" if args.quick else "")
        print(
            f"# {command}: {args.environments} environments x {args.rate:g} calls/s, {args.seconds:g} s per run, "
            f"batch {args.batch_size}, moto {server.url}"
        )
        print()
        print(
            "| breaker | failure rate | provider calls | provider failures | rejected | time to open | "
            "DynamoDB requests/call |"
        )
        print("|---|---|---|---|---|---|---|")
        for rate in rates:
            for kind in (HERALD, PEER):
                scenario = Scenario(
                    kind=kind,
                    failure_rate=rate,
                    environments=args.environments,
                    rate=args.rate,
                    seconds=args.seconds,
                    batch_size=args.batch_size,
                    endpoint=server.url,
                    breaker_name=f"provider:{kind}-{rate:g}-{uuid.uuid4().hex[:6]}",
                    seed=args.seed,
                )
                result = run_fleet(scenario)
                print(
                    f"| {kind} | {rate:g} | {result.provider_calls} | {result.provider_failures} | "
                    f"{result.rejected} | {result.time_to_open} | {result.requests_per_call:.3f} |",
                    flush=True,
                )
        if not args.no_recovery:
            print()
            print("Recovery: the provider fails every call until the breaker opens, then heals.")
            print()
            print(
                "| breaker | last environment stopped | provider healed | traffic flowing again in every environment "
                "| wait_open + one probe round | within it |"
            )
            print("|---|---|---|---|---|---|")
            for kind in (HERALD, PEER):
                wait = 3.0 if args.quick else 30.0
                overrides = (
                    ({"wait_open_seconds": wait} if kind == HERALD else {"recovery_timeout": wait})
                    if args.quick
                    else {}
                )
                scenario = Scenario(
                    kind=kind,
                    failure_rate=1.0,
                    environments=args.environments,
                    rate=args.rate,
                    seconds=wait + 12.0,
                    batch_size=args.batch_size,
                    endpoint=server.url,
                    breaker_name=f"provider:{kind}-recovery-{uuid.uuid4().hex[:6]}",
                    seed=args.seed,
                    recover_at=2.0,
                    overrides=overrides,
                )
                print(recovery_report(run_fleet(scenario), wait), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
