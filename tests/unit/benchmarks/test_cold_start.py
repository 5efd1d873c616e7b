"""The cold-start benchmark's own logic: figures, -X importtime parsing, the deployed environment and the
run plan. The child runner is injected, so no handler is imported in a subprocess here."""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING

import pytest

from benchmarks import cold_start
from benchmarks.cold_start import (
    BASELINE,
    CODE_PATHS,
    IMPORTTIME_MARKER,
    RESULT_MARKER,
    ChildOutput,
    ImportEntry,
    aws_at_import,
    child_environment,
    child_result,
    deployed_environments,
    figures,
    heaviest,
    measure,
    own_packages,
    parse_importtime,
    report,
)
from local.aws.template import Stack

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

ENDPOINT = "http://127.0.0.1:9"
HANDLERS = {"admin.app", "api.app", "health_monitor.app", "ingest.app", "provider_events.app", "sender.app"}

# -X importtime prints a module after everything it imported, indented one level deeper.
IMPORTTIME = f"""import time: self [us] | cumulative | imported package
import time:       100 |        100 | encodings
{IMPORTTIME_MARKER}
import time:      1000 |       1000 |         botocore.utils
import time:      2000 |       3000 |       botocore
import time:      5000 |      50000 |     boto3
import time:       500 |      50500 |   notifications.aws
import time:      4000 |       4000 |     pydantic.fields
import time:      6000 |      10000 |   pydantic
import time:      3000 |       3000 |   email_validator
import time:      9000 |      72500 | api.app
"""


@cache
def _stack() -> Stack:
    return Stack.from_file()


def _output(seconds: float, **extra: object) -> ChildOutput:
    line = RESULT_MARKER + json.dumps({"seconds": seconds, "error": None, "clients": [], "network": [], **extra})
    return ChildOutput(stdout=f'{{"level": "INFO", "message": "a log line"}}\n{line}\n', stderr=IMPORTTIME)


def test_figures_are_median_min_and_the_ratio_of_medians_to_the_baseline() -> None:
    # Given boto3's imports and a handler's, in seconds
    samples = {BASELINE: [0.100, 0.120, 0.110], "api.app": [0.300, 0.150, 0.160, 0.170, 0.900]}

    # When the figures are worked out
    baseline, api = figures(samples)

    # Then each has its median and minimum in ms, and the handler's median is compared with boto3's
    assert (baseline.median_ms, baseline.min_ms, baseline.ratio) == pytest.approx((110.0, 100.0, 1.0))
    assert (api.median_ms, api.min_ms) == pytest.approx((170.0, 150.0))
    assert api.ratio == pytest.approx(170 / 110)
    assert not api.meets_target  # 1.55x > 1.5x


def test_a_handler_at_one_and_a_half_times_boto3_meets_the_target() -> None:
    # Given a handler whose median is exactly 1.5x boto3's
    samples = {BASELINE: [0.2], "sender.app": [0.3]}

    # When / Then it meets the target
    assert figures(samples)[1].meets_target


def test_importtime_is_parsed_after_the_marker_with_what_each_import_holds() -> None:
    # When the canned -X importtime output is parsed
    entries = {entry.name: entry for entry in parse_importtime(IMPORTTIME)}

    # Then the interpreter's start-up is left out, and each entry knows the imports beneath it
    assert "encodings" not in entries
    assert entries["api.app"] == ImportEntry(
        "api.app",
        9000,
        72500,
        0,
        frozenset({"notifications.aws", "boto3", "botocore", "botocore.utils", "pydantic", "pydantic.fields"})
        | {"email_validator"},
    )
    assert entries["boto3"].beneath == {"botocore", "botocore.utils"}
    assert entries["botocore.utils"].level == 4


def test_the_heaviest_imports_are_outside_herald_and_never_inside_one_another() -> None:
    # Given a handler's import tree
    entries = parse_importtime(IMPORTTIME)

    # When the three heaviest are chosen, Herald's packages being api and notifications
    top = heaviest(entries, frozenset({"api", "notifications"}))

    # Then botocore (inside boto3) and pydantic.fields (inside pydantic) give way to email_validator
    assert [entry.name for entry in top] == ["boto3", "pydantic", "email_validator"]


def test_herald_packages_are_the_code_paths_packages() -> None:
    # When / Then every handler package and the resilience layer are Herald's own
    assert {"api", "sender", "notifications", "resilience", "admin"} <= own_packages(CODE_PATHS)


def test_the_child_environment_replaces_the_machines_aws_variables() -> None:
    # Given a machine with a profile, real-looking credentials, Powertools switches and its own PYTHONPATH
    machine = {
        "PATH": "/usr/bin",
        "AWS_PROFILE": "prod",
        "AWS_SECRET_ACCESS_KEY": "real",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "PYTHONPATH": "/elsewhere",
    }

    # When the child's environment is built for a function
    env = child_environment(machine, {"NOTIFICATIONS_TABLE": "t"}, ENDPOINT)

    # Then only the function's variables, a region, dummy credentials and the code paths are in force
    assert "AWS_PROFILE" not in env
    assert "POWERTOOLS_TRACE_DISABLED" not in env
    assert env["PATH"] == "/usr/bin"
    assert env["NOTIFICATIONS_TABLE"] == "t"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == ENDPOINT
    assert env["PYTHONPATH"].split(":") == [str(path) for path in CODE_PATHS]


def test_every_template_handler_gets_the_globals_and_its_own_variables_resolved_offline() -> None:
    # When the deployed environments are built from template.yaml, nothing provisioned
    environments = deployed_environments(_stack(), {"PATH": "/usr/bin"}, ENDPOINT)

    # Then there is one per handler module plus the baseline, each with the template's Globals
    assert set(environments) == HANDLERS | {BASELINE}
    for module, env in environments.items():
        assert env["NOTIFICATIONS_TABLE"] == "herald-local-NotificationsTable", module
        assert env["STANDARD_QUEUE_URL"].startswith("https://sqs.us-east-1.amazonaws.com/123456789012/"), module
        assert env["POWERTOOLS_SERVICE_NAME"] == "herald", module
        assert env["LAMBDA_TASK_ROOT"] == str(CODE_PATHS[0]), module
    # And the function's own variables and Lambda's runtime variables
    sender = environments["sender.app"]
    assert sender["DELIVERY_CONCURRENCY"].isdigit()
    assert sender["_HANDLER"] == "sender.app.lambda_handler"
    assert sender["AWS_LAMBDA_FUNCTION_NAME"] == "herald-local-SenderFunction"
    assert "DELIVERY_CONCURRENCY" not in environments["api.app"]


def test_the_result_line_is_found_after_a_handlers_own_output() -> None:
    # When / Then the child's result is read past a log line printed at import
    assert child_result(_output(0.25).stdout)["seconds"] == 0.25
    with pytest.raises(ValueError, match="no result"):
        child_result("only a log line\n")


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"clients": [], "network": [], "error": None}, "none"),
        ({"clients": ["sqs", "dynamodb", "sqs"], "network": [], "error": None}, "clients dynamodb, sqs"),
        (
            {"clients": [], "network": ["connect ('127.0.0.1', 9)"], "error": "ConnectionRefusedError: no"},
            "network connect ('127.0.0.1', 9); import failed (ConnectionRefusedError: no)",
        ),
    ],
)
def test_aws_at_import_names_what_the_import_did(result: dict[str, object], expected: str) -> None:
    # When / Then
    assert aws_at_import(result) == expected


def test_each_module_is_guarded_and_profiled_once_then_timed_in_turns() -> None:
    # Given a runner that records its calls; the api's import creates an SQS client
    calls: list[tuple[str, str]] = []

    def runner(argv: Sequence[str], env: Mapping[str, str]) -> ChildOutput:
        module, mode = argv[-2], argv[-1]
        calls.append((module, mode))
        seconds = {BASELINE: 0.1, "api.app": 0.2}[module]
        return _output(seconds, clients=["sqs"] if module == "api.app" and mode == "guard" else [])

    environments = {BASELINE: {"A": "1"}, "api.app": {"A": "2"}}

    # When two runs are measured
    measurement = measure(environments, runs=2, runner=runner, python="python")

    # Then each module is guarded and profiled first, then the modules take turns
    assert calls == [
        (BASELINE, "guard"),
        (BASELINE, "importtime"),
        ("api.app", "guard"),
        ("api.app", "importtime"),
        (BASELINE, "time"),
        ("api.app", "time"),
        (BASELINE, "time"),
        ("api.app", "time"),
    ]
    assert measurement.samples == {BASELINE: [0.1, 0.1], "api.app": [0.2, 0.2]}
    assert measurement.aws == {BASELINE: "none", "api.app": "clients sqs"}
    # And the report shows the ratio, the missed target, the client and the heaviest imports
    lines = report(measurement, runs=2, detail=True, own=frozenset({"api", "notifications"}))
    assert "| `api.app` | 200.0 | 200.0 | 2.00x | <= 1.5x | no | clients sqs |" in lines
    assert "- `api.app`: boto3 50.0, pydantic 10.0, email_validator 3.0" in lines
    assert "| api.app | 0 | 72.5 | 9.0 |" in lines


def test_the_child_program_compiles() -> None:
    # When / Then the program handed to `python -c` is valid Python
    compile(cold_start.CHILD, "<cold_start child>", "exec")
