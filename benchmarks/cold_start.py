"""Cold start: the import time of each Lambda handler module, as a ratio to `import boto3` alone in the same run.

    .venv/bin/python -m benchmarks.cold_start [--runs 7] [--detail] [--check]

Every handler module named by a `Handler:` of template.yaml (`api.app`, `sender.app`, ...) and, as the
baseline, `boto3` is imported in a fresh `sys.executable` process, `--runs` times each (the modules take
turns, so drift on the machine falls on all of them alike). The child times `importlib.import_module`
with `time.perf_counter`, so interpreter start-up is not counted. Each child has the environment a
deployed function has: the template's Globals and the function's own Environment variables (resolved
offline: every resource gets a placeholder name, nothing is created or called), Lambda's runtime
variables, a region, dummy credentials, and PYTHONPATH = functions:layers/resilience.

Before the timed runs, each module is imported once more with AWS guarded: `AWS_ENDPOINT_URL` points at a
loopback port nothing listens on, botocore's client creation is recorded and every socket connect or
send is recorded and refused. The column "AWS at import" says what an import did (it must be "none").
One run under `-X importtime` names each handler's three heaviest imports outside Herald's own code
(cumulative ms, none inside another); `--detail` prints the top cumulative entries of the slowest handler.

The target is a median at most 1.5x boto3's. It exits non-zero when an import reaches for AWS, and with
`--check` also when a handler misses the target.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from local.aws.template import Stack

REGION = "us-east-1"
BASELINE = "boto3"
TARGET_RATIO = 1.5
CODE_PATHS = (REPO_ROOT / "functions", REPO_ROOT / "layers" / "resilience")
RESULT_MARKER = "HERALD_COLD_START_RESULT "
IMPORTTIME_MARKER = "HERALD_COLD_START_IMPORT_BEGINS"
# Variables of the machine that would change what an import does (a profile, real credentials, a proxy
# to AWS, Powertools switches): the child gets the deployed function's values or none.
_DROPPED_PREFIXES = ("AWS_", "POWERTOOLS_", "_X_AMZN_", "LAMBDA_", "_HANDLER")

# Run in the child: `python -c CHILD <module> <time|guard>`. "guard" records what the import does to AWS.
CHILD = f"""
import importlib, json, sys, time
module, mode = sys.argv[1], sys.argv[2]
seen = {{"clients": [], "network": []}}
if mode == "guard":
    import socket
    import botocore.client

    create_client = botocore.client.ClientCreator.create_client

    def recording_create_client(self, service_name, *args, **kwargs):
        seen["clients"].append(str(service_name))
        return create_client(self, service_name, *args, **kwargs)

    def refuse(verb):
        def refused(self, *args, **kwargs):
            seen["network"].append(verb + " " + repr(args[-1] if args else kwargs))
            raise ConnectionRefusedError("no network while a handler is imported")
        return refused

    botocore.client.ClientCreator.create_client = recording_create_client
    for verb in ("connect", "connect_ex", "sendto", "sendall", "send"):
        setattr(socket.socket, verb, refuse(verb))
if mode == "importtime":
    sys.stderr.write({IMPORTTIME_MARKER!r} + "\\n")
    sys.stderr.flush()
error = None
started = time.perf_counter()
try:
    if mode == "importtime":
        __import__(module)  # through the C import, which -X importtime reports (import_module's top is not)
    else:
        importlib.import_module(module)
except Exception as exc:
    if mode != "guard":
        raise
    error = type(exc).__name__ + ": " + str(exc)[:200]
seconds = time.perf_counter() - started
sys.stdout.write("\\n" + {RESULT_MARKER!r} + json.dumps({{"seconds": seconds, "error": error, **seen}}) + "\\n")
"""


@dataclass(frozen=True)
class ChildOutput:
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], env: Mapping[str, str]) -> ChildOutput:
    """Run one child process to completion; a failed import raises with the child's stderr."""
    completed = subprocess.run(  # noqa: S603 - argv is sys.executable and this module's own program
        list(argv), env=dict(env), capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[-2:])} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    return ChildOutput(completed.stdout, completed.stderr)


# ---------------------------------------------------------------- the deployed environment, offline
def name_offline(stack: Stack) -> Stack:
    """A copy of `stack` with a placeholder physical id and ARN for every resource, so every Ref resolves."""
    from local.aws.provision import name_emulated_resources

    named = copy.deepcopy(stack)
    name_emulated_resources(named)  # functions, roles, log groups, schedules: the local runtime's own names
    prefix, account, region = named.stack_name, named.account_id, named.region
    for logical_id, resource in named.resources.items():
        name = f"{prefix}-{logical_id}"
        if resource["Type"] == "AWS::SQS::Queue":
            named.physical_ids[logical_id] = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
            named.arns[logical_id] = f"arn:aws:sqs:{region}:{account}:{name}"
        elif resource["Type"] == "AWS::DynamoDB::Table":
            named.physical_ids[logical_id] = name
            named.arns[logical_id] = f"arn:aws:dynamodb:{region}:{account}:table/{name}"
        elif resource["Type"] == "AWS::SecretsManager::Secret":
            arn = f"arn:aws:secretsmanager:{region}:{account}:secret:{name}-AbCdEf"
            named.physical_ids[logical_id] = named.arns[logical_id] = arn
        else:
            named.physical_ids.setdefault(logical_id, name)
            named.arns.setdefault(logical_id, f"arn:aws:placeholder:{region}:{account}:{name}")
    return named


def lambda_runtime_variables(function_name: str, handler: str, memory_mb: int, region: str = REGION) -> dict[str, str]:
    """What Lambda itself sets in every execution environment (besides the function's own variables)."""
    return {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "LAMBDA_TASK_ROOT": str(CODE_PATHS[0]),
        "_HANDLER": handler,
    }


def child_environment(
    machine: Mapping[str, str], variables: Mapping[str, str], endpoint_url: str, region: str = REGION
) -> dict[str, str]:
    """The machine's environment without its AWS/Powertools/Lambda variables, plus `variables`, dummy
    credentials, an endpoint that answers nothing, and the code paths Lambda puts on sys.path."""
    kept = {key: value for key, value in machine.items() if not key.startswith(_DROPPED_PREFIXES)}
    kept.pop("PYTHONPATH", None)
    return {
        **kept,
        **variables,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",  # noqa: S105 - a dummy: nothing may be called
        "AWS_ENDPOINT_URL": endpoint_url,
        "PYTHONPATH": os.pathsep.join(str(path) for path in CODE_PATHS),
    }


def deployed_environments(stack: Stack, machine: Mapping[str, str], endpoint_url: str) -> dict[str, dict[str, str]]:
    """Handler module -> the environment its child runs in; `boto3` (the baseline) gets the first function's."""
    from local.lambda_.handlers import load_functions

    functions = load_functions(name_offline(stack))
    environments: dict[str, dict[str, str]] = {}
    for function in sorted(functions.values(), key=lambda function: function.logical_id):
        runtime = lambda_runtime_variables(function.name, function.handler_path, function.memory_mb, stack.region)
        module = function.handler_path.rpartition(".")[0]
        environments[module] = child_environment(machine, {**function.environment, **runtime}, endpoint_url)
    return {BASELINE: next(iter(environments.values())), **environments}


def unused_loopback_url() -> str:
    """An http URL on a 127.0.0.1 port that was free a moment ago (nothing listens: a connect is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------- what the children report
def child_result(stdout: str) -> dict[str, Any]:
    """The JSON line the child printed last (a handler may print its own lines before it)."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARKER) :])
            return result
    raise ValueError("the child printed no result")


def aws_at_import(result: Mapping[str, Any]) -> str:
    """`none`, or what the import did: the clients it created, the network it reached for, its error."""
    parts = []
    if result.get("clients"):
        parts.append("clients " + ", ".join(sorted(set(result["clients"]))))
    if result.get("network"):
        parts.append("network " + ", ".join(sorted(set(result["network"]))))
    if result.get("error"):
        parts.append(f"import failed ({result['error']})")
    return "; ".join(parts) or "none"


@dataclass(frozen=True)
class ImportEntry:
    """One line of `-X importtime`, with the names imported beneath it (its children print before it)."""

    name: str
    self_us: int
    cumulative_us: int
    level: int
    beneath: frozenset[str] = field(default_factory=frozenset)


_IMPORTTIME = re.compile(r"^import time:\s*(\d+)\s*\|\s*(\d+)\s*\|( *)(\S+)\s*$")


def parse_importtime(stderr: str) -> list[ImportEntry]:
    """The entries after the child's marker (the handler's import, not the interpreter's start-up)."""
    lines = stderr.splitlines()
    if IMPORTTIME_MARKER in lines:
        lines = lines[lines.index(IMPORTTIME_MARKER) + 1 :]
    entries: list[ImportEntry] = []
    pending: list[ImportEntry] = []  # entries still waiting for their parent (printed after them)
    for line in lines:
        match = _IMPORTTIME.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        level = len(indent) // 2
        children: set[str] = set()
        while pending and pending[-1].level > level:
            child = pending.pop()
            children |= {child.name, *child.beneath}
        entry = ImportEntry(name, int(self_us), int(cumulative_us), level, frozenset(children))
        pending.append(entry)
        entries.append(entry)
    return entries


def own_packages(paths: Iterable[os.PathLike[str]] = CODE_PATHS) -> frozenset[str]:
    """Herald's top-level packages: the directories of functions/ and of the resilience layer."""
    return frozenset(child.name for path in paths for child in Path(path).iterdir() if (child / "__init__.py").exists())


def heaviest(entries: Sequence[ImportEntry], own: frozenset[str], count: int = 3) -> list[ImportEntry]:
    """The `count` heaviest imports outside Herald's own packages, none of them beneath another chosen one."""
    chosen: list[ImportEntry] = []
    for entry in sorted(entries, key=lambda entry: entry.cumulative_us, reverse=True):
        if entry.name.split(".")[0] in own or any(entry.name in above.beneath for above in chosen):
            continue
        chosen.append(entry)
        if len(chosen) == count:
            break
    return chosen


# ---------------------------------------------------------------- figures
@dataclass(frozen=True)
class Figures:
    module: str
    samples: tuple[float, ...]  # seconds
    baseline_median: float  # seconds, boto3's median in the same run

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.samples) * 1000

    @property
    def ratio(self) -> float:
        return statistics.median(self.samples) / self.baseline_median

    @property
    def meets_target(self) -> bool:
        return self.ratio <= TARGET_RATIO


def figures(samples: Mapping[str, Sequence[float]]) -> list[Figures]:
    """Each module's figures against the baseline's median (the baseline first, at 1.00x)."""
    baseline = statistics.median(samples[BASELINE])
    return [Figures(module, tuple(values), baseline) for module, values in samples.items()]


@dataclass
class Measurement:
    samples: dict[str, list[float]]
    aws: dict[str, str]
    profiles: dict[str, list[ImportEntry]]


def measure(
    environments: Mapping[str, Mapping[str, str]],
    runs: int,
    runner: Callable[[Sequence[str], Mapping[str, str]], ChildOutput] = run_child,
    python: str = sys.executable,
) -> Measurement:
    """Guard and profile each module once (which also warms its bytecode cache), then time `runs` imports of
    each, the modules taking turns."""
    aws: dict[str, str] = {}
    profiles: dict[str, list[ImportEntry]] = {}
    for module, env in environments.items():
        aws[module] = aws_at_import(child_result(runner([python, "-c", CHILD, module, "guard"], env).stdout))
        output = runner([python, "-X", "importtime", "-c", CHILD, module, "importtime"], env)
        profiles[module] = parse_importtime(output.stderr)
    samples: dict[str, list[float]] = {module: [] for module in environments}
    for _ in range(runs):
        for module, env in environments.items():
            seconds = child_result(runner([python, "-c", CHILD, module, "time"], env).stdout)["seconds"]
            samples[module].append(float(seconds))
    return Measurement(samples, aws, profiles)


def _ms(us: int) -> str:
    return f"{us / 1000:.1f}"


def report(measurement: Measurement, runs: int, detail: bool, own: frozenset[str]) -> list[str]:
    """The markdown table, the heaviest imports of each handler and, with `detail`, the slowest one's tree."""
    rows = figures(measurement.samples)
    lines = [
        f"runs: {runs} per module; import time inside a fresh Python {sys.version.split()[0]} (ms)",
        "",
        "| module | median ms | min ms | vs `import boto3` | target | met | AWS at import |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        baseline = row.module == BASELINE
        lines.append(
            f"| {'`import boto3` (baseline)' if baseline else f'`{row.module}`'} | {row.median_ms:.1f} |"
            f" {row.min_ms:.1f} | {row.ratio:.2f}x | {'' if baseline else f'<= {TARGET_RATIO}x'} |"
            f" {'' if baseline else ('yes' if row.meets_target else 'no')} | {measurement.aws[row.module]} |"
        )
    lines.append("")
    lines.append("Heaviest imports outside Herald's code (-X importtime, cumulative ms, none inside another):")
    for row in rows:
        if row.module == BASELINE:
            continue
        top = heaviest(measurement.profiles[row.module], own)
        lines.append(f"- `{row.module}`: " + ", ".join(f"{entry.name} {_ms(entry.cumulative_us)}" for entry in top))
    if detail:
        slowest = max((row for row in rows if row.module != BASELINE), key=lambda row: row.median_ms)
        entries = sorted(measurement.profiles[slowest.module], key=lambda entry: entry.cumulative_us, reverse=True)
        lines += ["", f"Slowest handler `{slowest.module}`, top cumulative entries of -X importtime:", ""]
        lines += ["| import | depth | cumulative ms | self ms |", "|---|---|---|---|"]
        lines += [
            f"| {entry.name} | {entry.level} | {_ms(entry.cumulative_us)} | {_ms(entry.self_us)} |"
            for entry in entries[:25]
        ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="timed imports per module (default 7)")
    parser.add_argument("--detail", action="store_true", help="the slowest handler's top -X importtime entries")
    parser.add_argument("--check", action="store_true", help=f"exit non-zero when a handler is over {TARGET_RATIO}x")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    from local.aws.template import Stack

    environments = deployed_environments(Stack.from_file(region=REGION), os.environ, unused_loopback_url())
    measurement = measure(environments, args.runs)
    for line in report(measurement, args.runs, args.detail, own_packages()):
        print(line)
    failures = [f"{module} reaches for AWS at import: {what}" for module, what in measurement.aws.items()]
    failures = [failure for failure in failures if not failure.endswith(": none")]
    if args.check:
        failures += [
            f"{row.module} is {row.ratio:.2f}x boto3's import, target {TARGET_RATIO}x"
            for row in figures(measurement.samples)
            if row.module != BASELINE and not row.meets_target
        ]
    for failure in failures:
        print(f"MISSED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
