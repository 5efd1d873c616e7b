"""Which channel and provider to try now: the primary channel, else the fallbacks in order, each through
its providers' circuit breakers (one per provider, one per webhook origin).

The one place the choice is made, through the resilience library's degradation rule
(`resilience.choose_channel`) fed by breaker state: a channel is available when one of its providers'
breakers permits a call, and when none is, the wait lasts until the soonest breaker is expected to
let calls through. The answer is a `Route` holding the permit for one call, or a `Wait` with the
reason in plain words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from notifications.models import Channel
from resilience import BreakerState, CircuitOpenError, choose_channel

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from notifications.models import NotificationRecord
    from notifications.ports import Provider
    from resilience import BreakerRegistry, CircuitBreaker, Permit

# How soon a notification deferred by a half-open breaker (every probe permit out) looks again.
HALF_OPEN_RECHECK_SECONDS = 5.0
# Choices made again when the permit of the chosen provider went to another environment meanwhile.
ROUTE_ATTEMPTS = 3


@dataclass(frozen=True)
class Route:
    """Call `provider` on `channel` now, with `permit` from its `breaker`."""

    channel: Channel
    provider: Provider
    permit: Permit
    breaker: CircuitBreaker
    passed_over: tuple[str, ...]  # why earlier channels were not used (plain words)
    skipped: tuple[str, ...] = ()  # the channel's earlier providers whose breakers refused, with their state


@dataclass(frozen=True)
class Wait:
    """No channel can be tried now: why, and how long to wait before looking again."""

    reason: str
    delay_seconds: int


def channels_of(record: NotificationRecord) -> list[Channel]:
    """The primary channel, then the fallbacks, each once, in the order they are tried."""
    return list(dict.fromkeys([record.channel, *record.fallback_channels]))


class ChannelRouter:
    """Chooses a channel and provider for a notification from its breakers' state (thread-safe).

    Parameters
    ----------
    providers : Mapping[Channel, Sequence[Provider]]
        Each channel's providers, in the order they are tried.
    breakers : BreakerRegistry
        This execution environment's breakers.
    """

    def __init__(self, providers: Mapping[Channel, Sequence[Provider]], breakers: BreakerRegistry) -> None:
        self._providers = {channel: tuple(found) for channel, found in providers.items() if found}
        self._breakers = breakers

    def has_provider(self, record: NotificationRecord) -> bool:
        """Whether any of the notification's channels has a provider configured at all."""
        return any(channel in self._providers for channel in channels_of(record))

    def route(self, record: NotificationRecord) -> Route | Wait:
        """The first channel (primary, then fallbacks) with a provider whose breaker gives a permit, or a wait."""
        refused: set[str] = set()
        for _ in range(ROUTE_ATTEMPTS):
            decision = choose_channel(
                record.channel.value,
                [channel.value for channel in record.fallback_channels],
                available=lambda name: self._usable(record, Channel(name), refused) is not None,
                retry_in=lambda name: self._retry_in(record, Channel(name)),
            )
            if decision.channel is None:
                assert decision.defer_seconds is not None  # a deferral always carries a delay
                return Wait(self.unavailable_reason(record), decision.defer_seconds)
            channel = Channel(decision.channel)
            provider = self._usable(record, channel, refused)
            assert provider is not None  # choose_channel picked a channel that had one
            breaker = self._breakers.get(provider.breaker_name(record))
            try:
                permit = breaker.allow()
            except CircuitOpenError:  # another environment took the last probe permit: choose again
                refused.add(breaker.name)
                continue
            channels = channels_of(record)
            passed_over = tuple(self._why_not(record, c) for c in channels[: channels.index(channel)])
            return Route(channel, provider, permit, breaker, passed_over, self._skipped(record, channel, provider))
        return Wait(self.unavailable_reason(record), 1)

    def next_provider(self, record: NotificationRecord, channel: Channel, exclude: frozenset[str]) -> Route | None:
        """The channel's first provider not in `exclude` whose breaker gives a permit now, if any."""
        refused = set(exclude)
        while (provider := self._usable(record, channel, refused)) is not None:
            breaker = self._breakers.get(provider.breaker_name(record))
            try:
                return Route(channel, provider, breaker.allow(), breaker, ())
            except CircuitOpenError:  # another environment took the last probe permit
                refused.add(breaker.name)
        return None

    def _skipped(self, record: NotificationRecord, channel: Channel, chosen: Provider) -> tuple[str, ...]:
        """The channel's providers before `chosen` (their breakers refused), with their state: "provider:x OPEN"."""
        earlier = self._providers_of(channel)[: self._providers_of(channel).index(chosen)]
        names = [provider.breaker_name(record) for provider in earlier]
        return tuple(f"{name} {self._breakers.get(name).state}" for name in names)

    def unavailable_reason(self, record: NotificationRecord) -> str:
        """Why no channel of the notification can be tried, in plain words."""
        return "; ".join(self._why_not(record, channel) for channel in channels_of(record))

    def _providers_of(self, channel: Channel) -> tuple[Provider, ...]:
        return self._providers.get(channel, ())

    def _usable(self, record: NotificationRecord, channel: Channel, refused: set[str]) -> Provider | None:
        for provider in self._providers_of(channel):
            name = provider.breaker_name(record)
            if name not in refused and self._breakers.get(name).permits_call():
                return provider
        return None

    def _retry_in(self, record: NotificationRecord, channel: Channel) -> float | None:
        waits: list[float] = []
        for provider in self._providers_of(channel):
            breaker = self._breakers.get(provider.breaker_name(record))
            wait = breaker.seconds_until_permitted()
            if wait is None:
                continue  # only an operator can reopen it
            if breaker.state is BreakerState.HALF_OPEN:
                # Every probe permit is out; the probes usually finish in a call's time and close the
                # breaker, long before their leases would expire: look again soon.
                wait = min(wait, HALF_OPEN_RECHECK_SECONDS)
            waits.append(wait)
        return min(waits) if waits else None

    def _why_not(self, record: NotificationRecord, channel: Channel) -> str:
        providers = self._providers_of(channel)
        if not providers:
            return f"{channel} has no provider configured"
        names = [provider.breaker_name(record) for provider in providers]
        states = ", ".join(f"{name} {self._breakers.get(name).state}" for name in names)
        what = "webhook endpoint" if channel is Channel.WEBHOOK else f"{channel} provider"
        return f"{what} unavailable ({states})"
