"""The local scheduler: the events each kind of schedule sends, ticks driven by hand, failures, overlaps, stopping.

Ticks are driven synchronously with ``Scheduler.tick``; only the tests of the background thread itself (it ticks,
it survives a failing function, it stops within a second) use real time, with short intervals and bounded waits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from local.lambda_.schedules import STOP_TIMEOUT_SECONDS, Schedule, ScheduleKind, Scheduler, TickOutcome
from local.settings import LocalSettings
from tests.support.clock import START, FakeClock
from tests.support.events import load_event

if TYPE_CHECKING:
    from collections.abc import Iterator

SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/HealthMonitorFunctionEveryMinute"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/herald-local-HealthMonitorFunctionEveryMinute"
SCHEDULED_TIME = "2023-11-14T22:13:20Z"  # START as the services write it
WAIT_SECONDS = 5.0  # bound of every wait on a background thread; never reached when the code works


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _schedule(kind: ScheduleKind = ScheduleKind.SCHEDULER, input_: str | None = None) -> Schedule:
    arn = SCHEDULE_ARN if kind is ScheduleKind.SCHEDULER else RULE_ARN
    return Schedule("HealthMonitorFunctionEveryMinute", kind, arn, "HealthMonitorFunction", "rate(1 minute)", input_)


@dataclass
class RecordingFunction:
    """Records every event; raises ``error`` the first ``failures`` times; blocks while ``gate`` is closed."""

    failures: int = 0
    error: Exception = field(default_factory=lambda: RuntimeError("probe failed"))
    gate: threading.Event | None = None
    events: list[Any] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)
    calls: int = 0
    called_thrice: threading.Event = field(default_factory=threading.Event)

    def __call__(self, event: Any) -> dict[str, str]:
        self.calls += 1
        if self.calls >= 3:
            self.called_thrice.set()
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(WAIT_SECONDS)
        if self.calls <= self.failures:
            raise self.error
        self.events.append(event)
        return {"status": "ok"}


def _scheduler(function: RecordingFunction, kind: ScheduleKind = ScheduleKind.SCHEDULER) -> Scheduler:
    """A scheduler over one schedule, on a clock that stays at START; its ticks are driven by hand."""
    return Scheduler(
        [_schedule(kind)], {"HealthMonitorFunction": function}, 3600, clock=FakeClock(), new_id=lambda: "run-1"
    )


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """A gate a test opens to let a blocked function return; always opened at the end, so no thread is left waiting."""
    opened = threading.Event()
    yield opened
    opened.set()


# ---------------------------------------------------------------------- the events
def test_scheduler_schedule_without_input_sends_an_empty_object() -> None:
    # Given a ScheduleV2 schedule whose target has no Input
    schedule = _schedule(ScheduleKind.SCHEDULER)

    # When its event is made
    event = schedule.event(_utc(START), "run-1")

    # Then it is EventBridge Scheduler's default payload for a Lambda target: an empty JSON object
    assert event == {}


def test_scheduler_input_is_sent_with_its_context_attributes_filled_in() -> None:
    # Given a schedule whose Input uses EventBridge Scheduler's context attributes
    text = json.dumps({
        "probe": "all",
        "arn": "<aws.scheduler.schedule-arn>",
        "at": "<aws.scheduler.scheduled-time>",
        "run": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
    })  # fmt: skip
    schedule = _schedule(ScheduleKind.SCHEDULER, input_=text)

    # When its event is made
    event = schedule.event(_utc(START), "run-7")

    # Then the function gets the Input as JSON, each attribute replaced as the service replaces it
    assert event == {"probe": "all", "arn": SCHEDULE_ARN, "at": SCHEDULED_TIME, "run": "run-7", "attempt": "1"}


def test_scheduled_rule_sends_a_scheduled_event_shaped_like_the_real_one() -> None:
    # Given a scheduled EventBridge rule (SAM's Schedule event) without Input
    schedule = _schedule(ScheduleKind.EVENTS_RULE)

    # When its event is made
    event = schedule.event(_utc(START), "0f1e2d3c-aaaa-bbbb-cccc-000000000001")

    # Then it has exactly the fields, in the order, of the real Scheduled Event in events/, with this rule's facts
    example = load_event("scheduled_event.json")
    assert list(event) == list(example)
    assert event == {
        **example,
        "id": "0f1e2d3c-aaaa-bbbb-cccc-000000000001",
        "time": SCHEDULED_TIME,
        "resources": [RULE_ARN],
    }


def test_scheduled_rule_with_input_sends_the_input_instead() -> None:
    # Given a scheduled rule whose target has a constant Input
    schedule = _schedule(ScheduleKind.EVENTS_RULE, input_='{"probe": "queues"}')

    # When its event is made
    event = schedule.event(_utc(START), "run-1")

    # Then the function gets the Input, not a Scheduled Event (as EventBridge does)
    assert event == {"probe": "queues"}


def test_input_that_is_not_json_is_refused_up_front() -> None:
    # Given a schedule whose Input is not JSON (a Lambda target cannot take it)
    schedule = _schedule(ScheduleKind.SCHEDULER, input_="probe everything")

    # When it is checked / Then it is refused with the schedule's name
    with pytest.raises(ValueError, match="HealthMonitorFunctionEveryMinute: the target's Input is not JSON"):
        schedule.check()


# ---------------------------------------------------------------------- ticks driven by hand
def test_tick_invokes_the_function_with_the_schedules_event() -> None:
    # Given a scheduler over one rule, on a hand-moved clock
    function = RecordingFunction()
    scheduler = _scheduler(function, kind=ScheduleKind.EVENTS_RULE)

    # When it ticks once, synchronously
    outcomes = scheduler.tick()

    # Then the function ran once with the rule's Scheduled Event for the clock's time
    assert outcomes == {"HealthMonitorFunctionEveryMinute": TickOutcome.INVOKED}
    assert [event["time"] for event in function.events] == [SCHEDULED_TIME]
    assert function.events[0]["id"] == "run-1"


def test_a_raising_function_is_logged_and_the_next_tick_runs(caplog: pytest.LogCaptureFixture) -> None:
    # Given a function that raises on its first run
    function = RecordingFunction(failures=1)
    scheduler = _scheduler(function)

    # When the scheduler ticks twice
    with caplog.at_level(logging.ERROR, logger="herald.local"):
        first = scheduler.tick()
    second = scheduler.tick()

    # Then the failure was logged with its traceback, not raised, and the next tick invoked the function again
    assert first == {"HealthMonitorFunctionEveryMinute": TickOutcome.FAILED}
    assert second == {"HealthMonitorFunctionEveryMinute": TickOutcome.INVOKED}
    failed = [record for record in caplog.records if record.message == "scheduled invocation failed"]
    assert len(failed) == 1
    assert failed[0].exc_info is not None
    assert failed[0].__dict__["function"] == "HealthMonitorFunction"
    assert function.events == [{}]


def test_a_tick_while_the_previous_run_is_still_going_is_skipped_and_logged(
    gate: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a run of the schedule that is still going (its function blocked)
    function = RecordingFunction(gate=gate)
    scheduler = _scheduler(function)
    outcomes: list[dict[str, TickOutcome]] = []
    running = threading.Thread(target=lambda: outcomes.append(scheduler.tick()), daemon=True)
    running.start()
    assert function.entered.wait(WAIT_SECONDS)

    # When the schedule ticks again meanwhile
    with caplog.at_level(logging.WARNING, logger="herald.local"):
        overlapping = scheduler.tick()
    gate.set()
    running.join(WAIT_SECONDS)

    # Then that tick did not invoke the function but was skipped and logged; the first run finished; the schedule
    # is free again afterwards
    assert overlapping == {"HealthMonitorFunctionEveryMinute": TickOutcome.SKIPPED}
    assert any(record.message == "previous run still going; tick skipped" for record in caplog.records)
    assert outcomes == [{"HealthMonitorFunctionEveryMinute": TickOutcome.INVOKED}]
    assert function.calls == 1
    assert scheduler.tick() == {"HealthMonitorFunctionEveryMinute": TickOutcome.INVOKED}


def test_scheduler_refuses_a_non_positive_interval_or_a_missing_function() -> None:
    # Given / When / Then an interval of zero, or a schedule whose function is not given, is refused
    with pytest.raises(ValueError, match="interval_seconds must be positive"):
        Scheduler([_schedule()], {"HealthMonitorFunction": RecordingFunction()}, 0)
    with pytest.raises(ValueError, match="no function to invoke for HealthMonitorFunction"):
        Scheduler([_schedule()], {}, 5)


# ---------------------------------------------------------------------- the background thread
def test_background_ticks_go_on_after_a_failing_run() -> None:
    # Given a scheduler on a short interval whose function raises on its first run
    function = RecordingFunction(failures=1)
    scheduler = Scheduler([_schedule()], {"HealthMonitorFunction": function}, 0.02)

    # When it runs on its own for a few ticks
    with scheduler:
        reached = function.called_thrice.wait(WAIT_SECONDS)

    # Then the ticks went on after the failure
    assert reached
    assert function.calls >= 3
    assert function.events[:2] == [{}, {}]


def test_stop_is_prompt_between_ticks() -> None:
    # Given a started scheduler waiting for its next tick an hour away
    scheduler = Scheduler([_schedule()], {"HealthMonitorFunction": RecordingFunction()}, 3600).start()

    # When it is stopped
    started = time.monotonic()
    scheduler.stop()
    elapsed = time.monotonic() - started

    # Then it stopped at once, and its thread is gone
    assert elapsed < 1.0
    assert not any(thread.name == "scheduler" and thread.is_alive() for thread in threading.enumerate())


def test_stop_is_prompt_while_a_run_is_still_going(gate: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    # Given a scheduler whose function is blocked mid-run
    function = RecordingFunction(gate=gate)
    scheduler = Scheduler([_schedule()], {"HealthMonitorFunction": function}, 0.01).start()
    assert function.entered.wait(WAIT_SECONDS)

    # When it is stopped
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="herald.local"):
        scheduler.stop()
    elapsed = time.monotonic() - started

    # Then it returned within a second (the run left to finish on its own, and said so), and ticks no more
    assert STOP_TIMEOUT_SECONDS <= elapsed < 1.0
    assert any(record.message == "scheduled runs still going at stop; not waited for" for record in caplog.records)
    assert not any(thread.name == "scheduler" and thread.is_alive() for thread in threading.enumerate())
    assert function.calls == 1


def test_scheduler_without_schedules_starts_no_thread() -> None:
    # Given a template without schedules
    scheduler = Scheduler([], {}, 5)

    # When it is started
    scheduler.start()

    # Then nothing ticks, and a tick by hand has nothing to report
    assert not any(thread.name == "scheduler" for thread in threading.enumerate())
    assert scheduler.tick() == {}
    scheduler.stop()


# ---------------------------------------------------------------------- the setting
def test_interval_setting_defaults_to_five_seconds() -> None:
    # Given / When no HERALD_HEALTH_INTERVAL / Then scheduled functions run every 5 s
    assert LocalSettings.from_env({}).schedule_interval_seconds == 5
    assert LocalSettings.from_env({"HERALD_HEALTH_INTERVAL": "60"}).schedule_interval_seconds == 60


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "HERALD_HEALTH_INTERVAL must be between 1 and 3600, got 0"),
        ("3601", "HERALD_HEALTH_INTERVAL must be between 1 and 3600, got 3601"),
        ("-5", "HERALD_HEALTH_INTERVAL must be between 1 and 3600, got -5"),
        ("1.5", "HERALD_HEALTH_INTERVAL must be an integer, got '1.5'"),
        ("soon", "HERALD_HEALTH_INTERVAL must be an integer, got 'soon'"),
    ],
)
def test_interval_setting_is_validated(value: str, message: str) -> None:
    # Given an interval that is not a whole number of seconds from 1 to 3600
    env = {"HERALD_HEALTH_INTERVAL": value}

    # When the settings are read / Then the variable is named with what is wrong
    with pytest.raises(ValueError, match=message):
        LocalSettings.from_env(env)
