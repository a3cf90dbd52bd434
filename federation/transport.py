"""One HTTP request to another server, bounded in time and size.

Connections go to a resolved target (host and port from server discovery) while TLS checks
the certificate for the name discovery says the server must prove (spec: "Server
discovery": the target "must present a valid certificate for <hostname>"), with the
system's trusted authorities. Plain HTTP is used only for operator-set URL overrides.

Any server may make us connect somewhere by naming itself in a request (we fetch its keys),
so, like Synapse's ``federation_ip_range_blacklist``, discovered targets must resolve to
global addresses only (or ones in TRELLIS_FEDERATION_IP_ALLOWLIST), and the connection goes
to the address that was checked. Operator-set URL overrides are trusted as they are.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from django.conf import settings

USER_AGENT = "Trellis (Matrix homeserver; federation)"
_READ_BYTES = 64 * 1024


class TransportError(Exception):
    """The request could not be made or its answer not read (network, TLS, size, time)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect for a server, and how to talk to it there."""

    scheme: str  # "https", or "http" for an override
    connect_host: str  # host name or IP address to connect to
    port: int
    # The name the certificate must be valid for (sent as SNI unless it is an IP address).
    tls_hostname: str
    host_header: str
    # Set by the operator (an override): connect wherever it says.
    trusted: bool = False


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _allowed(address: str, allow: Sequence[IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in allow):
        return True
    return ip.is_global and not ip.is_multicast


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, all of which must be allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TransportError(f"cannot resolve {host}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    allow = [ipaddress.ip_network(n, strict=False) for n in settings.FEDERATION_IP_ALLOWLIST]
    if not addresses:
        raise TransportError(f"cannot resolve {host}")
    for address in addresses:
        if not _allowed(address, allow):
            raise TransportError(f"{host} resolves to {address}, which is not a public address")
    return addresses


class _TargetHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, target: Target, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(address, target.port, timeout=timeout, context=context)
        self._tls_hostname = target.tls_hostname
        self._ssl_context = context

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        # Python sends no SNI when server_hostname is an IP address, as the spec asks.
        self.sock = self._ssl_context.wrap_socket(sock, server_hostname=self._tls_hostname)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TransportError("timed out")
    return left


def send(
    target: Target,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout_s: float,
    max_bytes: int,
) -> HttpResponse:
    """Send one request (no redirects followed) and read the whole answer.

    Raises TransportError on any network or TLS failure, when the body exceeds
    ``max_bytes`` or when the whole exchange takes longer than ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    if target.trusted:
        addresses = [target.connect_host]
    else:
        addresses = checked_addresses(target.connect_host, target.port)
    last_error: TransportError | None = None
    for address in addresses:
        try:
            return _send_once(target, address, method, path, headers, body, deadline, max_bytes)
        except TransportError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def _send_once(
    target: Target,
    address: str,
    method: str,
    path: str,
    headers: Mapping[str, str] | None,
    body: bytes | None,
    deadline: float,
    max_bytes: int,
) -> HttpResponse:
    timeout_s = _remaining(deadline)
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _TargetHTTPSConnection(target, address, timeout_s, ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(address, target.port, timeout=timeout_s)
    request_headers = {"User-Agent": USER_AGENT, "Host": target.host_header, **(headers or {})}
    try:
        conn.request(method, path, body=body, headers=request_headers)
        response = conn.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise TransportError("response too large")
        data = bytearray()
        while True:
            if conn.sock is not None:
                conn.sock.settimeout(_remaining(deadline))
            chunk = response.read(_READ_BYTES)
            if not chunk:
                break
            data += chunk
            if len(data) > max_bytes:
                raise TransportError("response too large")
        return HttpResponse(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            bytes(data),
        )
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TransportError(f"{address}:{target.port}: {exc}") from exc
    finally:
        conn.close()
