"""Breaker configuration (defaults in one place) and the settings read once from the environment.

Precedence, lowest first: the defaults below; ``RESILIENCE_BREAKER_<FIELD>`` environment variables
(every breaker); per-name configuration given in code (:meth:`BreakerRegistry.configure`); the
``RESILIENCE_BREAKER_OVERRIDES`` environment variable, a JSON object of breaker name to field values,
so an operator can retune one breaker without a code change::

    RESILIENCE_BREAKER_WAIT_OPEN_SECONDS=10
    RESILIENCE_BREAKER_OVERRIDES='{"provider:sendgrid": {"minimum_calls": 100}}'

The health rules' thresholds (:class:`HealthThresholds`, for :func:`resilience.health.assess`) come
from ``RESILIENCE_HEALTH_<FIELD>`` variables over their defaults::

    RESILIENCE_HEALTH_QUEUE_AGE_SECONDS=600
    RESILIENCE_HEALTH_DLQ_DEGRADED=true
    RESILIENCE_HEALTH_CRITICAL_DEPENDENCIES=dynamodb,sqs

:func:`load_settings` and :func:`load_health_thresholds` are the only functions in the library that
read ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from resilience.errors import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "RESILIENCE_BREAKER_"
OVERRIDES_ENV = "RESILIENCE_BREAKER_OVERRIDES"
TABLE_ENV = "RESILIENCE_TABLE"
NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
SERVICE_ENV = "POWERTOOLS_SERVICE_NAME"
DEFAULT_NAMESPACE = "Herald"
DEFAULT_SERVICE = "herald"
HEALTH_ENV_PREFIX = "RESILIENCE_HEALTH_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class BreakerConfig:
    """Tunables of one circuit breaker. ``BreakerConfig()`` holds the library defaults.

    The defaults were chosen with ``benchmarks/breaker_odds.py`` (8 environments x 10 calls/s, 300
    seeded runs per row, batch sizes 1, 3 and 10): a dead provider is cut off after
    ``local_minimum_calls`` calls per environment (40 calls fleet-wide), a provider failing half its
    calls stops every environment within 2 s in 97 % of runs, one failing 30 % opens in 3 % of runs
    (7 of the 9 or 10 runs by the local rule), one failing 20 % never.

    ``minimum_calls``, ``failure_rate_threshold`` and ``suspect_cache_ttl_seconds`` work together
    (1,000 runs, batch size 1, ``--set`` in ``benchmarks/breaker_odds.py``). A suspect environment
    exchanges its window with the fleet once per ``suspect_cache_ttl_seconds``: at 0.5 s the 80
    calls the fleet makes in its first second are judged at 1 s and every environment hears of the
    open by about 1.5 s; at 1 s (the former default) the median stop is 2.0 s and 95.8 % of runs stop
    within 2 s. 80 calls at 0.43: within 2 s in 97.7 % of runs at 50 %, open in 3.7 % at 30 %. The
    former 50 calls at 0.45 open in 5.4 % at 30 %; 80 at 0.44 stop within 2 s in 96.6 % at 50 %; 100
    calls move the median stop to 2.0 s.

    Parameters
    ----------
    window_seconds : float
        Length of the fleet-wide sliding window (default 30).
    bucket_seconds : float
        Width of one window bucket; the window is judged bucket by bucket, so its edge is
        accurate to one bucket (default 5).
    minimum_calls : int
        Calls the window must hold before its rates are judged (default 80: one second of the
        benchmark fleet's calls, enough for a sample at 30 % to stay below the threshold).
    failure_rate_threshold : float
        Failure rate in ``(0, 1]`` at or above which the breaker opens (default 0.43: a provider
        failing half its calls must trip every time, not on a coin flip of an 80-call sample).
    slow_call_seconds : float
        A call lasting at least this long is slow (default 5).
    slow_call_rate_threshold : float
        Slow-call rate in ``(0, 1]`` at or above which the breaker opens (default 0.8).
    local_minimum_calls : int
        An environment whose own window holds at least this many calls, every one failed (or
        every one slow), opens the breaker at once without waiting for the fleet (default 5).
    wait_open_seconds : float
        How long OPEN rejects calls before probing (default 30).
    wait_open_multiplier : float
        Growth of the wait on each consecutive reopen without a close in between (default 2).
    wait_open_max_seconds : float
        Cap on the grown wait (default 300).
    half_open_permits : int
        Probe permits handed out per half-open period across the whole fleet (default 3).
    success_threshold : int
        Probe successes that close the breaker; at most ``half_open_permits`` (default 2).
    probe_lease_seconds : float
        Lifetime of a probe permit; a probe that dies frees its permit after this (default 15).
    cache_ttl_seconds : float
        How long an environment trusts its cached breaker state while all looks well (default 5).
    suspect_cache_ttl_seconds : float
        The shorter cache lifetime used while this environment sees failures, while the breaker is
        half-open, and after the store failed (default 0.5). While it sees failures, an environment
        refreshes by writing its pending outcomes (one ``UpdateItem`` that returns the item) instead
        of reading, so this is also how often the fleet hears from it, whatever its batch size.
    item_ttl_seconds : int
        DynamoDB TTL of an idle breaker item (default 30 days); admin states never expire.
    """

    window_seconds: float = 30.0
    bucket_seconds: float = 5.0
    minimum_calls: int = 80
    failure_rate_threshold: float = 0.43
    slow_call_seconds: float = 5.0
    slow_call_rate_threshold: float = 0.8
    local_minimum_calls: int = 5
    wait_open_seconds: float = 30.0
    wait_open_multiplier: float = 2.0
    wait_open_max_seconds: float = 300.0
    half_open_permits: int = 3
    success_threshold: int = 2
    probe_lease_seconds: float = 15.0
    cache_ttl_seconds: float = 5.0
    suspect_cache_ttl_seconds: float = 0.5
    item_ttl_seconds: int = 30 * 24 * 3600

    def __post_init__(self) -> None:
        for name in ("window_seconds", "bucket_seconds", "slow_call_seconds", "wait_open_seconds"):
            _require(getattr(self, name) > 0, f"{name} must be positive")
        for name in ("probe_lease_seconds", "item_ttl_seconds"):
            _require(getattr(self, name) > 0, f"{name} must be positive")
        for name in ("minimum_calls", "local_minimum_calls", "half_open_permits", "success_threshold"):
            _require(getattr(self, name) >= 1, f"{name} must be at least 1")
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            _require(0 < getattr(self, name) <= 1, f"{name} must be in (0, 1]")
        for name in ("cache_ttl_seconds", "suspect_cache_ttl_seconds"):
            _require(getattr(self, name) >= 0, f"{name} must not be negative")
        _require(self.bucket_seconds <= self.window_seconds, "bucket_seconds must not exceed window_seconds")
        _require(self.wait_open_multiplier >= 1, "wait_open_multiplier must be at least 1")
        _require(self.wait_open_max_seconds >= self.wait_open_seconds, "wait_open_max_seconds < wait_open_seconds")
        _require(self.success_threshold <= self.half_open_permits, "success_threshold exceeds half_open_permits")

    def wait_for(self, open_count: int) -> float:
        """Seconds OPEN lasts on the ``open_count``-th consecutive open (1 for the first).

        Parameters
        ----------
        open_count : int
            Consecutive opens without a close in between, this one included.

        Returns
        -------
        float
            ``wait_open_seconds * wait_open_multiplier ** (open_count - 1)``, capped at
            ``wait_open_max_seconds``.
        """
        exponent = min(max(open_count - 1, 0), 64)  # bounded so a long outage cannot overflow the float
        grown = self.wait_open_seconds * self.wait_open_multiplier**exponent
        return float(min(grown, self.wait_open_max_seconds))

    def with_overrides(self, overrides: Mapping[str, Any]) -> BreakerConfig:
        """Return a copy with some fields replaced; strings (from the environment) are converted.

        Parameters
        ----------
        overrides : Mapping[str, Any]
            Field name to new value.

        Returns
        -------
        BreakerConfig
            The new, validated configuration.

        Raises
        ------
        ConfigurationError
            An unknown field, or a value that cannot be converted or fails validation.
        """
        if not overrides:
            return self
        types = {f.name: f.type for f in dataclasses.fields(self)}
        converted: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in types:
                raise ConfigurationError(f"unknown breaker setting {key!r}")
            try:
                converted[key] = int(value) if types[key] == "int" else float(value)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"breaker setting {key!r} is not a number: {value!r}") from exc
        return dataclasses.replace(self, **converted)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigurationError(message)


@dataclass(frozen=True)
class ResilienceSettings:
    """Environment-derived settings of the library, read once by :func:`load_settings`.

    Parameters
    ----------
    table_name : str | None
        The DynamoDB table holding breaker state (``RESILIENCE_TABLE``).
    metrics_namespace : str
        CloudWatch namespace of the EMF metrics (``POWERTOOLS_METRICS_NAMESPACE``, default ``Herald``).
    service_name : str
        Service name for logs and metrics (``POWERTOOLS_SERVICE_NAME``, default ``herald``).
    breaker_defaults : Mapping[str, str]
        ``RESILIENCE_BREAKER_<FIELD>`` values, applied to every breaker.
    breaker_overrides : Mapping[str, Mapping[str, Any]]
        ``RESILIENCE_BREAKER_OVERRIDES``: breaker name to field values, applied last.
    """

    table_name: str | None = None
    metrics_namespace: str = DEFAULT_NAMESPACE
    service_name: str = DEFAULT_SERVICE
    breaker_defaults: Mapping[str, str] = field(default_factory=dict)
    breaker_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def require_table(self) -> str:
        """Return the table name, or raise when ``RESILIENCE_TABLE`` was not set.

        Returns
        -------
        str
            The table name.

        Raises
        ------
        ConfigurationError
            No table is configured.
        """
        if not self.table_name:
            raise ConfigurationError(f"{TABLE_ENV} is not set: the breaker store needs a DynamoDB table")
        return self.table_name


def load_settings(environ: Mapping[str, str] | None = None) -> ResilienceSettings:
    """Read the library's settings from the environment; the only place that reads ``os.environ``.

    Parameters
    ----------
    environ : Mapping[str, str] | None
        The variables to read; ``os.environ`` when omitted.

    Returns
    -------
    ResilienceSettings
        The settings.

    Raises
    ------
    ConfigurationError
        ``RESILIENCE_BREAKER_OVERRIDES`` is not a JSON object of objects, or a field is unknown.
    """
    env = os.environ if environ is None else environ
    field_names = {f.name for f in dataclasses.fields(BreakerConfig)}
    defaults: dict[str, str] = {}
    for key, value in env.items():
        if key.startswith(ENV_PREFIX) and key != OVERRIDES_ENV:
            name = key[len(ENV_PREFIX) :].lower()
            if name not in field_names:
                raise ConfigurationError(f"{key}: unknown breaker setting {name!r}")
            defaults[name] = value
    overrides: dict[str, Mapping[str, Any]] = {}
    raw = env.get(OVERRIDES_ENV, "").strip()
    if raw:
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(f"{OVERRIDES_ENV} is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict) or not all(isinstance(v, dict) for v in parsed.values()):
            raise ConfigurationError(f"{OVERRIDES_ENV} must map breaker names to objects of settings")
        overrides = {str(name): dict(values) for name, values in parsed.items()}
    BreakerConfig().with_overrides(defaults)  # fail at start-up, not on first use
    for values in overrides.values():
        BreakerConfig().with_overrides(values)
    return ResilienceSettings(
        table_name=env.get(TABLE_ENV) or None,
        metrics_namespace=env.get(NAMESPACE_ENV) or DEFAULT_NAMESPACE,
        service_name=env.get(SERVICE_ENV) or DEFAULT_SERVICE,
        breaker_defaults=defaults,
        breaker_overrides=overrides,
    )


@dataclass(frozen=True)
class HealthThresholds:
    """The thresholds of the degradation-mode rules (:func:`resilience.health.assess`).

    ``HealthThresholds()`` holds the defaults; :func:`load_health_thresholds` reads the
    ``RESILIENCE_HEALTH_<FIELD>`` environment variables over them.

    Parameters
    ----------
    queue_age_seconds : float
        A queue that is not a dead-letter queue and whose oldest message is older than this (strictly)
        makes the mode DEGRADED (``RESILIENCE_HEALTH_QUEUE_AGE_SECONDS``, default 300).
    dlq_degraded : bool
        Whether a non-empty dead-letter queue alone makes the mode DEGRADED
        (``RESILIENCE_HEALTH_DLQ_DEGRADED``, default false: it is an alarm, not a mode; it is
        reported in :attr:`resilience.health.Assessment.alarms` either way).
    critical_dependencies : tuple[str, ...]
        Dependencies without which nothing is accepted or delivered: a failed check named one of
        these, or ``<one of these>:<anything>`` (``dynamodb:notifications``, ``sqs:standard``), makes
        the mode CRITICAL; any other failed check makes it DEGRADED
        (``RESILIENCE_HEALTH_CRITICAL_DEPENDENCIES``, comma-separated, default ``dynamodb,sqs``).
    """

    queue_age_seconds: float = 300.0
    dlq_degraded: bool = False
    critical_dependencies: tuple[str, ...] = ("dynamodb", "sqs")

    def __post_init__(self) -> None:
        _require(self.queue_age_seconds >= 0, "queue_age_seconds must not be negative")
        _require(all(name.strip() for name in self.critical_dependencies), "critical_dependencies holds an empty name")

    def is_critical(self, dependency: str) -> bool:
        """Whether a check named ``dependency`` (``dynamodb``, ``sqs:standard``...) is of a critical dependency."""
        service = dependency.partition(":")[0].strip().lower()
        return service in {name.strip().lower() for name in self.critical_dependencies}


def load_health_thresholds(environ: Mapping[str, str] | None = None) -> HealthThresholds:
    """Read the health rules' thresholds from ``RESILIENCE_HEALTH_<FIELD>`` variables.

    Parameters
    ----------
    environ : Mapping[str, str] | None
        The variables to read; ``os.environ`` when omitted.

    Returns
    -------
    HealthThresholds
        The defaults, with every variable set applied.

    Raises
    ------
    ConfigurationError
        An unknown ``RESILIENCE_HEALTH_*`` variable or a value that cannot be read; every bad
        variable is named in one error.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, raw in sorted(env.items()):
        if not key.startswith(HEALTH_ENV_PREFIX):
            continue
        name, text = key[len(HEALTH_ENV_PREFIX) :].lower(), raw.strip()
        if name == "queue_age_seconds":
            try:
                values[name] = float(text)
            except ValueError:
                problems.append(f"{key} is not a number: {raw!r}")
        elif name == "dlq_degraded":
            if text.lower() not in _TRUE | _FALSE:
                problems.append(f"{key} is not true or false: {raw!r}")
            values[name] = text.lower() in _TRUE
        elif name == "critical_dependencies":
            values[name] = tuple(part.strip() for part in text.split(",") if part.strip())
        else:
            problems.append(f"{key}: unknown health setting {name!r}")
    if problems:
        raise ConfigurationError("; ".join(problems))
    return HealthThresholds(**values)
