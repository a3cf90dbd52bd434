"""One POST to a push gateway, through the SSRF guard URL previews and federation use.

A pusher's URL is chosen by a client, so the server must not become a way into its own
network: the host is resolved once, every address must be global (or inside
TRELLIS_PUSH_IP_ALLOWLIST), the connection goes to a checked address (config/outbound.py),
redirects are not followed, and the exchange is bounded in time and size. Plain HTTP is
used only for hosts inside the allow list (the spec: "MUST be an HTTPS URL").
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from config import outbound
from protocol.push.gateway import check_gateway_url

USER_AGENT = "Trellis (Matrix homeserver; push)"


class GatewayRefused(Exception):
    """The URL may not be used at all (scheme, address): retrying cannot help."""


class GatewayUnavailable(Exception):
    """The gateway could not be reached or failed (network, time, 5xx, 429): retry later."""


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    body: Any  # the parsed JSON answer, or None


def _allow() -> list[outbound.IPNetwork]:
    return outbound.parse_networks(settings.PUSH_IP_ALLOWLIST)


def _in_allowlist(address: str, allow: list[outbound.IPNetwork]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in allow)


def check_url(url: str) -> str | None:
    """Why a client may not set ``url`` as its gateway, or None. Checked without DNS when
    the host is a name reached over HTTPS (the address check then happens at delivery);
    plain HTTP needs every address of the host inside the allow list."""
    problem = check_gateway_url(url)
    if problem:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    allow = _allow()
    try:
        literal: outbound.IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if parts.scheme == "http":
        if not allow:
            return "'data.url' must be an HTTPS URL"
        try:
            addresses = (
                [host] if literal else outbound.resolve_allowed(host, parts.port or 80, allow)
            )
        except outbound.OutboundError:
            return "'data.url' must be an HTTPS URL"
        if not all(_in_allowlist(a, allow) for a in addresses):
            return "'data.url' must be an HTTPS URL"
        return None
    if literal is not None and not outbound.address_allowed(literal, allow):
        return "'data.url' must not point to a private or reserved address"
    return None


def post_notification(url: str, body: dict[str, Any]) -> GatewayAnswer:
    """POST ``body`` to the gateway at ``url``. Raises GatewayRefused when the URL or its
    addresses are not allowed, GatewayUnavailable on failures worth retrying."""
    problem = check_gateway_url(url)
    if problem:
        raise GatewayRefused(problem)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    allow = _allow()
    deadline = time.monotonic() + settings.PUSH_TIMEOUT_S
    try:
        addresses = outbound.resolve_allowed(host, port, allow)
    except outbound.AddressRefused as exc:
        raise GatewayRefused(str(exc)) from exc
    except outbound.OutboundError as exc:
        raise GatewayUnavailable(str(exc)) from exc
    if parts.scheme == "http" and not all(_in_allowlist(a, allow) for a in addresses):
        raise GatewayRefused(f"plain HTTP to {host}, which is not in the allow list")
    payload = json.dumps(body).encode()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    last_error: Exception | None = None
    for address in addresses:
        try:
            conn = outbound.pinned_connection(
                parts.scheme, host, port, address, outbound.remaining(deadline)
            )
        except outbound.OutboundError as exc:
            raise GatewayUnavailable(str(exc)) from exc
        try:
            conn.request(
                "POST",
                path,
                body=payload,
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            raw = outbound.read_bounded(conn, response, deadline, settings.PUSH_MAX_RESPONSE_BYTES)
            return _answer(response.status, raw)
        except outbound.OutboundError as exc:
            raise GatewayUnavailable(f"{host}: {exc}") from exc
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
        finally:
            conn.close()
    raise GatewayUnavailable(f"cannot reach {host}: {last_error}")


def _answer(status: int, raw: bytes) -> GatewayAnswer:
    if status >= 500 or status in (408, 429):
        raise GatewayUnavailable(f"status {status}")
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return GatewayAnswer(status, parsed)
