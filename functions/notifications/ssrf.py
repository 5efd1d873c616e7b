"""Which webhook targets Herald may call: https to public addresses, or private ones only when allowed."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from notifications.errors import TargetRefused

if TYPE_CHECKING:
    from collections.abc import Callable


def resolve_host(host: str, port: int) -> list[str]:
    """Every IP address a host name resolves to (A and AAAA)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise TargetRefused(f"webhook host does not resolve: {error.strerror}") from error
    return sorted({str(info[4][0]) for info in infos})


def is_private(address: str) -> bool:
    """True for loopback, private, link-local, shared, reserved, multicast and unspecified addresses."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    """A vetted webhook target: connect to `address` (pinned, so DNS cannot change it after the check)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def check_url_shape(url: str, *, allow_private: bool) -> None:
    """The checks that need no DNS, used when a notification is accepted."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal_private = _literal_is_private(host)
    if parts.scheme == "http" and not (allow_private and (literal_private or host == "localhost")):
        raise TargetRefused("webhook URLs must use https (plain http only to private targets when allowed)")
    if (literal_private or host == "localhost") and not allow_private:
        raise TargetRefused("webhook targets in private, loopback and link-local ranges are refused")


def vet(url: str, *, allow_private: bool, resolver: Callable[[str, int], list[str]] = resolve_host) -> Target:
    """Resolve a webhook URL and refuse it unless every address it resolves to may be called."""
    check_url_shape(url, allow_private=allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise TargetRefused("webhook host resolves to no address")
    private = [address for address in addresses if is_private(address)]
    if private and not allow_private:
        raise TargetRefused("webhook target resolves to a private, loopback or link-local address")
    if parts.scheme == "http" and len(private) != len(addresses):
        raise TargetRefused("plain http is accepted only to private targets")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])


def _literal_is_private(host: str) -> bool:
    try:
        return is_private(host)
    except ValueError:
        return False
