"""Identifier grammar (appendices, "Identifier Grammar").

Parsing and validation of server names, user IDs, room IDs, room aliases and event
IDs. Functions here are total: they return ``False``/raise ``ValueError`` on bad
input and never touch a store.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from protocol.errors import MatrixError, invalid_param

# Appendices, "Identifier Grammar": user, room and event IDs and room aliases are at
# most 255 bytes; Client-Server API, "Size limits": so are an event's type and state_key.
MAX_ID_BYTES = 255

_DNS_NAME = re.compile(r"^[A-Za-z0-9\-.]{1,255}\Z")
_IPV4 = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\Z")
_IPV6_CHARS = re.compile(r"^[0-9A-Fa-f:.]{2,45}\Z")
_USER_LOCALPART = re.compile(r"^[a-z0-9._=\-/+]+\Z")
# Historical user IDs (appendices, "Historical User IDs"): any printable ASCII
# except ':' — accepted from other servers, never issued here.
_HISTORICAL_LOCALPART = re.compile(r"^[\x21-\x39\x3b-\x7e]+\Z")
_NAMESPACED = re.compile(r"^[a-z][a-z0-9\-_.]{0,254}\Z")


def byte_length(value: str) -> int:
    """The length of ``value`` in UTF-8, the unit of the spec's size limits."""
    return len(value.encode("utf-8", "surrogatepass"))


def check_bounded(
    value: str,
    what: str,
    *,
    limit: int = MAX_ID_BYTES,
    errcode: str = "M_INVALID_PARAM",
    status: int | None = None,
) -> str:
    """``value`` if it is at most ``limit`` bytes of UTF-8, else a Matrix error.

    Every identifier the spec bounds, and every string kept in a bounded column, is
    checked with this where it enters, so an over-long one is refused the same way on
    every database instead of being truncated (PostgreSQL) or stored whole (SQLite).
    """
    if byte_length(value) > limit:
        raise MatrixError(errcode, f"{what} is longer than {limit} bytes", status=status)
    return value


def split_port(server_name: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` into host and port; raise ValueError if malformed."""
    if server_name.startswith("["):
        end = server_name.find("]")
        if end == -1:
            raise ValueError("unterminated IPv6 literal")
        host, rest = server_name[: end + 1], server_name[end + 1 :]
    else:
        host, sep, port_part = server_name.partition(":")
        rest = sep + port_part
    if not rest:
        return host, None
    if not rest.startswith(":") or not re.fullmatch(r"\d{1,5}", rest[1:]):
        raise ValueError("invalid port")
    port = int(rest[1:])
    if port > 65535:
        raise ValueError("port out of range")
    return host, port


def is_valid_server_name(server_name: str) -> bool:
    """True if ``server_name`` matches the spec's ``server_name`` grammar."""
    try:
        host, _port = split_port(server_name)
    except ValueError:
        return False
    if host.startswith("["):
        literal = host[1:-1]
        if not _IPV6_CHARS.match(literal):
            return False
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return False
        return True
    if _IPV4.match(host):
        return all(0 <= int(part) <= 255 for part in host.split("."))
    return bool(_DNS_NAME.match(host))


@dataclass(frozen=True)
class Identifier:
    sigil: str
    localpart: str
    domain: str

    def __str__(self) -> str:
        return f"{self.sigil}{self.localpart}:{self.domain}"


def parse_identifier(value: str, sigil: str) -> Identifier:
    """Split ``&localpart:domain``; raise ValueError if it is not of that shape."""
    if not isinstance(value, str) or not value.startswith(sigil):
        raise ValueError(f"identifier must start with {sigil!r}")
    if byte_length(value) > MAX_ID_BYTES:
        raise ValueError("identifier is longer than 255 bytes")
    localpart, sep, domain = value[1:].partition(":")
    if not sep:
        raise ValueError("identifier has no domain")
    if not is_valid_server_name(domain):
        raise ValueError("identifier has an invalid server name")
    return Identifier(sigil, localpart, domain)


def is_valid_user_localpart(localpart: str) -> bool:
    """The grammar for user IDs this server issues (lower-case, limited set)."""
    return bool(_USER_LOCALPART.match(localpart))


def parse_user_id(value: str, *, historical: bool = True) -> Identifier:
    """Parse a user ID; ``historical`` accepts the older, wider localpart grammar."""
    ident = parse_identifier(value, "@")
    pattern = _HISTORICAL_LOCALPART if historical else _USER_LOCALPART
    if not ident.localpart or not pattern.match(ident.localpart):
        raise ValueError("invalid user ID localpart")
    return ident


def is_valid_user_id(value: str, *, historical: bool = True) -> bool:
    try:
        parse_user_id(value, historical=historical)
    except ValueError:
        return False
    return True


def parse_room_alias(value: str) -> Identifier:
    """Appendices, "Room Aliases": the localpart is any valid non-surrogate Unicode code
    point except ``:`` and NUL (so spaces are fine)."""
    ident = parse_identifier(value, "#")
    if not ident.localpart:
        raise ValueError("room alias has an empty localpart")
    if any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in ident.localpart):
        raise ValueError("room alias localpart has a NUL or a surrogate")
    return ident


def is_valid_room_id(value: str) -> bool:
    """Room IDs: ``!opaque:domain`` (v1-v11) or ``!hash`` (v12, no domain)."""
    if not isinstance(value, str) or not value.startswith("!"):
        return False
    if byte_length(value) > MAX_ID_BYTES:
        return False
    return len(value) > 1


def require_room_id(value: str) -> str:
    """``value`` if it is a room ID, else M_INVALID_PARAM (a room ID in a path or body)."""
    if not is_valid_room_id(value):
        raise invalid_param(f"Invalid room ID {value!r}")
    return value


def is_valid_event_id(value: str) -> bool:
    return (
        isinstance(value, str)
        and value.startswith("$")
        and len(value) > 1
        and byte_length(value) <= MAX_ID_BYTES
    )


def is_namespaced_identifier(value: str) -> bool:
    """Common Namespaced Identifier Grammar (1..255 chars, ``[a-z][a-z0-9-_.]*``)."""
    return bool(_NAMESPACED.match(value))


def user_id(localpart: str, server_name: str) -> str:
    return f"@{localpart}:{server_name}"
