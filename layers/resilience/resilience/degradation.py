"""Graceful degradation: for a requested channel, which channel to use now, or wait and retry later.

A pure function: the caller supplies which channels currently have a provider whose breaker
permits a call (for example from :meth:`CircuitBreaker.permits_call`), and optionally when the
unavailable ones may be back (:meth:`CircuitBreaker.seconds_until_permitted`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

SQS_MAX_DELAY_SECONDS = 900
"""SQS ``DelaySeconds`` cannot exceed 15 minutes."""

Availability = Mapping[str, bool] | Callable[[str], bool]
RetryHints = Mapping[str, float | None] | Callable[[str], float | None]


@dataclass(frozen=True)
class ChannelDecision:
    """The answer of :func:`choose_channel`.

    Parameters
    ----------
    channel : str | None
        The channel to use now, or ``None`` to defer.
    defer_seconds : int | None
        When deferring, the suggested delay before trying again.
    fallback : bool
        Whether ``channel`` is a fallback rather than the requested channel.
    """

    channel: str | None
    defer_seconds: int | None = None
    fallback: bool = False

    @property
    def deferred(self) -> bool:
        """Whether no channel can be used now ("queue for later")."""
        return self.channel is None


def _lookup(source: Mapping[str, object] | Callable[[str], object], channel: str) -> object:
    return source.get(channel) if isinstance(source, Mapping) else source(channel)


def choose_channel(
    requested: str,
    fallbacks: Sequence[str],
    available: Availability,
    *,
    retry_in: RetryHints | None = None,
    default_defer_seconds: int = 60,
    min_defer_seconds: int = 1,
    max_defer_seconds: int = SQS_MAX_DELAY_SECONDS,
) -> ChannelDecision:
    """Pick the first usable channel among the requested one and its fallbacks, in order.

    Parameters
    ----------
    requested : str
        The channel the notification asked for.
    fallbacks : Sequence[str]
        Channels to try next, in order (duplicates and the requested channel are skipped).
    available : Mapping[str, bool] | Callable[[str], bool]
        Whether a channel currently has a provider whose breaker permits a call; unknown
        channels count as unavailable.
    retry_in : Mapping[str, float | None] | Callable[[str], float | None] | None
        Seconds until a channel may be available again (``None``: unknown). The deferral lasts
        until the soonest candidate is expected back.
    default_defer_seconds : int
        Delay when no hint is known (default 60).
    min_defer_seconds, max_defer_seconds : int
        Bounds of the suggested delay (default 1 and 900, SQS's ``DelaySeconds`` limit).

    Returns
    -------
    ChannelDecision
        The channel to use, or a deferral with a suggested delay.

    Examples
    --------
    >>> choose_channel("email", ["sms"], {"email": False, "sms": True})
    ChannelDecision(channel='sms', defer_seconds=None, fallback=True)
    >>> choose_channel("email", [], {"email": False}, retry_in={"email": 12.5}).defer_seconds
    13
    """
    candidates = list(dict.fromkeys([requested, *fallbacks]))
    for channel in candidates:
        if _lookup(available, channel) is True:
            return ChannelDecision(channel=channel, fallback=channel != requested)
    hints: list[float] = []
    if retry_in is not None:
        for channel in candidates:
            hint = _lookup(retry_in, channel)
            if isinstance(hint, int | float) and math.isfinite(hint) and hint >= 0:
                hints.append(float(hint))
    delay = math.ceil(min(hints)) if hints else default_defer_seconds
    return ChannelDecision(channel=None, defer_seconds=min(max(delay, min_defer_seconds), max_defer_seconds))
