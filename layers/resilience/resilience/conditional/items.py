"""What a conditional write does to a plain ``dict`` item: the semantics in-memory stores apply under a lock.

These are the reference semantics of :mod:`resilience.conditional.vocabulary`;
:mod:`resilience.conditional.dynamodb` renders the same objects so that DynamoDB decides alike.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from resilience.conditional.vocabulary import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Derived,
    Equals,
    Exists,
    In,
    LessThan,
    Not,
    NotExists,
)

if TYPE_CHECKING:
    from resilience.conditional.vocabulary import Comparable, Condition, ItemUpdate, Number, Predicate, Value


def apply_update(item: Mapping[str, Value] | None, update: ItemUpdate) -> dict[str, Value]:
    """The attributes that result from applying ``update`` to ``item`` (``None``: no item yet).

    Raises
    ------
    TypeError
        ``update`` adds to an attribute that holds something other than a number (DynamoDB refuses it too).
    """
    result: dict[str, Value] = dict(item or {})
    for key in update.remove:
        result.pop(key, None)
    result.update(update.set)
    for key, amount in update.add.items():
        current = result.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, int | float | Decimal):
            raise TypeError(f"cannot add to {key!r}: it holds {type(current).__name__}, not a number")
        result[key] = _sum(current, amount)
    return result


def holds(item: Mapping[str, Value] | None, predicate: Predicate) -> bool:
    """Whether ``predicate`` holds on ``item`` (``None``: no item), as DynamoDB would decide."""
    attributes = item or {}
    result: bool
    match predicate:
        case AnyOf(predicates):
            result = any(holds(attributes, inner) for inner in predicates)
        case AllOf(predicates):
            result = all(holds(attributes, inner) for inner in predicates)
        case Not(inner):
            result = not holds(attributes, inner)
        case Derived():
            result = holds(attributes, predicate.expand())
        case _:
            result = _holds_on_attribute(attributes, predicate)
    return result


def holds_all(item: Mapping[str, Value] | None, condition: Condition) -> bool:
    """Whether every predicate of ``condition`` holds on ``item`` (an empty condition always does)."""
    return all(holds(item, predicate) for predicate in condition)


_ORDER: Mapping[type, Callable[[Any, Any], Any]] = {LessThan: operator.lt, AtMost: operator.le, AtLeast: operator.ge}


def _holds_on_attribute(attributes: Mapping[str, Value], predicate: Predicate) -> bool:
    """A predicate about one attribute (not a combination of predicates)."""
    result: bool
    match predicate:
        case Exists(attribute):
            result = attribute in attributes
        case NotExists(attribute):
            result = attribute not in attributes
        case Equals(attribute, value):
            result = attribute in attributes and _equal(attributes[attribute], value)
        case In(attribute, values):
            result = attribute in attributes and any(_equal(attributes[attribute], value) for value in values)
        case LessThan(attribute, value) | AtMost(attribute, value) | AtLeast(attribute, value):
            result = _compare(attributes, attribute, value, _ORDER[type(predicate)])
        case _:  # pragma: no cover - the match is exhaustive
            raise TypeError(f"unknown predicate {predicate!r}")
    return result


def _kind(value: object) -> str:
    """The DynamoDB type a value is stored as; values of different types never compare equal."""
    kind = "?"
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int | float | Decimal):
        kind = "N"
    elif isinstance(value, str):
        kind = "S"
    elif value is None:
        kind = "NULL"
    elif isinstance(value, bytes | bytearray):
        kind = "B"
    elif isinstance(value, Mapping):
        kind = "M"
    elif isinstance(value, Sequence):
        kind = "L"
    return kind


def _equal(left: Value, right: Value) -> bool:
    kind = _kind(left)
    if kind != _kind(right):
        return False
    if kind == "M":
        assert isinstance(left, Mapping) and isinstance(right, Mapping)  # noqa: S101 - narrowed by _kind
        return left.keys() == right.keys() and all(_equal(left[key], right[key]) for key in left)
    if kind == "L":
        assert isinstance(left, Sequence) and isinstance(right, Sequence)  # noqa: S101 - narrowed by _kind
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    return left == right


def _compare(
    attributes: Mapping[str, Value], attribute: str, value: Comparable, compare: Callable[[Any, Any], Any]
) -> bool:
    if attribute not in attributes:
        return False
    current = attributes[attribute]
    kind = _kind(current)
    return kind in {"N", "S"} and kind == _kind(value) and bool(compare(current, value))


def _sum(current: Number, amount: Number) -> Number:
    if isinstance(current, Decimal) or isinstance(amount, Decimal):
        return Decimal(str(current)) + Decimal(str(amount))
    return current + amount
