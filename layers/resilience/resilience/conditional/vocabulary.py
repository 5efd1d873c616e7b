"""The vocabulary of a conditional write: one :class:`ItemUpdate` and the predicates of a :data:`Condition`.

Everything here is plain, frozen data about top-level attributes of one item; it means the same to
:mod:`resilience.conditional.items` (a ``dict`` item) and to :mod:`resilience.conditional.dynamodb`
(a DynamoDB request). Predicates follow DynamoDB's semantics: a comparison with a missing attribute,
or with a value of another type (a number against a string, a bool against a number), is false.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from decimal import Decimal

Value: TypeAlias = "str | int | float | bool | Decimal | None | Sequence[Value] | Mapping[str, Value]"
"""What an attribute can hold: a string, a number, a bool, ``None`` (DynamoDB ``NULL``), a list or a map."""

Number: TypeAlias = "int | float | Decimal"
Comparable: TypeAlias = "int | float | Decimal | str"
"""What ``<`` and ``<=`` compare: numbers with numbers, strings with strings (by code point)."""


@dataclass(frozen=True)
class ItemUpdate:
    """The attribute changes of one write, applied atomically (the item is created when missing).

    Parameters
    ----------
    set : Mapping[str, Value]
        Attributes to set to these values (``SET``).
    add : Mapping[str, int | float | Decimal]
        Numbers to add to numeric attributes, negative ones included; a missing attribute starts
        at 0 (``ADD``).
    remove : frozenset[str]
        Attributes to delete; a missing one is not an error (``REMOVE``).
    """

    set: Mapping[str, Value] = field(default_factory=dict)
    add: Mapping[str, Number] = field(default_factory=dict)
    remove: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        overlap = (set(self.set) & set(self.add)) | ((set(self.set) | set(self.add)) & self.remove)
        if overlap:
            raise ValueError(f"an update may touch an attribute once; touched twice: {sorted(overlap)}")


@dataclass(frozen=True)
class Exists:
    """``attribute`` is present (with any value, ``None`` included)."""

    attribute: str


@dataclass(frozen=True)
class NotExists:
    """``attribute`` is absent (a missing item has no attributes)."""

    attribute: str


@dataclass(frozen=True)
class Equals:
    """``attribute`` is present and equals ``value`` (of the same type)."""

    attribute: str
    value: Value


@dataclass(frozen=True)
class In:
    """``attribute`` is present and equals one of ``values`` (at least one, at most 100)."""

    attribute: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not 1 <= len(self.values) <= 100:  # noqa: PLR2004 - DynamoDB's limit for IN
            raise ValueError(f"In needs 1 to 100 values, got {len(self.values)}")


@dataclass(frozen=True)
class LessThan:
    """``attribute`` is present and less than ``value``."""

    attribute: str
    value: Comparable


@dataclass(frozen=True)
class AtMost:
    """``attribute`` is present and at most ``value``."""

    attribute: str
    value: Comparable


@dataclass(frozen=True)
class AtLeast:
    """``attribute`` is present and at least ``value``."""

    attribute: str
    value: Comparable


@dataclass(frozen=True, init=False)
class AnyOf:
    """At least one of ``predicates`` holds (``OR``)."""

    predicates: tuple[Predicate, ...]

    def __init__(self, *predicates: Predicate) -> None:
        if not predicates:
            raise ValueError("AnyOf needs at least one predicate")
        object.__setattr__(self, "predicates", predicates)


@dataclass(frozen=True, init=False)
class AllOf:
    """Every one of ``predicates`` holds (``AND``); for nesting inside :class:`AnyOf` or :class:`Not`."""

    predicates: tuple[Predicate, ...]

    def __init__(self, *predicates: Predicate) -> None:
        if not predicates:
            raise ValueError("AllOf needs at least one predicate")
        object.__setattr__(self, "predicates", predicates)


@dataclass(frozen=True)
class Not:
    """``predicate`` does not hold (``NOT``): ``Not(Equals(a, v))`` holds when ``a`` is missing, too."""

    predicate: Predicate


class Derived(ABC):
    """A predicate a domain names for itself and defines with the generic ones.

    Subclasses are frozen dataclasses (so conditions compare and print in the domain's words, such as
    the breaker's ``VersionIs(4)``); every store evaluates and renders their :meth:`expand`, so a
    derived predicate cannot mean one thing in memory and another in DynamoDB.
    """

    __slots__ = ()

    @abstractmethod
    def expand(self) -> Predicate:
        """The generic predicate this one stands for."""


Predicate: TypeAlias = Exists | NotExists | Equals | In | LessThan | AtMost | AtLeast | AnyOf | AllOf | Not | Derived
Condition: TypeAlias = tuple[Predicate, ...]
"""Every predicate must hold for the write to apply; ``()`` always holds."""
