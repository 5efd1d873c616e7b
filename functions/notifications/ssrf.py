"""Which webhook targets Herald may call: https, an allowed port, and only global unicast addresses.

The policy is data written here, not the interpreter's `ipaddress` tables (`is_private`, `is_global`, ...),
which change between Python versions: the same target must get the same verdict in the tests (3.11) and on
the Lambda runtime (3.13). `ipaddress` is used only to parse addresses and to test membership of a network.

An address may be called when it is global unicast:

* IPv4: outside every range of `address_ranges.IPV4_SPECIAL` (IANA's IPv4 Special-Purpose Address
  Registry, with multicast and the reserved 240.0.0.0/4 from the address-space registry);
* IPv6: inside 2000::/3 (the only space IANA allocates as global unicast) and outside every range of
  `address_ranges.IPV6_SPECIAL` (IANA's IPv6 Special-Purpose Address Registry, with site-local, multicast and the
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

from notifications.address_ranges import refusal_reason
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
