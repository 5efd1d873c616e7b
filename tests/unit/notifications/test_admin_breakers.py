"""The admin API's circuit breakers over an in-memory breaker store: what is listed, which names are accepted,
and what each operator action answers."""

from __future__ import annotations

import logging

import pytest

from admin.breakers import BreakerAction, BreakerAdmin
from notifications.errors import InvalidRequest, StoreUnavailable
from resilience import BreakerRegistry, InMemoryBreakerStore, NullBreakerMetrics, ResilienceSettings
from tests.support.clock import FakeClock

KNOWN = ("ses", "sendgrid", "sns-sms", "twilio", "fcm", "sns-push")


@pytest.fixture
def store() -> InMemoryBreakerStore:
    return InMemoryBreakerStore()


@pytest.fixture
def admin(store: InMemoryBreakerStore) -> BreakerAdmin:
    registry = BreakerRegistry(
        settings=ResilienceSettings(),
        store=store,
        clock=FakeClock(),
        metrics=NullBreakerMetrics(),
        logger=logging.getLogger("tests.admin_breakers"),
    )
    return BreakerAdmin(registry, listed=("ses", "sendgrid", "sns-sms"), known=KNOWN)


def test_every_stored_breaker_is_listed_and_each_provider_in_use_without_one_as_closed(admin: BreakerAdmin) -> None:
    # Given: SES forced open and a webhook origin disabled (both stored); SendGrid and SNS never stored a state
    admin.act(BreakerAction.OPEN, "provider:ses")
    admin.act(BreakerAction.DISABLE, "webhook:https://hooks.example.com:443")

    # When
    listed = {breaker.name: breaker for breaker in admin.describe()}

    # Then
    assert list(listed) == sorted(listed)
    assert set(listed) == {
        "provider:ses",
        "provider:sendgrid",
        "provider:sns-sms",
        "webhook:https://hooks.example.com:443",
    }
    ses, sendgrid = listed["provider:ses"], listed["provider:sendgrid"]
    assert (ses.kind, ses.state, ses.permits_calls, ses.opened_at is not None) == (
        "provider",
        "FORCED_OPEN",
        False,
        True,
    )
    assert (sendgrid.state, sendgrid.permits_calls, sendgrid.calls, sendgrid.failure_rate) == ("CLOSED", True, 0, 0.0)
    hook = listed["webhook:https://hooks.example.com:443"]
    assert (hook.kind, hook.state, hook.permits_calls) == ("webhook", "DISABLED", True)


def test_each_action_answers_the_state_it_left_and_the_one_before(admin: BreakerAdmin) -> None:
    # When
    opened = admin.act(BreakerAction.OPEN, "provider:twilio")
    again = admin.act(BreakerAction.OPEN, "provider:twilio")
    disabled = admin.act(BreakerAction.DISABLE, "provider:twilio")
    reset = admin.act(BreakerAction.RESET, "provider:twilio")

    # Then
    assert (opened.state, opened.previous_state) == ("FORCED_OPEN", "CLOSED")
    assert (again.state, again.previous_state) == ("FORCED_OPEN", "FORCED_OPEN")  # nothing written
    assert (disabled.state, disabled.previous_state) == ("DISABLED", "FORCED_OPEN")
    assert (reset.name, reset.state, reset.previous_state) == ("provider:twilio", "CLOSED", "DISABLED")


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("provider:ses", "provider:ses"),
        ("provider:sns-push", "provider:sns-push"),
        ("webhook:https://hooks.example.com:443", "webhook:https://hooks.example.com:443"),
        ("webhook:https://Hooks.EXAMPLE.com:8443", "webhook:https://hooks.example.com:8443"),
        ("webhook:http://127.0.0.1:9000", "webhook:http://127.0.0.1:9000"),
        ("webhook:https://[::1]:443", "webhook:https://[::1]:443"),
    ],
)
def test_a_breaker_name_herald_uses_is_accepted_as_herald_writes_it(
    admin: BreakerAdmin, given: str, canonical: str
) -> None:
    assert admin.canonical(given) == canonical


@pytest.mark.parametrize(
    "name",
    [
        "provider:sess",
        "provider:webhook",  # webhooks have a breaker per destination origin
        "provider:",
        "webhook:https://hooks.example.com",  # no port
        "webhook:https://hooks.example.com:443/x",
        "webhook:https://user@hooks.example.com:443",
        "webhook:ftp://hooks.example.com:21",
        "webhook:https://hooks.example.com:99999",
        "webhook:",
        "breaker:anything",
        "ses",
    ],
)
def test_any_other_name_is_refused_with_a_validation_error_naming_the_field(admin: BreakerAdmin, name: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        admin.canonical(name)
    assert refused.value.details is not None and refused.value.details[0]["field"] == "name"


def test_an_unreachable_breaker_store_is_a_dependency_failure(admin: BreakerAdmin, store: InMemoryBreakerStore) -> None:
    # Given
    store.available = False

    # When / Then: 503 with Retry-After, never a 500
    with pytest.raises(StoreUnavailable):
        admin.describe()
    with pytest.raises(StoreUnavailable):
        admin.act(BreakerAction.RESET, "provider:ses")
