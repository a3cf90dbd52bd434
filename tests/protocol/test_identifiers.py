"""Identifier grammar (appendices, "Identifier Grammar"), with the spec's examples."""

import pytest

from protocol.errors import MatrixError
from protocol.identifiers import (
    byte_length,
    check_bounded,
    is_namespaced_identifier,
    is_valid_event_id,
    is_valid_room_id,
    is_valid_server_name,
    is_valid_user_id,
    is_valid_user_localpart,
    parse_room_alias,
    parse_user_id,
    split_port,
)


@pytest.mark.parametrize(
    "name",
    [
        "matrix.org",
        "matrix.org:8888",
        "1.2.3.4",
        "1.2.3.4:1234",
        "[1234:5678::abcd]",
        "[1234:5678::abcd]:5678",
        "localhost:8008",
    ],
)
def test_the_specs_example_server_names_are_valid(name: str) -> None:
    assert is_valid_server_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "matrix.org:",
        "matrix.org:99999",
        "matrix.org:12a",
        "exa mple.org",
        "[1234:5678::abcd",
        "[not-an-ip]",
        "256.1.1.1",
        "a" * 256,
        "example.org/path",
    ],
)
def test_malformed_server_names_are_refused(name: str) -> None:
    assert not is_valid_server_name(name)


def test_split_port() -> None:
    assert split_port("example.org") == ("example.org", None)
    assert split_port("example.org:8448") == ("example.org", 8448)
    assert split_port("[::1]:8008") == ("[::1]", 8008)
    with pytest.raises(ValueError):
        split_port("example.org:port")


def test_user_ids_issued_here_use_the_lower_case_grammar() -> None:
    assert is_valid_user_localpart("alice.smith_1=+/-")
    assert not is_valid_user_localpart("Alice")
    assert not is_valid_user_localpart("al ice")
    assert not is_valid_user_localpart("")
    assert is_valid_user_id("@alice:example.org", historical=False)
    assert not is_valid_user_id("@Alice:example.org", historical=False)


def test_historical_user_ids_from_other_servers_are_accepted() -> None:
    ident = parse_user_id("@Alice!#:example.org")
    assert (ident.localpart, ident.domain) == ("Alice!#", "example.org")
    assert not is_valid_user_id("@:example.org")
    assert not is_valid_user_id("alice:example.org")
    assert not is_valid_user_id("@alice")


def test_a_trailing_newline_is_not_part_of_any_grammar() -> None:
    # ``$`` in a regular expression matches before a final "\\n"; none of these may.
    assert not is_valid_user_localpart("alice-\n")
    assert not is_valid_user_id("@alice\n:example.org")
    assert not is_valid_user_id("@alice\n:example.org", historical=False)
    assert not is_valid_user_id("@alice:example.org\n")
    assert not is_valid_server_name("example.org\n")
    assert not is_valid_server_name("1.2.3.4\n")
    assert not is_namespaced_identifier("m.example\n")


def test_a_user_id_may_not_exceed_255_bytes() -> None:
    domain = "example.org"
    localpart = "a" * (255 - len(domain) - 2)
    assert is_valid_user_id(f"@{localpart}:{domain}")
    assert not is_valid_user_id(f"@{localpart}a:{domain}")


def test_room_ids_events_ids_and_aliases() -> None:
    assert is_valid_room_id("!opaque:example.org")
    # Room version 12: the room ID is the create event's hash, without a domain.
    assert is_valid_room_id("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM")
    assert not is_valid_room_id("#alias:example.org")
    assert not is_valid_room_id("!")
    assert is_valid_event_id("$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk")
    assert not is_valid_event_id("acR1l0raoZnm60CBwAVgqbZqoO")
    alias = parse_room_alias("#room:example.org:8448")
    assert (alias.localpart, alias.domain) == ("room", "example.org:8448")
    with pytest.raises(ValueError):
        parse_room_alias("#:example.org")


@pytest.mark.parametrize("localpart", ["tea and cake", "caf\u00e9", "\U0001f375", "a#b"])
def test_an_alias_localpart_is_any_code_point_but_colon_and_nul(localpart: str) -> None:
    # Appendices, "Room Aliases": "any valid non-surrogate Unicode codepoints except `:`
    # and `NUL`".
    assert parse_room_alias(f"#{localpart}:example.org").localpart == localpart


@pytest.mark.parametrize("localpart", ["tea\x00cake", "lone\ud800surrogate"])
def test_an_alias_localpart_refuses_nul_and_surrogates(localpart: str) -> None:
    with pytest.raises(ValueError):
        parse_room_alias(f"#{localpart}:example.org")


def test_common_namespaced_identifiers() -> None:
    assert is_namespaced_identifier("m.login.dummy")
    assert is_namespaced_identifier("com.example.feature-x_1")
    assert not is_namespaced_identifier("M.upper")
    assert not is_namespaced_identifier("1abc")
    assert not is_namespaced_identifier("a" * 256)


def test_lengths_are_counted_in_utf8_bytes_and_never_fail() -> None:
    assert byte_length("abc") == 3
    assert byte_length("é") == 2
    assert byte_length("\U0001f600") == 4
    # A lone surrogate cannot be UTF-8, but the count is still total.
    assert byte_length("\ud800") == 3
    assert not is_valid_room_id("!\ud800" * 100)


def test_check_bounded_accepts_the_limit_and_refuses_one_byte_more() -> None:
    assert check_bounded("a" * 255, "x") == "a" * 255
    with pytest.raises(MatrixError) as refused:
        check_bounded("é" * 128, "The type")
    assert (refused.value.errcode, refused.value.status) == ("M_INVALID_PARAM", 400)
    assert refused.value.error == "The type is longer than 255 bytes"
    with pytest.raises(MatrixError) as refused:
        check_bounded("a" * 11, "'reason'", limit=10, errcode="M_BAD_JSON")
    assert refused.value.errcode == "M_BAD_JSON"
