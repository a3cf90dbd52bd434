"""m.room.server_acl matching (protocol.server_acl), from the event schema's rules."""

from __future__ import annotations

import pytest

from protocol.server_acl import host_of, server_allowed


@pytest.mark.parametrize(
    ("server_name", "host"),
    [
        ("evil.com", "evil.com"),
        ("evil.com:8448", "evil.com"),
        ("[::1]:8448", "[::1]"),
        ("[::1]", "[::1]"),
        ("1.2.3.4:80", "1.2.3.4"),
    ],
)
def test_the_port_is_never_considered(server_name: str, host: str) -> None:
    assert host_of(server_name) == host


def test_without_an_acl_every_server_is_allowed() -> None:
    assert server_allowed(None, "anything.example")


@pytest.mark.parametrize(
    ("content", "server_name", "allowed"),
    [
        ({"allow": ["*"], "deny": ["evil.com"]}, "evil.com:1234", False),
        ({"allow": ["*"], "deny": ["evil.com"]}, "EVIL.com", False),
        ({"allow": ["*"], "deny": ["*.evil.com"]}, "a.evil.com", False),
        ({"allow": ["*"], "deny": ["*.evil.com"]}, "evil.com", True),
        ({"allow": ["good.example"]}, "good.example:8448", True),
        ({"allow": ["good.example"]}, "other.example", False),
        ({"allow": ["?.example"]}, "a.example", True),
        ({"allow": ["?.example"]}, "ab.example", False),
        # No allow list: nobody, the sender included.
        ({"deny": []}, "good.example", False),
        ({}, "good.example", False),
        # Deny wins over allow.
        ({"allow": ["good.example"], "deny": ["good.example"]}, "good.example", False),
        # IP literals: allowed unless allow_ip_literals is false.
        ({"allow": ["*"]}, "1.2.3.4", True),
        ({"allow": ["*"], "allow_ip_literals": False}, "1.2.3.4:8448", False),
        ({"allow": ["*"], "allow_ip_literals": False}, "[::1]:8448", False),
        ({"allow": ["*"], "allow_ip_literals": "no"}, "1.2.3.4", True),
        # Entries that are not strings are ignored; a list that is not one is empty.
        ({"allow": [1, "good.example"]}, "good.example", True),
        ({"allow": "good.example"}, "good.example", False),
    ],
)
def test_the_acl_rules_in_order(content: dict, server_name: str, allowed: bool) -> None:
    assert server_allowed(content, server_name) is allowed
