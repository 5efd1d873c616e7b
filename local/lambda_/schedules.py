"""Scheduled functions played locally: EventBridge Scheduler schedules and EventBridge scheduled rules.

SAM turns a function's ``ScheduleV2`` event into an ``AWS::Scheduler::Schedule`` and its older ``Schedule`` event
into an ``AWS::Events::Rule`` with a ``ScheduleExpression``. Each one whose target is a function of the template
becomes a :class:`Schedule`, and the :class:`Scheduler` invokes its function every ``interval_seconds``
(``HERALD_HEALTH_INTERVAL``) instead of at its expression, with the event the real service sends:

* EventBridge Scheduler sends the target's ``Input`` (its context attributes such as
  ``<aws.scheduler.scheduled-time>`` filled in), or ``{}`` when the template gives none;
* an EventBridge rule sends the target's ``Input``, or else a ``Scheduled Event`` (``events/scheduled_event.json``).

Both services invoke asynchronously, so the function's response is dropped and its error logged. What a deployment
adds around a run is not emulated: RetryPolicy, DeadLetterConfig, FlexibleTimeWindow, StartDate/EndDate, and the
rule targets' InputPath/InputTransformer. A run still going when its schedule comes round again is never
overlapped: that tick is skipped and logged. Disabled schedules and rules are not played. A run is logged at DEBUG
(every few seconds, it would drown the console), a failure at ERROR with its traceback, a skipped tick at WARNING.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from local.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from local.aws.template import Stack

Invoke = Callable[[Any], Any]
"""Invoke a function with an event (e.g. ``LocalFunction.invoke``)."""

STOP_TIMEOUT_SECONDS = 0.5  # how long :meth:`Scheduler.stop` waits for a run in progress before leaving it behind
_DISABLED = "DISABLED"
_NOT_EMULATED_TARGET_PROPERTIES = frozenset({"InputPath", "InputTransformer"})

logger = get_logger("schedules")


class ScheduleKind(StrEnum):
    """The resource a schedule comes from, named by its CloudFormation type."""

    SCHEDULER = "AWS::Scheduler::Schedule"  # SAM's ScheduleV2 event
    EVENTS_RULE = "AWS::Events::Rule"  # SAM's Schedule event


class TickOutcome(StrEnum):
    """What one tick of one schedule did."""

    INVOKED = "invoked"
    FAILED = "failed"  # the function raised (logged); the schedule goes on
    SKIPPED = "skipped"  # the schedule's previous run was still going


def _timestamp(moment: datetime) -> str:
    """``2026-11-29T12:00:00Z``: how both services write a scheduled time."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Schedule:
    """One schedule (or one function target of a scheduled rule) of the template, resolved."""

    logical_id: str  # the schedule's or rule's logical id
    kind: ScheduleKind
    arn: str  # the schedule's or rule's ARN
    function_logical_id: str
    expression: str  # as the template says, e.g. rate(1 minute); locally the interval replaces it
    input: str | None = None  # the target's Input (JSON text), None when the template gives none
    target_id: str = ""  # a rule target's Id (a rule may have several); empty for a schedule

    @property
    def key(self) -> str:
        """Unique among the schedules: the logical id, plus the target's Id for a rule target."""
        return f"{self.logical_id}/{self.target_id}" if self.target_id else self.logical_id

    def event(self, scheduled: datetime, event_id: str) -> Any:
        """The event the service sends the function for a run scheduled at ``scheduled`` (UTC)."""
        if self.kind is ScheduleKind.SCHEDULER:
            return json.loads(self._scheduler_input(scheduled, event_id)) if self.input is not None else {}
        if self.input is not None:
            return json.loads(self.input)
        _, _, _, region, account, _ = self.arn.split(":", 5)
        return {
            "version": "0",
            "id": event_id,
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": _timestamp(scheduled),
            "region": region,
            "resources": [self.arn],
            "detail": {},
        }

    def _scheduler_input(self, scheduled: datetime, execution_id: str) -> str:
        """The Input with EventBridge Scheduler's context attributes filled in (the first attempt of a run)."""
        text = str(self.input)
        for attribute, value in (
            ("schedule-arn", self.arn),
            ("scheduled-time", _timestamp(scheduled)),
            ("execution-id", execution_id),
            ("attempt-number", "1"),
        ):
            text = text.replace(f"<aws.scheduler.{attribute}>", value)
        return text

    def check(self) -> None:
        """Refuse an Input the service would not deliver to a Lambda function: it must be JSON."""
        try:
            self.event(datetime(2000, 1, 1, tzinfo=UTC), "check")
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.key}: the target's Input is not JSON ({error.msg})") from error


def scheduled_functions(stack: Stack) -> list[Schedule]:
    """Every enabled schedule and scheduled rule of the stack that targets one of its functions.

    Functions and schedules must have their local ARNs (:func:`local.aws.provision.provision` gives them).

    Raises
    ------
    ValueError
        A target's ``Input`` is not JSON: the service could not deliver it to a function.
    """
    function_by_arn = {stack.arns[logical]: logical for logical in stack.of_type("AWS::Lambda::Function")}
    schedules: list[Schedule] = []
    for logical_id, properties in stack.of_type(ScheduleKind.SCHEDULER).items():
        schedules.extend(_scheduler_schedule(stack, logical_id, properties, function_by_arn))
    for logical_id, properties in stack.of_type(ScheduleKind.EVENTS_RULE).items():
        if "ScheduleExpression" in properties:  # an event pattern rule has nothing to play on a clock
            schedules.extend(_rule_schedules(stack, logical_id, properties, function_by_arn))
    return schedules


def _enabled(stack: Stack, logical_id: str, properties: dict[str, Any]) -> bool:
    if str(stack.resolve(properties.get("State", "ENABLED"))).upper() != _DISABLED:
        return True
    logger.info("schedule disabled; not played", extra={"schedule": logical_id})
    return False


def _scheduler_schedule(
    stack: Stack, logical_id: str, properties: dict[str, Any], function_by_arn: Mapping[str, str]
) -> list[Schedule]:
    """The ``AWS::Scheduler::Schedule``'s one target, when it is enabled and a function of the template."""
    target = properties.get("Target", {})
    function = function_by_arn.get(str(stack.resolve(target.get("Arn"))))
    if function is None:
        logger.warning("schedule target is not a function of the template; not played", extra={"schedule": logical_id})
        return []
    if not _enabled(stack, logical_id, properties):
        return []
    return [_schedule(stack, logical_id, ScheduleKind.SCHEDULER, function, properties, target=target)]


def _rule_schedules(
    stack: Stack, logical_id: str, properties: dict[str, Any], function_by_arn: Mapping[str, str]
) -> list[Schedule]:
    """One schedule per function target of an enabled scheduled ``AWS::Events::Rule``."""
    if not _enabled(stack, logical_id, properties):
        return []
    schedules: list[Schedule] = []
    for target in properties.get("Targets", []):
        function = function_by_arn.get(str(stack.resolve(target.get("Arn"))))
        if function is None:
            logger.warning("rule target is not a function of the template; not played", extra={"schedule": logical_id})
            continue
        for name in sorted(_NOT_EMULATED_TARGET_PROPERTIES & set(target)):
            logger.warning("target property not emulated locally", extra={"schedule": logical_id, "property": name})
        schedules.append(_schedule(stack, logical_id, ScheduleKind.EVENTS_RULE, function, properties, target=target))
    return schedules


def _schedule(
    stack: Stack,
    logical_id: str,
    kind: ScheduleKind,
    function: str,
    properties: dict[str, Any],
    *,
    target: dict[str, Any],
) -> Schedule:
    raw_input = stack.resolve(target.get("Input"))
    schedule = Schedule(
        logical_id=logical_id,
        kind=kind,
        arn=stack.arns[logical_id],
        function_logical_id=function,
        expression=str(stack.resolve(properties["ScheduleExpression"])),
        input=None if raw_input is None else str(raw_input),
        target_id=str(stack.resolve(target.get("Id", ""))) if kind is ScheduleKind.EVENTS_RULE else "",
    )
    schedule.check()
    return schedule


class Scheduler:
    """Invoke every schedule's function every ``interval_seconds``, from a background thread.

    The first tick comes one interval after :meth:`start`. Each run has a thread of its own, so that a slow
    function delays no other schedule; a schedule whose previous run is still going skips the tick. :meth:`tick`
    runs every schedule once in the calling thread (tests, ``Runtime.run_schedules_once``) under the same rule.

    Parameters
    ----------
    schedules : Sequence[Schedule]
        What to play (see :func:`scheduled_functions`).
    functions : Mapping[str, Invoke]
        Function logical id -> invoke.
    interval_seconds : float
        Seconds between two ticks, whatever the schedule expressions say.
    clock : Callable[[], float]
        Epoch seconds: the scheduled time each event carries.
    new_id : Callable[[], str]
        The id of each run (a rule event's ``id``, Scheduler's ``<aws.scheduler.execution-id>``).
    """

    def __init__(
        self,
        schedules: Sequence[Schedule],
        functions: Mapping[str, Invoke],
        interval_seconds: float,
        *,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        missing = sorted({s.function_logical_id for s in schedules} - set(functions))
        if missing:
            raise ValueError(f"no function to invoke for {', '.join(missing)}")
        self.schedules = tuple(schedules)
        self.interval_seconds = interval_seconds
        self._functions = dict(functions)
        self._clock = clock
        self._new_id = new_id
        self._running = {schedule.key: threading.Lock() for schedule in self.schedules}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runs: list[threading.Thread] = []
        self._runs_lock = threading.Lock()

    # ------------------------------------------------------------------ driven by hand
    def tick(self) -> dict[str, TickOutcome]:
        """Run every schedule once, here and now, one after the other: each schedule's outcome by its key."""
        return {schedule.key: self.run(schedule) for schedule in self.schedules}

    def run(self, schedule: Schedule) -> TickOutcome:
        """Invoke one schedule's function now, unless its previous run is still going (then skip and log)."""
        if not self._begin(schedule):
            return TickOutcome.SKIPPED
        return self._invoke_and_end(schedule)

    # ------------------------------------------------------------------ on a clock
    def start(self) -> Scheduler:
        """Tick every ``interval_seconds`` from a background thread (none when there is nothing to play)."""
        if self._thread is not None or not self.schedules:
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """No more ticks (returns at once; a run in progress goes on)."""
        self._stop.set()

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Stop ticking; wait up to ``timeout`` seconds for runs in progress, then leave them behind (idempotent)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
            self._thread = None
        with self._runs_lock:
            runs, self._runs = self._runs, []
        for run in runs:
            run.join(timeout=max(0.0, deadline - time.monotonic()))
        left = [run.name for run in runs if run.is_alive()]
        if left:  # daemon threads: they end with the process, or when the function returns
            logger.warning("scheduled runs still going at stop; not waited for", extra={"runs": left})

    def __enter__(self) -> Scheduler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        due = time.monotonic() + self.interval_seconds
        while not self._stop.wait(max(0.0, due - time.monotonic())):
            due = max(due + self.interval_seconds, time.monotonic())  # after a stall, tick once, not a backlog
            for schedule in self.schedules:
                self._fire(schedule)

    def _fire(self, schedule: Schedule) -> None:
        """Start one run in a thread of its own, unless the previous run is still going."""
        if self._stop.is_set() or not self._begin(schedule):
            return
        thread = threading.Thread(
            target=self._invoke_and_end, args=(schedule,), name=f"schedule-{schedule.key}", daemon=True
        )
        with self._runs_lock:
            self._runs = [run for run in self._runs if run.is_alive()]
            self._runs.append(thread)
        thread.start()

    # ------------------------------------------------------------------ one run
    def _begin(self, schedule: Schedule) -> bool:
        """Claim the schedule for one run; False (logged) when its previous run still holds it."""
        if self._running[schedule.key].acquire(blocking=False):
            return True
        logger.warning(
            "previous run still going; tick skipped",
            extra={"schedule": schedule.key, "function": schedule.function_logical_id},
        )
        return False

    def _invoke_and_end(self, schedule: Schedule) -> TickOutcome:
        """Invoke the function with the schedule's event; log (never raise) its failure; release the schedule."""
        log_fields: dict[str, Any] = {"schedule": schedule.key, "function": schedule.function_logical_id}
        started = time.monotonic()
        try:
            event = schedule.event(datetime.fromtimestamp(self._clock(), UTC), self._new_id())
            self._functions[schedule.function_logical_id](event)  # asynchronous in AWS: the response is dropped
        except Exception:
            logger.exception("scheduled invocation failed", extra=log_fields)
            return TickOutcome.FAILED
        finally:
            self._running[schedule.key].release()
        logger.debug("scheduled invocation", extra={**log_fields, "ms": round((time.monotonic() - started) * 1000, 1)})
        return TickOutcome.INVOKED
