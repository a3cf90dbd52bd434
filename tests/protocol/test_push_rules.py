"""The predefined push rules, a client's rule checked, and a user's changes merged into
the ruleset GET /pushrules returns (pure; no database)."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.errors import MatrixError
from protocol.push import rules
from protocol.push.evaluator import CompiledRules, PushEvent
from protocol.push.rules import (
    check_actions,
    check_conditions,
    check_rule,
    delete_rule,
    predefined_rules,
    put_rule,
    ruleset,
    set_attribute,
)

ALICE = "@alice:example.org"


def ids(rule_list: list[dict[str, Any]]) -> list[str]:
    return [rule["rule_id"] for rule in rule_list]


def errcode(excinfo: pytest.ExceptionInfo[MatrixError]) -> str:
    return excinfo.value.errcode


def test_predefined_rules_in_the_specs_order() -> None:
    predefined = predefined_rules(ALICE)
    assert list(predefined) == ["override", "content", "room", "sender", "underride"]
    assert ids(predefined["override"]) == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.is_room_mention",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    # v1.17 removed .m.rule.contains_user_name, the only content rule.
    assert predefined["content"] == []
    assert ids(predefined["underride"]) == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]


def test_predefined_rules_match_the_spec_definitions() -> None:
    predefined = predefined_rules(ALICE)
    master, invite = predefined["override"][0], predefined["override"][2]
    assert master == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key", "pattern": ALICE}
    assert invite["actions"] == ["notify", {"set_tweak": "sound", "value": "default"}]
    mention = predefined["override"][4]
    assert mention["conditions"] == [
        {"kind": "event_property_contains", "key": "content.m\\.mentions.user_ids", "value": ALICE}
    ]
    assert mention["actions"] == [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
    ]
    for kind in predefined.values():
        for rule in kind:
            assert rule["default"] is True
            assert rule["enabled"] is (rule["rule_id"] != ".m.rule.master")


def test_ruleset_without_changes_is_the_predefined_one() -> None:
    assert ruleset(ALICE, None) == predefined_rules(ALICE)
    assert ruleset(ALICE, {}) == predefined_rules(ALICE)


def test_user_rules_come_before_defaults_but_after_master() -> None:
    changes = put_rule(None, "override", check_rule("override", "mine", {"actions": []}))
    changes = put_rule(changes, "underride", check_rule("underride", "low", {"actions": []}))
    merged = ruleset(ALICE, changes)
    assert ids(merged["override"])[:3] == [".m.rule.master", "mine", ".m.rule.suppress_notices"]
    assert ids(merged["underride"])[:2] == ["low", ".m.rule.call"]
    assert merged["override"][1] == {
        "rule_id": "mine",
        "default": False,
        "enabled": True,
        "conditions": [],
        "actions": [],
    }


def test_put_orders_new_rules_first_and_honours_before_and_after() -> None:
    def put(changes: Any, rule_id: str, **where: str) -> dict[str, Any]:
        rule = check_rule("content", rule_id, {"pattern": rule_id, "actions": ["notify"]})
        return put_rule(changes, "content", rule, **where)

    changes = put(None, "a")
    changes = put(changes, "b")
    assert ids(ruleset(ALICE, changes)["content"]) == ["b", "a"]
    changes = put(changes, "c", after="a")
    assert ids(ruleset(ALICE, changes)["content"]) == ["b", "a", "c"]
    changes = put(changes, "d", before="a")
    assert ids(ruleset(ALICE, changes)["content"]) == ["b", "d", "a", "c"]
    # Updating keeps the place; updating with before/after moves it.
    changes = put(changes, "a")
    assert ids(ruleset(ALICE, changes)["content"]) == ["b", "d", "a", "c"]
    changes = put(changes, "b", after="c")
    assert ids(ruleset(ALICE, changes)["content"]) == ["d", "a", "c", "b"]
    # Both given: before decides.
    changes = put(changes, "e", before="d", after="b")
    assert ids(ruleset(ALICE, changes)["content"]) == ["e", "d", "a", "c", "b"]


@pytest.mark.parametrize(
    "where", [{"before": "nope"}, {"after": ".m.rule.message"}, {"before": "self"}]
)
def test_put_relative_to_an_unknown_or_default_rule_is_refused(where: dict[str, str]) -> None:
    changes = put_rule(None, "underride", check_rule("underride", "other", {"actions": []}))
    rule = check_rule("underride", "self", {"actions": []})
    with pytest.raises(MatrixError) as excinfo:
        put_rule(changes, "underride", rule, **where)
    assert errcode(excinfo) == "M_UNKNOWN"
    assert excinfo.value.status == 400


def test_delete_rule() -> None:
    changes = put_rule(None, "override", check_rule("override", "x", {"actions": []}))
    assert ids(ruleset(ALICE, delete_rule(changes, "override", "x"))["override"]) == ids(
        predefined_rules(ALICE)["override"]
    )
    with pytest.raises(MatrixError) as excinfo:
        delete_rule(changes, "override", "y")
    assert errcode(excinfo) == "M_NOT_FOUND"
    with pytest.raises(MatrixError) as excinfo:
        delete_rule(changes, "override", ".m.rule.master")
    assert errcode(excinfo) == "M_INVALID_PARAM"


def test_enabled_and_actions_of_default_and_own_rules() -> None:
    changes = set_attribute(None, "override", ".m.rule.master", "enabled", True)
    changes = set_attribute(changes, "underride", ".m.rule.message", "actions", [])
    changes = put_rule(changes, "sender", check_rule("sender", ALICE, {"actions": ["notify"]}))
    changes = set_attribute(changes, "sender", ALICE, "enabled", False)
    merged = ruleset(ALICE, changes)
    assert merged["override"][0]["enabled"] is True
    message = next(r for r in merged["underride"] if r["rule_id"] == ".m.rule.message")
    assert message["actions"] == []
    assert message["default"] is True
    assert merged["sender"] == [
        {"rule_id": ALICE, "default": False, "enabled": False, "actions": ["notify"]}
    ]
    with pytest.raises(MatrixError) as excinfo:
        set_attribute(changes, "override", "missing", "enabled", True)
    assert errcode(excinfo) == "M_NOT_FOUND"
    with pytest.raises(MatrixError) as excinfo:
        # A predefined ID under the wrong kind is no rule at all.
        set_attribute(changes, "content", ".m.rule.master", "enabled", True)
    assert errcode(excinfo) == "M_NOT_FOUND"


def test_edits_do_not_change_their_input() -> None:
    original = put_rule(None, "override", check_rule("override", "x", {"actions": []}))
    snapshot = repr(original)
    set_attribute(original, "override", "x", "enabled", False)
    delete_rule(original, "override", "x")
    put_rule(original, "override", check_rule("override", "y", {"actions": []}))
    assert repr(original) == snapshot


# --- checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "rule_id", "code"),
    [
        ("override", ".mine", "M_INVALID_PARAM"),
        ("override", "a/b", "M_INVALID_PARAM"),
        ("override", "a\\b", "M_INVALID_PARAM"),
        ("override", "", "M_INVALID_PARAM"),
        ("room", "", "M_INVALID_PARAM"),
        ("global", "x", "M_INVALID_PARAM"),
    ],
)
def test_check_rule_refuses_bad_ids(kind: str, rule_id: str, code: str) -> None:
    with pytest.raises(MatrixError) as excinfo:
        check_rule(kind, rule_id, {"actions": [], "pattern": "x"})
    assert errcode(excinfo) == code


@pytest.mark.parametrize(
    ("kind", "rule_id"),
    [
        # "The rule_id is a unique string within the kind of rule": only a leading dot,
        # slashes and backslashes are refused, whatever the kind.
        ("room", "#spam:example.com"),
        ("room", "not-a-room"),
        ("sender", "!room:example.org"),
        ("content", "\u0442\u0435\u0441\u0442"),
        ("override", "a b#c?d%e:f"),
    ],
)
def test_check_rule_takes_any_other_id(kind: str, rule_id: str) -> None:
    assert check_rule(kind, rule_id, {"actions": [], "pattern": "x"})["rule_id"] == rule_id


def _message(room_id: str) -> PushEvent:
    event = {"type": "m.room.message", "room_id": room_id, "sender": "@b:x", "content": {}}
    return PushEvent(event, room_member_count=5, sender_power_level=0)


def test_a_room_rule_named_after_no_room_matches_nothing() -> None:
    rule = check_rule("room", "#spam:example.com", {"actions": ["notify"]})
    compiled = CompiledRules(ruleset(ALICE, put_rule(None, "room", rule)), owner=ALICE)
    assert compiled.match(_message("!r:example.com"), ALICE) == ".m.rule.message"


def test_kept_historical_actions_are_ignored_by_the_evaluator() -> None:
    # "a rule with ["dont_notify"] actions MUST be equivalent to a rule with an empty
    # actions array": the room's rule matches and notifies nothing.
    rule = check_rule("room", "!r:example.com", {"actions": ["dont_notify"]})
    changes = put_rule(None, "room", rule)
    assert ruleset(ALICE, changes)["room"][0]["actions"] == ["dont_notify"]
    compiled = CompiledRules(ruleset(ALICE, changes), owner=ALICE)
    event = _message("!r:example.com")
    assert compiled.match(event, ALICE) == "!r:example.com"
    assert compiled.actions(event, ALICE) == []


def test_check_rule_keeps_the_parameters_of_its_kind() -> None:
    body = {"actions": ["notify"], "pattern": "cake", "conditions": [], "extra": 1}
    assert check_rule("content", "cake", body) == {
        "rule_id": "cake",
        "enabled": True,
        "actions": ["notify"],
        "pattern": "cake",
    }
    assert check_rule("override", "o", body) == {
        "rule_id": "o",
        "enabled": True,
        "actions": ["notify"],
        "conditions": [],
    }
    assert check_rule("room", "!r:example.org", body) == {
        "rule_id": "!r:example.org",
        "enabled": True,
        "actions": ["notify"],
    }
    # Conditions are optional: "A rule with no conditions always matches."
    assert check_rule("underride", "u", {"actions": []})["conditions"] == []


@pytest.mark.parametrize(
    ("kind", "body", "code"),
    [
        ("content", {"actions": []}, "M_MISSING_PARAM"),
        ("content", {"actions": [], "pattern": 5}, "M_BAD_JSON"),
        ("override", {}, "M_MISSING_PARAM"),
        ("override", {"actions": "notify"}, "M_BAD_JSON"),
        ("override", {"actions": [], "conditions": {}}, "M_BAD_JSON"),
    ],
)
def test_check_rule_refuses_bad_bodies(kind: str, body: dict[str, Any], code: str) -> None:
    with pytest.raises(MatrixError) as excinfo:
        check_rule(kind, "r", body)
    assert errcode(excinfo) == code


def test_check_actions() -> None:
    # Historical actions are kept as sent (the evaluator ignores them).
    assert check_actions(["notify", "dont_notify", "coalesce"]) == [
        "notify",
        "dont_notify",
        "coalesce",
    ]
    assert check_actions([{"set_tweak": "sound", "value": "bing"}]) == [
        {"set_tweak": "sound", "value": "bing"}
    ]
    for bad in (["explode"], [{"value": 1}], [3], "notify"):
        with pytest.raises(MatrixError):
            check_actions(bad)


def test_check_conditions() -> None:
    good = [
        {"kind": "event_match", "key": "content.body", "pattern": "beer"},
        {"kind": "room_member_count", "is": "<=10"},
        {"kind": "event_property_is", "key": "content.x", "value": None},
        {"kind": "event_property_contains", "key": "content.x", "value": 3},
        {"kind": "sender_notification_permission", "key": "room"},
        {"kind": "contains_display_name"},
        {"kind": "org.example.unknown", "anything": [1]},
    ]
    assert check_conditions(good) == good
    for bad in (
        [{"key": "type"}],
        ["event_match"],
        [{"kind": "event_match", "key": "type"}],
        [{"kind": "event_property_is", "key": "content.x", "value": 1.5}],
        [{"kind": "event_property_is", "key": "content.x", "value": 2**53}],
        [{"kind": "event_property_contains", "key": "content.x"}],
        [{"kind": "room_member_count", "is": "=2"}],
        [{"kind": "sender_notification_permission"}],
    ):
        with pytest.raises(MatrixError):
            check_conditions(bad)


def test_parse_member_count() -> None:
    assert rules.parse_member_count("2") == ("==", 2)
    assert rules.parse_member_count(">=10") == (">=", 10)
    assert rules.parse_member_count("<1") == ("<", 1)
    assert rules.parse_member_count("> 1") is None
    assert rules.parse_member_count("٣") is None
