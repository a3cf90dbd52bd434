"""Fetching other people's URLs for previews without becoming a proxy into our network.

Server-side request forgery guard: the host name is resolved once, *every* address it
resolves to must be allowed, and the connection goes to that checked address (no second
resolution an attacker's DNS could answer differently). Redirects are followed by hand,
each hop checked the same way. Allowed means: in the operator's allow list, or global
(not private, loopback, link-local, shared, reserved, multicast or unspecified) and not
in the deny list. Responses are limited in size and in total time.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
USER_AGENT = "Trellis (Matrix homeserver; URL previews)"
_READ_BYTES = 64 * 1024


class FetchRefused(Exception):
    """The URL points somewhere previews must not go."""


class FetchFailed(Exception):
    """The URL could not be fetched (network error, bad status, too large, too slow)."""


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Policy:
    allow: Sequence[IPNetwork]
    deny: Sequence[IPNetwork]
    max_bytes: int
    timeout_s: float


def parse_networks(items: Sequence[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(item, strict=False) for item in items]


def address_allowed(address: IPAddress, policy: Policy) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in policy.allow):
        return True
    if any(address in net for net in policy.deny):
        return False
    return address.is_global and not address.is_multicast


def _resolve(host: str, port: int, policy: Policy) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"cannot resolve {host}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchFailed(f"cannot resolve {host}")
    for address in addresses:
        if not address_allowed(ipaddress.ip_address(address.split("%", 1)[0]), policy):
            raise FetchRefused(f"{host} resolves to a refused address")
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


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchFailed("timed out")
    return left


def _get_once(
    url: str, policy: Policy, deadline: float, accept: str
) -> tuple[int, str, str, bytes]:
    """One GET: (status, Location, Content-Type, body)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("only http and https URLs can be previewed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchRefused("bad port") from None
    addresses = _resolve(parts.hostname, port, policy)
    cls = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last_error: Exception | None = None
    for address in addresses:
        conn = cls(parts.hostname, port, address, _remaining(deadline))
        try:
            conn.request("GET", path, headers={"User-Agent": USER_AGENT, "Accept": accept})
            response = conn.getresponse()
            location = response.getheader("Location", "")
            content_type = response.getheader("Content-Type", "")
            body = bytearray()
            if response.status == 200:
                while True:
                    if conn.sock is not None:
                        conn.sock.settimeout(_remaining(deadline))
                    chunk = response.read(_READ_BYTES)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > policy.max_bytes:
                        raise FetchFailed("response too large")
            return response.status, location, content_type, bytes(body)
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
        finally:
            conn.close()
    raise FetchFailed(f"cannot fetch {parts.hostname}: {last_error}")


def fetch(url: str, policy: Policy, *, accept: str = "*/*") -> Fetched:
    """GET ``url`` under ``policy``, following up to MAX_REDIRECTS checked redirects."""
    deadline = time.monotonic() + policy.timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        status, location, content_type, body = _get_once(url, policy, deadline, accept)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            continue
        if status != 200:
            raise FetchFailed(f"status {status}")
        return Fetched(url, content_type, body)
    raise FetchFailed("too many redirects")
