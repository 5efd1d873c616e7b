"""How often Herald's breaker opens, how fast, and what it costs, over many runs: the real breaker code, simulated time.

    .venv/bin/python -m benchmarks.breaker_odds [--runs 300] [--batch-sizes 1,3,10] [--environments 8] [--rate 10]
        [--seconds 20] [--failure-rates 1.0,0.5,0.3,0.2,0] [--set FIELD=VALUE ...] [--jobs N]

`benchmarks.breaker` measures one run of a real fleet over HTTP; chance decides single runs (which
calls fail). This runs the same workload many times, each with its own seed: one `CircuitBreaker`
per environment (its own cache and unflushed window) over one shared in-memory store with the same
conditional semantics as DynamoDB, an injected clock stepping 1/rate seconds, a flush every
batch-size calls. Seeds are shared across batch sizes and failure rates, so rows differ by the
setting, not by luck.

It prints two markdown tables. The odds, per batch size and failure rate: the share of runs in
which every environment had stopped calling (the breaker open for all), within 2 s and within 5 s,
the median and worst time until then, and the calls that reached the provider fleet-wide until
then (median and worst over the runs that stopped). The cost: store requests (reads, writes) per
protected call, rejected calls included, as `benchmarks.breaker` counts DynamoDB requests (a run
ends when every environment has stopped). Rows run in parallel, one process each (`--jobs`, the
number of CPUs by default); the defaults take about 40 s on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    TransientError,
)

START = 1_800_000_000.0
CALL_SECONDS = 0.05  # every call's duration: far below slow_call_seconds
QUIET = logging.getLogger("benchmarks.breaker_odds")
QUIET.disabled = True


class SimulatedClock:
    """Epoch seconds that only the simulation moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Workload:
    """The fleet of one run."""

    environments: int
    rate: float  # calls per second per environment
    seconds: float
    batch_size: int  # calls per flush


@dataclass(frozen=True)
class RunResult:
    """What one run observed.

    ``stopped_at`` is the time until every environment was rejected (None: never within the run);
    ``provider_calls`` the calls that reached the provider until then (or in the whole run);
    ``protected_calls`` every ``allow()``, rejected ones included; ``reads`` and ``writes`` the store
    requests of the whole fleet.
    """

    stopped_at: float | None
    provider_calls: int
    protected_calls: int
    reads: int
    writes: int


def one_run(failure_rate: float, seed: int, *, config: BreakerConfig, workload: Workload) -> RunResult:
    """One run: every environment calls once per tick, in turn; each call fails with ``failure_rate``."""
    rng = random.Random(seed)
    clock = SimulatedClock()
    store = InMemoryBreakerStore()
    fleet = [
        CircuitBreaker("provider:sim", store, config, clock=clock, metrics=NullBreakerMetrics(), logger=QUIET)
        for _ in range(workload.environments)
    ]
    failure = TransientError("provider down")
    calls = [0] * workload.environments
    stopped: set[int] = set()
    protected = 0
    stopped_at: float | None = None
    for tick in range(int(workload.seconds * workload.rate)):
        clock.now = START + tick / workload.rate
        for index, breaker in enumerate(fleet):
            protected += 1
            try:
                permit = breaker.allow()
            except CircuitOpenError:
                stopped.add(index)
                if len(stopped) == workload.environments:
                    stopped_at = clock.now - START
                    break
                continue
            stopped.discard(index)
            if rng.random() < failure_rate:
                permit.record_failure(failure, CALL_SECONDS)
            else:
                permit.record_success(CALL_SECONDS)
            calls[index] += 1
            if calls[index] % workload.batch_size == 0:
                breaker.flush()
        if stopped_at is not None:
            break
    return RunResult(stopped_at, sum(calls), protected, store.reads, store.writes)


@dataclass(frozen=True)
class Row:
    """The runs of one batch size and one failure rate."""

    batch_size: int
    failure_rate: float
    results: list[RunResult]

    def odds(self) -> str:
        """The row of the odds table."""
        runs = len(self.results)
        stopped = [r for r in self.results if r.stopped_at is not None]
        times = [r.stopped_at for r in stopped if r.stopped_at is not None]
        calls = [r.provider_calls for r in stopped]

        def share(count: int) -> str:
            return f"{count / runs:.1%}"

        median = f"{statistics.median(times):.1f} s" if times else "-"
        worst = f"{max(times):.1f} s" if times else "-"
        until = f"{statistics.median(calls):g} / {max(calls)}" if calls else "-"
        return (
            f"| {self.batch_size} | {self.failure_rate:g} | {share(len(times))} | {share(sum(t <= 2 for t in times))}"
            f" | {share(sum(t <= 5 for t in times))} | {median} | {worst} | {until} |"
        )

    def cost(self) -> str:
        """The row of the cost table (totals over every run, per protected call)."""
        calls = sum(r.protected_calls for r in self.results)
        reads = sum(r.reads for r in self.results) / calls
        writes = sum(r.writes for r in self.results) / calls
        return f"| {self.batch_size} | {self.failure_rate:g} | {reads:.3f} | {writes:.3f} | {reads + writes:.3f} |"


def run_row(
    batch_size: int,
    failure_rate: float,
    *,
    runs: int,
    config: BreakerConfig,
    environments: int,
    rate: float,
    seconds: float,
) -> Row:
    """The runs of one row, seeds 0 to ``runs - 1``.

    At failure rate 0 or 1 no draw changes an outcome (``random()`` is in ``[0, 1)``), so every seed
    gives the same run: it is simulated once and counted ``runs`` times.
    """
    workload = Workload(environments, rate, seconds, batch_size)
    if failure_rate in (0.0, 1.0):
        return Row(batch_size, failure_rate, [one_run(failure_rate, 0, config=config, workload=workload)] * runs)
    return Row(
        batch_size,
        failure_rate,
        [one_run(failure_rate, seed, config=config, workload=workload) for seed in range(runs)],
    )


def parse_config(settings: list[str]) -> BreakerConfig:
    """The defaults, with ``FIELD=VALUE`` overrides (each value takes its field's type)."""
    return BreakerConfig().with_overrides(dict(item.split("=", 1) for item in settings))


def main(argv: list[str] | None = None) -> int:
    """Run every batch size and failure rate, print the odds and cost tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300, help="runs per batch size and failure rate")
    parser.add_argument("--environments", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second per environment")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-sizes", default="1,3,10", help="calls per flush, comma-separated")
    parser.add_argument("--failure-rates", default="1.0,0.5,0.3,0.2,0", help="comma-separated probabilities")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a default")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="rows simulated in parallel")
    args = parser.parse_args(argv)
    config = parse_config(args.set)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    failure_rates = [float(r) for r in args.failure_rates.split(",") if r.strip()]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = [
            pool.submit(
                run_row,
                batch_size,
                failure_rate,
                runs=args.runs,
                config=config,
                environments=args.environments,
                rate=args.rate,
                seconds=args.seconds,
            )
            for batch_size in batch_sizes
            for failure_rate in failure_rates
        ]
        rows = [future.result() for future in futures]
    print(
        f"{args.runs} runs per row; {args.environments} environments x {args.rate:g} calls/s for {args.seconds:g} s;"
        f" minimum_calls={config.minimum_calls} failure_rate_threshold={config.failure_rate_threshold}"
        f" local_minimum_calls={config.local_minimum_calls} window_seconds={config.window_seconds:g}"
        f" suspect_cache_ttl_seconds={config.suspect_cache_ttl_seconds:g}"
    )
    print()
    print(
        "| batch size | failure rate | opened (all stopped) | within 2 s | within 5 s | median time | worst time"
        " | provider calls until stopped (median / worst) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row.odds())
    print()
    print("| batch size | failure rate | store reads/call | store writes/call | store requests/call |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row.cost())
    print()
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
