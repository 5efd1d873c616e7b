"""Webhook URLs, whatever they hold: one breaker per origin (`webhook:invalid` for URLs that can never be
called), and `send` failing with a delivery error, never a raw one (no network: nothing here resolves or
connects)."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications.errors import DeliveryError, TargetRefused
from notifications.models import Recipient
from notifications.providers.webhook import WebhookProvider
from tests.support.records import make_record

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


def refuse_every_host(host: str, port: int) -> list[str]:
    raise TargetRefused("webhook host does not resolve (test)")


@cache
def provider() -> WebhookProvider:
    return WebhookProvider(SECRET, allow_private_targets=False, resolver=refuse_every_host)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://hooks.example.com/x?y=1", "webhook:https://hooks.example.com:443"),
        ("https://hooks.example.com:443/other", "webhook:https://hooks.example.com:443"),
        ("https://hooks.example.com:8443/x", "webhook:https://hooks.example.com:8443"),
        ("https://HOOKS.Example.COM/x", "webhook:https://hooks.example.com:443"),
        ("https://hooks.example.com./x", "webhook:https://hooks.example.com:443"),
        ("http://10.0.0.7/x", "webhook:http://10.0.0.7:80"),
        ("http://[::1]:9000/x", "webhook:http://[::1]:9000"),
        ("https://[2001:DB8::0001]/x", "webhook:https://[2001:db8::1]:443"),
        ("https://bücher.example/x", "webhook:https://xn--bcher-kva.example:443"),
        ("https://user:secret@hooks.example.com/x", "webhook:https://hooks.example.com:443"),
    ],
)
def test_the_breaker_is_named_after_the_origin_with_its_default_port(url: str, name: str) -> None:
    # When
    breaker = provider().breaker_name(make_record(recipient=Recipient.model_construct(webhook_url=url)))

    # Then: scheme, lower-case host and port only; never the path, query or credentials
    assert breaker == name


def test_two_customers_on_one_host_with_different_ports_get_different_breakers() -> None:
    # Given
    first = make_record(recipient=Recipient(webhook_url="https://hooks.example.com/a"))
    second = make_record(recipient=Recipient(webhook_url="https://hooks.example.com:8443/a"))

    # When / Then
    assert provider().breaker_name(first) != provider().breaker_name(second)


@pytest.mark.parametrize(
    "url",
    [
        "https://h:99999/",
        "https://h:0/",
        f"https://{'a' * 64}.example.com/",
        f"https://{'a.' * 127}example.com/",  # longer than 253 bytes
        "https://exa mple.com/",
        "https://[::1/",
        "https:///x",
        "mailto:ops@example.com",
        "not a url",
        "",
        None,
    ],
)
def test_a_url_that_can_never_be_called_gets_one_stable_name_and_never_raises(url: str | None) -> None:
    # Given: a record that skipped today's validation at the edge
    record = make_record(recipient=Recipient.model_construct(webhook_url=url))

    # When
    name = provider().breaker_name(record)

    # Then
    assert name == "webhook:invalid"


URLS = st.text() | st.builds("https://{}/".format, st.text()) | st.builds("https://h:{}/".format, st.text())


@given(URLS)
def test_breaker_name_never_raises_whatever_the_url(url: str) -> None:
    # Given
    record = make_record(recipient=Recipient.model_construct(webhook_url=url))

    # When
    name = provider().breaker_name(record)

    # Then
    assert name.startswith("webhook:")


@given(URLS)
def test_send_fails_with_a_delivery_error_whatever_the_url(url: str) -> None:
    # Given
    record = make_record(recipient=Recipient.model_construct(webhook_url=url))

    # When / Then: never a raw ValueError or UnicodeError out of the adapter
    with pytest.raises(DeliveryError):
        provider().send(record, timeout=1.0)
