"""Render an :class:`~resilience.conditional.ItemUpdate` and a :data:`~resilience.conditional.Condition` for DynamoDB.

:func:`render` gives the expression parameters of one ``UpdateItem`` (or, without an update, of a
conditional ``PutItem`` / ``DeleteItem``). Every attribute name goes through a ``#n<i>`` placeholder, so
reserved words (``status``, ``error``, ``version``, ``name``...) are safe, and every value through a
``:v<i>`` placeholder serialised with boto3's ``TypeSerializer`` (floats as ``Decimal`` via their
shortest ``repr``, so ``0.1`` is stored as ``0.1``). ``SET`` sets, ``ADD`` adds (negative numbers
included; a missing attribute starts at 0) and ``REMOVE`` removes, as
:func:`resilience.conditional.apply_update` does on a ``dict``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

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
    from resilience.conditional.vocabulary import Condition, ItemUpdate, Predicate, Value

_serializer = TypeSerializer()

_COMPARISONS: Mapping[type, str] = {Equals: "=", LessThan: "<", AtMost: "<=", AtLeast: ">="}


def serialize(value: Value) -> dict[str, Any]:
    """A value in DynamoDB's wire format (``{"S": ...}``, ``{"N": ...}``, ``{"L": [...]}``...).

    Raises
    ------
    ValueError
        The value is or holds a non-finite float (DynamoDB has no infinity or NaN).
    """
    serialized: dict[str, Any] = _serializer.serialize(_decimals(value))
    return serialized


def render(update: ItemUpdate | None = None, condition: Condition = ()) -> dict[str, Any]:
    """The expression parameters of one conditional write.

    Parameters
    ----------
    update : ItemUpdate | None
        The changes, for an ``UpdateItem``; ``None`` for a ``PutItem`` or ``DeleteItem``.
    condition : tuple
        Predicates that must all hold; ``()`` for an unconditional write.

    Returns
    -------
    dict[str, Any]
        ``UpdateExpression`` (with an update), ``ConditionExpression`` (with a condition), and
        ``ExpressionAttributeNames`` / ``ExpressionAttributeValues`` when they are not empty: ready to
        pass as keyword arguments to the low-level client.
    """
    expression = _Expression()
    rendered: dict[str, Any] = {}
    if update is not None:
        rendered["UpdateExpression"] = expression.update(update)
    if condition:
        rendered["ConditionExpression"] = " AND ".join(expression.predicate(p) for p in condition)
    if expression.names:
        rendered["ExpressionAttributeNames"] = expression.names
    if expression.values:
        rendered["ExpressionAttributeValues"] = expression.values
    return rendered


class _Expression:
    """Accumulates placeholder names and values while an expression is built."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self._placeholders: dict[str, str] = {}
        self.values: dict[str, dict[str, Any]] = {}

    def name(self, attribute: str) -> str:
        placeholder = self._placeholders.get(attribute)
        if placeholder is None:
            placeholder = self._placeholders[attribute] = f"#n{len(self.names)}"
            self.names[placeholder] = attribute
        return placeholder

    def value(self, value: Value) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = serialize(value)
        return placeholder

    def update(self, update: ItemUpdate) -> str:
        clauses = []
        if update.set:
            clauses.append("SET " + ", ".join(f"{self.name(k)} = {self.value(v)}" for k, v in update.set.items()))
        if update.add:
            clauses.append("ADD " + ", ".join(f"{self.name(k)} {self.value(v)}" for k, v in update.add.items()))
        if update.remove:
            clauses.append("REMOVE " + ", ".join(self.name(k) for k in sorted(update.remove)))
        return " ".join(clauses)

    def predicate(self, predicate: Predicate) -> str:
        text: str
        match predicate:
            case Exists(attribute):
                text = f"attribute_exists({self.name(attribute)})"
            case NotExists(attribute):
                text = f"attribute_not_exists({self.name(attribute)})"
            case (
                Equals(attribute, value)
                | LessThan(attribute, value)
                | AtMost(attribute, value)
                | AtLeast(attribute, value)
            ):
                text = f"{self.name(attribute)} {_COMPARISONS[type(predicate)]} {self.value(value)}"
            case In(attribute, values):
                text = f"{self.name(attribute)} IN ({', '.join(self.value(value) for value in values)})"
            case AnyOf(predicates):
                text = "(" + " OR ".join(self.predicate(inner) for inner in predicates) + ")"
            case AllOf(predicates):
                text = "(" + " AND ".join(self.predicate(inner) for inner in predicates) + ")"
            case Not(inner):
                text = f"(NOT ({self.predicate(inner)}))"
            case Derived():
                text = self.predicate(predicate.expand())
            case _:  # pragma: no cover - the match is exhaustive
                raise TypeError(f"unknown predicate {predicate!r}")
        return text


def _decimals(value: Value) -> Any:
    """``value`` with every float turned into a ``Decimal`` (what ``TypeSerializer`` takes for numbers)."""
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot store non-finite number {value!r}")
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {key: _decimals(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        return [_decimals(item) for item in value]
    return value
