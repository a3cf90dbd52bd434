"""Push rule evaluation against the spec's examples ("Push Rules", "Conditions",
"Predefined Rules"), without a database."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.push.evaluator import CompiledRules, PushEvent, notifies, tweaks
from protocol.push.paths import canonical_path, flatten, split_path
from protocol.push.rules import predefined_rules

ALICE = "@alice:example.org"
BOB = "@bob:example.org"
ROOM = "!636q39766251:example.com"


def push_event(
    content: dict[str, Any] | None = None,
    *,
    event_type: str = "m.room.message",
    sender: str = BOB,
    members: int = 5,
    power: int = 0,
    notifications: dict[str, Any] | None = None,
    **top: Any,
) -> PushEvent:
    event = {
        "type": event_type,
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$143273582443PhrSn:example.org",
        "content": content if content is not None else {"msgtype": "m.text", "body": "hi"},
        **top,
    }
    return PushEvent(
        event,
        room_member_count=members,
        sender_power_level=power,
        notification_power_levels=notifications,
    )


def override(*conditions: dict[str, Any], actions: list[Any] | None = None) -> CompiledRules:
    rule = {
        "rule_id": "test",
        "enabled": True,
        "default": False,
        "conditions": list(conditions),
        "actions": ["notify"] if actions is None else actions,
    }
    return CompiledRules({"override": [rule]})


def matches(rules: CompiledRules, event: PushEvent, display_name: str | None = None) -> bool:
    return rules.actions(event, ALICE, display_name) is not None


DEFAULTS = CompiledRules(predefined_rules(ALICE), owner=ALICE)


def default_rule(event: PushEvent, user_id: str = ALICE, display_name: str | None = None) -> Any:
    return DEFAULTS.match(event, user_id, display_name)


# --- dot-separated property paths -------------------------------------------------------


def test_paths_escape_dots_and_backslashes_only() -> None:
    assert split_path("content.m\\.relates_to.rel_type") == ["content", "m.relates_to", "rel_type"]
    assert split_path("content.m\\\\foo") == ["content", "m\\foo"]
    # "Other escape sequences are left as-is": \x is a backslash and an x.
    assert split_path("content.m\\x") == ["content", "m\\x"]
    assert canonical_path("content.m\\x") == "content.m\\\\x"
    assert split_path("") == [""]


def test_flatten_walks_objects_and_escapes_names() -> None:
    flat = flatten(
        {
            "type": "m.room.message",
            "content": {"m.relates_to": {"rel_type": "m.thread"}, "a\\b": 1, "list": [1, {}]},
        }
    )
    assert flat == {
        "type": "m.room.message",
        "content.m\\.relates_to.rel_type": "m.thread",
        "content.a\\\\b": 1,
        "content.list": [1, {}],
    }


# --- event_match ------------------------------------------------------------------------


TOPIC = {"kind": "event_match", "key": "content.topic", "pattern": "lunc?*"}


@pytest.mark.parametrize("topic", ["Lunch plans", "LUNCH"])
def test_event_match_spec_example_matches(topic: str) -> None:
    event = push_event({"topic": topic}, event_type="m.room.topic", state_key="")
    assert matches(override(TOPIC), event)


@pytest.mark.parametrize("topic", [" lunch", "lunc", None, 5, ["lunch"]])
def test_event_match_spec_example_does_not_match(topic: Any) -> None:
    event = push_event({"topic": topic}, event_type="m.room.topic", state_key="")
    assert not matches(override(TOPIC), event)


def test_event_match_absent_key_does_not_match_even_star() -> None:
    rules = override({"kind": "event_match", "key": "content.topic", "pattern": "*"})
    assert not matches(rules, push_event({"body": "x"}))
    assert matches(rules, push_event({"topic": ""}))


BODY = {"kind": "event_match", "key": "content.body", "pattern": "ex*ple"}


@pytest.mark.parametrize("body", ["An example event.", "exple", "An exciting triple-whammy"])
def test_event_match_on_body_matches_words(body: str) -> None:
    assert matches(override(BODY), push_event({"body": body}))


@pytest.mark.parametrize("body", ["examples", "an_example", "complex_pleading", "An EXAMPLE2"])
def test_event_match_on_body_needs_word_boundaries(body: str) -> None:
    assert not matches(override(BODY), push_event({"body": body}))


def test_event_match_glob_question_mark_is_one_character() -> None:
    rules = override({"kind": "event_match", "key": "type", "pattern": "m.room.?essage"})
    assert matches(rules, push_event())
    rules = override({"kind": "event_match", "key": "type", "pattern": "m.room.??essage"})
    assert not matches(rules, push_event())


def test_event_match_regex_characters_are_literal() -> None:
    rules = override({"kind": "event_match", "key": "content.body", "pattern": "a.c"})
    assert not matches(rules, push_event({"body": "abc"}))
    assert matches(rules, push_event({"body": "x a.c y"}))


def test_event_match_escaped_key() -> None:
    rules = override(
        {"kind": "event_match", "key": "content.m\\.relates_to.rel_type", "pattern": "m.thread"}
    )
    assert matches(rules, push_event({"m.relates_to": {"rel_type": "m.thread"}}))
    assert not matches(rules, push_event({"m": {"relates_to": {"rel_type": "m.thread"}}}))


# --- event_property_is / event_property_contains --------------------------------------


CREATE = {
    "creator": "@example:example.org",
    "m.federate": True,
    "predecessor": {"event_id": "$something:example.org", "room_id": "!oldroom:example.org"},
    "room_version": "1",
}


def test_event_property_is_spec_example() -> None:
    rules = override({"kind": "event_property_is", "key": "content.m\\.federate", "value": True})
    assert matches(rules, push_event(CREATE, event_type="m.room.create", state_key=""))
    for value in ("true", 1):
        content = {**CREATE, "m.federate": value}
        assert not matches(rules, push_event(content, event_type="m.room.create", state_key=""))


@pytest.mark.parametrize(
    ("value", "event_value", "expected"),
    [
        (None, None, True),
        (1, 1, True),
        (1, True, False),
        (0, False, False),
        ("a", "A", False),
        (1, 1.0, False),
        (2**53, 2**53, False),
    ],
)
def test_event_property_is_compares_exactly(value: Any, event_value: Any, expected: bool) -> None:
    rules = override({"kind": "event_property_is", "key": "content.x", "value": value})
    assert matches(rules, push_event({"x": event_value})) is expected


def test_event_property_is_absent_or_compound_does_not_match() -> None:
    rules = override({"kind": "event_property_is", "key": "content.x", "value": None})
    assert not matches(rules, push_event({"y": None}))
    assert not matches(rules, push_event({"x": []}))


ALIASES = {
    "alias": "#somewhere:localhost",
    "alt_aliases": ["#somewhere:example.org", "#myroom:example.com"],
}


def test_event_property_contains_spec_example() -> None:
    event = push_event(ALIASES, event_type="m.room.canonical_alias", state_key="")
    rules = override(
        {
            "kind": "event_property_contains",
            "key": "content.alt_aliases",
            "value": "#myroom:example.com",
        }
    )
    assert matches(rules, event)
    partial = override(
        {"kind": "event_property_contains", "key": "content.alt_aliases", "value": ":example.com"}
    )
    assert not matches(partial, event)
    not_array = override(
        {
            "kind": "event_property_contains",
            "key": "content.alias",
            "value": "#somewhere:localhost",
        }
    )
    assert not matches(not_array, event)


def test_event_property_contains_keeps_types_apart() -> None:
    rules = override({"kind": "event_property_contains", "key": "content.x", "value": True})
    assert not matches(rules, push_event({"x": [1, "true", {"a": True}]}))
    assert matches(rules, push_event({"x": [1, [True], True]}))


# --- room_member_count / sender_notification_permission / contains_display_name --------


@pytest.mark.parametrize(
    ("spec", "members", "expected"),
    [
        ("2", 2, True),
        ("2", 3, False),
        ("==2", 2, True),
        ("<10", 9, True),
        ("<10", 10, False),
        ("<=10", 10, True),
        (">2", 3, True),
        (">2", 2, False),
        (">=2", 2, True),
        ("=2", 2, False),
        ("two", 2, False),
        ("", 0, False),
    ],
)
def test_room_member_count(spec: str, members: int, expected: bool) -> None:
    rules = override({"kind": "room_member_count", "is": spec})
    assert matches(rules, push_event(members=members)) is expected


@pytest.mark.parametrize(
    ("power", "notifications", "expected"),
    [
        (50, None, True),
        (49, None, False),
        (10, {"room": 10}, True),
        (9, {"room": "10"}, False),
        (100, {"room": 101}, False),
    ],
)
def test_sender_notification_permission(
    power: int, notifications: dict[str, Any] | None, expected: bool
) -> None:
    rules = override({"kind": "sender_notification_permission", "key": "room"})
    event = push_event(power=power, notifications=notifications)
    assert matches(rules, event) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("hello Alice Liddell!", True),
        ("ALICE LIDDELL", True),
        ("alice liddellish", False),
        ("malice liddell", False),
        ("Alice", False),
    ],
)
def test_contains_display_name(body: str, expected: bool) -> None:
    rules = override({"kind": "contains_display_name"})
    assert matches(rules, push_event({"body": body}), "Alice Liddell") is expected
    assert not matches(rules, push_event({"body": body}), None)


def test_rulesets_say_whether_they_read_display_names() -> None:
    assert override({"kind": "contains_display_name"}).uses_display_name
    assert not DEFAULTS.uses_display_name


def test_unknown_and_malformed_conditions_never_match() -> None:
    for condition in (
        {"kind": "org.example.future"},
        {"kind": "event_match", "key": "type"},
        {"kind": "event_match", "pattern": "*"},
        {"kind": "event_property_is", "key": "content.x"},
        {"kind": "event_property_is", "key": "content.x", "value": {"a": 1}},
        {"kind": "room_member_count"},
        {"kind": "sender_notification_permission"},
        {"key": "type", "pattern": "*"},
    ):
        assert not matches(override(condition), push_event({"x": None}, power=100)), condition


def test_a_rule_without_conditions_always_matches() -> None:
    assert matches(override(), push_event(event_type="org.example.anything"))


# --- kinds, order, enabled --------------------------------------------------------------


def test_content_room_and_sender_rules() -> None:
    def rule(rule_id: str, **extra: Any) -> dict[str, Any]:
        return {"rule_id": rule_id, "enabled": True, "actions": [rule_id], **extra}

    compiled = CompiledRules(
        {
            "content": [rule("cake", pattern="cake")],
            "room": [rule(ROOM)],
            "sender": [rule("@spambot:example.org")],
        }
    )
    assert compiled.actions(push_event({"body": "I like cake."}), ALICE) == ["cake"]
    assert compiled.actions(push_event({"body": "I like cakes"}), ALICE) == [ROOM]
    other_room = push_event({"body": "hi"}, room_id="!other:example.com")
    assert compiled.actions(other_room, ALICE) is None
    spam = push_event({"body": "hi"}, sender="@spambot:example.org", room_id="!o:x")
    assert compiled.actions(spam, ALICE) == ["@spambot:example.org"]


def test_kinds_are_checked_in_order_and_disabled_rules_skipped() -> None:
    def rule(rule_id: str, enabled: bool = True) -> dict[str, Any]:
        return {"rule_id": rule_id, "enabled": enabled, "conditions": [], "actions": [rule_id]}

    ruleset = {"underride": [rule("u")], "override": [rule("o1", False), rule("o2")]}
    assert CompiledRules(ruleset).actions(push_event(), ALICE) == ["o2"]
    assert CompiledRules({"underride": [rule("u")]}).actions(push_event(), ALICE) == ["u"]


def test_historical_actions_are_stripped() -> None:
    rules = override(actions=["dont_notify", "coalesce"])
    assert rules.actions(push_event(), ALICE) == []
    assert notifies(rules.actions(push_event(), ALICE)) == (False, False)


def test_own_events_never_match() -> None:
    assert DEFAULTS.actions(push_event(sender=ALICE), ALICE) is None


# --- the predefined rules ---------------------------------------------------------------


def test_plain_message_notifies_without_highlight() -> None:
    event = push_event()
    assert default_rule(event) == ".m.rule.message"
    assert notifies(DEFAULTS.actions(event, ALICE)) == (True, False)


def test_one_to_one_rooms() -> None:
    assert default_rule(push_event(members=2)) == ".m.rule.room_one_to_one"
    encrypted = push_event({"algorithm": "m.megolm.v1.aes-sha2"}, event_type="m.room.encrypted")
    assert default_rule(encrypted) == ".m.rule.encrypted"
    encrypted_dm = push_event({"ciphertext": "x"}, event_type="m.room.encrypted", members=2)
    assert default_rule(encrypted_dm) == ".m.rule.encrypted_room_one_to_one"
    assert tweaks(DEFAULTS.actions(encrypted_dm, ALICE)) == {"sound": "default"}


def test_user_mention_highlights_only_the_mentioned_user() -> None:
    event = push_event({"body": "hey", "m.mentions": {"user_ids": [ALICE]}})
    assert default_rule(event) == ".m.rule.is_user_mention"
    assert notifies(DEFAULTS.actions(event, ALICE)) == (True, True)
    assert tweaks(DEFAULTS.actions(event, ALICE)) == {"sound": "default", "highlight": True}
    # One compiled ruleset serves every user: the mention is about the recipient.
    carol = "@carol:example.org"
    assert DEFAULTS.match(event, carol) == ".m.rule.message"
    assert CompiledRules(predefined_rules(carol), owner=carol).match(event, carol) == (
        ".m.rule.message"
    )


def test_room_mention_needs_the_senders_power() -> None:
    content = {"body": "@room", "m.mentions": {"room": True}}
    assert default_rule(push_event(content, power=50)) == ".m.rule.is_room_mention"
    assert notifies(DEFAULTS.actions(push_event(content, power=50), ALICE)) == (True, True)
    assert default_rule(push_event(content, power=0)) == ".m.rule.message"
    low = push_event(content, power=0, notifications={"room": 0})
    assert default_rule(low) == ".m.rule.is_room_mention"


def test_body_mentions_without_m_mentions_do_not_highlight() -> None:
    # v1.17 removed the legacy rules matching the user's name in the body.
    event = push_event({"body": "alice: @room"})
    assert default_rule(event, display_name="alice") == ".m.rule.message"


def test_suppressing_rules() -> None:
    notice = push_event(
        {"msgtype": "m.notice", "body": "bot", "m.mentions": {"user_ids": [ALICE]}}
    )
    assert default_rule(notice) == ".m.rule.suppress_notices"
    assert notifies(DEFAULTS.actions(notice, ALICE)) == (False, False)
    reaction = push_event(
        {"m.relates_to": {"rel_type": "m.annotation", "event_id": "$x", "key": "👍"}},
        event_type="m.reaction",
    )
    assert default_rule(reaction) == ".m.rule.reaction"
    edit = push_event(
        {
            "body": "* fixed",
            "m.new_content": {"body": "fixed"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"},
            "m.mentions": {"user_ids": [ALICE]},
        }
    )
    # suppress_edits comes after is_user_mention in the spec's list.
    assert default_rule(edit) == ".m.rule.is_user_mention"
    edit_without_mention = push_event(
        {"body": "* fixed", "m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}}
    )
    assert default_rule(edit_without_mention) == ".m.rule.suppress_edits"
    acl = push_event({"allow": ["*"]}, event_type="m.room.server_acl", state_key="")
    assert default_rule(acl) == ".m.rule.room.server_acl"


def test_membership_rules() -> None:
    invite = push_event({"membership": "invite"}, event_type="m.room.member", state_key=ALICE)
    assert default_rule(invite) == ".m.rule.invite_for_me"
    assert tweaks(DEFAULTS.actions(invite, ALICE)) == {"sound": "default"}
    assert default_rule(invite, user_id="@carol:example.org") == ".m.rule.member_event"
    join = push_event({"membership": "join"}, event_type="m.room.member", state_key=BOB)
    assert default_rule(join) == ".m.rule.member_event"
    assert notifies(DEFAULTS.actions(join, ALICE)) == (False, False)


def test_tombstone_and_call() -> None:
    tombstone = push_event(
        {"body": "moved", "replacement_room": "!new:x"},
        event_type="m.room.tombstone",
        state_key="",
    )
    assert default_rule(tombstone) == ".m.rule.tombstone"
    assert notifies(DEFAULTS.actions(tombstone, ALICE)) == (True, True)
    not_state = push_event({"body": "moved"}, event_type="m.room.tombstone")
    assert default_rule(not_state) is None
    call = push_event({"call_id": "c", "version": "1"}, event_type="m.call.invite")
    assert default_rule(call) == ".m.rule.call"
    assert tweaks(DEFAULTS.actions(call, ALICE)) == {"sound": "ring"}


def test_other_events_match_nothing() -> None:
    assert default_rule(push_event({"name": "x"}, event_type="m.room.name", state_key="")) is None


def test_master_rule_silences_everything_when_enabled() -> None:
    ruleset = predefined_rules(ALICE)
    ruleset["override"][0]["enabled"] = True
    compiled = CompiledRules(ruleset, owner=ALICE)
    event = push_event({"body": "hey", "m.mentions": {"user_ids": [ALICE]}})
    assert compiled.match(event, ALICE) == ".m.rule.master"
    assert compiled.actions(event, ALICE) == []


# --- actions ----------------------------------------------------------------------------


def test_notifies_and_tweaks() -> None:
    assert notifies(None) == (False, False)
    assert notifies([]) == (False, False)
    assert notifies(["notify"]) == (True, False)
    assert notifies(["notify", {"set_tweak": "highlight"}]) == (True, True)
    assert notifies(["notify", {"set_tweak": "highlight", "value": False}]) == (True, False)
    assert notifies([{"set_tweak": "highlight", "value": True}]) == (False, True)
    actions = ["notify", {"set_tweak": "sound", "value": "bing"}, {"set_tweak": "x", "value": 1}]
    assert tweaks(actions) == {"sound": "bing", "x": 1}
