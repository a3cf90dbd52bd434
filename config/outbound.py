"""Outbound HTTP to hosts that others name: URL previews and other homeservers.

Server-side request forgery guard, one for both: a host name is resolved once, *every*
address it resolves to must be allowed, and the caller connects to an address that was
checked (no second resolution an attacker's DNS could answer differently). Allowed means:
in the allow list, or global (not private, loopback, link-local, shared, reserved,
multicast or unspecified) and not in the deny list; an IPv4-mapped IPv6 address counts as
its IPv4 address. Exchanges are bounded in total time and in size.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

READ_BYTES = 64 * 1024


class OutboundError(Exception):
    """The host could not be resolved, or the exchange took too long or sent too much."""


class AddressRefused(OutboundError):
    """The host resolves to an address we must not connect to."""


class ResponseTooLarge(OutboundError):
    """The answer is longer than the caller's limit."""


def parse_networks(items: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def address_allowed(
    address: IPAddress, allow: Sequence[IPNetwork], deny: Sequence[IPNetwork] = ()
) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in allow):
        return True
    if any(address in net for net in deny):
        return False
    return address.is_global and not address.is_multicast


def resolve_allowed(
    host: str, port: int, allow: Sequence[IPNetwork], deny: Sequence[IPNetwork] = ()
) -> list[str]:
    """The addresses ``host`` resolves to, every one of them allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundError(f"cannot resolve {host}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundError(f"cannot resolve {host}")
    for address in addresses:
        if not address_allowed(ipaddress.ip_address(address.split("%", 1)[0]), allow, deny):
            raise AddressRefused(f"{host} resolves to {address}, which is not a public address")
    return addresses


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def pinned_connection(
    scheme: str, host: str, port: int, address: str, timeout: float
) -> http.client.HTTPConnection:
    """A connection to ``host`` (its name in the Host header and, for https, in TLS and
    the certificate check) made to ``address``, one that ``resolve_allowed`` checked."""
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    return cls(host, port, address, timeout)


def remaining(deadline: float) -> float:
    """Seconds left before ``deadline`` (a ``time.monotonic()`` value)."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise OutboundError("timed out")
    return left


def read_bounded(
    conn: http.client.HTTPConnection,
    response: http.client.HTTPResponse,
    deadline: float,
    max_bytes: int,
) -> bytes:
    """The whole body, at most ``max_bytes`` of it, before ``deadline``."""
    data = bytearray()
    while True:
        if conn.sock is not None:
            conn.sock.settimeout(remaining(deadline))
        chunk = response.read(READ_BYTES)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > max_bytes:
            raise ResponseTooLarge("response too large")
