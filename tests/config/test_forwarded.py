"""Whom a request comes from: X-Forwarded-For is believed only from trusted proxies
(config/forwarded.py)."""

from __future__ import annotations

import pytest

from config import options
from config.forwarded import client_address, forwarded_https, is_trusted_peer, parse_networks

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "proxies", "client"),
    [
        # No trusted proxies (the default): the header means nothing.
        ("127.0.0.1", [b"203.0.113.7"], (), "127.0.0.1"),
        # A peer that is not our proxy cannot forge its address.
        ("198.51.100.4", [b"203.0.113.7"], PROXIES, "198.51.100.4"),
        ("198.51.100.4", [b"203.0.113.7, 127.0.0.1"], PROXIES, "198.51.100.4"),
        # Our proxy, no header: the proxy itself is the client.
        ("127.0.0.1", [], PROXIES, "127.0.0.1"),
        # Our proxy forwarding for a client.
        ("127.0.0.1", [b"203.0.113.7"], PROXIES, "203.0.113.7"),
        # The client's own claim is left of what our proxy appended: ignored.
        ("127.0.0.1", [b"1.1.1.1, 203.0.113.7"], PROXIES, "203.0.113.7"),
        # nginx's "client, proxy" through a chain of our proxies.
        ("127.0.0.1", [b"1.1.1.1, 203.0.113.7, 10.0.0.5"], PROXIES, "203.0.113.7"),
        ("10.2.3.4", [b"203.0.113.7, 127.0.0.1"], PROXIES, "203.0.113.7"),
        # Several header lines are one list, in order.
        ("127.0.0.1", [b"1.1.1.1", b"203.0.113.7, 10.0.0.5"], PROXIES, "203.0.113.7"),
        # Every hop is ours: the request started inside our network.
        ("127.0.0.1", [b"10.0.0.9, 10.0.0.5"], PROXIES, "10.0.0.9"),
        # Ports and IPv6, with or without brackets; IPv4-mapped peers.
        ("127.0.0.1", [b"203.0.113.7:4711"], PROXIES, "203.0.113.7"),
        ("127.0.0.1", [b"[2001:db8::7]:4711"], PROXIES, "2001:db8::7"),
        ("fd00::1", [b"2001:db8::7"], PROXIES, "2001:db8::7"),
        ("::ffff:127.0.0.1", [b"203.0.113.7"], PROXIES, "203.0.113.7"),
        # Garbage where an address should be: the proxy that passed it on.
        ("127.0.0.1", [b"203.0.113.7, unknown, 10.0.0.5"], PROXIES, "10.0.0.5"),
        ("127.0.0.1", [b"nonsense"], PROXIES, "127.0.0.1"),
        ("127.0.0.1", [b""], PROXIES, "127.0.0.1"),
    ],
)
def test_the_client_is_the_right_most_address_that_is_not_our_proxy(
    peer: str, forwarded_for: list[bytes], proxies: tuple, client: str
) -> None:
    assert client_address(peer, forwarded_for, proxies) == client


def test_only_listed_peers_are_trusted() -> None:
    assert is_trusted_peer("10.9.8.7", PROXIES)
    assert is_trusted_peer("::ffff:127.0.0.1", PROXIES)
    assert not is_trusted_peer("127.0.0.2", PROXIES)
    assert not is_trusted_peer("127.0.0.1", ())
    assert not is_trusted_peer("/run/trellis.sock", PROXIES)


@pytest.mark.parametrize(
    ("values", "https"),
    [
        ([b"https"], True),
        ([b"HTTP"], False),
        ([b"http, https"], True),  # the right-most value is our proxy's
        ([b"https", b"http"], False),
        ([b"wss"], None),
        ([], None),
    ],
)
def test_forwarded_proto(values: list[bytes], https: bool | None) -> None:
    assert forwarded_https(values) is https


def test_trusted_proxies_are_read_from_the_environment() -> None:
    values = options.load({"TRELLIS_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"})
    networks = options.as_networks(values["trusted_proxies"], "TRELLIS_TRUSTED_PROXIES")
    assert [str(n) for n in parse_networks(networks)] == ["127.0.0.1/32", "10.0.0.0/8"]

    with pytest.raises(options.ConfigError, match="TRELLIS_TRUSTED_PROXIES"):
        options.as_networks("localhost", "TRELLIS_TRUSTED_PROXIES")
