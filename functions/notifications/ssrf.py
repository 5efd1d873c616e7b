"""Which webhook targets Herald may call: https to public addresses, or private ones only when allowed."""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlsplit

from notifications.errors import TargetRefused, UndeliverableError

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"[a-z0-9_-]{1,63}")  # one label of an IDNA-encoded, lower-cased host name


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
    port = parts.port or DEFAULT_PORTS.get(parts.scheme, 80)
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

    Raises
    ------
    UndeliverableError
        The URL can never be called: not http(s), no host, a port outside 1-65535, or a host name that is
        not one (a label longer than 63 bytes, a character no DNS name holds).
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
    except ValueError:
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
    except UnicodeError:
        encoded = ""
    if len(encoded) > 253 or not all(_LABEL.fullmatch(label) for label in encoded.split(".")):
        raise UndeliverableError("webhook URL has an invalid host name")
    return encoded
