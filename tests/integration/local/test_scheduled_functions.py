"""Scheduled functions from a SAM template: ``ScheduleV2`` (EventBridge Scheduler) and ``Schedule`` (EventBridge rule)
events, translated by SAM, played by the local scheduler and by the runtime, each tick driven by hand.

Each test writes a small template to ``tmp_path``, so SAM's translation of the events (the resources, names and
inputs it generates) is part of what is checked.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from local.aws.moto_server import free_port
from local.aws.provision import name_emulated_resources
from local.aws.template import Stack
from local.lambda_.handlers import load_functions
from local.lambda_.schedules import ScheduleKind, Scheduler, TickOutcome, scheduled_functions
from local.runtime import READY_LINE, Runtime
from local.settings import LocalSettings
from tests.support.clock import FakeClock
from tests.support.events import load_event

if TYPE_CHECKING:
    from pathlib import Path

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  HeraldApiApiKey:
    Type: AWS::ApiGateway::ApiKey
    Properties: {Enabled: true}
  AdminApiKey:
    Type: AWS::ApiGateway::ApiKey
    Properties: {Enabled: true}
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: v1
  HealthMonitorFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: health_monitor.app.lambda_handler
      Runtime: python3.11
      CodeUri: functions/
      Events:
        EveryMinute:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 minute)
            RetryPolicy:
              MaximumRetryAttempts: 0
        Hourly:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: cron(0 * * * ? *)
            Input: '{"probe": "queues", "at": "<aws.scheduler.scheduled-time>"}'
        Paused:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: rate(1 hour)
            State: DISABLED
        Live:
          Type: Api
          Properties: {RestApiId: !Ref Api, Path: /health/live, Method: get}
  LegacyFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: legacy.app.lambda_handler
      Runtime: python3.11
      CodeUri: functions/
      Events:
        Sweep:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
        Off:
          Type: Schedule
          Properties:
            Schedule: rate(5 minutes)
            Enabled: false
"""

SCHEDULED_TIME = "2023-11-14T22:13:20Z"  # tests.support.clock.START as both services write it


@dataclass
class RecordingHandler:
    """A Lambda handler that records each event and the function named by its context."""

    calls: list[tuple[Any, str]] = field(default_factory=list)

    def __call__(self, event: Any, context: Any) -> None:
        self.calls.append((event, context.function_name))

    @property
    def events(self) -> list[Any]:
        return [event for event, _ in self.calls]


def _stack(tmp_path: Path) -> Stack:
    """The template translated, with the local names and ARNs of what the runtime plays (no AWS needed)."""
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    stack = Stack.from_file(path)
    stack.stack_name = f"t{uuid.uuid4().hex[:8]}"
    name_emulated_resources(stack)
    return stack


def _scheduler(stack: Stack, handlers: dict[str, RecordingHandler]) -> Scheduler:
    functions = load_functions(stack, handlers)
    invokers = {logical_id: function.invoke for logical_id, function in functions.items()}
    return Scheduler(scheduled_functions(stack), invokers, 3600, clock=FakeClock(), new_id=lambda: "run-1")


def test_enabled_schedules_and_scheduled_rules_of_the_template_are_found(tmp_path: Path) -> None:
    # Given a template with three ScheduleV2 events (one disabled) and two Schedule events (one disabled)
    stack = _stack(tmp_path)

    # When its schedules are read
    schedules = {schedule.key: schedule for schedule in scheduled_functions(stack)}

    # Then the enabled ones are there, each with its function, expression and the ARN its resource would have
    assert set(schedules) == {
        "HealthMonitorFunctionEveryMinute",
        "HealthMonitorFunctionHourly",
        "LegacyFunctionSweep/LegacyFunctionSweepLambdaTarget",
    }
    every_minute = schedules["HealthMonitorFunctionEveryMinute"]
    assert every_minute.kind is ScheduleKind.SCHEDULER
    assert every_minute.function_logical_id == "HealthMonitorFunction"
    assert every_minute.expression == "rate(1 minute)"
    assert every_minute.arn == (
        "arn:aws:scheduler:us-east-1:123456789012:schedule/default/HealthMonitorFunctionEveryMinute"
    )
    sweep = schedules["LegacyFunctionSweep/LegacyFunctionSweepLambdaTarget"]
    assert sweep.kind is ScheduleKind.EVENTS_RULE
    assert sweep.function_logical_id == "LegacyFunction"
    assert sweep.arn == f"arn:aws:events:us-east-1:123456789012:rule/{stack.stack_name}-LegacyFunctionSweep"
    assert stack.resolve({"Fn::GetAtt": ["LegacyFunctionSweep", "Arn"]}) == sweep.arn


def test_schedule_v2_function_is_invoked_with_scheduler_payloads(tmp_path: Path) -> None:
    # Given the template's functions with recording handlers
    stack = _stack(tmp_path)
    monitor, legacy = RecordingHandler(), RecordingHandler()
    scheduler = _scheduler(stack, {"HealthMonitorFunction": monitor, "LegacyFunction": legacy})

    # When the scheduler ticks once, synchronously
    outcomes = scheduler.tick()

    # Then each ScheduleV2 schedule invoked the monitor once: {} without Input, the Input with its scheduled time
    # filled in otherwise; the disabled schedule did not run
    assert outcomes["HealthMonitorFunctionEveryMinute"] is TickOutcome.INVOKED
    assert outcomes["HealthMonitorFunctionHourly"] is TickOutcome.INVOKED
    assert "HealthMonitorFunctionPaused" not in outcomes
    assert sorted(monitor.events, key=len) == [{}, {"probe": "queues", "at": SCHEDULED_TIME}]
    assert {name for _, name in monitor.calls} == {f"{stack.stack_name}-HealthMonitorFunction"}


def test_schedule_function_is_invoked_with_a_scheduled_event(tmp_path: Path) -> None:
    # Given the template's functions with recording handlers
    stack = _stack(tmp_path)
    monitor, legacy = RecordingHandler(), RecordingHandler()
    scheduler = _scheduler(stack, {"HealthMonitorFunction": monitor, "LegacyFunction": legacy})

    # When the scheduler ticks twice
    scheduler.tick()
    scheduler.tick()

    # Then the rule's function got a Scheduled Event shaped like events/scheduled_event.json each time, naming its
    # rule; the disabled rule did not run
    rule_arn = stack.arns["LegacyFunctionSweep"]
    example = load_event("scheduled_event.json")
    assert len(legacy.events) == 2
    for event in legacy.events:
        assert list(event) == list(example)
        assert event == {**example, "id": "run-1", "time": SCHEDULED_TIME, "resources": [rule_arn]}


def test_runtime_plays_the_templates_schedules_and_lists_them(tmp_path: Path) -> None:
    # Given the runtime over the template, recording handlers, and an interval long enough that only ticks by hand run
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    settings = LocalSettings(
        api_port=free_port(), aws_port=free_port(), sandbox_port=free_port(),
        resource_prefix=f"rt{uuid.uuid4().hex[:6]}", schedule_interval_seconds=3600,
    )  # fmt: skip
    monitor, legacy = RecordingHandler(), RecordingHandler()
    out = io.StringIO()
    runtime = Runtime(
        settings, handlers={"HealthMonitorFunction": monitor, "LegacyFunction": legacy}, template_path=path, out=out
    )

    # When it starts, and its schedules are run once by hand
    with runtime:
        outcomes = runtime.run_schedules_once()

    # Then every enabled schedule invoked its function once at start (before the runtime said it was ready, so the
    # health views have a snapshot from the start) and once more by hand; the announcement listed them under
    # "Schedules", and once stopped there is no scheduler left to run
    assert set(outcomes.values()) == {TickOutcome.INVOKED}
    assert len(monitor.events) == 2 * 2
    assert len(legacy.events) == 1 * 2
    lines = out.getvalue().splitlines()
    schedules = lines[lines.index("  Schedules") + 1 : lines.index(READY_LINE) - 1]
    assert [line.split()[0] for line in schedules] == [
        "HealthMonitorFunctionEveryMinute",
        "HealthMonitorFunctionHourly",
        "LegacyFunctionSweep",
    ]
    assert schedules[0].endswith("rate(1 minute) -> HealthMonitorFunction (locally every 3600 s)")
    with pytest.raises(RuntimeError, match="not running"):
        runtime.run_schedules_once()
