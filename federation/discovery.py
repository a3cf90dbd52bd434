"""Server discovery: where to send a request for a server name.

Spec: content/server-server-api.md#resolving-server-names. An operator's URL override
(TRELLIS_FEDERATION_URL_OVERRIDES, for tests and private deployments) wins over all of it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.core.cache import cache

from federation import srv
from federation.transport import Target, TransportError, send
from protocol.identifiers import is_valid_server_name, split_port

DEFAULT_PORT = 8448
WELL_KNOWN_PATH = "/.well-known/matrix/server"
# Spec, step 3: cache for 24 hours by default, at most 48; errors for up to an hour.
WELL_KNOWN_DEFAULT_TTL_S = 24 * 3600
WELL_KNOWN_MAX_TTL_S = 48 * 3600
WELL_KNOWN_ERROR_TTL_S = 3600
WELL_KNOWN_MAX_BYTES = 64 * 1024
WELL_KNOWN_MAX_REDIRECTS = 5
SRV_TTL_S = 3600
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class DiscoveryError(Exception):
    """The server name cannot be resolved to anywhere to connect."""


def _ip_literal(host: str) -> str | None:
    """The address of an IPv4 or bracketed IPv6 literal, or None for a DNS name."""
    literal = host[1:-1] if host.startswith("[") else host
    try:
        return str(ipaddress.ip_address(literal))
    except ValueError:
        return None


def override_target(base_url: str) -> Target:
    parts = urlsplit(base_url)
    assert parts.hostname is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Target(parts.scheme, parts.hostname, port, parts.hostname, parts.netloc, trusted=True)


def _srv_targets(hostname: str, tls_hostname: str) -> list[Target]:
    """Steps 3.3/3.4 and 4/5: _matrix-fed._tcp, then the deprecated _matrix._tcp."""
    key = f"federation:srv:{hostname}"
    records = cache.get(key)
    if records is None:
        records = []
        for service in ("_matrix-fed._tcp", "_matrix._tcp"):
            try:
                found = srv.lookup_srv(f"{service}.{hostname}")
            except srv.DnsError:
                found = []
            if found:
                records = [(r.target, r.port) for r in found]
                break
        cache.set(key, records, SRV_TTL_S)
    return [Target("https", host, port, tls_hostname, tls_hostname) for host, port in records]


def _cache_ttl(cache_control: str) -> int:
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return WELL_KNOWN_DEFAULT_TTL_S
    return min(int(match.group(1)), WELL_KNOWN_MAX_TTL_S)


def _fetch_well_known(hostname: str) -> tuple[str | None, int]:
    """(the delegated server name or None, seconds to cache that answer)."""
    url = f"https://{hostname}{WELL_KNOWN_PATH}"
    deadline = time.monotonic() + settings.FEDERATION_TIMEOUT_S
    seen: set[str] = set()
    for _ in range(WELL_KNOWN_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname or url in seen:
            return None, WELL_KNOWN_ERROR_TTL_S
        seen.add(url)
        try:
            port = parts.port or 443
        except ValueError:
            return None, WELL_KNOWN_ERROR_TTL_S
        target = Target("https", parts.hostname, port, parts.hostname, parts.netloc)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            response = send(
                target,
                "GET",
                path,
                timeout_s=max(deadline - time.monotonic(), 0.001),
                max_bytes=WELL_KNOWN_MAX_BYTES,
            )
        except TransportError:
            return None, WELL_KNOWN_ERROR_TTL_S
        if response.status in (301, 302, 303, 307, 308) and "location" in response.headers:
            url = urljoin(url, response.headers["location"])
            continue
        if response.status != 200:
            return None, WELL_KNOWN_ERROR_TTL_S
        try:
            data = json.loads(response.body)
        except (ValueError, RecursionError):
            return None, WELL_KNOWN_ERROR_TTL_S
        delegated = data.get("m.server") if isinstance(data, dict) else None
        if not isinstance(delegated, str) or not is_valid_server_name(delegated):
            return None, WELL_KNOWN_ERROR_TTL_S
        return delegated, _cache_ttl(response.headers.get("cache-control", ""))
    return None, WELL_KNOWN_ERROR_TTL_S


def well_known_server(hostname: str) -> str | None:
    """The ``m.server`` of ``https://<hostname>/.well-known/matrix/server``, cached."""
    key = f"federation:well-known:{hostname}"
    cached = cache.get(key)
    if cached is not None:
        return str(cached) or None
    delegated, ttl = _fetch_well_known(hostname)
    cache.set(key, delegated or "", ttl)
    return delegated


def resolve(server_name: str) -> list[Target]:
    """The targets to try, in order, for a request to ``server_name``."""
    override = settings.FEDERATION_URL_OVERRIDES.get(server_name)
    if override:
        return [override_target(override)]
    if not is_valid_server_name(server_name):
        raise DiscoveryError(f"{server_name!r} is not a valid server name")
    host, port = split_port(server_name)
    # Step 1: an IP literal, with its port or 8448.
    address = _ip_literal(host)
    if address is not None:
        return [Target("https", address, port or DEFAULT_PORT, address, server_name)]
    # Step 2: a host name with an explicit port.
    if port is not None:
        return [Target("https", host, port, host, server_name)]
    # Step 3: .well-known delegation.
    delegated = well_known_server(host)
    if delegated is not None:
        d_host, d_port = split_port(delegated)
        d_address = _ip_literal(d_host)
        if d_address is not None:  # 3.1
            return [Target("https", d_address, d_port or DEFAULT_PORT, d_address, delegated)]
        if d_port is not None:  # 3.2
            return [Target("https", d_host, d_port, d_host, delegated)]
        # 3.3, 3.4, then 3.5.
        return _srv_targets(d_host, d_host) or [
            Target("https", d_host, DEFAULT_PORT, d_host, d_host)
        ]
    # Steps 4, 5, then 6.
    return _srv_targets(host, host) or [Target("https", host, DEFAULT_PORT, host, host)]
