"""Time from `python -m local` (what `make run` runs) to `Herald is ready`, over several starts.

    .venv/bin/python -m benchmarks.startup [--runs 5]

Prints each start's seconds, their median, and as a baseline in the same run the time to start
moto's server alone, since the embedded AWS is part of every start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from local.aws.moto_server import MotoServer, free_port

READY = "Herald is ready"


def time_runtime_start(timeout: float = 120.0) -> float:
    env = {**os.environ, "HERALD_API_PORT": str(free_port()), "HERALD_AWS_PORT": str(free_port())}
    started = time.perf_counter()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "local"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if READY in line:
                return time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                break
        raise RuntimeError("the runtime did not become ready")
    finally:
        process.terminate()
        process.wait(timeout=30)


def time_moto_start() -> float:
    started = time.perf_counter()
    with MotoServer(free_port()):
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    herald = [time_runtime_start() for _ in range(args.runs)]
    moto = [time_moto_start() for _ in range(args.runs)]
    print(f"runs: {args.runs}")
    print(f"make run -> ready (s):    {' '.join(f'{t:.2f}' for t in herald)}   median {statistics.median(herald):.2f}")
    print(f"moto server alone (s):    {' '.join(f'{t:.2f}' for t in moto)}   median {statistics.median(moto):.2f}")
    print(f"ratio herald/moto-alone:  {statistics.median(herald) / statistics.median(moto):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
