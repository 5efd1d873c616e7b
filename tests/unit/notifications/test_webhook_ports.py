"""Which ports and host names a webhook URL may name: 443 unless more are configured (any port only with the
local switch), checked when the notification is accepted and again when it is sent; ports outside 1-65535,
IDNA labels that do not decode and numbers that are no IPv4 address refused at the edge (no network)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from pydantic import ValidationError

from notifications import ssrf
from notifications.errors import TargetRefused, UndeliverableError
from notifications.failures import delivery_classifier
from notifications.models import NotificationRequest, Recipient
from notifications.providers.webhook import WebhookProvider
from resilience import ErrorClass
from tests.support import events
from tests.support.records import make_record

if TYPE_CHECKING:
    from tests.unit.notifications.conftest import FakeHerald as Herald

SECRET = "whsec_aGVyYWxkLWxvY2FsLWRldmVsb3BtZW50LXNlY3JldA=="


class Resolver:
    """DNS that answers one address and remembers what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.asked: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append((host, port))
        return self.addresses


@pytest.mark.parametrize("url", ["https://hooks.example.com:8443/x", "https://hooks.example.com:22/", "https://h:80/"])
def test_a_port_other_than_443_is_refused_by_default_when_accepted(url: str) -> None:
    # When / Then
    with pytest.raises(TargetRefused, match="port .* is not allowed"):
        ssrf.check_url_shape(url, allow_private=False)


def test_a_configured_port_is_allowed_and_443_stays_allowed_by_default() -> None:
    # When / Then: neither raises
    ssrf.check_url_shape("https://hooks.example.com:8443/x", allow_private=False, allowed_ports=frozenset({8443}))
    ssrf.check_url_shape("https://hooks.example.com/x", allow_private=False)
    ssrf.check_url_shape("https://hooks.example.com:443/x", allow_private=False)


def test_the_local_switch_allows_any_port() -> None:
    # When
    target = ssrf.vet("http://127.0.0.1:9000/hook", allow_private=True, resolver=Resolver("127.0.0.1"))

    # Then
    assert target.port == 9000
    ssrf.check_url_shape("https://hooks.example.com:8443/x", allow_private=True)


def test_a_port_not_allowed_is_refused_when_sent_before_any_dns_lookup() -> None:
    # Given
    resolver = Resolver("93.184.215.14")

    # When
    with pytest.raises(TargetRefused, match="port 8443 is not allowed") as refused:
        ssrf.vet("https://hooks.example.com:8443/x", allow_private=False, resolver=resolver)

    # Then
    assert resolver.asked == []
    assert delivery_classifier(refused.value) is ErrorClass.PERMANENT


def test_the_provider_applies_its_configured_ports() -> None:
    # Given: a host resolving to a refused address, so nothing is ever connected to
    resolver = Resolver("10.0.0.1")
    record = make_record(recipient=Recipient(webhook_url="https://hooks.example.com:8443/x"))
    by_default = WebhookProvider(SECRET, allow_private_targets=False, resolver=resolver)
    configured = WebhookProvider(
        SECRET, allow_private_targets=False, allowed_ports=frozenset({443, 8443}), resolver=resolver
    )

    # When
    with pytest.raises(TargetRefused, match="port 8443 is not allowed"):
        by_default.send(record, timeout=1.0)
    with pytest.raises(TargetRefused, match="^webhook target refused$"):
        configured.send(record, timeout=1.0)

    # Then: only the provider that allows the port looked the host up
    assert resolver.asked == [("hooks.example.com", 8443)]


@pytest.mark.parametrize("ports", [frozenset({0}), frozenset({443, 65536}), frozenset({-1})])
def test_a_provider_configured_with_a_port_that_is_not_one_fails_at_start_up(ports: frozenset[int]) -> None:
    # When / Then
    with pytest.raises(ValueError, match="1-65535"):
        WebhookProvider(SECRET, allow_private_targets=False, allowed_ports=ports)


def test_the_api_refuses_a_port_not_allowed_with_a_422(herald: Herald) -> None:
    # Given
    webhook = {"channel": "webhook", "recipient": {"webhook_url": "https://hooks.example.com:8443/x"}, "body": "b"}

    # When
    response = herald.api_as_deployed(events.post_notification(webhook))

    # Then
    assert response["statusCode"] == 422
    error = json.loads(response["body"])["error"]
    assert error["code"] == "validation_error"
    assert [detail["field"] for detail in error["details"]] == ["recipient.webhook_url"]
    assert herald.receive_all("StandardQueue") == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://h:65536/x", "port outside 1-65535"),
        ("https://h:-1/x", "port outside 1-65535"),
        ("https://h:+443/x", "port outside 1-65535"),
        ("https://h:0/x", "port outside 1-65535"),
        ("https://xn--zz.example.com/x", "invalid host name"),  # not punycode
        ("https://xn--a.example.com/x", "invalid host name"),
        ("https://a..example.com/x", "invalid host name"),  # an empty label
        ("https://hooks.example.123/x", "invalid host name"),  # ends in a number yet no IPv4 address
        ("https://999.1.1.1/x", "invalid host name"),
    ],
)
def test_a_url_no_resolver_could_use_is_refused_when_accepted(url: str, fragment: str) -> None:
    # When
    with pytest.raises(ValidationError) as refused:
        NotificationRequest.model_validate({"channel": "webhook", "recipient": {"webhook_url": url}, "body": "b"})

    # Then: a 422 the caller can read, from the rule the sender uses too
    [error] = refused.value.errors()
    assert fragment in error["msg"]
    with pytest.raises(UndeliverableError, match=fragment):
        ssrf.webhook_origin(url)


@pytest.mark.parametrize("host", ["2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1", "0x7f000001"])
def test_a_number_for_a_host_is_the_ipv4_address_resolvers_read_in_it(host: str) -> None:
    # When
    origin = ssrf.webhook_origin(f"https://{host}/x")

    # Then: refused when accepted, as 127.0.0.1 is, not only once a resolver turned it into that
    assert origin == ssrf.Origin("https", "127.0.0.1", 443)
    with pytest.raises(TargetRefused, match="^webhook target refused$"):
        ssrf.check_url_shape(f"https://{host}/x", allow_private=False)


@pytest.mark.parametrize("url", ["https://localhost/x", "https://api.localhost/x", "https://LOCALHOST./x"])
def test_localhost_names_are_refused_when_accepted(url: str) -> None:
    # When / Then
    with pytest.raises(TargetRefused, match="^webhook target refused$"):
        ssrf.check_url_shape(url, allow_private=False)


def test_a_url_that_can_never_be_called_is_refused_as_a_target_when_accepted() -> None:
    # When / Then: the one error the acceptor turns into a 422, even for a URL that skipped validation
    with pytest.raises(TargetRefused, match="port outside 1-65535"):
        ssrf.check_url_shape("https://h:99999/", allow_private=False)


def test_an_idn_host_is_looked_up_by_its_ascii_name() -> None:
    # Given
    resolver = Resolver("93.184.215.14")

    # When
    target = ssrf.vet("https://Bücher.example./x", allow_private=False, resolver=resolver)

    # Then: the name DNS and TLS see
    assert resolver.asked == [("xn--bcher-kva.example", 443)]
    assert target.host == "xn--bcher-kva.example"
