"""Circuit breakers whose state every execution environment shares through DynamoDB."""

from __future__ import annotations

from resilience.breaker.circuit import BreakerStatus, CircuitBreaker, Permit, PermitKind, Transition
from resilience.breaker.dynamodb import DynamoDBBreakerStore
from resilience.breaker.memory import InMemoryBreakerStore
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.state import BreakerRecord, BreakerState, WindowCounts
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
