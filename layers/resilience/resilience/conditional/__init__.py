"""Conditional writes stated as data: what one write changes, and what must hold for it to land.

A write is an :class:`ItemUpdate` (attributes to set, numbers to add to, attributes to remove) guarded
by a :data:`Condition` (predicates that must all hold on the item as it is now). The same two objects
are applied to a plain ``dict`` item by in-memory stores (:func:`apply_update`, :func:`holds_all`) and
rendered to one DynamoDB request by :func:`resilience.conditional.dynamodb.render`, so an in-memory
store and its DynamoDB twin cannot drift. The breaker (:mod:`resilience.breaker.transitions`) and
Herald's notification status store both state their writes this way.

Only :mod:`resilience.conditional.dynamodb` imports boto3; this package's own names are pure.
"""

from __future__ import annotations

from resilience.conditional.items import apply_update, holds, holds_all
from resilience.conditional.vocabulary import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Condition,
    Derived,
    Equals,
    Exists,
    In,
    ItemUpdate,
    LessThan,
    Not,
    NotExists,
    Predicate,
    Value,
)

__all__ = [
    "AllOf",
    "AnyOf",
    "AtLeast",
    "AtMost",
    "Condition",
    "Derived",
    "Equals",
    "Exists",
    "In",
    "ItemUpdate",
    "LessThan",
    "Not",
    "NotExists",
    "Predicate",
    "Value",
    "apply_update",
    "holds",
    "holds_all",
]
