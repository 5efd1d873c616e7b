"""The registry: one breaker per name in this execution environment, with per-name configuration."""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from resilience.breaker.circuit import CircuitBreaker
from resilience.breaker.dynamodb import DynamoDBBreakerStore
from resilience.breaker.state import BreakerRecord
from resilience.breaker.status import BreakerStatus
from resilience.clock import system_clock
from resilience.config import BreakerConfig, ResilienceSettings, load_settings
from resilience.observability import PowertoolsBreakerMetrics, get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from mypy_boto3_dynamodb import DynamoDBClient

    from resilience.breaker.status import Transition
    from resilience.breaker.store import BreakerStore
    from resilience.classification import ErrorClass
    from resilience.clock import Clock
    from resilience.observability import BreakerMetrics, StructuredLogger

P = ParamSpec("P")
T = TypeVar("T")


class BreakerRegistry:
    """Every circuit breaker of one execution environment, by name.

    Nothing happens at construction: settings are read, and the store (with its boto3 client)
    created, on first use, so a module-level registry costs nothing at import time.

    Parameters
    ----------
    settings : ResilienceSettings | None
        Table, metrics namespace and environment overrides; :func:`load_settings` when omitted.
    store : BreakerStore | None
        The store; a :class:`DynamoDBBreakerStore` on ``settings.table_name`` when omitted.
    client : botocore DynamoDB client | None
        Client for that default store (created lazily when omitted).
    clock : Callable[[], float]
        Epoch seconds.
    configs : Mapping[str, BreakerConfig | Mapping[str, Any]] | None
        Per-name configuration: a full config, or overrides of the defaults.
    defaults : BreakerConfig | None
        The base configuration of every breaker (library defaults when omitted).
    classifier : Callable[[BaseException], ErrorClass] | None
        Classifier for every breaker (the library's default when omitted).
    metrics : BreakerMetrics | None
        Metrics sink (Powertools EMF in ``settings.metrics_namespace`` when omitted).
    logger : logging.Logger | aws_lambda_powertools.Logger | None
        Structured logger (a Powertools logger for ``settings.service_name`` when omitted).
    on_transition : Callable[[Transition], None] | None
        Observer of every transition performed by this environment's breakers.

    Examples
    --------
    >>> breakers = BreakerRegistry(configs={"provider:sendgrid": {"wait_open_seconds": 60}})  # doctest: +SKIP
    >>> breakers.get("provider:sendgrid").call(send, message)  # doctest: +SKIP
    >>> breakers.flush()  # once, at the end of the batch  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        settings: ResilienceSettings | None = None,
        store: BreakerStore | None = None,
        client: DynamoDBClient | None = None,
        clock: Clock = system_clock,
        configs: Mapping[str, BreakerConfig | Mapping[str, Any]] | None = None,
        defaults: BreakerConfig | None = None,
        classifier: Callable[[BaseException], ErrorClass] | None = None,
        metrics: BreakerMetrics | None = None,
        logger: StructuredLogger | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._client = client
        self._clock = clock
        self._configs: dict[str, BreakerConfig | Mapping[str, Any]] = dict(configs or {})
        self._defaults = defaults
        self._classifier = classifier
        self._metrics = metrics
        self._logger = logger
        self._on_transition = on_transition
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    @property
    def settings(self) -> ResilienceSettings:
        """The settings (read from the environment on first use when not given)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def store(self) -> BreakerStore:
        """The shared store (created on first use)."""
        if self._store is None:
            self._store = DynamoDBBreakerStore(self.settings.require_table(), client=self._client)
        return self._store

    def configure(self, name: str, config: BreakerConfig | None = None, **overrides: Any) -> None:
        """Set breaker ``name``'s configuration before its first use.

        Parameters
        ----------
        name : str
            The breaker's name.
        config : BreakerConfig | None
            A full configuration; when omitted, ``overrides`` apply to the defaults.
        **overrides
            Field values (``wait_open_seconds=60``...).

        Raises
        ------
        ValueError
            The breaker is already in use in this environment.
        """
        with self._lock:
            if name in self._breakers:
                raise ValueError(f"breaker {name!r} is already in use; configure it before its first get()")
            self._configs[name] = config.with_overrides(overrides) if config is not None else overrides

    def config_for(self, name: str) -> BreakerConfig:
        """The effective configuration of breaker ``name`` (see :mod:`resilience.config` for precedence).

        Parameters
        ----------
        name : str
            The breaker's name.

        Returns
        -------
        BreakerConfig
            Defaults, then ``RESILIENCE_BREAKER_<FIELD>``, then code, then ``RESILIENCE_BREAKER_OVERRIDES``.
        """
        settings = self.settings
        config = (self._defaults or BreakerConfig()).with_overrides(settings.breaker_defaults)
        configured = self._configs.get(name)
        if isinstance(configured, BreakerConfig):
            config = configured
        elif configured:
            config = config.with_overrides(configured)
        return config.with_overrides(settings.breaker_overrides.get(name, {}))

    def get(self, name: str) -> CircuitBreaker:
        """The breaker called ``name``, created on first use.

        Parameters
        ----------
        name : str
            E.g. ``provider:sendgrid``.

        Returns
        -------
        CircuitBreaker
            The same instance for every call in this environment.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                settings = self.settings
                self._metrics or PowertoolsBreakerMetrics(settings.metrics_namespace, settings.service_name)
                breaker = CircuitBreaker(
                    name,
                    lambda: self.store,
                    self.config_for(name),
                    clock=self._clock,
                    classifier=self._classifier,
                    metrics=self._metrics
                    or PowertoolsBreakerMetrics(settings.metrics_namespace, settings.service_name),
                    logger=self._logger or get_logger(settings.service_name),
                    on_transition=self._on_transition,
                )
                self._breakers[name] = breaker
            return breaker

    def protect(self, name: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
        """Decorator: every call of the decorated function goes through breaker ``name``.

        Parameters
        ----------
        name : str
            The breaker's name.

        Returns
        -------
        Callable
            The decorator.
        """

        def decorator(fn: Callable[P, T]) -> Callable[P, T]:
            @functools.wraps(fn)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
                return self.get(name).call(fn, *args, **kwargs)

            return wrapper

        return decorator

    def names(self) -> list[str]:
        """Every breaker this registry knows: configured or used, sorted."""
        return sorted(set(self._configs) | set(self._breakers) | set(self.settings.breaker_overrides))

    def flush(self) -> None:
        """Flush every breaker in use: call once at the end of each batch."""
        for breaker in list(self._breakers.values()):
            breaker.flush()

    def describe(self, names: Iterable[str] | None = None) -> list[BreakerStatus]:
        """The stored status of breakers (the health endpoints' read API).

        Parameters
        ----------
        names : Iterable[str] | None
            Which breakers; :meth:`names` when omitted. A breaker without an item is CLOSED.

        Returns
        -------
        list[BreakerStatus]
            One status per name, in name order.

        Raises
        ------
        StoreUnavailableError
            The store could not be read.
        """
        wanted = sorted(set(names)) if names is not None else self.names()
        items = self.store.load_many(wanted)
        now = self._clock()
        return [
            BreakerStatus.from_record(BreakerRecord.from_attributes(name, items.get(name)), self.config_for(name), now)
            for name in wanted
        ]

    def describe_all(self) -> list[BreakerStatus]:
        """The stored status of every breaker in the store, known to this registry or not (no scan).

        What a health monitor reads each run: the store lists the breakers that have an item
        (:meth:`BreakerStore.list_names`; on DynamoDB one ``Query`` of the sparse ``by-kind`` index
        per page) and reads them together (:meth:`BreakerStore.load_many`; ``BatchGetItem``, 100 a
        request), so N breakers cost ``1 + ceil(N / 100)`` requests. Nothing is written.

        A breaker that never wrote anything has no item and is not listed: it is CLOSED by
        definition (a healthy breaker writes nothing). Ask :meth:`describe` for names you expect,
        to see those as CLOSED too. An item the listing saw but that is gone when read (TTL deleted
        an idle one in between) is left out the same way.

        Returns
        -------
        list[BreakerStatus]
            One status per listed breaker, in name order, as :meth:`describe` gives it (each with
            its effective configuration: window, rates, ``opened_at``, ``next_probe_at``...).

        Raises
        ------
        StoreUnavailableError
            The store could not be listed or read.
        """
        store = self.store
        names = store.list_names()
        items = store.load_many(names)
        now = self._clock()
        return [
            BreakerStatus.from_record(BreakerRecord.from_attributes(name, item), self.config_for(name), now)
            for name in names
            if (item := items.get(name)) is not None
        ]

    def reset(self, name: str) -> Transition | None:
        """Operator action: close breaker ``name`` and clear its window."""
        return self.get(name).reset()

    def force_open(self, name: str) -> Transition | None:
        """Operator action: open breaker ``name`` until it is reset."""
        return self.get(name).force_open()

    def disable(self, name: str) -> Transition | None:
        """Operator action: switch breaker ``name`` off (every call flows) until it is reset."""
        return self.get(name).disable()
