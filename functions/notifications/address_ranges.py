"""The addresses a webhook may never reach, written as data: the same verdict on every Python version.

Every IANA special-purpose IPv4 and IPv6 range, each with its reason, and the IPv4 address embedded in
the IPv6 forms that carry one (NAT64, 6to4, Teredo, IPv4-compatible, -mapped, SIIT). `ipaddress` is used
to parse and to test membership only, never for its `is_private` / `is_global` tables, which change
between interpreters. `notifications.ssrf` applies this to the URLs clients give.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# ---------------------------------------------------------------------------------------- the ranges (data)
def _last_32(value: int) -> tuple[int, ...]:
    """IPv4-compatible, IPv4-mapped, SIIT and the NAT64 well-known prefix: the address's last 32 bits."""
    return (value & 0xFFFF_FFFF,)


def _rfc6052(value: int, prefix_length: int) -> int:
    """The IPv4 address RFC 6052 section 2.2 puts after a NAT64 prefix of this length (bits 64-71 skipped)."""
    bits = f"{value:0128b}"
    if prefix_length == 96:
        return int(bits[96:], 2)
    return int((bits[prefix_length:64] + bits[72:])[:32], 2)


def _nat64_local_use(value: int) -> tuple[int, ...]:
    """64:ff9b:1::/48 (RFC 8215): the operator picks the prefix length, /48 to /96; every layout is checked."""
    return tuple(_rfc6052(value, length) for length in (48, 56, 64, 96))


def _six_to_four(value: int) -> tuple[int, ...]:
    """2002:AABB:CCDD::/48 (RFC 3056): the IPv4 address is bits 16-47."""
    return ((value >> 80) & 0xFFFF_FFFF,)


def _teredo_client(value: int) -> tuple[int, ...]:
    """2001:0:SSSS:SSSS:FFFF:PPPP:CCCC:CCCC (RFC 4380): the client's address is the last 32 bits inverted."""
    return ((value & 0xFFFF_FFFF) ^ 0xFFFF_FFFF,)


class SpecialRange(NamedTuple):
    """A range Herald never calls, why, and (for an IPv4-in-IPv6 form) where the embedded IPv4 address sits."""

    network: IPNetwork
    reason: str
    embedded: Callable[[int], tuple[int, ...]] | None = None


def _ranges(*entries: tuple[str, str] | tuple[str, str, Callable[[int], tuple[int, ...]]]) -> tuple[SpecialRange, ...]:
    return tuple(SpecialRange(ipaddress.ip_network(entry[0]), *entry[1:]) for entry in entries)


IPV4_SPECIAL: Final = _ranges(
    ("0.0.0.0/8", '"this network", 0.0.0.0 reaching the local host (RFC 791, RFC 1122)'),
    ("10.0.0.0/8", "private-use (RFC 1918)"),
    ("100.64.0.0/10", "shared address space, carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "loopback (RFC 1122)"),
    ("169.254.0.0/16", "link-local, the instance metadata service 169.254.169.254 among them (RFC 3927)"),
    ("172.16.0.0/12", "private-use (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments: DS-Lite, NAT64 discovery, PCP and TURN anycast (RFC 6890)"),
    ("192.0.2.0/24", "documentation, TEST-NET-1 (RFC 5737)"),
    ("192.31.196.0/24", "AS112-v4 anycast DNS sink (RFC 7535)"),
    ("192.52.193.0/24", "AMT relay anycast (RFC 7450)"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
    ("192.168.0.0/16", "private-use (RFC 1918)"),
    ("192.175.48.0/24", "AS112 direct delegation DNS sink (RFC 7534)"),
    ("198.18.0.0/15", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "documentation, TEST-NET-2 (RFC 5737)"),
    ("203.0.113.0/24", "documentation, TEST-NET-3 (RFC 5737)"),
    ("224.0.0.0/4", "multicast (RFC 5771)"),
    ("240.0.0.0/4", "reserved for future use (RFC 1112)"),
    ("255.255.255.255/32", "limited broadcast (RFC 919, RFC 8190)"),
)
"""IPv4 ranges Herald never calls; every other IPv4 address is global unicast."""

IPV6_SPECIAL: Final = _ranges(
    ("::/128", "unspecified (RFC 4291)"),
    ("::1/128", "loopback (RFC 4291)"),
    ("::/96", "IPv4-compatible, deprecated (RFC 4291 section 2.5.5.1)", _last_32),
    ("::ffff:0:0/96", "IPv4-mapped (RFC 4291 section 2.5.5.2)", _last_32),
    ("::ffff:0:0:0/96", "IPv4-translated, SIIT (RFC 2765, RFC 6145)", _last_32),
    ("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)", _last_32),
    ("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215)", _nat64_local_use),
    ("100::/64", "discard-only (RFC 6666)"),
    ("2001::/23", "IETF protocol assignments (RFC 2928)"),
    ("2001::/32", "Teredo (RFC 4380)", _teredo_client),
    ("2001:1::1/128", "PCP anycast (RFC 7723)"),
    ("2001:1::2/128", "TURN anycast (RFC 8155)"),
    ("2001:1::3/128", "DNS-SD service registration protocol anycast (RFC 9665)"),
    ("2001:2::/48", "benchmarking (RFC 5180)"),
    ("2001:3::/32", "AMT (RFC 7450)"),
    ("2001:4:112::/48", "AS112-v6 anycast DNS sink (RFC 7535)"),
    ("2001:10::/28", "ORCHID, deprecated (RFC 4843)"),
    ("2001:20::/28", "ORCHIDv2 (RFC 7343)"),
    ("2001:30::/28", "drone remote ID entity tags (RFC 9374)"),
    ("2001:db8::/32", "documentation (RFC 3849)"),
    ("2002::/16", "6to4 (RFC 3056)", _six_to_four),
    ("2620:4f:8000::/48", "AS112 direct delegation DNS sink (RFC 7534)"),
    ("3fff::/20", "documentation (RFC 9637)"),
    ("5f00::/16", "SRv6 segment identifiers (RFC 9602)"),
    ("fc00::/7", "unique local (RFC 4193)"),
    ("fe80::/10", "link-local (RFC 4291)"),
    ("fec0::/10", "site-local, deprecated (RFC 3879)"),
    ("ff00::/8", "multicast (RFC 4291)"),
)
"""IPv6 ranges Herald never calls, the most specific one naming the reason; outside 2000::/3 is refused too."""

IPV6_GLOBAL_UNICAST: Final = ipaddress.IPv6Network("2000::/3")
"""The only IPv6 space IANA allocates as global unicast (RFC 4291 section 2.4, the IPv6 address-space registry)."""


def _special_range(address: IPAddress) -> SpecialRange | None:
    """The most specific listed range holding the address, or None."""
    table = IPV4_SPECIAL if address.version == 4 else IPV6_SPECIAL
    found = [entry for entry in table if address in entry.network]
    return max(found, key=lambda entry: entry.network.prefixlen, default=None)


def embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 address(es) an IPv4-in-IPv6 transition form carries; empty for any other address.

    NAT64 (64:ff9b::/96 and, in each layout RFC 6052 allows, 64:ff9b:1::/48), 6to4, Teredo (the client's
    address), IPv4-compatible, IPv4-mapped and SIIT.
    """
    form = _special_range(address)
    if form is None or form.embedded is None:
        return ()
    return tuple(ipaddress.IPv4Address(embedded) for embedded in dict.fromkeys(form.embedded(int(address))))


def refusal_reason(address: str) -> str | None:
    """Why Herald never calls this address, or None for a global unicast address it may call.

    Decided by `IPV4_SPECIAL`, `IPV6_SPECIAL` and `IPV6_GLOBAL_UNICAST` alone, the same on every Python version.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id is not None:
        return "an address with a zone"
    reasons: list[str] = []
    special = _special_range(ip)
    if special is not None:
        reasons.append(special.reason)
    elif isinstance(ip, ipaddress.IPv6Address) and ip not in IPV6_GLOBAL_UNICAST:
        reasons.append("outside IPv6 global unicast 2000::/3")
    if isinstance(ip, ipaddress.IPv6Address):
        for embedded in embedded_ipv4(ip):
            inner = _special_range(embedded)
            reasons.append(f"embeds {embedded}" + (f", {inner.reason}" if inner else ""))
    return "; ".join(reasons) or None
