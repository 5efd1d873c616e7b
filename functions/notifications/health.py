"""The API's health views: what the health monitor's last snapshot says, and a few cheap live checks.

The health monitor (``functions/health_monitor``) probes everything once a minute and stores one snapshot
(`notifications.health_snapshot`); the views serve it, saying how old it is, so a health request costs no AWS
call beyond reading that one item now and then (`SnapshotReader`, cached per execution environment):

* ``/health`` and ``/health/live`` make no AWS call at all: they report the snapshot this environment last
  read, if any (`SnapshotReader.cached`).
* ``/health/ready`` checks live that Herald can take notifications: DescribeTable of the notifications table
  and GetQueueAttributes of the three queues an accept sends to (not the retry or dead-letter queue, which
  only the sender writes, nor the provider-events queue, whose outage stops no notification). Its answer is
  kept ``ready_cache_seconds`` per environment, so polling load balancers cost those four calls per period
  (and a read of the snapshot, for the mode, per snapshot cache period).
* The detailed views (``/health/detailed``, ``db``, ``queues``, ``providers``, ``circuit-breakers``) serve the
  snapshot's parts, or say in plain words (503) that there is no fresh one; ``db`` and ``queues`` probe live
  on request. ``/health/system`` describes the execution environment itself.

Webhook breakers are named after clients' endpoints (``webhook:https://host:443``): only the admin key sees
them listed; a client's key sees the provider breakers and how many webhook breakers are open.
"""

from __future__ import annotations

import platform
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from notifications import aws
from notifications.errors import DependencyUnavailable, QueueUnavailable, StoreUnavailable
from notifications.health_reports import (
    BreakersReport,
    CheckOutcome,
    DatabaseReport,
    DetailedReport,
    HealthStatus,
    ProvidersReport,
    QueuesReport,
    Readiness,
    SystemReport,
)
from notifications.health_snapshot import (
    BreakerView,
    CheckView,
    SnapshotReader,
    SnapshotStore,
)
from notifications.probes import DependencyProbes, QueueTarget
from resilience.breaker.state import BreakerState
from resilience.mode import Mode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from notifications.clock import Clock
    from notifications.health_snapshot import Snapshot
    from notifications.probes import ProbeResults

UNKNOWN_MODE = "UNKNOWN"
NEVER_READ = "no health snapshot read yet in this environment"
NONE_STORED = "no health snapshot could be read: the health monitor has stored none yet, or the table did not answer"
# The longest a probe client's call may take (notifications.aws: 1 s to connect, 2 s to read, no retry): each
# live check's deadline.
PROBE_CALL_SECONDS = 3.0
# An accept reads the snapshot (for its notice) only with this much time left: room for any client's slowest
# call and a margin, so the read can never push an answer past the deadline (else the last read serves).
NOTICE_READ_SECONDS = aws.API_SLOWEST_CALL_SECONDS + 1
SNAPSHOT_RETRY_AFTER_SECONDS = 60  # the monitor stores a snapshot every minute
_NOT_OPEN = frozenset({BreakerState.CLOSED.value, BreakerState.DISABLED.value})
_NOTIFICATIONS_TABLE = "notifications"


class SnapshotSource(Protocol):
    """The monitor's snapshot as this execution environment knows it (`SnapshotReader`)."""

    def current(self) -> Snapshot | None: ...
    def cached(self) -> Snapshot | None: ...
    @property
    def has_read(self) -> bool: ...


class Probes(Protocol):
    """Live checks of tables and queues (`notifications.probes.DependencyProbes`)."""

    def run(self) -> ProbeResults: ...


class HealthSnapshotUnavailable(DependencyUnavailable):
    """No fresh health snapshot to serve: the detailed views answer 503, saying so in plain words."""


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class HealthConfig:
    """What the views watch and for how long they trust an answer."""

    notifications_table: str
    resilience_table: str
    accepting_queues: Mapping[str, str]  # name -> URL: the queues an accept sends to (readiness)
    queues: Sequence[QueueTarget]  # every queue the API knows (`/health/queues?live=true`)
    ready_cache_seconds: int = 5
    snapshot_cache_seconds: float = 10.0
    stale_after_seconds: float = 180.0
    version: str = "local"
    region: str = "unknown"


@dataclass
class _ReadyCheck:
    at: float
    checks: list[CheckView] = field(default_factory=list)


class ColdStart:
    """Whether an invocation is the first its execution environment serves (one instance per environment)."""

    def __init__(self) -> None:
        self._first = True
        self._lock = threading.Lock()

    def take(self) -> bool:
        """True for the first call only."""
        with self._lock:
            first, self._first = self._first, False
            return first


# ---------------------------------------------------------------------- the views
class HealthViews:
    """Every health report the API serves (see the module docstring).

    Parameters
    ----------
    snapshots : SnapshotSource
        The monitor's snapshot, cached per execution environment.
    ready_probes, db_probes, queue_probes : Probes
        Live checks: what accepting needs (readiness), the notifications table, every queue.
    config : HealthConfig
        Cache and staleness periods, and what the system view names.
    clock : Clock
        Epoch seconds.
    """

    def __init__(  # noqa: PLR0913 - the views' collaborators, each injected
        self,
        snapshots: SnapshotSource,
        *,
        ready_probes: Probes,
        db_probes: Probes,
        queue_probes: Probes,
        config: HealthConfig,
        clock: Clock,
    ) -> None:
        self._snapshots = snapshots
        self._ready_probes = ready_probes
        self._db_probes = db_probes
        self._queue_probes = queue_probes
        self._config = config
        self._clock = clock
        self._ready: _ReadyCheck | None = None
        self._ready_lock = threading.Lock()

    @property
    def ready_retry_after(self) -> int:
        """Seconds before `/health/ready` can answer anew (its `Retry-After` when not ready)."""
        return self._config.ready_cache_seconds

    # ------------------------------------------------------------------ no AWS call
    def status(self, status: Literal["ok", "alive"]) -> HealthStatus:
        """`/health` and `/health/live`: the snapshot this environment last read, if any; never calls AWS."""
        return HealthStatus(status=status, **self._mode_fields(self._snapshots.cached()))

    def notices(self, *, time_left_seconds: float) -> Mapping[str, str]:
        """Channel -> the plain sentence callers get while the mode is not NORMAL (none from a stale snapshot).

        The snapshot is read (at most once per cache period) only when the invocation has time left for it;
        else the one last read serves.
        """
        may_read = time_left_seconds >= NOTICE_READ_SECONDS
        snapshot = self._snapshots.current() if may_read else self._snapshots.cached()
        if snapshot is None or snapshot.mode is Mode.NORMAL or self._is_stale(snapshot):
            return {}
        return snapshot.notices

    # ------------------------------------------------------------------ live, cached
    def ready(self) -> Readiness:
        """DynamoDB and the accepting queues reachable, checked at most once per `ready_cache_seconds` (a
        request meanwhile gets the kept answer: many load balancers cost one check)."""
        with self._ready_lock:
            now = self._clock()
            if self._ready is None or now - self._ready.at >= self._config.ready_cache_seconds:
                checks = self._ready_probes.run().checks
                if all(check.ok for check in checks):
                    self._snapshots.current()  # the mode to report (the reader keeps it its own period)
                self._ready = _ReadyCheck(now, checks)
            ready = self._ready
        outcomes = {c.name: CheckOutcome(ok=c.ok, latency_ms=c.latency_ms, error=c.error) for c in ready.checks}
        down = [check.name for check in ready.checks if not check.ok]
        age = round(max(0.0, now - ready.at), 1)
        if down:
            reason = f"new notifications cannot be accepted: {unreachable(down)}"
            snapshot_age = self._mode_fields(self._snapshots.cached())["snapshot_age_seconds"]
            return Readiness(
                status="not_ready",
                mode=Mode.CRITICAL.value,
                reason=reason,
                snapshot_age_seconds=snapshot_age,
                checked_seconds_ago=age,
                checks=outcomes,
            )
        return Readiness(
            status="ready", checked_seconds_ago=age, checks=outcomes, **self._mode_fields(self._snapshots.cached())
        )

    # ------------------------------------------------------------------ the snapshot's parts
    def detailed(self, *, admin: bool) -> DetailedReport:
        snapshot = self._fresh()
        breakers, webhooks_open = _visible_breakers(snapshot.breakers, admin=admin)
        return DetailedReport(
            **self._mode_fields(snapshot),
            taken_at=snapshot.taken_at,
            duration_ms=snapshot.duration_ms,
            version=snapshot.version,
            checks=snapshot.checks,
            queues=snapshot.queues,
            providers=snapshot.providers,
            breakers=breakers,
            webhook_breakers_open=webhooks_open,
            notices=snapshot.notices,
        )

    def database(self, *, live: bool) -> DatabaseReport:
        if live:
            checks = self._db_probes.run().checks
            mode = self._mode_fields(self._snapshots.current())
        else:
            snapshot = self._fresh()
            checks = [check for check in snapshot.checks if check.name.startswith("dynamodb:")]
            mode = self._mode_fields(snapshot)
        return DatabaseReport(**mode, status=_status(checks), source="live" if live else "snapshot", checks=checks)

    def queues(self, *, live: bool) -> QueuesReport:
        if live:
            probed = self._queue_probes.run()
            checks, queues = probed.checks, probed.queues
            mode = self._mode_fields(self._snapshots.current())
        else:
            snapshot = self._fresh()
            checks = [check for check in snapshot.checks if check.name.startswith("sqs:")]
            queues, mode = snapshot.queues, self._mode_fields(snapshot)
        source: Literal["snapshot", "live"] = "live" if live else "snapshot"
        return QueuesReport(**mode, status=_status(checks), source=source, checks=checks, queues=queues)

    def providers(self) -> ProvidersReport:
        snapshot = self._fresh()
        return ProvidersReport(**self._mode_fields(snapshot), providers=snapshot.providers)

    def breakers(self, *, admin: bool) -> BreakersReport:
        snapshot = self._fresh()
        breakers, webhooks_open = _visible_breakers(snapshot.breakers, admin=admin)
        return BreakersReport(**self._mode_fields(snapshot), breakers=breakers, webhook_breakers_open=webhooks_open)

    def system(self, *, memory_limit_mb: int, cold_start: bool, function_name: str) -> SystemReport:
        """The execution environment; the mode as the snapshot says (UNKNOWN without one: never a 503, since
        none of this comes from the snapshot)."""
        return SystemReport(
            **self._mode_fields(self._snapshots.current()),
            runtime=f"python {platform.python_version()}",
            memory_limit_mb=memory_limit_mb,
            cold_start=cold_start,
            version=self._config.version,
            region=self._config.region,
            function_name=function_name,
        )

    # ------------------------------------------------------------------ helpers
    def _fresh(self) -> Snapshot:
        """The snapshot, if one is stored and younger than `stale_after_seconds`; else 503 in plain words."""
        snapshot = self._snapshots.current()
        retry = f"retry in {SNAPSHOT_RETRY_AFTER_SECONDS} seconds"
        if snapshot is None:
            raise HealthSnapshotUnavailable(
                "No health snapshot to report: the health monitor, which stores one every minute, has not stored"
                f" one yet, or its table did not answer; {retry}.",
                retry_after_seconds=SNAPSHOT_RETRY_AFTER_SECONDS,
            )
        if self._is_stale(snapshot):
            age = snapshot.age_seconds(self._clock())
            raise HealthSnapshotUnavailable(
                f"The latest health snapshot is {age:.0f} seconds old, older than the"
                f" {self._config.stale_after_seconds:.0f} seconds it is trusted for: the health monitor, which"
                f" stores one every minute, may not be running; {retry}.",
                retry_after_seconds=SNAPSHOT_RETRY_AFTER_SECONDS,
            )
        return snapshot

    def _is_stale(self, snapshot: Snapshot) -> bool:
        return snapshot.age_seconds(self._clock()) > self._config.stale_after_seconds

    def _mode_fields(self, snapshot: Snapshot | None) -> dict[str, Any]:
        if snapshot is None:
            reason = NONE_STORED if self._snapshots.has_read else NEVER_READ
            return {"mode": UNKNOWN_MODE, "reason": reason, "snapshot_age_seconds": None}
        age = round(snapshot.age_seconds(self._clock()), 1)
        return {"mode": snapshot.mode.value, "reason": snapshot.reason, "snapshot_age_seconds": age}


def _status(checks: Sequence[CheckView]) -> Literal["ok", "down"]:
    return "ok" if all(check.ok for check in checks) else "down"


def _visible_breakers(breakers: Sequence[BreakerView], *, admin: bool) -> tuple[list[BreakerView], int]:
    """The breakers a caller may see (webhook breakers name clients' endpoints: the admin key's only; a client
    sees the provider breakers), and how many webhook breakers are open (OPEN, HALF_OPEN or FORCED_OPEN)."""
    webhooks_open = sum(1 for b in breakers if b.kind == "webhook" and b.state not in _NOT_OPEN)
    visible = list(breakers) if admin else [b for b in breakers if b.kind == "provider"]
    return visible, webhooks_open


# ---------------------------------------------------------------------- plain words
def dependency_words(name: str) -> str:
    """A check's name in plain words: `sqs:dead_letter` -> "the dead-letter queue (SQS)"."""
    kind, _, which = name.partition(":")
    label = which.replace("dead_letter", "dead-letter").replace("_", " ")
    if kind == "dynamodb":
        return f"the {label} table (DynamoDB)"
    if kind == "sqs":
        return f"the {label} queue (SQS)"
    return name


def unreachable(names: Sequence[str]) -> str:
    """The checks' names in plain words: "the notifications table (DynamoDB) and the standard queue (SQS) are
    unreachable"."""
    words = [dependency_words(name) for name in names]
    listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
    return f"{listed} {'is' if len(words) == 1 else 'are'} unreachable"


def plain_unavailable(error: DependencyUnavailable, *, outcome: str) -> DependencyUnavailable:
    """The error a caller gets for `error`: what Herald cannot reach, what that meant for the request
    (`outcome`, e.g. "nothing was accepted") and when to retry, in plain words; same type, same Retry-After."""
    if isinstance(error, HealthSnapshotUnavailable):
        return error  # already says what is missing and when to retry
    retry = f"retry in {error.retry_after_seconds} seconds"
    if isinstance(error, StoreUnavailable):
        message = f"Herald cannot reach its notification store (DynamoDB) right now, so {outcome}; {retry}."
    elif isinstance(error, QueueUnavailable):
        message = f"Herald cannot reach its delivery queues (SQS) right now, so {outcome}; {retry}."
    else:
        detail = error.message.rstrip(".")
        message = f"{detail[:1].upper()}{detail[1:]}, so {outcome}; {retry}."
    return type(error)(message, retry_after_seconds=error.retry_after_seconds)


# ---------------------------------------------------------------------- wiring
def build_health_views(config: HealthConfig, *, dynamodb: DynamoDBClient, sqs: SQSClient, clock: Clock) -> HealthViews:
    """The views over the real snapshot store and probes; `dynamodb` and `sqs` should be probe clients (they
    fail fast: `notifications.aws.client(..., probe=True)`)."""
    reader = SnapshotReader(
        SnapshotStore(config.resilience_table, dynamodb), clock=clock, ttl_seconds=config.snapshot_cache_seconds
    )
    table = {_NOTIFICATIONS_TABLE: config.notifications_table}
    accepting = [QueueTarget(name, url) for name, url in config.accepting_queues.items()]

    def probes(tables: Mapping[str, str], queues: list[QueueTarget]) -> DependencyProbes:
        return DependencyProbes(
            tables, queues, dynamodb=dynamodb, sqs=sqs, cloudwatch=None, clock=clock, timeout_seconds=PROBE_CALL_SECONDS
        )

    return HealthViews(
        reader,
        ready_probes=probes(table, accepting),
        db_probes=probes(table, []),
        queue_probes=probes({}, list(config.queues)),
        config=config,
        clock=clock,
    )
