"""DNS SRV lookups (RFC 2782) with the standard library only: one UDP question to the
system's name servers (from /etc/resolv.conf), answer parsed here.

Server discovery needs ``_matrix-fed._tcp.<hostname>`` (and the deprecated
``_matrix._tcp.<hostname>``); Python has no SRV resolver of its own and Trellis has no DNS
library in its dependencies.
"""

from __future__ import annotations

import secrets
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

_TYPE_SRV = 33
_CLASS_IN = 1
_MAX_UDP_BYTES = 4096
_FALLBACK_NAMESERVERS = ["127.0.0.1"]


@dataclass(frozen=True, slots=True, order=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


class DnsError(Exception):
    pass


def build_query(name: str, query_id: int) -> bytes:
    """A recursive query for the SRV records of ``name``."""
    header = struct.pack("!HHHHHH", query_id, 0x0100, 1, 0, 0, 0)
    labels = b"".join(
        bytes([len(label)]) + label for label in (part.encode("idna") for part in name.split("."))
    )
    return header + labels + b"\x00" + struct.pack("!HH", _TYPE_SRV, _CLASS_IN)


def _read_name(message: bytes, offset: int) -> tuple[str, int]:
    """A possibly compressed domain name at ``offset``; returns it and the offset after it."""
    labels: list[str] = []
    end = None
    for _ in range(128):  # bounded: a pointer loop must not hang us
        if offset >= len(message):
            raise DnsError("truncated name")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise DnsError("truncated pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), end if end is not None else offset + 1
        labels.append(message[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    raise DnsError("name too long or looping")


def parse_response(message: bytes, query_id: int) -> list[SrvRecord]:
    """The SRV records in an answer, ordered by priority then weight (heaviest first).

    An empty list for NXDOMAIN or no records; DnsError for anything else that went wrong.
    """
    if len(message) < 12:
        raise DnsError("truncated header")
    answer_id, flags, questions, answers, _, _ = struct.unpack("!HHHHHH", message[:12])
    if answer_id != query_id or not flags & 0x8000:
        raise DnsError("not the answer to our question")
    rcode = flags & 0x000F
    if rcode == 3:  # NXDOMAIN
        return []
    if rcode != 0:
        raise DnsError(f"DNS error {rcode}")
    offset = 12
    for _ in range(questions):
        _, offset = _read_name(message, offset)
        offset += 4
    records = []
    for _ in range(answers):
        _, offset = _read_name(message, offset)
        if offset + 10 > len(message):
            raise DnsError("truncated record")
        rtype, rclass, _, length = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        if rtype == _TYPE_SRV and rclass == _CLASS_IN and length >= 7:
            priority, weight, port = struct.unpack("!HHH", message[offset : offset + 6])
            target, _ = _read_name(message, offset + 6)
            # RFC 2782: a target of "." means the service is decidedly not available.
            if target:
                records.append(SrvRecord(priority, -weight, port, target.rstrip(".")))
        offset += length
    return [
        SrvRecord(r.priority, -r.weight, r.port, r.target)
        for r in sorted(records)  # weight was negated to sort heaviest first
    ]


def nameservers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    try:
        lines = resolv_conf.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return _FALLBACK_NAMESERVERS
    servers = [
        line.split()[1]
        for line in lines
        if line.startswith("nameserver") and len(line.split()) > 1
    ]
    return servers[:3] or _FALLBACK_NAMESERVERS


def lookup_srv(name: str, timeout_s: float = 3.0) -> list[SrvRecord]:
    """The SRV records for ``name``; raises DnsError when no name server answered."""
    last_error: Exception | None = None
    for server in nameservers():
        query_id = secrets.randbelow(1 << 16)
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.settimeout(timeout_s)
                sock.connect((server, 53))
                sock.send(build_query(name, query_id))
                return parse_response(sock.recv(_MAX_UDP_BYTES), query_id)
        except (OSError, DnsError, UnicodeError) as exc:
            last_error = exc
    raise DnsError(f"no answer for {name}: {last_error}")
