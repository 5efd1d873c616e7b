"""The SSRF guard: which webhook targets may be called, with DNS answered by a fake resolver."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from notifications import ssrf
from notifications.errors import DeliveryError, TargetRefused
from notifications.failures import delivery_classifier
from resilience import ErrorClass

PUBLIC = {"hooks.example.com": ["93.184.215.14"]}


def test_https_to_a_public_address_is_pinned_to_that_address() -> None:
    # When
    target = ssrf.vet(
        "https://hooks.example.com:8443/x?y=1",
        allow_private=False,
        allowed_ports=frozenset({443, 8443}),
        resolver=lambda h, p: PUBLIC[h],
    )

    # Then
    assert (target.addresses, target.port, target.path, target.host) == (
        ("93.184.215.14",),
        8443,
        "/x?y=1",
        "hooks.example.com",
    )


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.5",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "100.64.0.1",
        "224.0.0.1",
    ],
)
def test_names_resolving_to_private_ranges_are_refused(address: str) -> None:
    # When
    with pytest.raises(TargetRefused) as refused:
        ssrf.vet("https://rebind.example.com/", allow_private=False, resolver=lambda h, p: [address])

    # Then: the caller learns only that it was refused, never which range the name resolved into
    assert refused.value.message == "webhook target refused"


def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    # When / Then
    with pytest.raises(TargetRefused):
        ssrf.vet("https://mixed.example.com/", allow_private=False, resolver=lambda h, p: ["93.184.215.14", "10.0.0.1"])


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/", "http://127.0.0.1:9000/", "https://127.0.0.1/", "https://localhost/"]
)
def test_without_the_local_switch_plain_http_and_literal_private_hosts_are_refused(url: str) -> None:
    # When / Then
    with pytest.raises(TargetRefused):
        ssrf.check_url_shape(url, allow_private=False)


def test_the_local_switch_allows_http_only_to_private_targets() -> None:
    # Given / When
    target = ssrf.vet("http://127.0.0.1:9000/hook", allow_private=True, resolver=lambda h, p: [h])

    # Then
    assert target.addresses == ("127.0.0.1",)
    with pytest.raises(TargetRefused, match="https"):
        ssrf.vet("http://hooks.example.com/", allow_private=True, resolver=lambda h, p: PUBLIC[h])


def test_ipv4_addresses_are_tried_before_ipv6_and_each_family_keeps_the_resolvers_order() -> None:
    # Given: answers as a resolver might give them, IPv6 first and not in lexical order
    answers = ["2606:4700::2", "93.184.215.15", "2606:4700::1", "93.184.215.14", "93.184.215.15"]

    # When
    target = ssrf.vet("https://hooks.example.com/", allow_private=False, resolver=lambda h, p: answers)

    # Then: every vetted address, once, to try in turn
    assert target.addresses == ("93.184.215.15", "93.184.215.14", "2606:4700::2", "2606:4700::1")


def fake_getaddrinfo(*addresses: str) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
            for address in addresses
        ]

    return getaddrinfo


def test_the_resolver_keeps_the_order_dns_gave_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo("93.184.215.15", "93.184.215.14", "93.184.215.15"))

    # When
    addresses = ssrf.resolve_host("hooks.example.com", 443)

    # Then
    assert addresses == ["93.184.215.15", "93.184.215.14"]


@pytest.mark.parametrize("code", [socket.EAI_NONAME, socket.EAI_FAIL])
def test_a_name_that_does_not_resolve_is_refused_without_saying_so(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    # Given
    def no_such_name(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(code, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_name)

    # When
    with pytest.raises(TargetRefused) as refused:
        ssrf.resolve_host("internal.corp.example", 443)

    # Then: the same words as a private address, so no answer tells which names Herald's resolver knows
    assert refused.value.message == "webhook target refused"
    assert delivery_classifier(refused.value) is ErrorClass.PERMANENT


def test_a_resolver_failing_for_now_is_worth_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given
    def try_again(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", try_again)

    # When
    with pytest.raises(DeliveryError) as failure:
        ssrf.resolve_host("hooks.example.com", 443)

    # Then
    assert not isinstance(failure.value, TargetRefused)
    assert failure.value.message == "could not connect to the webhook endpoint"
    assert delivery_classifier(failure.value) is ErrorClass.TRANSIENT
