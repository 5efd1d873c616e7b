"""The conditional-write vocabulary (``resilience.conditional``): a write applied to a dict item, and rendered.

The breaker and the notification status store both state their writes this way; these tests pin the
semantics (``apply_update``, ``holds``) and the rendering (``render``) predicate by predicate. No store,
no network: rendering is pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from resilience.breaker.store import SlotClaimable, StateIs, VersionIs
from resilience.conditional import (
    AllOf,
    AnyOf,
    AtLeast,
    AtMost,
    Derived,
    Equals,
    Exists,
    In,
    ItemUpdate,
    LessThan,
    Not,
    NotExists,
    apply_update,
    holds,
    holds_all,
)
from resilience.conditional.dynamodb import render, serialize

if TYPE_CHECKING:
    from collections.abc import Callable

    from resilience.conditional import Predicate, Value

ITEM: dict[str, Value] = {
    "status": "queued",
    "version": 3,
    "lease_until": 100.5,
    "note": None,
    "done": True,
    "tags": ["a", 1],
    "meta": {"k": "v", "n": 2},
}


@dataclass(frozen=True)
class IsPending(Derived):
    """A domain's own name for a generic predicate."""

    def expand(self) -> Predicate:
        return In("status", ("queued", "deferred"))


# ---------------------------------------------------------------------------- apply_update
def test_an_update_sets_adds_and_removes_without_touching_the_original() -> None:
    # Given an item, and an update that sets scalars, a list and a map, adds a negative and a new
    # counter, and removes a present and a missing attribute
    update = ItemUpdate(
        set={"status": "sent", "history": [{"status": "sent"}], "flag": False, "gone": None},
        add={"version": 1, "attempts": -1, "fresh": 2.5},
        remove=frozenset({"lease_until", "never_there"}),
    )
    original = dict(ITEM)

    # When it is applied
    after = apply_update(ITEM, update)

    # Then every change landed, a missing counter started at 0, and the original item is unchanged
    assert after["status"] == "sent" and after["history"] == [{"status": "sent"}]
    assert (after["flag"], after["gone"]) == (False, None)
    assert (after["version"], after["attempts"], after["fresh"]) == (4, -1, 2.5)
    assert "lease_until" not in after and "never_there" not in after
    assert ITEM == original


def test_an_update_on_no_item_creates_one() -> None:
    # Given no item
    # When an update is applied to it
    after = apply_update(None, ItemUpdate(set={"id": "n-1"}, add={"version": 1}, remove=frozenset({"x"})))

    # Then the item holds exactly what the update set and added
    assert after == {"id": "n-1", "version": 1}


def test_adding_to_a_decimal_keeps_it_exact() -> None:
    # Given a number as DynamoDB's deserializer returns it
    # When a float is added to it
    after = apply_update({"n": Decimal("0.1")}, ItemUpdate(add={"n": 0.2}))

    # Then the sum is exact, as DynamoDB's would be
    assert after["n"] == Decimal("0.3")


@pytest.mark.parametrize("current", ["3", True, [1], None])
def test_adding_to_something_that_is_not_a_number_is_refused(current: Value) -> None:
    # Given an attribute that holds a string, a bool, a list or NULL
    # When a number is added to it
    # Then it is refused, as DynamoDB refuses it
    with pytest.raises(TypeError, match="not a number"):
        apply_update({"n": current}, ItemUpdate(add={"n": 1}))


@pytest.mark.parametrize(
    "update",
    [
        {"set": {"a": 1}, "add": {"a": 1}},
        {"set": {"a": 1}, "remove": frozenset({"a"})},
        {"add": {"a": 1}, "remove": frozenset({"a"})},
    ],
)
def test_an_update_touches_each_attribute_once(update: dict[str, Any]) -> None:
    # Given an update that sets, adds or removes one attribute twice
    # When it is built
    # Then it is refused (DynamoDB refuses overlapping paths in one expression)
    with pytest.raises(ValueError, match="touched twice"):
        ItemUpdate(**update)


# ---------------------------------------------------------------------------- holds
@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (Exists("status"), True),
        (Exists("note"), True),  # NULL is a value: the attribute exists
        (Exists("missing"), False),
        (NotExists("missing"), True),
        (NotExists("note"), False),
        (Equals("status", "queued"), True),
        (Equals("status", "sent"), False),
        (Equals("version", 3), True),
        (Equals("version", 3.0), True),  # numbers compare as numbers
        (Equals("version", "3"), False),  # a number never equals a string
        (Equals("done", True), True),
        (Equals("done", 1), False),  # nor a bool
        (Equals("note", None), True),
        (Equals("tags", ["a", 1]), True),
        (Equals("tags", ["a", True]), False),
        (Equals("meta", {"n": 2, "k": "v"}), True),
        (Equals("meta", {"k": "v"}), False),
        (Equals("missing", None), False),
        (In("status", ("queued", "deferred")), True),
        (In("status", ("sent", "failed")), False),
        (In("missing", ("queued",)), False),
        (LessThan("lease_until", 100.6), True),
        (LessThan("lease_until", 100.5), False),
        (LessThan("lease_until", "200"), False),  # a number against a string: false, not an error
        (LessThan("status", "sent"), True),  # strings compare by code point
        (LessThan("missing", 1e9), False),
        (AtMost("lease_until", 100.5), True),
        (AtMost("lease_until", 100.4), False),
        (AtLeast("version", 3), True),
        (AtLeast("version", 4), False),
        (AnyOf(NotExists("lease_until"), LessThan("lease_until", 50)), False),
        (AnyOf(NotExists("lease_until"), LessThan("lease_until", 200)), True),
        (AnyOf(NotExists("missing"), LessThan("missing", 0)), True),
        (AllOf(Equals("status", "queued"), Equals("version", 3)), True),
        (AllOf(Equals("status", "queued"), Equals("version", 4)), False),
        (Not(Equals("status", "sent")), True),
        (Not(Equals("missing", "x")), True),  # a comparison with a missing attribute is false
        (Not(Exists("status")), False),
        (IsPending(), True),
    ],
)
def test_each_predicate_holds_exactly_when_dynamodb_would_say_so(predicate: Predicate, expected: bool) -> None:
    # Given the item
    # When the predicate is evaluated on it
    result = holds(ITEM, predicate)

    # Then
    assert result is expected


def test_on_no_item_only_absence_holds() -> None:
    # Given no item at all
    # When predicates are evaluated on it
    # Then only absence (and what follows from it) holds
    assert holds(None, NotExists("id"))
    assert not holds(None, Exists("id"))
    assert not holds(None, Equals("status", "queued"))
    assert not holds(None, In("status", ("queued",)))
    assert holds(None, Not(Equals("status", "queued")))
    assert holds(None, VersionIs(0)) and holds(None, StateIs("CLOSED"))
    assert not holds(None, VersionIs(1))


def test_a_condition_needs_every_predicate_and_an_empty_one_always_holds() -> None:
    # Given
    item = dict(ITEM)

    # When / Then
    assert holds_all(item, ())
    assert holds_all(None, ())
    assert holds_all(item, (Equals("status", "queued"), AtLeast("version", 3)))
    assert not holds_all(item, (Equals("status", "queued"), AtLeast("version", 4)))


def test_the_breakers_own_predicates_mean_their_expansion() -> None:
    # Given a half-open breaker item with a live lease on slot 1, a finished probe on slot 2
    item: dict[str, Value] = {"state": "HALF_OPEN", "lease1": "a", "lease1_until": 50.0, "lease2": "done"}

    # When / Then: expired and live leases, a used-up slot and a free one
    assert holds(item, SlotClaimable(1, 50.0)) and not holds(item, SlotClaimable(1, 49.9))
    assert not holds(item, SlotClaimable(2, 1e9)) and holds(item, SlotClaimable(3, 0.0))
    assert holds({}, StateIs("CLOSED")) and not holds({}, StateIs("OPEN"))
    assert VersionIs(0).expand() == AnyOf(NotExists("version"), Equals("version", 0))
    assert VersionIs(2).expand() == Equals("version", 2)


@pytest.mark.parametrize("build", [lambda: In("status", ()), AnyOf, AllOf])
def test_empty_alternatives_are_refused(build: Callable[[], object]) -> None:
    # Given a predicate with nothing to choose from
    # When it is built
    # Then it is refused rather than meaning "never" in one store and an error in the other
    with pytest.raises(ValueError, match="at least one|1 to 100"):
        build()


# ---------------------------------------------------------------------------- render
def test_an_update_renders_set_add_and_remove_with_placeholders_for_every_name() -> None:
    # Given an update over reserved words (status, version, error), a list of maps and a negative add
    update = ItemUpdate(
        set={"status": "sent", "history": [{"status": "sent", "at": 1.5}]},
        add={"version": 1, "attempts": -1},
        remove=frozenset({"error", "lease_owner"}),
    )

    # When it is rendered
    rendered = render(update)

    # Then names and values are placeholders, values serialised as DynamoDB types (floats as decimals)
    assert rendered == {
        "UpdateExpression": "SET #n0 = :v0, #n1 = :v1 ADD #n2 :v2, #n3 :v3 REMOVE #n4, #n5",
        "ExpressionAttributeNames": {
            "#n0": "status",
            "#n1": "history",
            "#n2": "version",
            "#n3": "attempts",
            "#n4": "error",
            "#n5": "lease_owner",
        },
        "ExpressionAttributeValues": {
            ":v0": {"S": "sent"},
            ":v1": {"L": [{"M": {"status": {"S": "sent"}, "at": {"N": "1.5"}}}]},
            ":v2": {"N": "1"},
            ":v3": {"N": "-1"},
        },
    }


@pytest.mark.parametrize(
    ("predicate", "expression", "values"),
    [
        (Exists("status"), "attribute_exists(#n0)", {}),
        (NotExists("status"), "attribute_not_exists(#n0)", {}),
        (Equals("status", "queued"), "#n0 = :v0", {":v0": {"S": "queued"}}),
        (Equals("status", None), "#n0 = :v0", {":v0": {"NULL": True}}),
        (Equals("status", True), "#n0 = :v0", {":v0": {"BOOL": True}}),
        (LessThan("status", 0.1), "#n0 < :v0", {":v0": {"N": "0.1"}}),
        (AtMost("status", 7), "#n0 <= :v0", {":v0": {"N": "7"}}),
        (AtLeast("status", "b"), "#n0 >= :v0", {":v0": {"S": "b"}}),
        (In("status", ("queued", "deferred")), "#n0 IN (:v0, :v1)", {":v0": {"S": "queued"}, ":v1": {"S": "deferred"}}),
        (
            AnyOf(NotExists("status"), Equals("status", 1)),
            "(attribute_not_exists(#n0) OR #n0 = :v0)",
            {":v0": {"N": "1"}},
        ),
        (AllOf(Exists("status"), Equals("status", 1)), "(attribute_exists(#n0) AND #n0 = :v0)", {":v0": {"N": "1"}}),
        (Not(Equals("status", "x")), "(NOT (#n0 = :v0))", {":v0": {"S": "x"}}),
        (IsPending(), "#n0 IN (:v0, :v1)", {":v0": {"S": "queued"}, ":v1": {"S": "deferred"}}),
    ],
)
def test_each_predicate_renders_to_its_condition_expression(
    predicate: Predicate, expression: str, values: dict[str, Any]
) -> None:
    # Given a condition of one predicate on "status" (a reserved word)
    # When it is rendered without an update (a conditional put or delete)
    rendered = render(condition=(predicate,))

    # Then the expression names the attribute through one placeholder, and values are serialised
    assert rendered["ConditionExpression"] == expression
    assert rendered["ExpressionAttributeNames"] == {"#n0": "status"}
    assert rendered.get("ExpressionAttributeValues", {}) == values
    assert "UpdateExpression" not in rendered


def test_an_update_and_its_condition_share_placeholders_and_join_with_and() -> None:
    # Given the breaker's probe-slot claim: a derived predicate nested in generic ones
    update = ItemUpdate(set={"lease1": "env-1"})
    condition = (VersionIs(6), SlotClaimable(1, 50.0))

    # When it is rendered
    rendered = render(update, condition)

    # Then the lease attribute has one placeholder in both expressions, and every predicate must hold
    assert rendered["UpdateExpression"] == "SET #n0 = :v0"
    assert rendered["ConditionExpression"] == (
        "#n1 = :v1 AND (attribute_not_exists(#n0) OR (#n2 <= :v2 AND (NOT (#n0 = :v3))))"
    )
    assert rendered["ExpressionAttributeNames"] == {"#n0": "lease1", "#n1": "version", "#n2": "lease1_until"}
    assert rendered["ExpressionAttributeValues"][":v3"] == {"S": "done"}


def test_nothing_to_render_renders_nothing() -> None:
    # Given no update and no condition
    # When rendered
    # Then there is no expression and no (empty, and so invalid) placeholder map
    assert render() == {}


@pytest.mark.parametrize("value", [float("inf"), float("nan"), [1.0, float("-inf")], {"x": float("nan")}])
def test_non_finite_numbers_are_refused(value: Value) -> None:
    # Given a value that is or holds infinity or NaN
    # When it is serialised
    # Then it is refused: DynamoDB has no such numbers
    with pytest.raises(ValueError, match="non-finite"):
        serialize(value)


def test_floats_are_stored_as_their_shortest_decimal() -> None:
    # Given floats that binary cannot hold exactly
    # When they are serialised
    # Then DynamoDB receives what the float prints as, not its binary expansion
    assert serialize(0.1) == {"N": "0.1"}
    assert serialize(1700000000.125) == {"N": "1700000000.125"}
    assert serialize({"ratio": 0.25, "n": [1, 2.5]}) == {
        "M": {"ratio": {"N": "0.25"}, "n": {"L": [{"N": "1"}, {"N": "2.5"}]}}
    }
