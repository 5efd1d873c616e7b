"""Throttling as API Gateway applies it: a token bucket per API key (usage plan) and per method (stage).

A usage plan's Throttle gives every API key a bucket of its own; its Quota counts each key's requests per period.
A stage's ``MethodSettings`` give every method (resource path and HTTP method) one bucket that all its callers
share, with or without a key; API Gateway checks a key's usage-plan throttle first, then the method's.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

# API Gateway's default account-level throttle in a Region: what a method gets for a limit no setting gives.
ACCOUNT_RATE_LIMIT = 10_000.0
ACCOUNT_BURST_LIMIT = 5_000
ALL_RESOURCES = "/*"  # a MethodSettings ResourcePath for every resource
ALL_METHODS = "*"  # a MethodSettings HttpMethod for every method


@dataclass
class TokenBucket:
    """``rate`` tokens per second refill a bucket holding at most ``burst``; each request takes one."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 0:
            raise ValueError("throttle rate and burst must not be negative")
        self._tokens = float(self.burst)
        self._updated = self.clock()

    def take(self) -> bool:
        """Take one token; False when the bucket is empty (the request is throttled)."""
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False


@dataclass
class KeyThrottle:
    """One bucket per API key, all with the usage plan's RateLimit and BurstLimit; thread-safe."""

    rate: float
    burst: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def allow(self, api_key: str) -> bool:
        """Whether a request with ``api_key`` may pass now."""
        with self._lock:
            bucket = self._buckets.get(api_key)
            if bucket is None:
                bucket = self._buckets[api_key] = TokenBucket(self.rate, self.burst, self.clock)
            return bucket.take()


def _period_key(period: str, now: float) -> tuple[int, ...]:
    moment = time.gmtime(now)
    if period == "DAY":
        return (moment.tm_year, moment.tm_yday)
    if period == "WEEK":
        iso = datetime.fromtimestamp(now, UTC).isocalendar()
        return (iso.year, iso.week)
    if period == "MONTH":
        return (moment.tm_year, moment.tm_mon)
    raise ValueError(f"usage plan quota period {period!r} is not DAY, WEEK or MONTH")


@dataclass
class KeyQuota:
    """A usage plan Quota: at most ``limit`` requests per key per calendar ``period`` (UTC; Offset ignored)."""

    limit: int
    period: str
    clock: Callable[[], float] = time.time
    _used: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        _period_key(self.period, self.clock())  # reject an unknown period at start-up

    def allow(self, api_key: str) -> bool:
        """Count a request with ``api_key``; False once the period's quota is used up."""
        with self._lock:
            current = _period_key(self.period, self.clock())
            period, used = self._used.get(api_key, (current, 0))
            if period != current:
                used = 0
            if used >= self.limit:
                return False
            self._used[api_key] = (current, used + 1)
            return True


def decode_resource_path(resource_path: str) -> str:
    """A MethodSettings ``ResourcePath`` as CloudFormation takes it (``/~1health~1live``) -> ``/health/live``.

    CloudFormation addresses a method setting as ``/`` followed by the resource path with each of its ``/`` written
    ``~1`` (and ``~`` written ``~0``); ``/`` alone is the root resource, ``/*`` every resource.

    Raises
    ------
    ValueError
        The path is not written that way (e.g. ``/health/live``): a deployment refuses it too.
    """
    if resource_path in {"/", ALL_RESOURCES}:
        return resource_path
    encoded = resource_path[1:]
    if not resource_path.startswith("/~1") or "/" in encoded:
        plain = resource_path if resource_path.startswith("/") else f"/{resource_path}"
        suggestion = "/" + plain.replace("~", "~0").replace("/", "~1")
        raise ValueError(
            f"MethodSettings ResourcePath {resource_path!r}: CloudFormation takes '/' and then the resource path with "
            f"each '/' written '~1' (write {suggestion!r}), or '/*' for every resource"
        )
    return encoded.replace("~1", "/").replace("~0", "~")


def _limit(raw: Mapping[str, Any], name: str, convert: Callable[[Any], float]) -> float | None:
    if raw.get(name) is None:
        return None
    value = convert(raw[name])
    if value < 0:
        raise ValueError(f"MethodSettings {name} must not be negative, got {raw[name]!r}")
    return value


@dataclass(frozen=True)
class MethodSetting:
    """The throttle of one ``MethodSettings`` entry: the methods it addresses and the limits it gives (or None)."""

    resource_path: str  # decoded (/health/live), or /* for every resource
    http_method: str  # upper case (GET, ANY), or * for every method
    rate: float | None = None  # ThrottlingRateLimit, requests per second
    burst: int | None = None  # ThrottlingBurstLimit

    @classmethod
    def from_template(cls, raw: Mapping[str, Any]) -> MethodSetting:
        """One resolved entry of an ``AWS::ApiGateway::Stage``'s ``MethodSettings``."""
        burst = _limit(raw, "ThrottlingBurstLimit", int)
        return cls(
            resource_path=decode_resource_path(str(raw.get("ResourcePath", ALL_RESOURCES))),
            http_method=str(raw.get("HttpMethod", ALL_METHODS)).upper(),
            rate=_limit(raw, "ThrottlingRateLimit", float),
            burst=None if burst is None else int(burst),
        )

    def matches(self, resource_path: str, method: str) -> bool:
        """Whether this setting addresses the method ``method`` (a route's: GET, ANY) of ``resource_path``."""
        return self.resource_path in {ALL_RESOURCES, resource_path} and self.http_method in {ALL_METHODS, method}

    @property
    def specificity(self) -> tuple[bool, bool]:
        """Higher wins: a setting for the resource beats ``/*``; then one for the method beats ``*``."""
        return self.resource_path != ALL_RESOURCES, self.http_method != ALL_METHODS


@dataclass
class MethodThrottle:
    """The stage's method throttles: one bucket per method, shared by every caller (key or none); thread-safe.

    A method takes each limit from the most specific setting that gives it (``/~1health/GET`` before ``/*/GET``
    before ``/*/*``), and a limit no setting gives from the account default; a method no setting addresses is not
    throttled here. Wildcard settings give every method a bucket of its own, as API Gateway's stage defaults do.
    """

    settings: tuple[MethodSetting, ...]
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[tuple[str, str], TokenBucket | None] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @classmethod
    def from_stage(
        cls, method_settings: Iterable[Mapping[str, Any]], clock: Callable[[], float] = time.monotonic
    ) -> MethodThrottle | None:
        """The throttle of a stage's resolved ``MethodSettings``; None when no entry sets a throttling limit."""
        settings = tuple(MethodSetting.from_template(raw) for raw in method_settings)
        throttling = tuple(setting for setting in settings if setting.rate is not None or setting.burst is not None)
        return cls(throttling, clock) if throttling else None

    def limits(self, resource_path: str, method: str) -> tuple[float, int] | None:
        """The (rate, burst) that throttles one method, or None when no setting addresses it."""
        matching = sorted(
            (setting for setting in self.settings if setting.matches(resource_path, method)),
            key=lambda setting: setting.specificity,
            reverse=True,
        )
        if not matching:
            return None
        rate = next((setting.rate for setting in matching if setting.rate is not None), ACCOUNT_RATE_LIMIT)
        burst = next((setting.burst for setting in matching if setting.burst is not None), ACCOUNT_BURST_LIMIT)
        return rate, burst

    def allow(self, resource_path: str, method: str) -> bool:
        """Whether a request to the method ``method`` of ``resource_path`` may pass now (whoever sends it)."""
        with self._lock:
            key = (resource_path, method)
            if key not in self._buckets:
                limits = self.limits(resource_path, method)
                self._buckets[key] = None if limits is None else TokenBucket(*limits, clock=self.clock)
            bucket = self._buckets[key]
            return bucket is None or bucket.take()
