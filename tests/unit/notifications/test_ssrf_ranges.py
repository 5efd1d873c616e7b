"""The SSRF guard's address policy, pinned address by address: IANA's special-purpose ranges and every
IPv4-in-IPv6 transition form refused, global unicast allowed, with the same verdicts whatever the
interpreter's `ipaddress` tables say (the tests run on 3.11, the Lambda runtime is 3.13). No network: DNS is a
fake resolver."""

from __future__ import annotations

import ipaddress
import json
import logging

import pytest

from notifications import address_ranges, ssrf
from notifications.errors import TargetRefused

# Reproduced by the security review: each passed the old guard on Python 3.11, 3.13 or both.
REVIEW_FINDINGS = [
    "64:ff9b::a00:1",  # NAT64 well-known prefix, embedding 10.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix, embedding the metadata address 169.254.169.254
    "::a00:1",  # IPv4-compatible
    "::ffff:0:a00:1",  # SIIT
    "fec0::1",  # site-local
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b:1::",  # NAT64 local-use prefix
]

# IANA's IPv4 Special-Purpose Address Registry, with multicast and 240.0.0.0/4 from the address-space registry.
IPV4_RANGES = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
]

# IANA's IPv6 Special-Purpose Address Registry, with the IPv4-embedding forms, site-local and multicast.
IPV6_RANGES = [
    "::/128",
    "::1/128",
    "::/96",
    "::ffff:0:0/96",
    "::ffff:0:0:0/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001::/32",
    "2001:1::1/128",
    "2001:1::2/128",
    "2001:1::3/128",
    "2001:2::/48",
    "2001:3::/32",
    "2001:4:112::/48",
    "2001:10::/28",
    "2001:20::/28",
    "2001:30::/28",
    "2001:db8::/32",
    "2002::/16",
    "2620:4f:8000::/48",
    "3fff::/20",
    "5f00::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]

PUBLIC = [
    "93.184.215.14",
    "1.1.1.1",
    "8.8.8.8",
    "192.0.1.1",  # between 192.0.0.0/24 and 192.0.2.0/24
    "100.63.255.255",  # just below shared address space
    "100.128.0.0",  # just above it
    "172.15.255.255",
    "172.32.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",  # the last address below multicast
    "2606:4700:4700::1111",
    "2a00:1450:4001::1",
    "2001:4860:4860::8888",
    "2001:200::1",  # the first block after 2001::/23
]

OUTSIDE_GLOBAL_UNICAST = ["4000::1", "8000::1", "100:0:0:1::1", "e000::1", "1::1"]


def resolving_to(*addresses: str) -> ssrf.Target:
    return ssrf.vet("https://hooks.example.com/x", allow_private=False, resolver=lambda h, p: list(addresses))


def samples(cidr: str) -> list[str]:
    """The first, a middle and the last address of a range."""
    network = ipaddress.ip_network(cidr)
    middle = network.network_address + network.num_addresses // 2
    return [str(network.network_address), str(middle), str(network.broadcast_address)]


@pytest.mark.parametrize("address", REVIEW_FINDINGS)
def test_every_target_the_review_found_is_refused_when_a_name_resolves_to_it(address: str) -> None:
    # When
    with pytest.raises(TargetRefused) as refused:
        resolving_to(address)

    # Then
    assert refused.value.message == "webhook target refused"


@pytest.mark.parametrize("address", REVIEW_FINDINGS)
def test_every_target_the_review_found_is_refused_as_a_literal_when_accepted(address: str) -> None:
    # When / Then: no DNS needed, so the request is refused before it is queued
    with pytest.raises(TargetRefused, match="^webhook target refused$"):
        ssrf.check_url_shape(f"https://[{address}]/hook", allow_private=False)


@pytest.mark.parametrize("address", [sample for cidr in IPV4_RANGES + IPV6_RANGES for sample in samples(cidr)])
def test_the_first_a_middle_and_the_last_address_of_every_special_range_are_refused(address: str) -> None:
    # When
    with pytest.raises(TargetRefused) as refused:
        resolving_to(address)

    # Then
    assert refused.value.message == "webhook target refused"
    assert address_ranges.refusal_reason(address) is not None


@pytest.mark.parametrize("address", OUTSIDE_GLOBAL_UNICAST)
def test_ipv6_outside_the_global_unicast_space_is_refused(address: str) -> None:
    # When / Then
    assert address_ranges.refusal_reason(address) == "outside IPv6 global unicast 2000::/3"


@pytest.mark.parametrize("address", PUBLIC)
def test_global_unicast_addresses_may_be_called(address: str) -> None:
    # When
    target = resolving_to(address)

    # Then
    assert address_ranges.refusal_reason(address) is None
    assert target.addresses == (address,)


def test_the_lists_are_exactly_the_registries_ranges_each_with_its_reason() -> None:
    # When
    ipv4 = {str(entry.network): entry.reason for entry in address_ranges.IPV4_SPECIAL}
    ipv6 = {str(entry.network): entry.reason for entry in address_ranges.IPV6_SPECIAL}

    # Then: a range added or dropped is a deliberate change of this list too
    assert sorted(ipv4) == sorted(IPV4_RANGES)
    assert sorted(ipv6) == sorted(str(ipaddress.ip_network(cidr)) for cidr in IPV6_RANGES)
    assert all("RFC" in reason for reason in [*ipv4.values(), *ipv6.values()])


@pytest.fixture
def interpreter_tables_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every `is_*` flag of `ipaddress` raises: a verdict that reads one fails the test."""

    def unavailable(self: object) -> bool:
        raise AssertionError("the SSRF policy must not depend on the interpreter's ipaddress tables")

    classes = [ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network]
    for cls in classes:
        for flag in [name for name in dir(cls) if name.startswith("is_")]:
            monkeypatch.setattr(cls, flag, property(unavailable))


@pytest.mark.usefixtures("interpreter_tables_unavailable")
@pytest.mark.parametrize(
    ("address", "refused"),
    [
        *[(address, True) for address in REVIEW_FINDINGS],
        *[(address, True) for address in ["10.0.0.1", "169.254.169.254", "::1", "fd00::1", "::ffff:127.0.0.1"]],
        *[(address, False) for address in PUBLIC],
    ],
)
def test_the_verdicts_never_read_the_interpreters_ipaddress_flags(address: str, refused: bool) -> None:
    # When
    try:
        verdict = resolving_to(address).addresses == (address,)
    except TargetRefused:
        verdict = False

    # Then: the same verdict as on any interpreter, with none of its tables to read
    assert verdict is not refused
    assert (address_ranges.refusal_reason(address) is not None) is refused


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64 well-known prefix (RFC 6052)
        ("64:ff9b::10.0.0.1", "10.0.0.1"),
        ("64:ff9b:1::a00:1", "10.0.0.1"),  # NAT64 local-use prefix, as a /96
        ("64:ff9b:1:a00:0:100::", "10.0.0.1"),  # the same as a /48 (bits 64-71 skipped)
        ("2002:a00:1::1", "10.0.0.1"),  # 6to4: bits 16-47
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "10.0.0.1"),  # Teredo: the client, last 32 bits inverted
        ("::a00:1", "10.0.0.1"),  # IPv4-compatible
        ("::ffff:a00:1", "10.0.0.1"),  # IPv4-mapped
        ("::ffff:0:a00:1", "10.0.0.1"),  # SIIT
    ],
)
def test_the_ipv4_address_inside_every_transition_form_is_extracted_and_checked(address: str, embedded: str) -> None:
    # When
    found = address_ranges.embedded_ipv4(ipaddress.IPv6Address(address))
    reason = address_ranges.refusal_reason(address)

    # Then: the embedded address is judged by the IPv4 list too, and named in the logged reason
    assert ipaddress.IPv4Address(embedded) in found
    assert reason is not None
    assert f"embeds {embedded}, " in reason


@pytest.mark.parametrize("address", ["2606:4700::1", "::1", "fe80::1", "2001:db8::1"])
def test_addresses_that_are_no_transition_form_embed_nothing(address: str) -> None:
    # When / Then
    assert address_ranges.embedded_ipv4(ipaddress.IPv6Address(address)) == ()


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::808:808",
        "64:ff9b:1::808:808",
        "2002:808:808::1",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",
        "::808:808",
        "::ffff:8.8.8.8",
        "::ffff:0:808:808",
    ],
)
def test_a_transition_form_of_a_public_ipv4_address_is_refused_outright(address: str) -> None:
    # Given: each form embeds 8.8.8.8, which may itself be called
    assert address_ranges.refusal_reason("8.8.8.8") is None

    # When / Then: no webhook host is ever one of these, and behind DNS64 a NAT64 address reaches its IPv4
    with pytest.raises(TargetRefused):
        resolving_to(address)


@pytest.mark.parametrize("address", ["fe80::1%eth0", "2606:4700::1%eth0"])
def test_an_address_with_a_zone_is_refused(address: str) -> None:
    # When / Then
    assert address_ranges.refusal_reason(address) == "an address with a zone"


def test_the_reason_is_logged_with_the_origin_but_never_the_path_or_query(caplog: pytest.LogCaptureFixture) -> None:
    # When
    with caplog.at_level(logging.INFO), pytest.raises(TargetRefused) as refused:
        ssrf.vet(
            "https://hooks.example.com/secret-path?token=abc",
            allow_private=False,
            resolver=lambda h, p: ["64:ff9b::a9fe:a9fe"],
        )

    # Then: the caller is told nothing about the range; the operator reads it in the log
    assert refused.value.message == "webhook target refused"
    [logged] = [record for record in caplog.records if record.getMessage() == "webhook target refused"]
    assert logged.__dict__["origin"] == "https://hooks.example.com:443"
    assert "169.254.169.254" in logged.__dict__["reason"]
    everything = json.dumps([record.__dict__ for record in caplog.records], default=str)
    assert "secret-path" not in everything and "token" not in everything
