"""The breaker store contract: read one item, apply one conditional update to it.

The breaker states every write declaratively (:mod:`resilience.breaker.transitions`), as an
:class:`ItemUpdate` guarded by a tuple of predicates; a store only has to apply such an update
atomically. :class:`~resilience.breaker.dynamodb.DynamoDBBreakerStore` turns it into one
``UpdateItem`` with a ``ConditionExpression``; :class:`~resilience.breaker.memory.InMemoryBreakerStore`
applies it under a lock, for unit tests and for running without AWS.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resilience.breaker.state import LEASE_DONE, VERSION, lease_attribute, lease_until_attribute

if TYPE_CHECKING:
    from collections.abc import Mapping

    from resilience.breaker.state import Attributes, AttributeValue


@dataclass(frozen=True)
class ItemUpdate:
    """The attribute changes of one write, applied atomically.

    Parameters
    ----------
    set : Mapping[str, str | int | float]
        Attributes to set.
    add : Mapping[str, int]
        Numeric attributes to increment (created at the value when missing), like DynamoDB ``ADD``.
    remove : frozenset[str]
        Attributes to delete (a missing one is not an error).
    """

    set: Mapping[str, AttributeValue] = field(default_factory=dict)
    add: Mapping[str, int] = field(default_factory=dict)
    remove: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        overlap = (set(self.set) & set(self.add)) | ((set(self.set) | set(self.add)) & self.remove)
        if overlap:
            raise ValueError(f"an update may touch an attribute once; touched twice: {sorted(overlap)}")


@dataclass(frozen=True)
class VersionIs:
    """The item's ``version`` equals ``version`` (a missing item or attribute counts as version 0)."""

    version: int


@dataclass(frozen=True)
class StateIs:
    """The item's ``state`` equals ``state`` (a missing item or attribute counts as CLOSED)."""

    state: str


@dataclass(frozen=True)
class AtMost:
    """Numeric ``attribute`` exists and is at most ``value``."""

    attribute: str
    value: float


@dataclass(frozen=True)
class AtLeast:
    """Numeric ``attribute`` exists and is at least ``value``."""

    attribute: str
    value: float


@dataclass(frozen=True)
class Equals:
    """String ``attribute`` exists and equals ``value``."""

    attribute: str
    value: str


@dataclass(frozen=True)
class SlotClaimable:
    """Probe slot ``slot`` is free, or its lease expired by ``now`` without its probe finishing."""

    slot: int
    now: float


Predicate = VersionIs | StateIs | AtMost | AtLeast | Equals | SlotClaimable
Condition = tuple[Predicate, ...]
"""Every predicate must hold for the write to apply."""


class BreakerStore(ABC):
    """Where breakers keep their shared state: one item per breaker name."""

    @abstractmethod
    def load(self, name: str, *, consistent: bool = False) -> Attributes | None:
        """Read a breaker's item.

        Parameters
        ----------
        name : str
            The breaker's name.
        consistent : bool
            Ask for a strongly consistent read (admin operations); cached hot-path reads need not.

        Returns
        -------
        Mapping[str, str | int | float] | None
            The attributes, or ``None`` when the breaker has no item yet.

        Raises
        ------
        StoreUnavailableError
            The store could not be reached.
        """

    @abstractmethod
    def update(self, name: str, update: ItemUpdate, condition: Condition = ()) -> Attributes:
        """Apply ``update`` atomically if every predicate of ``condition`` holds.

        Parameters
        ----------
        name : str
            The breaker's name; the item is created when missing.
        update : ItemUpdate
            The changes.
        condition : tuple
            Predicates that must all hold on the item as it is now.

        Returns
        -------
        Mapping[str, str | int | float]
            The item's attributes after the update.

        Raises
        ------
        ConditionFailedError
            A predicate did not hold; nothing was written. Carries the current attributes.
        StoreUnavailableError
            The store could not be reached.
        """

    def load_many(self, names: list[str]) -> dict[str, Attributes | None]:
        """Read several breakers' items (one read each unless a store can do better).

        Parameters
        ----------
        names : list[str]
            Breaker names.

        Returns
        -------
        dict[str, Mapping[str, str | int | float] | None]
            Name to attributes (``None`` when a breaker has no item).
        """
        return {name: self.load(name) for name in names}


def apply_update(item: Mapping[str, AttributeValue] | None, update: ItemUpdate) -> dict[str, AttributeValue]:
    """The attributes that result from applying ``update`` to ``item`` (``None``: no item yet)."""
    result: dict[str, AttributeValue] = dict(item or {})
    for key in update.remove:
        result.pop(key, None)
    result.update(update.set)
    for key, amount in update.add.items():
        current = result.get(key, 0)
        result[key] = int(current) + amount
    return result


def holds(item: Mapping[str, AttributeValue] | None, predicate: Predicate) -> bool:
    """Whether ``predicate`` holds on ``item``, with the same semantics the DynamoDB store expresses."""
    attributes = item or {}
    result: bool
    match predicate:
        case VersionIs(version):
            result = int(attributes.get(VERSION, 0)) == version
        case StateIs(state):
            result = str(attributes.get("state", "CLOSED")) == state
        case AtMost(attribute, value):
            result = attribute in attributes and float(attributes[attribute]) <= value
        case AtLeast(attribute, value):
            result = attribute in attributes and float(attributes[attribute]) >= value
        case Equals(attribute, value):
            result = attribute in attributes and str(attributes[attribute]) == value
        case SlotClaimable(slot, now):
            holder = attributes.get(lease_attribute(slot))
            until = attributes.get(lease_until_attribute(slot))
            result = holder is None or (str(holder) != LEASE_DONE and until is not None and float(until) <= now)
        case _:  # pragma: no cover - the match is exhaustive
            raise TypeError(f"unknown predicate {predicate!r}")
    return result
