"""Circuit breakers whose state every execution environment shares through DynamoDB.

:class:`CircuitBreaker` (``circuit``) coordinates; ``admission``, ``permit``, ``status``, ``window``,
``transitions``, ``snapshot`` and ``reporting`` hold its parts; ``state`` and ``store`` the item and the store contract,
``dynamodb`` and ``memory`` the two stores; ``registry`` one breaker per name.
"""

from __future__ import annotations

from resilience.breaker.circuit import CircuitBreaker
from resilience.breaker.dynamodb import DynamoDBBreakerStore
from resilience.breaker.memory import InMemoryBreakerStore
from resilience.breaker.permit import Permit, PermitKind
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.state import BreakerRecord, BreakerState, WindowCounts
from resilience.breaker.status import BreakerStatus, Transition
from resilience.breaker.store import BreakerStore, ItemUpdate

__all__ = [
    "BreakerRecord",
    "BreakerRegistry",
    "BreakerState",
    "BreakerStatus",
    "BreakerStore",
    "CircuitBreaker",
    "DynamoDBBreakerStore",
    "InMemoryBreakerStore",
    "ItemUpdate",
    "Permit",
    "PermitKind",
    "Transition",
    "WindowCounts",
]
