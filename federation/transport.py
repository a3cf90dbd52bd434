"""One HTTP request to another server, bounded in time and size.

Connections go to a resolved target (host and port from server discovery) while TLS checks
the certificate for the name discovery says the server must prove (spec: "Server
discovery": the target "must present a valid certificate for <hostname>"), with the
system's trusted authorities plus any in TRELLIS_FEDERATION_CA_FILE (a private federation's
own authority, or another test server's self-signed certificate).
TRELLIS_FEDERATION_VERIFY_TLS=off accepts any certificate: for test set-ups only, and
warned about in every process that uses it. Plain HTTP is used only for operator-set URL
overrides.

Any server may make us connect somewhere by naming itself in a request (we fetch its keys),
so, like Synapse's ``federation_ip_range_blacklist``, discovered targets must resolve to
global addresses only (or ones in TRELLIS_FEDERATION_IP_ALLOWLIST), and the connection goes
to the address that was checked: config/outbound.py's guard, the one URL previews use.
Operator-set URL overrides are trusted as they are.
"""

from __future__ import annotations

import functools
import http.client
import logging
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings

from config import outbound

USER_AGENT = "Trellis (Matrix homeserver; federation)"

logger = logging.getLogger(__name__)

UNVERIFIED_TLS_WARNING = (
    "TRELLIS_FEDERATION_VERIFY_TLS is off: other servers' TLS certificates are NOT "
    "verified, so anyone on the network path can impersonate them. For test set-ups only."
)


class TransportError(Exception):
    """The request could not be made or its answer not read (network, TLS, size, time)."""


class ResponseTooLarge(TransportError):
    """The answer is longer than the caller's ``max_bytes``."""


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


def checked_addresses(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, all of which must be allowed."""
    allow = outbound.parse_networks(settings.FEDERATION_IP_ALLOWLIST)
    try:
        return outbound.resolve_allowed(host, port, allow)
    except outbound.OutboundError as exc:
        raise TransportError(str(exc)) from exc


def tls_context() -> ssl.SSLContext:
    """The client context for connections to other servers, as the settings say."""
    return _tls_context(settings.FEDERATION_CA_FILE, settings.FEDERATION_VERIFY_TLS)


# One context per setting, built once: loading the system's authorities costs
# milliseconds, and a context may be shared by threads.
@functools.lru_cache(maxsize=4)
def _tls_context(ca_file: str, verify: bool) -> ssl.SSLContext:
    if not verify:
        _warn_unverified_once()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


@functools.cache
def _warn_unverified_once() -> None:
    logger.warning(UNVERIFIED_TLS_WARNING)


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
        except ResponseTooLarge:
            raise  # Another address would send the same answer.
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
    try:
        timeout_s = outbound.remaining(deadline)
    except outbound.OutboundError as exc:
        raise TransportError(str(exc)) from exc
    conn: http.client.HTTPConnection
    if target.scheme == "https":
        conn = _TargetHTTPSConnection(target, address, timeout_s, tls_context())
    else:
        conn = http.client.HTTPConnection(address, target.port, timeout=timeout_s)
    request_headers = {"User-Agent": USER_AGENT, "Host": target.host_header, **(headers or {})}
    try:
        conn.request(method, path, body=body, headers=request_headers)
        response = conn.getresponse()
        declared = response.getheader("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ResponseTooLarge("response too large")
        return HttpResponse(
            response.status,
            {name.lower(): value for name, value in response.getheaders()},
            outbound.read_bounded(conn, response, deadline, max_bytes),
        )
    except outbound.ResponseTooLarge as exc:
        raise ResponseTooLarge(f"{address}:{target.port}: {exc}") from exc
    except (OSError, http.client.HTTPException, ValueError, outbound.OutboundError) as exc:
        raise TransportError(f"{address}:{target.port}: {exc}") from exc
    finally:
        conn.close()
