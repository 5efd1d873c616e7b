"""What one environment believes about a breaker's shared item: the cached read, adopting what the
store answers, and failing open. It does the store's requests; the breaker decides which to make.

* Reads are cached: the item is refreshed after ``cache_ttl_seconds`` while all looks well, after
  ``suspect_cache_ttl_seconds`` while this environment sees failures or the breaker is half-open
  or the store is failing. A healthy environment reads once per ``cache_ttl_seconds`` and writes nothing.
* Every item the store returns (read, write, or a failed condition's current item) is adopted,
  unless it is an eventually consistent read older than what this environment already saw.
* The store being unreachable never stops a call: the breaker fails open (permits calls as CLOSED),
  keeps judging locally, and retries the store after ``suspect_cache_ttl_seconds``.

Not thread-safe on its own: the breaker holds its lock around every call.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from resilience.breaker.state import BreakerRecord, BreakerState
from resilience.breaker.store import apply_update
from resilience.breaker.transitions import WriteResult
from resilience.errors import ConditionFailedError, StoreUnavailableError

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import BreakerStore, ItemUpdate
    from resilience.breaker.transitions import Write
    from resilience.config import BreakerConfig


class Snapshot:
    """The breaker item as this environment last saw it, and when.

    Parameters
    ----------
    name : str
        The breaker's name.
    config : BreakerConfig
        ``cache_ttl_seconds`` and ``suspect_cache_ttl_seconds``.
    store : Callable[[], BreakerStore]
        Gives the store (created by the breaker on first use).
    on_new_period : Callable[[], None]
        Called when the adopted item has another version or state than the one before: the
        outcomes gathered so far belong to a finished period.
    on_store_error : Callable[[str, Exception], None]
        Called with the operation and the error when a store request fails (to count and log it).

    Attributes
    ----------
    record : BreakerRecord
        The parsed item (a CLOSED breaker at version 0 before the first read).
    attributes : dict
        The raw item ``record`` was parsed from (kept while failing open).
    read_at : float
        When the store last answered, or last failed to.
    failing_open : bool
        The last store request failed: permit calls, retry the store soon.
    local_only : bool
        ``record`` holds a state the store never received (a transition while it was down, or failing open).
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig,
        store: Callable[[], BreakerStore],
        *,
        on_new_period: Callable[[], None],
        on_store_error: Callable[[str, Exception], None],
    ) -> None:
        self._name = name
        self._config = config
        self._store = store
        self._on_new_period = on_new_period
        self._on_store_error = on_store_error
        self.record = BreakerRecord(name=name)
        self.attributes: dict[str, AttributeValue] = {}
        self.read_at = -math.inf
        self.failing_open = False
        self.local_only = False

    def ttl(self, *, troubled: bool) -> float:
        """How long the snapshot is trusted; ``troubled``: this environment saw trouble in its window."""
        state = self.record.state
        if self.failing_open or state is BreakerState.HALF_OPEN:
            return self._config.suspect_cache_ttl_seconds
        if state is BreakerState.CLOSED and troubled:
            return self._config.suspect_cache_ttl_seconds
        return self._config.cache_ttl_seconds

    def refresh_due(self, now: float, *, troubled: bool) -> bool:
        """Whether the store should be asked again (see :meth:`ttl`)."""
        return now - self.read_at >= self.ttl(troubled=troubled)

    def adopt(
        self, attributes: Attributes | None, now: float, *, local_only: bool = False, authoritative: bool = False
    ) -> None:
        """Take the item the store returned (``None``: no item, a CLOSED breaker at version 0).

        ``authoritative`` (a strongly consistent read) and a ``local_only`` snapshot accept an older
        version at once; otherwise an older version is taken as an eventually consistent read.
        """
        record = BreakerRecord.from_attributes(self._name, attributes)
        if (
            record.version < self.record.version
            and not (self.local_only or authoritative)
            and now - self.read_at < self._config.cache_ttl_seconds
        ):
            # An eventually consistent read older than what this environment already saw (e.g. its
            # own write): keep the newer snapshot. A store that really went back (item deleted by
            # an operator) is accepted once the snapshot is older than cache_ttl_seconds.
            self.read_at = now
            self.failing_open = False
            return
        if record.version != self.record.version or record.state is not self.record.state:
            # Outcomes gathered under another version belong to a finished period.
            self._on_new_period()
        self.attributes = dict(attributes or {})
        self.record = record
        self.read_at = now
        self.failing_open = False
        self.local_only = local_only

    def apply_locally(self, update: ItemUpdate, now: float) -> None:
        """A transition the store could not receive: this environment acts on it alone, and keeps failing open."""
        self.adopt(apply_update(self.attributes, update), now, local_only=True)
        self.failing_open = True

    def read(self, now: float) -> None:
        """Refresh from the store (an eventually consistent read); fail open when it cannot be reached."""
        try:
            attributes = self._store().load(self._name)
        except StoreUnavailableError as exc:
            self._store_failed(now, "read", exc)
            self.fail_open(now)
            return
        self.adopt(attributes, now)

    def send(
        self, write: Write, now: float, operation: str, *, on_applied: Callable[[], None] | None = None
    ) -> WriteResult:
        """Make ``write``, and adopt whatever item the store answers with.

        Parameters
        ----------
        write : Write
            The update and its condition.
        now : float
            The time.
        operation : str
            What the write is, for the log line when the store cannot be reached.
        on_applied : Callable[[], None] | None
            Called once the store took the write, before its item is adopted (which may start a new period).

        Returns
        -------
        WriteResult
            APPLIED, RACE_LOST (the current item is adopted) or STORE_DOWN (the breaker fails open).
        """
        try:
            attributes = self._store().update(self._name, write.update, write.condition)
        except ConditionFailedError as exc:
            self.adopt(exc.current, now)
            return WriteResult.RACE_LOST
        except StoreUnavailableError as exc:
            self._store_failed(now, operation, exc)
            return WriteResult.STORE_DOWN
        if on_applied is not None:
            on_applied()
        self.adopt(attributes, now)
        return WriteResult.APPLIED

    def _store_failed(self, now: float, operation: str, error: Exception) -> None:
        """Report a failed request; the next one is retried after the suspect TTL, permitting calls meanwhile."""
        self._on_store_error(operation, error)
        self.read_at = now
        self.failing_open = True

    def fail_open(self, now: float) -> None:
        """The state could not be read: permit calls (as CLOSED) until the store answers again.

        A breaker this environment opened itself while the store was down stays open until its
        wait ends, so a dead provider is not hammered in the meantime.
        """
        record = self.record
        if self.local_only and record.state is BreakerState.OPEN and now < (record.open_until or now):
            return
        if record.state is not BreakerState.CLOSED:
            self.record = BreakerRecord(
                name=self._name, version=record.version, window_start=record.window_start, buckets=record.buckets
            )
            self._on_new_period()
            self.local_only = True
