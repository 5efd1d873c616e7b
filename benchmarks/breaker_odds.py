"""How often Herald's breaker opens, and how fast, over many runs: the real breaker code, simulated time.

    .venv/bin/python -m benchmarks.breaker_odds [--runs 300] [--environments 8] [--rate 10] [--seconds 20]

`benchmarks.breaker` measures one run of a real fleet over HTTP; chance decides single runs (which
calls fail). This runs the same workload many times, each with its own seed: one `CircuitBreaker`
per environment (its own cache and unflushed window) over one shared in-memory store with the same
conditional semantics as DynamoDB, an injected clock stepping 1/rate seconds, a flush every
`--batch-size` calls. It prints, per failure rate, the share of runs in which every environment had
stopped calling within 2 s and within 5 s, the share in which the breaker opened at all, and the
median and worst time until every environment had stopped.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import sys

from resilience import (
    BreakerConfig,
    CircuitBreaker,
    CircuitOpenError,
    InMemoryBreakerStore,
    NullBreakerMetrics,
    TransientError,
)

START = 1_800_000_000.0


class SimulatedClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def one_run(
    failure_rate: float,
    seed: int,
    *,
    config: BreakerConfig,
    environments: int,
    rate: float,
    seconds: float,
    batch_size: int,
) -> float | None:
    """Seconds until every environment was rejected (the breaker open for all), or None if never."""
    rng = random.Random(seed)
    clock = SimulatedClock()
    store = InMemoryBreakerStore()
    quiet = logging.getLogger("benchmarks.breaker_odds")
    quiet.disabled = True
    fleet = [
        CircuitBreaker("provider:sim", store, config, clock=clock, metrics=NullBreakerMetrics(), logger=quiet)
        for _ in range(environments)
    ]
    calls = [0] * environments
    stopped: set[int] = set()
    ticks = int(seconds * rate)
    for tick in range(ticks):
        clock.now = START + tick / rate
        for index, breaker in enumerate(fleet):
            try:
                permit = breaker.allow()
            except CircuitOpenError:
                stopped.add(index)
                if len(stopped) == environments:
                    return clock.now - START
                continue
            stopped.discard(index)
            if rng.random() < failure_rate:
                permit.record_failure(TransientError("provider down"), 0.05)
            else:
                permit.record_success(0.05)
            calls[index] += 1
            if calls[index] % batch_size == 0:
                breaker.flush()
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--environments", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second per environment")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--failure-rates", default="1.0,0.5,0.3,0.2")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a default")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    defaults = BreakerConfig()
    # each value takes the type of its default (int or float)
    config = BreakerConfig(**{name: type(getattr(defaults, name))(value) for name, value in overrides.items()})
    print(
        f"{args.runs} runs per rate; {args.environments} environments x {args.rate:g} calls/s for {args.seconds:g} s;"
        f" minimum_calls={config.minimum_calls} failure_rate_threshold={config.failure_rate_threshold}"
        f" local_minimum_calls={config.local_minimum_calls} window_seconds={config.window_seconds}"
    )
    print("| failure rate | opened (all stopped) | within 2 s | within 5 s | median time | worst time |")
    print("|---|---|---|---|---|---|")
    for failure_rate in (float(r) for r in args.failure_rates.split(",")):
        times = [
            one_run(
                failure_rate,
                seed,
                config=config,
                environments=args.environments,
                rate=args.rate,
                seconds=args.seconds,
                batch_size=args.batch_size,
            )
            for seed in range(args.runs)
        ]
        opened = [t for t in times if t is not None]
        share = len(opened) / args.runs

        def within(limit: float, opened: list[float] = opened) -> str:
            return f"{sum(t <= limit for t in opened) / args.runs:.1%}"

        median = f"{statistics.median(opened):.1f} s" if opened else "-"
        worst = f"{max(opened):.1f} s" if opened else "-"
        print(f"| {failure_rate:g} | {share:.1%} | {within(2)} | {within(5)} | {median} | {worst} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
