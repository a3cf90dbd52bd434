"""protocol/event_filters.py: EventFilter matching (Client-Server API, "Filtering")."""

from __future__ import annotations

from protocol.event_filters import event_allowed, type_allowed


def test_an_empty_filter_lets_everything_through() -> None:
    assert event_allowed({}, "m.room.message", "@a:x")


def test_types_with_a_trailing_star_match_prefixes() -> None:
    assert type_allowed({"types": ["m.room.*"]}, "m.room.message")
    assert not type_allowed({"types": ["m.room.*"]}, "m.presence")
    assert not type_allowed({"types": []}, "m.presence")


def test_not_types_win_over_types() -> None:
    both = {"types": ["m.room.*"], "not_types": ["m.room.member"]}
    assert type_allowed(both, "m.room.message")
    assert not type_allowed(both, "m.room.member")


def test_senders_and_not_senders_are_exact() -> None:
    assert event_allowed({"senders": ["@a:x"]}, "t", "@a:x")
    assert not event_allowed({"senders": ["@a:x"]}, "t", "@b:x")
    assert not event_allowed({"not_senders": ["@a:x"]}, "t", "@a:x")


def test_a_star_anywhere_matches_any_sequence() -> None:
    assert type_allowed({"types": ["m.*.message"]}, "m.room.message")
    assert type_allowed({"types": ["*.message"]}, "org.example.message")
    assert not type_allowed({"types": ["m.*.message"]}, "m.room.messages")
    assert type_allowed({"types": ["a*b*c"]}, "abc")
    assert not type_allowed({"not_types": ["m.*.member"]}, "m.room.member")
    # Other characters are literal: a dot is a dot, not "any character".
    assert not type_allowed({"types": ["m.*.message"]}, "m.roomXmessage")
    assert not type_allowed({"types": ["m.room.(a|b)*"]}, "m.room.a")
