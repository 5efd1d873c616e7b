"""The degradation-mode rules: from what a health monitor saw, the mode, why, and what to tell callers.

A pure function (:func:`assess`) on frozen values: no I/O, no clock, no environment. The monitor
probes its dependencies, reads every breaker (``BreakerRegistry.describe_all``) and its queues,
and hands them here with the channels in use and the thresholds (:class:`HealthThresholds`, read
once with :func:`~resilience.config.load_health_thresholds`); it stores the mode, which senders read
with :class:`~resilience.mode.ModeReader`.

The rules, worst first (the mode is the worst that applies):

* **CRITICAL**: a check of a critical dependency failed (``HealthThresholds.critical_dependencies``:
  DynamoDB and SQS by default; a check named ``dynamodb`` or ``dynamodb:<anything>`` is DynamoDB's),
  or no channel in use can deliver (every channel has every provider down).
* **DEGRADED**: a channel in use has every provider down (its messages wait, or go by a fallback
  channel); a queue that is not a dead-letter queue has an oldest message older than
  ``queue_age_seconds`` (strictly: exactly at the threshold is still well); a check of another
  dependency failed; a dead-letter queue holds messages and ``dlq_degraded`` is set.
* **PARTIAL**: some provider of a channel in use is down, and every channel in use still has a
  provider up.
* **NORMAL**: none of the above.

A provider is *down* when its breaker does not admit ordinary traffic: OPEN, FORCED_OPEN, and
HALF_OPEN (only a few probe calls pass; the rest wait). CLOSED and DISABLED (an operator switched
the breaker off, so every call flows) are up. A provider of a channel in use with no
:class:`ProviderHealth` counts as up: a breaker that never wrote has no stored item and is CLOSED.

A non-empty dead-letter queue is always reported in :attr:`Assessment.alarms`; it changes the mode
only with ``dlq_degraded``. With no channel in use, the channel rules do not apply.

Notices (:attr:`Assessment.notices`, for the API's 202 ``notice``) are given per channel whose
every provider is down: its messages are queued until a provider recovers (or, when it has a
fallback channel that is up, may go by that channel if the notification allows a fallback). A
channel with one provider down and another up gets no notice: its messages are delivered as
usual, by the provider still up. Dependency and queue problems give no per-channel notice (they
are not a channel's): the caller decides what to tell when, say, DynamoDB is unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resilience.breaker.state import BreakerState
from resilience.config import HealthThresholds
from resilience.mode import Mode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

DOWN_STATES = frozenset({BreakerState.OPEN, BreakerState.FORCED_OPEN, BreakerState.HALF_OPEN})
"""Breaker states in which a provider does not deliver ordinary traffic."""

NORMAL_REASON = "all dependencies reachable and every provider delivering"

__all__ = [
    "DOWN_STATES",
    "NORMAL_REASON",
    "Assessment",
    "ChannelUse",
    "DependencyCheck",
    "Finding",
    "HealthThresholds",
    "ProviderHealth",
    "QueueHealth",
    "assess",
    "channel_label",
    "dependency_label",
]

_SEVERITY: Mapping[Mode, int] = {Mode.NORMAL: 0, Mode.PARTIAL: 1, Mode.DEGRADED: 2, Mode.CRITICAL: 3}
_SERVICE_LABELS: Mapping[str, str] = {"dynamodb": "DynamoDB", "sqs": "SQS"}


@dataclass(frozen=True)
class DependencyCheck:
    """One probe of a dependency the service needs.

    Parameters
    ----------
    name : str
        ``<service>`` or ``<service>:<which>``: ``dynamodb``, ``dynamodb:notifications``, ``sqs:standard``.
    ok : bool
        Whether it answered.
    latency_ms : float
        How long the probe took.
    error : str | None
        Why it failed (an error type or "timed out"; never a message that may hold data).
    checked_at : float
        When (epoch seconds).
    """

    name: str
    ok: bool
    latency_ms: float
    error: str | None
    checked_at: float


@dataclass(frozen=True)
class ProviderHealth:
    """A provider and its breaker's state.

    Parameters
    ----------
    name : str
        The provider (``sendgrid``, ``sns-sms``), as :attr:`ChannelUse.providers` names it.
    channel : str
        The channel it serves (``email``, ``sms``); one provider may serve several, once each.
    state : BreakerState | str
        Its breaker's state (a :class:`BreakerState` or its name; stored as a :class:`BreakerState`).

    Raises
    ------
    ValueError
        ``state`` is not a breaker state.
    """

    name: str
    channel: str
    state: BreakerState | str

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "state", BreakerState(str(self.state)))
        except ValueError:
            known = ", ".join(BreakerState)
            message = f"provider {self.name!r}: unknown breaker state {self.state!r} (one of {known})"
            raise ValueError(message) from None

    @property
    def down(self) -> bool:
        """Whether its breaker holds ordinary traffic back (OPEN, FORCED_OPEN, HALF_OPEN)."""
        return self.state in DOWN_STATES


@dataclass(frozen=True)
class QueueHealth:
    """A queue's depth and age.

    Parameters
    ----------
    name : str
        The queue, as people call it (``standard``, ``priority``, ``dead-letter``).
    visible, in_flight, delayed : int
        Messages waiting, being processed, and not yet visible.
    oldest_age_seconds : float | None
        Age of the oldest message (``None``: not known).
    is_dead_letter : bool
        Whether it is a dead-letter queue (its age is no rule; holding messages is an alarm).
    """

    name: str
    visible: int
    in_flight: int
    delayed: int
    oldest_age_seconds: float | None
    is_dead_letter: bool

    @property
    def messages(self) -> int:
        """Every message it holds: visible, in flight and delayed."""
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True)
class ChannelUse:
    """A channel in use (configuration).

    Parameters
    ----------
    channel : str
        The channel (``email``, ``sms``, ``push``, ``webhook``).
    providers : tuple[str, ...]
        Its providers, in the order they are tried (at least one).
    fallbacks : tuple[str, ...]
        Channels its notifications may fall back to (may be empty).

    Raises
    ------
    ValueError
        No provider.
    """

    channel: str
    providers: tuple[str, ...]
    fallbacks: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.providers:
            raise ValueError(f"channel {self.channel!r} is in use without a provider")


@dataclass(frozen=True)
class Finding:
    """One problem found, and the mode it calls for."""

    mode: Mode
    text: str


@dataclass(frozen=True)
class Assessment:
    """What :func:`assess` concluded.

    Parameters
    ----------
    mode : Mode
        The worst mode any rule calls for.
    reason : str
        One sentence in plain words: every finding, the worst first, joined by ``"; "``; or
        :data:`NORMAL_REASON`. No personal data (it names dependencies, providers and queues).
    down_channels : tuple[str, ...]
        Channels in use with every provider down, in the order given.
    degraded_channels : tuple[str, ...]
        Channels in use with some provider down and another up, in the order given.
    notices : dict[str, str]
        Channel to a sentence for API callers, for each channel in ``down_channels``.
    alarms : tuple[str, ...]
        Things to alarm on that need not change the mode (a non-empty dead-letter queue).
    findings : tuple[Finding, ...]
        Every problem, the worst first (what ``reason`` joins).
    """

    mode: Mode
    reason: str
    down_channels: tuple[str, ...] = ()
    degraded_channels: tuple[str, ...] = ()
    notices: dict[str, str] = field(default_factory=dict)
    alarms: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (mode as its name)."""
        return {
            "mode": str(self.mode),
            "reason": self.reason,
            "down_channels": list(self.down_channels),
            "degraded_channels": list(self.degraded_channels),
            "notices": dict(self.notices),
            "alarms": list(self.alarms),
        }


def channel_label(channel: str, names: Mapping[str, str] | None = None) -> str:
    """A channel as people write it: ``names[channel]`` when given, else upper case up to 3 letters.

    Examples
    --------
    >>> [channel_label(c) for c in ("email", "sms", "push", "webhook")]
    ['email', 'SMS', 'push', 'webhook']
    """
    if names and channel in names:
        return names[channel]
    return channel.upper() if len(channel) <= 3 else channel


def dependency_label(name: str) -> str:
    """A dependency check's name as people write it.

    Examples
    --------
    >>> dependency_label("dynamodb"), dependency_label("sqs:standard")
    ('DynamoDB', 'SQS (standard)')
    """
    service, _, which = name.partition(":")
    label = _SERVICE_LABELS.get(service.lower(), service)
    return f"{label} ({which})" if which else label


def assess(
    checks: Iterable[DependencyCheck],
    providers: Iterable[ProviderHealth],
    queues: Iterable[QueueHealth],
    channels: Iterable[ChannelUse],
    thresholds: HealthThresholds | None = None,
    *,
    channel_names: Mapping[str, str] | None = None,
) -> Assessment:
    """Compute the degradation mode, its reason, and the notices for callers (see the module docstring).

    Parameters
    ----------
    checks : Iterable[DependencyCheck]
        Dependency probes.
    providers : Iterable[ProviderHealth]
        Providers and their breakers' states; matched to channels by (channel, name).
    queues : Iterable[QueueHealth]
        Queue depths and ages.
    channels : Iterable[ChannelUse]
        The channels in use, their providers and fallbacks.
    thresholds : HealthThresholds | None
        The rules' thresholds (defaults when omitted).
    channel_names : Mapping[str, str] | None
        How to write a channel in texts, overriding :func:`channel_label`'s default.

    Returns
    -------
    Assessment
        The mode, the reason, the down and degraded channels, notices and alarms.

    Raises
    ------
    ValueError
        A channel is listed twice.

    Examples
    --------
    >>> sms = ChannelUse("sms", ("twilio", "sns-sms"))
    >>> down = [ProviderHealth("twilio", "sms", "OPEN"), ProviderHealth("sns-sms", "sms", "OPEN")]
    >>> email = ChannelUse("email", ("ses",))
    >>> assessment = assess([], down, [], [email, sms])
    >>> assessment.mode, assessment.reason
    (<Mode.DEGRADED: 'DEGRADED'>, 'SMS delivery is delayed: both SMS providers are failing (twilio OPEN, sns-sms OPEN)')
    """
    limits = thresholds or HealthThresholds()
    in_use = _index_channels(channels)
    states = {(p.channel, p.name): p for p in providers}
    views = [_ChannelView.of(use, states, channel_label(use.channel, channel_names)) for use in in_use.values()]
    down = [view for view in views if view.all_down]
    degraded = [view for view in views if view.down and not view.all_down]
    labels = {view.use.channel: view.label for view in views}
    unusable = {view.use.channel for view in down}

    findings = _dependency_findings(checks, limits)
    if views and len(down) == len(views):
        every = _join([view.label for view in down])
        findings.append(Finding(Mode.CRITICAL, f"no channel can deliver: every provider of {every} is failing"))
    notices: dict[str, str] = {}
    for view in down:
        ways_out = [labels[fb] for fb in view.use.fallbacks if fb in labels and fb not in unusable]
        finding, notices[view.use.channel] = view.delayed(ways_out)
        findings.append(finding)
    queue_findings, alarms = _queue_findings(queues, limits)
    findings += queue_findings
    findings += [view.narrowed() for view in degraded]

    findings.sort(key=lambda finding: -_SEVERITY[finding.mode])  # stable: same-mode findings keep their order
    return Assessment(
        mode=findings[0].mode if findings else Mode.NORMAL,
        reason="; ".join(finding.text for finding in findings) if findings else NORMAL_REASON,
        down_channels=tuple(view.use.channel for view in down),
        degraded_channels=tuple(view.use.channel for view in degraded),
        notices=notices,
        alarms=tuple(alarms),
        findings=tuple(findings),
    )


@dataclass(frozen=True)
class _ChannelView:
    """A channel in use with its providers' health, and the texts about it."""

    use: ChannelUse
    label: str
    health: tuple[ProviderHealth, ...]

    @classmethod
    def of(cls, use: ChannelUse, states: Mapping[tuple[str, str], ProviderHealth], label: str) -> _ChannelView:
        """The channel's providers in order; one without a state is CLOSED (its breaker never wrote)."""
        closed = BreakerState.CLOSED
        health = tuple(
            states.get((use.channel, name)) or ProviderHealth(name, use.channel, closed) for name in use.providers
        )
        return cls(use, label, health)

    @property
    def down(self) -> tuple[ProviderHealth, ...]:
        return tuple(provider for provider in self.health if provider.down)

    @property
    def all_down(self) -> bool:
        return len(self.down) == len(self.health)

    def delayed(self, ways_out: Sequence[str]) -> tuple[Finding, str]:
        """Every provider down: the finding (with breaker states) and the notice for callers (without)."""
        count = len(self.health)
        failing = _all_failing(self.label, count)
        states = ", ".join(f"{provider.name} {provider.state}" for provider in self.down)
        fallback = f", and messages that allow it fall back to {_join(ways_out, 'or')}" if ways_out else ""
        finding = Finding(Mode.DEGRADED, f"{self.label} delivery is delayed: {failing} ({states}){fallback}")
        recovers = "it recovers" if count == 1 else "one recovers"
        by_fallback = f", or by {_join(ways_out, 'or')} if it allows a fallback" if ways_out else ""
        notice = _capitalised(
            f"{self.label} delivery is delayed: {failing}; "
            f"your message is queued and will be sent when {recovers}{by_fallback}"
        )
        return finding, notice

    def narrowed(self) -> Finding:
        """Some provider down, another up: what fails and what still delivers."""
        down = self.down
        up = [provider.name for provider in self.health if not provider.down]
        width = "one provider" if len(up) == 1 else f"{len(up)} of {len(self.health)} providers"
        failing = f"{_join([p.name for p in down])} {_be(len(down))} failing ({', '.join(str(p.state) for p in down)})"
        return Finding(
            Mode.PARTIAL, f"{self.label} is degraded to {width}: {failing}; {_join(up)} {_be(len(up))} delivering"
        )


def _dependency_findings(checks: Iterable[DependencyCheck], limits: HealthThresholds) -> list[Finding]:
    findings: list[Finding] = []
    for check in checks:
        if not check.ok:
            mode = Mode.CRITICAL if limits.is_critical(check.name) else Mode.DEGRADED
            detail = f" ({check.error})" if check.error else ""
            findings.append(Finding(mode, f"{dependency_label(check.name)} is unreachable{detail}"))
    return findings


def _queue_findings(queues: Iterable[QueueHealth], limits: HealthThresholds) -> tuple[list[Finding], list[str]]:
    """Queues too old (DEGRADED), and dead-letter queues holding messages (alarms; DEGRADED with ``dlq_degraded``)."""
    findings: list[Finding] = []
    alarms: list[str] = []
    for queue in queues:
        age = queue.oldest_age_seconds
        if queue.is_dead_letter:
            if queue.messages > 0:
                named = any(word in queue.name.lower() for word in ("dead-letter", "dlq"))
                called = f"the {queue.name} queue" if named else f"the {queue.name} dead-letter queue"
                held = f"{called} holds {_count(queue.messages, 'message')}"
                alarms.append(held)
                if limits.dlq_degraded:
                    findings.append(Finding(Mode.DEGRADED, held))
        elif age is not None and age > limits.queue_age_seconds:
            limit = _seconds(limits.queue_age_seconds)
            text = f"the {queue.name} queue's oldest message is {_seconds(age)} s old (threshold {limit} s)"
            findings.append(Finding(Mode.DEGRADED, text))
    return findings, alarms


def _index_channels(channels: Iterable[ChannelUse]) -> dict[str, ChannelUse]:
    indexed: dict[str, ChannelUse] = {}
    for use in channels:
        if use.channel in indexed:
            raise ValueError(f"channel {use.channel!r} is listed twice")
        indexed[use.channel] = use
    return indexed


def _all_failing(label: str, providers: int) -> str:
    if providers == 1:
        return f"the {label} provider is failing"
    if providers == 2:  # noqa: PLR2004 - "both" is the word for two
        return f"both {label} providers are failing"
    return f"all {providers} {label} providers are failing"


def _join(words: Iterable[str], conjunction: str = "and") -> str:
    items: Sequence[str] = list(words)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _be(count: int) -> str:
    return "is" if count == 1 else "are"


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _seconds(value: float) -> str:
    """Seconds without a needless fraction: ``412``, ``300.5``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
