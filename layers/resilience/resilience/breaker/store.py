"""The breaker store contract: read one item, apply one conditional update to it, list the items.

The breaker states every write declaratively (:mod:`resilience.breaker.transitions`), as an
:class:`ItemUpdate` guarded by a tuple of predicates, in the library's conditional-write vocabulary
(:mod:`resilience.conditional`); a store only has to apply such an update atomically.
:class:`~resilience.breaker.dynamodb.DynamoDBBreakerStore` renders it to one ``UpdateItem`` with a
``ConditionExpression``; :class:`~resilience.breaker.memory.InMemoryBreakerStore` applies it under a
lock, for unit tests and for running without AWS. The three predicates only a breaker needs
(:class:`VersionIs`, :class:`StateIs`, :class:`SlotClaimable`) are defined here with the generic ones.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from resilience.breaker.state import LEASE_DONE, STATE, VERSION, BreakerState, lease_attribute, lease_until_attribute
from resilience.conditional import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Condition,
    Derived,
    Equals,
    ItemUpdate,
    Not,
    NotExists,
    Predicate,
    holds,
)
from resilience.conditional import apply_update as apply_item_update

if TYPE_CHECKING:
    from collections.abc import Mapping

    from resilience.breaker.state import Attributes, AttributeValue


@dataclass(frozen=True)
class VersionIs(Derived):
    """The item's ``version`` equals ``version`` (a missing item or attribute counts as version 0)."""

    version: int

    def expand(self) -> Predicate:
        """``version`` equals it; for 0 also no ``version`` (no item yet, or one that only ever got counters)."""
        equals = Equals(VERSION, self.version)
        return AnyOf(NotExists(VERSION), equals) if self.version == 0 else equals


@dataclass(frozen=True)
class StateIs(Derived):
    """The item's ``state`` equals ``state`` (a missing item or attribute counts as CLOSED)."""

    state: str

    def expand(self) -> Predicate:
        """``state`` equals it; for CLOSED also no ``state`` (a breaker without one is CLOSED)."""
        equals = Equals(STATE, str(self.state))
        return AnyOf(NotExists(STATE), equals) if self.state == BreakerState.CLOSED else equals


@dataclass(frozen=True)
class SlotClaimable(Derived):
    """Probe slot ``slot`` is free, or its lease expired by ``now`` without its probe finishing."""

    slot: int
    now: float

    def expand(self) -> Predicate:
        """No holder, or a lease that ran out by ``now`` and is not marked done."""
        holder, until = lease_attribute(self.slot), lease_until_attribute(self.slot)
        return AnyOf(NotExists(holder), AllOf(AtMost(until, self.now), Not(Equals(holder, LEASE_DONE))))


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

    @abstractmethod
    def list_names(self) -> list[str]:
        """The name of every breaker that has an item, sorted, in a bounded number of requests (no scan).

        A breaker that never wrote anything has no item and is not listed: it is CLOSED by
        definition (a healthy breaker never writes). A listing may miss an item created a moment
        before it (DynamoDB's index is eventually consistent); the next listing has it.

        Returns
        -------
        list[str]
            Breaker names.

        Raises
        ------
        StoreUnavailableError
            The store could not be reached.
        """

    def load_many(self, names: list[str], *, consistent: bool = False) -> dict[str, Attributes | None]:
        """Read several breakers' items (one read each unless a store can do better).

        Parameters
        ----------
        names : list[str]
            Breaker names.
        consistent : bool
            Ask for strongly consistent reads.

        Returns
        -------
        dict[str, Mapping[str, str | int | float] | None]
            Name to attributes (``None`` when a breaker has no item).

        Raises
        ------
        StoreUnavailableError
            The store could not be reached.
        """
        return {name: self.load(name, consistent=consistent) for name in names}


def apply_update(item: Mapping[str, AttributeValue] | None, update: ItemUpdate) -> dict[str, AttributeValue]:
    """The attributes that result from applying ``update`` to ``item`` (``None``: no item yet).

    :func:`resilience.conditional.apply_update`, typed for breaker items: a breaker's updates only set
    strings and numbers and only add integers, so its items hold nothing else.
    """
    return cast("dict[str, AttributeValue]", apply_item_update(item, update))


__all__ = [
    "AtLeast",
    "AtMost",
    "BreakerStore",
    "Condition",
    "Equals",
    "ItemUpdate",
    "Predicate",
    "SlotClaimable",
    "StateIs",
    "VersionIs",
    "apply_update",
    "holds",
]
