"""Server access control lists (m.room.server_acl): is a server allowed in a room?

Spec: the m.room.server_acl event schema (Client-Server API, "Server Access Control
Lists (ACLs) for rooms"), applied in this order:

1. No m.room.server_acl event in the room's state: allow.
2. An IP address literal, with ``allow_ip_literals`` false: deny.
3. A match in ``deny``: deny.
4. A match in ``allow``: allow.
5. Otherwise: deny.

Patterns are case-insensitive globs (appendices, "Glob-style matching": ``*`` any run
of characters, ``?`` exactly one) matched against the server name without its port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any


def host_of(server_name: str) -> str:
    """The server name without a port: ``[::1]:8448`` -> ``[::1]``, ``a.b:1`` -> ``a.b``."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    return server_name.rsplit(":", 1)[0] if ":" in server_name else server_name


def _is_ip_literal(host: str) -> bool:
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _glob(pattern: str) -> re.Pattern[str]:
    body = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def _patterns(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list):
        return []
    return [pattern for pattern in value if isinstance(pattern, str)]


def server_allowed(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """Whether ``server_name`` may take part in a room whose m.room.server_acl content
    is ``acl_content`` (None: the room has no ACL)."""
    if acl_content is None:
        return True
    host = host_of(server_name)
    # allow_ip_literals defaults to true when missing or not a boolean.
    if acl_content.get("allow_ip_literals") is False and _is_ip_literal(host):
        return False
    if any(_glob(pattern).fullmatch(host) for pattern in _patterns(acl_content, "deny")):
        return False
    return any(_glob(pattern).fullmatch(host) for pattern in _patterns(acl_content, "allow"))
