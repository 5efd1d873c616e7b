"""Which webhook targets Herald may call: https, an allowed port, and only global unicast addresses.

The policy is data written here, not the interpreter's `ipaddress` tables (`is_private`, `is_global`, ...),
which change between Python versions: the same target must get the same verdict in the tests (3.11) and on
the Lambda runtime (3.13). `ipaddress` is used only to parse addresses and to test membership of a network.

An address may be called when it is global unicast:

* IPv4: outside every range of `IPV4_SPECIAL` (IANA's IPv4 Special-Purpose Address Registry, with multicast
  and the reserved 240.0.0.0/4 from the address-space registry);
* IPv6: inside 2000::/3 (the only space IANA allocates as global unicast) and outside every range of
  `IPV6_SPECIAL` (IANA's IPv6 Special-Purpose Address Registry, with site-local, multicast and the
  deprecated or historic IPv4-embedding forms).

Ranges the registries mark "globally reachable" are refused too when they are infrastructure, never a
customer's web server: anycast services (AS112, AMT, PCP, TURN), ORCHIDv2, Teredo.

Every IPv4-in-IPv6 transition form (NAT64 with either prefix, 6to4, Teredo, IPv4-compatible, IPv4-mapped,
SIIT) is refused outright, whatever IPv4 address it embeds: a webhook host is never one, and in a VPC with
DNS64 a NAT64 address reaches the IPv4 address it embeds, private ranges and the instance metadata address
included. The embedded IPv4 address is still extracted (`embedded_ipv4`) and checked against the IPv4 list,
so the reason logged for a refusal names it, and taking a form off the list can never let a private IPv4
address through. An address with a zone (``fe80::1%eth0``) is refused too.

When a notification is accepted, `check_url_shape` refuses what the URL alone shows (plain http, a port not
allowed, an address literal or ``localhost`` name that may not be called). When it is sent, `vet` repeats
those checks, resolves the host once, and refuses the target if any address it resolves to may not be
called; the connection is then made only to those vetted addresses (`Target.addresses`, IPv4 first), so DNS
cannot change where it goes after the check.

Only port 443 is allowed unless more are configured (``allowed_ports``); the local runtime's switch
(``allow_private``) allows private targets, any port, and plain http to private targets.

What the caller sees is coarse and stable, so the notification's `error` is no oracle for the network behind
Herald: a refused target is "webhook target refused" (never which range, nor whether the name resolved), a
target that could not be reached is "could not connect to the webhook endpoint". The reason is logged, with
the origin (scheme, host, port; never the path or query).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple
from urllib.parse import urlsplit

from notifications.errors import DeliveryError, TargetRefused, UndeliverableError
from notifications.observability import logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

DEFAULT_PORTS: Final = {"https": 443, "http": 80}
DEFAULT_ALLOWED_PORTS: Final = frozenset({443})
"""The ports webhooks may call unless more are configured (``WEBHOOK_ALLOWED_PORTS``)."""

REFUSED: Final = "webhook target refused"
"""The `TargetRefused` message for every address-based refusal: never which range, nor whether it resolved."""
COULD_NOT_CONNECT: Final = "could not connect to the webhook endpoint"
"""The `DeliveryError` message for every connection, TLS and timeout failure: never the exception, nor the
address, so the notification's `error` is no port-scan oracle."""
HTTPS_ONLY: Final = "webhook URLs must use https (plain http only to private targets when allowed)"

_LABEL = re.compile(r"[a-z0-9_-]{1,63}")  # one label of an IDNA-encoded, lower-cased host name
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")  # a last label like this makes the name an IPv4 address (WHATWG)

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


# ------------------------------------------------------------------------------------------------ the URL
class Origin(NamedTuple):
    """Where a webhook URL points: scheme, canonical host (lower-case IDNA name or IP address) and port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def webhook_origin(url: str) -> Origin:
    """The origin a webhook URL calls, with the default port filled in.

    Knows no settings, so it holds whenever a notification is accepted or sent: which ports are allowed is
    `check_url_shape`'s and `vet`'s business. A host name that ends in a number (``2130706433``, ``127.1``,
    ``0x7f.1``) is an IPv4 address in another spelling, as resolvers and browsers read it, and becomes that
    address.

    Raises
    ------
    UndeliverableError
        The URL can never be called: not http(s), no host, a port outside 1-65535, or a host name that is
        not one (a label longer than 63 bytes, a character no DNS name holds, an IDNA label that does not
        encode or decode, a number that is no IPv4 address).
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced "[" around an IPv6 address, for one
        raise UndeliverableError("webhook URL is not valid") from None
    default_port = DEFAULT_PORTS.get(parts.scheme)
    if default_port is None:
        raise UndeliverableError("webhook URL must be http or https")
    try:
        port = parts.port
    except ValueError:  # not digits, or above 65535
        port = 0
    if port == 0:
        raise UndeliverableError("webhook URL has a port outside 1-65535")
    return Origin(parts.scheme, _canonical_host(parts.hostname or ""), port or default_port)


def _canonical_host(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    name = host.removesuffix(".")
    try:
        encoded = name.encode("idna").decode("ascii").lower()
        encoded.encode("ascii").decode("idna")  # every xn-- label must be valid punycode
    except UnicodeError:
        encoded = ""
    labels = encoded.split(".")
    if len(encoded) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UndeliverableError("webhook URL has an invalid host name")
    if _NUMBER.fullmatch(labels[-1]):
        try:
            return str(ipaddress.IPv4Address(socket.inet_aton(encoded)))
        except OSError:
            raise UndeliverableError("webhook URL has an invalid host name") from None
    return encoded


# ------------------------------------------------------------------------------------------------ the checks
def resolve_host(host: str, port: int) -> list[str]:
    """Every IP address a host name resolves to (A and AAAA), once each, in the resolver's order.

    Raises
    ------
    TargetRefused
        The name does not resolve (logged; the caller is told only that the target was refused, so the
        answer says nothing about which names Herald's own resolver knows).
    DeliveryError
        The resolver failed for now (``EAI_AGAIN``): worth retrying.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno == socket.EAI_AGAIN:
            logger.warning("webhook host resolution failed for now", extra={"host": host, "port": port})
            raise DeliveryError(COULD_NOT_CONNECT) from error
        logger.warning("webhook target refused", extra={"host": host, "port": port, "reason": "does not resolve"})
        raise TargetRefused(REFUSED) from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Target:
    """A vetted webhook target: connect only to `addresses` (vetted, so DNS cannot change them after the check),
    IPv4 first, then IPv6, each family in the resolver's order; the first that connects is used."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]

    @property
    def origin(self) -> Origin:
        return Origin(self.scheme, self.host, self.port)


def check_url_shape(url: str, *, allow_private: bool, allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS) -> None:
    """The checks that need no DNS, used when a notification is accepted: https, an allowed port, and no
    address literal or ``localhost`` name that may not be called. With `allow_private` (the local runtime
    only), private targets, any port, and plain http to private targets are allowed.

    Raises
    ------
    TargetRefused
        The URL may not be called (a URL that can never be called at all is refused too, in plain words).
    """
    try:
        origin = webhook_origin(url)
    except TargetRefused:
        raise
    except UndeliverableError as invalid:  # normally refused before, when the request was validated
        raise TargetRefused(invalid.message) from None
    _check_origin(origin, allow_private=allow_private, allowed_ports=allowed_ports)


def vet(
    url: str,
    *,
    allow_private: bool,
    allowed_ports: frozenset[int] = DEFAULT_ALLOWED_PORTS,
    resolver: Callable[[str, int], list[str]] = resolve_host,
) -> Target:
    """Check a webhook URL as `check_url_shape` does, resolve its host once, and refuse it unless every address
    it resolves to may be called.

    Raises
    ------
    UndeliverableError
        The URL can never be called (see `webhook_origin`).
    TargetRefused
        The URL or an address it resolves to may not be called; the reason is logged, not told.
    DeliveryError
        The host could not be resolved for now (see `resolve_host`).
    """
    origin = webhook_origin(url)
    try:
        _check_origin(origin, allow_private=allow_private, allowed_ports=allowed_ports)
    except TargetRefused as refused:
        logger.warning("webhook target refused", extra={"origin": str(origin), "reason": refused.message})
        raise
    addresses = _connect_order(resolver(origin.host, origin.port))
    if not addresses:
        raise _refused(origin, "resolves to no address")
    refusals = {address: reason for address in addresses if (reason := refusal_reason(address)) is not None}
    if refusals and not allow_private:
        raise _refused(origin, "; ".join(f"{address}: {reason}" for address, reason in refusals.items()))
    if origin.scheme == "http" and len(refusals) != len(addresses):
        logger.warning("webhook target refused", extra={"origin": str(origin), "reason": "http to a public address"})
        raise TargetRefused(HTTPS_ONLY)
    parts = urlsplit(url)  # webhook_origin parsed it already
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=origin.scheme, host=origin.host, port=origin.port, path=path, addresses=addresses)


def _check_origin(origin: Origin, *, allow_private: bool, allowed_ports: frozenset[int]) -> None:
    local = _is_local_name(origin.host) or (_is_address(origin.host) and refusal_reason(origin.host) is not None)
    if origin.scheme == "http" and not (allow_private and local):
        raise TargetRefused(HTTPS_ONLY)
    if allow_private:
        return
    if local:
        raise TargetRefused(REFUSED)
    if origin.port not in allowed_ports:
        allowed = ", ".join(str(port) for port in sorted(allowed_ports))
        raise TargetRefused(f"webhook URL port {origin.port} is not allowed (allowed: {allowed})")


def _refused(origin: Origin, reason: str) -> TargetRefused:
    logger.warning("webhook target refused", extra={"origin": str(origin), "reason": reason})
    return TargetRefused(REFUSED)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_local_name(host: str) -> bool:
    """``localhost`` and the names under it, which resolvers answer with loopback (RFC 6761 section 6.3)."""
    return host == "localhost" or host.endswith(".localhost")


def _connect_order(addresses: Iterable[str]) -> tuple[str, ...]:
    """Once each; IPv4 before IPv6 (Lambda functions often have no IPv6 route), otherwise as resolved."""
    unique = list(dict.fromkeys(addresses))
    return tuple(sorted(unique, key=lambda address: ":" in address))  # stable: the resolver's order within each
