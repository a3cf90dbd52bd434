"""Who is the client: the connection's peer, or whom a trusted proxy says it forwards for.

Anyone can send ``X-Forwarded-For``, so it is believed only from the reverse proxies the
operator lists (TRELLIS_TRUSTED_PROXIES). A proxy appends the address of whoever
connected to it (nginx's ``$proxy_add_x_forwarded_for``: ``client, proxy1``), after
whatever that party claimed, so only the right-hand end of the list is vouched for:
walking from the right past our own proxies, the first address that is not one of them
is the client. Everything left of it is the client's own claim and is ignored. With no
trusted proxies (the default) the peer is the client and the headers mean nothing.

Framework-free; config/http_server.py applies it to every request Daphne receives.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(items: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``["127.0.0.1", "10.0.0.0/8", "fd00::/8"]`` as networks (a bare address is a /32
    or /128)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _address(text: str) -> IPAddress | None:
    """An address from a forwarded list: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``
    or ``[2001:db8::1]:5678``; None if it is none of these. An IPv4-mapped IPv6 address
    (a dual-stack socket's view of an IPv4 peer) is its IPv4 address."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress | None, proxies: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in proxies)


def is_trusted_peer(peer: str, proxies: Sequence[IPNetwork]) -> bool:
    """Is the connection's peer one of our reverse proxies?"""
    return bool(proxies) and _is_trusted(_address(peer), proxies)


def client_address(peer: str, forwarded_for: Sequence[bytes], proxies: Sequence[IPNetwork]) -> str:
    """The client's address for a request from ``peer`` carrying these
    ``X-Forwarded-For`` header values (in the order received).

    The peer unless it is a trusted proxy; otherwise the right-most forwarded address
    that is not a trusted proxy. If every forwarded address is a trusted proxy, the
    left-most one (the request came from our own network). If the walk meets something
    that is not an address, the proxy that passed it on is the best we know.
    """
    nearest = _address(peer)
    if nearest is None or not forwarded_for or not _is_trusted(nearest, proxies):
        return peer
    hops = [hop for value in forwarded_for for hop in value.decode("latin-1").split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        nearest = address
        if not _is_trusted(address, proxies):
            break
    return str(nearest)


def forwarded_https(forwarded_proto: Sequence[bytes]) -> bool | None:
    """Whether ``X-Forwarded-Proto`` (from a trusted proxy) says the client used HTTPS:
    the right-most value, the one our proxy set; None if it names neither scheme."""
    values = [p.strip().lower() for v in forwarded_proto for p in v.decode("latin-1").split(",")]
    if not values or values[-1] not in ("http", "https"):
        return None
    return values[-1] == "https"
