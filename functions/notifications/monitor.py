"""One health-monitor run: probe, read the breakers, judge the mode (the resilience layer's rules), store, report,
then reconcile the dead letters.

Nothing here raises for a dependency's sake: a probe that fails or hangs is a failed check, a breaker listing
that fails leaves the providers unknown (counted as a failed check), and a snapshot that cannot be stored is
logged and reported in the run's result. The reconciliation step (`notifications.dead_letters`: every record
still pending whose message rests in the DLQ is marked `dead_lettered`) runs after the snapshot is stored, and
whatever it meets is logged: the run's result says it did not run (`reconciled` None). The monitor as a whole
never fails because something it watches did.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from botocore.exceptions import BotoCoreError, ClientError

from notifications.health_snapshot import BreakerView, CheckView, ProviderView, Snapshot, provider_name
from notifications.observability import logger
from resilience.health import ChannelUse, DependencyCheck, ProviderHealth, QueueHealth, assess

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from notifications.clock import Clock
    from notifications.health_snapshot import QueueView, SnapshotStore
    from notifications.models import Channel
    from notifications.probes import DependencyProbes
    from resilience.health import HealthThresholds

PROVIDER_PREFIX = "provider:"
WEBHOOK_PREFIX = "webhook:"
_CLOSED = "CLOSED"


class BreakersUnreadable(RuntimeError):
    """The breakers could not be listed or read (the store failed); the message names only the error's type."""


@dataclass(frozen=True)
class RunResult:
    snapshot: Snapshot
    written: bool
    previous_mode: str | None
    reconciled: int | None = None  # records reconciled with the DLQ; None: the step failed or is not configured


class HealthMonitor:
    """Probes, breakers, mode, snapshot (see the module docstring).

    Parameters
    ----------
    probes : DependencyProbes
        The tables' and queues' probes.
    breakers : Callable[[], Sequence[BreakerView]]
        Every breaker that has stored a state (one that never did is CLOSED).
    store : SnapshotStore
        Where the snapshot goes.
    channels : Mapping[Channel, tuple[str, ...]]
        The channels in use, each with its providers in order as the configuration lists them.
    thresholds : HealthThresholds
        The layer's rule thresholds.
    clock : Clock
        Epoch seconds.
    version : str
        The code version the snapshot names.
    reconcile : Callable[[], int] | None
        The dead-letter reconciliation step (`DeadLetterReconciler.run`): how many records it marked.
    """

    def __init__(  # noqa: PLR0913 - the monitor's collaborators, each injected
        self,
        probes: DependencyProbes,
        breakers: Callable[[], Sequence[BreakerView]],
        store: SnapshotStore,
        channels: Mapping[Channel, tuple[str, ...]],
        thresholds: HealthThresholds,
        *,
        clock: Clock,
        version: str = "local",
        reconcile: Callable[[], int] | None = None,
    ) -> None:
        self._probes = probes
        self._breakers = breakers
        self._store = store
        self._channels = dict(channels)
        self._thresholds = thresholds
        self._clock = clock
        self._version = version
        self._reconcile = reconcile

    def run(self) -> RunResult:
        started = self._clock()
        previous = self._previous_mode()
        probed = self._probes.run()
        checks = list(probed.checks)
        breakers = self._read_breakers(checks, started)
        providers = self._providers(breakers)
        assessment = assess(
            [_dependency(check) for check in checks],
            [ProviderHealth(name=p.name, channel=p.channel.value, state=p.state) for p in providers],
            [_queue(queue) for queue in probed.queues],
            [
                ChannelUse(channel=channel.value, providers=tuple(provider_name(channel, n) for n in names))
                for channel, names in self._channels.items()
            ],
            self._thresholds,
        )
        snapshot = Snapshot(
            mode=assessment.mode,
            reason=assessment.reason,
            taken_at=started,
            duration_ms=round((self._clock() - started) * 1000, 1),
            checks=checks,
            queues=probed.queues,
            providers=providers,
            breakers=list(breakers),
            notices=dict(assessment.notices),
            version=self._version,
        )
        written = self._write(snapshot)
        if previous != snapshot.mode.value:
            logger.warning(
                "degradation mode changed",
                extra={"mode": snapshot.mode.value, "previous_mode": previous, "reason": snapshot.reason},
            )
        return RunResult(snapshot, written, previous, self._reconciled())

    # ------------------------------------------------------------------ helpers
    def _previous_mode(self) -> str | None:
        try:
            stored = self._store.read()
        except (ClientError, BotoCoreError) as error:
            logger.warning("previous health snapshot unreadable", extra={"error_type": type(error).__name__})
            return None
        return None if stored is None else stored.mode.value

    def _read_breakers(self, checks: list[CheckView], now: float) -> list[BreakerView]:
        try:
            return list(self._breakers())
        except (BreakersUnreadable, ClientError, BotoCoreError) as error:
            # Without the breakers the providers are unknown: a failed check, so the mode says so.
            checks.append(
                CheckView(name="breakers", ok=False, latency_ms=0.0, error=type(error).__name__, checked_at=now)
            )
            return []

    def _providers(self, breakers: Sequence[BreakerView]) -> list[ProviderView]:
        """Each provider of each channel in use, with its breaker's state (CLOSED when it never stored one)."""
        by_name = {breaker.name: breaker for breaker in breakers}
        providers = []
        for channel, names in self._channels.items():
            for listed in names:
                name = provider_name(channel, listed)
                breaker = by_name.get(f"{PROVIDER_PREFIX}{name}")
                state = breaker.state if breaker is not None else _CLOSED
                up = breaker.permits_calls if breaker is not None else True
                providers.append(ProviderView(name=name, channel=channel, state=state, up=up))
        return providers

    def _reconciled(self) -> int | None:
        """The reconciliation step, after the snapshot: it never fails the run."""
        if self._reconcile is None:
            return None
        try:
            return self._reconcile()
        except Exception as error:  # noqa: BLE001 - a step of the run, never its end
            logger.warning("dead-letter reconciliation failed", extra={"error_type": type(error).__name__})
            return None

    def _write(self, snapshot: Snapshot) -> bool:
        try:
            written = self._store.write(snapshot)
        except (ClientError, BotoCoreError) as error:
            logger.error("health snapshot not stored", extra={"error_type": type(error).__name__})
            return False
        if not written:
            logger.info("a newer health snapshot is stored; this one was dropped")
        return written


def breaker_kind(name: str) -> Literal["provider", "webhook", "other"]:
    if name.startswith(PROVIDER_PREFIX):
        return "provider"
    if name.startswith(WEBHOOK_PREFIX):
        return "webhook"
    return "other"


def _dependency(check: CheckView) -> DependencyCheck:
    return DependencyCheck(
        name=check.name, ok=check.ok, latency_ms=check.latency_ms, error=check.error, checked_at=check.checked_at
    )


def _queue(queue: QueueView) -> QueueHealth:
    return QueueHealth(
        name=queue.name,
        visible=queue.visible,
        in_flight=queue.in_flight,
        delayed=queue.delayed,
        oldest_age_seconds=queue.oldest_age_seconds,
        is_dead_letter=queue.dead_letter,
    )
