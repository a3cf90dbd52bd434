"""Fetching other people's URLs (previews, and the redirects of other servers' media)
without becoming a proxy into our network.

The address checks, deadlines and size limits are config/outbound.py's (federation uses
the same): every address the host resolves to must be allowed and the connection goes
to a checked one. Redirects are followed by hand, each hop checked the same way.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from config import outbound
from config.outbound import IPAddress, IPNetwork, parse_networks

__all__ = [
    "FetchFailed",
    "FetchRefused",
    "FetchTooLarge",
    "Fetched",
    "Policy",
    "fetch",
    "parse_networks",
]

MAX_REDIRECTS = 5
USER_AGENT = "Trellis (Matrix homeserver; URL previews)"


class FetchRefused(Exception):
    """The URL points somewhere previews must not go."""


class FetchFailed(Exception):
    """The URL could not be fetched (network error, bad status, too large, too slow)."""


class FetchTooLarge(FetchFailed):
    """The answer is longer than the policy's ``max_bytes``."""


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    body: bytes
    content_disposition: str = ""


@dataclass(frozen=True)
class Policy:
    allow: Sequence[IPNetwork]
    deny: Sequence[IPNetwork]
    max_bytes: int
    timeout_s: float


def address_allowed(address: IPAddress, policy: Policy) -> bool:
    return outbound.address_allowed(address, policy.allow, policy.deny)


def _resolve(host: str, port: int, policy: Policy) -> list[str]:
    try:
        return outbound.resolve_allowed(host, port, policy.allow, policy.deny)
    except outbound.AddressRefused as exc:
        raise FetchRefused(f"{host} resolves to a refused address") from exc
    except outbound.OutboundError as exc:
        raise FetchFailed(str(exc)) from exc


def _get_once(
    url: str, policy: Policy, deadline: float, accept: str, user_agent: str
) -> tuple[int, str, dict[str, str], bytes]:
    """One GET: (status, Location, the Content-Type and Content-Disposition, body)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchRefused("only http and https URLs can be previewed")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise FetchRefused("bad port") from None
    addresses = _resolve(parts.hostname, port, policy)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    last_error: Exception | None = None
    for address in addresses:
        try:
            conn = outbound.pinned_connection(
                parts.scheme, parts.hostname, port, address, outbound.remaining(deadline)
            )
        except outbound.OutboundError as exc:
            raise FetchFailed(str(exc)) from exc
        try:
            conn.request("GET", path, headers={"User-Agent": user_agent, "Accept": accept})
            response = conn.getresponse()
            location = response.getheader("Location", "")
            described = {
                "content-type": response.getheader("Content-Type", ""),
                "content-disposition": response.getheader("Content-Disposition", ""),
            }
            body = b""
            if response.status == 200:
                declared = response.getheader("Content-Length", "")
                if declared.isdigit() and int(declared) > policy.max_bytes:
                    raise FetchTooLarge("response too large")
                body = outbound.read_bounded(conn, response, deadline, policy.max_bytes)
            return response.status, location, described, body
        except outbound.ResponseTooLarge as exc:
            raise FetchTooLarge(str(exc)) from exc
        except outbound.OutboundError as exc:
            raise FetchFailed(str(exc)) from exc
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
        finally:
            conn.close()
    raise FetchFailed(f"cannot fetch {parts.hostname}: {last_error}")


def fetch(
    url: str, policy: Policy, *, accept: str = "*/*", user_agent: str = USER_AGENT
) -> Fetched:
    """GET ``url`` under ``policy``, following up to MAX_REDIRECTS checked redirects (a
    redirect back to a URL already visited is a loop, and fails at once)."""
    deadline = time.monotonic() + policy.timeout_s
    seen: set[str] = set()
    for _ in range(MAX_REDIRECTS + 1):
        seen.add(url)
        status, location, described, body = _get_once(url, policy, deadline, accept, user_agent)
        if status in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            if url in seen:
                raise FetchFailed("redirect loop")
            continue
        if status != 200:
            raise FetchFailed(f"status {status}")
        return Fetched(url, described["content-type"], body, described["content-disposition"])
    raise FetchFailed("too many redirects")
