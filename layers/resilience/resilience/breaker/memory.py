"""An in-memory breaker store: the same conditional semantics as DynamoDB, for tests and local runs.

One instance stands for one table; every :class:`~resilience.breaker.circuit.CircuitBreaker` given
the same instance shares state through it, the way Lambda environments share a DynamoDB item.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from resilience.breaker.store import BreakerStore, ItemUpdate, apply_update
from resilience.conditional import holds_all
from resilience.errors import ConditionFailedError, StoreUnavailableError

if TYPE_CHECKING:
    from resilience.breaker.state import Attributes, AttributeValue
    from resilience.breaker.store import Condition


class InMemoryBreakerStore(BreakerStore):
    """Breaker items in a dict, updated atomically under a lock.

    Attributes
    ----------
    reads : int
        Loads and listings served so far.
    writes : int
        Updates applied or refused so far.
    available : bool
        Set to ``False`` to make every request fail with :class:`StoreUnavailableError`
        (simulates DynamoDB being unreachable).
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[str, AttributeValue]] = {}
        self._lock = threading.Lock()
        self.reads = 0
        self.writes = 0
        self.available = True

    def _check_available(self) -> None:
        if not self.available:
            raise StoreUnavailableError("the in-memory store was made unavailable")

    def load(self, name: str, *, consistent: bool = False) -> Attributes | None:
        """Read a breaker's item (see :meth:`BreakerStore.load`)."""
        with self._lock:
            self._check_available()
            self.reads += 1
            item = self._items.get(name)
            return dict(item) if item is not None else None

    def update(self, name: str, update: ItemUpdate, condition: Condition = ()) -> Attributes:
        """Apply a conditional update atomically (see :meth:`BreakerStore.update`)."""
        with self._lock:
            self._check_available()
            self.writes += 1
            current = self._items.get(name)
            if not holds_all(current, condition):
                raise ConditionFailedError(dict(current) if current is not None else None)
            updated = apply_update(current, update)
            self._items[name] = updated
            return dict(updated)

    def list_names(self) -> list[str]:
        """Every breaker with an item, sorted (see :meth:`BreakerStore.list_names`).

        A breaker that never wrote has no item and is not listed: it is CLOSED by definition.
        """
        with self._lock:
            self._check_available()
            self.reads += 1
            return sorted(self._items)
