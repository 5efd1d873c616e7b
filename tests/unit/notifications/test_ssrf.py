"""The SSRF guard: which webhook targets may be called, with DNS answered by a fake resolver."""

from __future__ import annotations

import pytest

from notifications import ssrf
from notifications.errors import TargetRefused

PUBLIC = {"hooks.example.com": ["93.184.215.14"]}


def test_https_to_a_public_address_is_pinned_to_that_address() -> None:
    # When
    target = ssrf.vet("https://hooks.example.com:8443/x?y=1", allow_private=False, resolver=lambda h, p: PUBLIC[h])

    # Then
    assert (target.address, target.port, target.path, target.host) == (
        "93.184.215.14",
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
    # When / Then
    with pytest.raises(TargetRefused, match="private"):
        ssrf.vet("https://rebind.example.com/", allow_private=False, resolver=lambda h, p: [address])


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
    assert target.address == "127.0.0.1"
    with pytest.raises(TargetRefused, match="https"):
        ssrf.vet("http://hooks.example.com/", allow_private=True, resolver=lambda h, p: PUBLIC[h])
