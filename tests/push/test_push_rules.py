"""The nine /pushrules operations through HTTP (Client-Server API, "Push Rules: API"),
with the spec's examples, and every refusal."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import MatrixTestClient, Persona

ROOM = "!dj234r78wl45Gh4D:matrix.org"
SPAMBOT = "@spambot:matrix.org"


def rules_path(kind: str = "", rule_id: str = "", attribute: str = "") -> str:
    path = "pushrules/global/"
    if kind:
        path += f"{kind}/{quote(rule_id, safe='')}"
    if attribute:
        path += f"/{attribute}"
    return path


def put_rule(
    api: MatrixTestClient, who: Persona, kind: str, rule_id: str, body: Any, query: str = ""
) -> Any:
    return api.put(rules_path(kind, rule_id) + query, body, token=who.access_token)


def ruleset(api: MatrixTestClient, who: Persona) -> dict[str, list[dict[str, Any]]]:
    response = api.get(rules_path(), token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, list[dict[str, Any]]] = response.body
    return body


def ids(rules: list[dict[str, Any]]) -> list[str]:
    return [rule["rule_id"] for rule in rules]


# --- GET all ---------------------------------------------------------------------------


def test_get_all_rules_has_the_global_ruleset(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("pushrules/", token=alice.access_token)
    assert response.status == 200
    assert set(response.body) == {"global"}
    rules = response.body["global"]
    assert set(rules) == {"override", "content", "room", "sender", "underride"}
    assert ids(rules["override"]) == [
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
    assert ids(rules["underride"]) == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]
    assert rules["content"] == rules["room"] == rules["sender"] == []
    # The rules naming the user name this user.
    mention = rules["override"][4]
    assert mention["conditions"][0]["value"] == alice.user_id
    assert rules["override"][2]["conditions"][2]["pattern"] == alice.user_id
    assert ruleset(api, alice) == rules


def test_old_prefix(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("/_matrix/client/r0/pushrules/", token=alice.access_token)
    assert response.status == 200
    assert "global" in response.body


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        # The spec's paths are /pushrules/ and /pushrules/global/, with the slash; other
        # paths are no endpoint: "M_UNRECOGNIZED [...] 404 [...] if the endpoint is not
        # implemented or a 405 [...] if the endpoint is implemented, but the incorrect
        # HTTP method is used" (sytest wants 400 for several of them, as Synapse answers).
        ("GET", "pushrules", 404),
        ("GET", "pushrules/global", 404),
        ("GET", "pushrules/global/room", 404),
        ("GET", "pushrules/not_a_scope/", 404),
        ("GET", "pushrules/global/override/.m.rule.master/not_an_attr", 404),
        ("PUT", "pushrules/", 405),
        ("PUT", "pushrules/global", 404),
        ("PUT", "pushrules/global/room", 404),
        ("PUT", "pushrules/not_a_scope/room/%23spam:example.com", 404),
        ("PUT", "pushrules/global/override/.m.rule.master/not_an_attr", 404),
    ],
)
def test_paths_that_are_no_endpoint(
    api: MatrixTestClient, alice: Persona, method: str, path: str, status: int
) -> None:
    response = api.request(method, path, {"enabled": True}, token=alice.access_token)
    assert (response.status, response.errcode) == (status, "M_UNRECOGNIZED")


def test_rules_of_one_kind(api: MatrixTestClient, alice: Persona) -> None:
    # GET /pushrules/global/{kind}/ (Synapse's; the spec's {ruleId} left empty) lists the
    # kind's rules as /pushrules/global/ has them.
    put_rule(api, alice, "content", "cake", {"pattern": "cake", "actions": ["notify"]})
    for kind, rules in ruleset(api, alice).items():
        response = api.get(f"pushrules/global/{kind}/", token=alice.access_token)
        assert (response.status, response.body) == (200, rules), kind
    assert ids(api.get("pushrules/global/content/", token=alice.access_token).body) == ["cake"]
    unknown = api.get("pushrules/global/not_a_kind/", token=alice.access_token)
    assert (unknown.status, unknown.errcode) == (400, "M_INVALID_PARAM")


def test_an_empty_rule_id(api: MatrixTestClient, alice: Persona) -> None:
    # PUT /pushrules/global/{kind}/{ruleId} with ruleId "": an invalid rule ID.
    before = ruleset(api, alice)
    response = api.put("pushrules/global/room/", {"actions": []}, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    response = api.delete("pushrules/global/room/", token=alice.access_token)
    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    assert ruleset(api, alice) == before


def test_push_rules_need_a_token(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get("pushrules/").errcode == "M_MISSING_TOKEN"
    assert api.put(rules_path("override", "x"), {"actions": []}).errcode == "M_MISSING_TOKEN"


# --- PUT, GET one, DELETE ---------------------------------------------------------------


def test_spec_examples(api: MatrixTestClient, alice: Persona) -> None:
    # "To create a rule that suppresses notifications for the room with ID ..."
    assert put_rule(api, alice, "room", ROOM, {"actions": []}).status == 200
    # "To suppress notifications for the user @spambot:matrix.org"
    assert put_rule(api, alice, "sender", SPAMBOT, {"actions": []}).status == 200
    # "To always notify for messages that contain the work 'cake' ..."
    cake = {
        "pattern": "cake",
        "actions": ["notify", {"set_tweak": "sound", "value": "cakealarm.wav"}],
    }
    assert put_rule(api, alice, "content", "SSByZWFsbHkgbGlrZSBjYWtl", cake).status == 200
    # "... superseding the previous rule"
    lie = {"pattern": "cake*lie", "actions": ["notify"]}
    response = put_rule(
        api,
        alice,
        "content",
        "U3BvbmdlIGNha2UgaXMgYmVzdA",
        lie,
        "?before=SSByZWFsbHkgbGlrZSBjYWtl",
    )
    assert response.status == 200
    # "... with greater importance than the room, sender and content rules"
    beer = {
        "conditions": [
            {"kind": "event_match", "key": "content.body", "pattern": "beer"},
            {"kind": "room_member_count", "is": "<=10"},
        ],
        "actions": ["notify", {"set_tweak": "sound", "value": "beeroclock.wav"}],
    }
    assert put_rule(api, alice, "override", "U2VlIHlvdSBpbiBUaGUgRHVrZQ", beer).status == 200

    rules = ruleset(api, alice)
    assert rules["room"] == [{"rule_id": ROOM, "default": False, "enabled": True, "actions": []}]
    assert rules["sender"] == [
        {"rule_id": SPAMBOT, "default": False, "enabled": True, "actions": []}
    ]
    assert rules["content"] == [
        {
            "rule_id": "U3BvbmdlIGNha2UgaXMgYmVzdA",
            "default": False,
            "enabled": True,
            "pattern": "cake*lie",
            "actions": ["notify"],
        },
        {"rule_id": "SSByZWFsbHkgbGlrZSBjYWtl", "default": False, "enabled": True, **cake},
    ]
    # User-defined rules before the server-default ones, except .m.rule.master.
    assert ids(rules["override"])[:3] == [
        ".m.rule.master",
        "U2VlIHlvdSBpbiBUaGUgRHVrZQ",
        ".m.rule.suppress_notices",
    ]
    assert rules["override"][1] == {
        "rule_id": "U2VlIHlvdSBpbiBUaGUgRHVrZQ",
        "default": False,
        "enabled": True,
        **beer,
    }


def test_get_one_rule(api: MatrixTestClient, alice: Persona) -> None:
    put_rule(api, alice, "content", "nocake", {"pattern": "cake*lie", "actions": []})
    response = api.get(rules_path("content", "nocake"), token=alice.access_token)
    assert response.status == 200
    # The OpenAPI's example response.
    assert response.body == {
        "actions": [],
        "pattern": "cake*lie",
        "rule_id": "nocake",
        "enabled": True,
        "default": False,
    }
    master = api.get(rules_path("override", ".m.rule.master"), token=alice.access_token)
    assert master.body == {
        "rule_id": ".m.rule.master",
        "default": True,
        "enabled": False,
        "conditions": [],
        "actions": [],
    }


@pytest.mark.parametrize(
    ("kind", "rule_id"),
    [("content", "missing"), ("override", "nocake"), ("content", ".m.rule.master")],
)
def test_get_an_unknown_rule_is_not_found(
    api: MatrixTestClient, alice: Persona, kind: str, rule_id: str
) -> None:
    put_rule(api, alice, "content", "nocake", {"pattern": "cake", "actions": []})
    for attribute in ("", "enabled", "actions"):
        response = api.get(rules_path(kind, rule_id, attribute), token=alice.access_token)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_rules_are_per_user(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    put_rule(api, alice, "sender", SPAMBOT, {"actions": []})
    assert ruleset(api, bob)["sender"] == []
    assert api.get(rules_path("sender", SPAMBOT), token=bob.access_token).status == 404


def test_put_replaces_and_keeps_the_place(api: MatrixTestClient, alice: Persona) -> None:
    for rule_id in ("a", "b", "c"):
        put_rule(api, alice, "underride", rule_id, {"actions": []})
    assert ids(ruleset(api, alice)["underride"])[:3] == ["c", "b", "a"]
    body = {"actions": ["notify"], "conditions": [{"kind": "room_member_count", "is": "2"}]}
    put_rule(api, alice, "underride", "b", body)
    rules = ruleset(api, alice)["underride"]
    assert ids(rules)[:4] == ["c", "b", "a", ".m.rule.call"]
    assert rules[1]["actions"] == ["notify"]
    assert put_rule(api, alice, "underride", "c", {"actions": []}, "?after=a").status == 200
    assert ids(ruleset(api, alice)["underride"])[:3] == ["b", "a", "c"]


def test_a_replaced_rule_is_enabled_again(api: MatrixTestClient, alice: Persona) -> None:
    put_rule(api, alice, "override", "x", {"actions": []})
    api.put(rules_path("override", "x", "enabled"), {"enabled": False}, token=alice.access_token)
    put_rule(api, alice, "override", "x", {"actions": ["notify"]})
    assert api.get(rules_path("override", "x", "enabled"), token=alice.access_token).body == {
        "enabled": True
    }


@pytest.mark.parametrize(
    ("kind", "rule_id", "body", "query", "status", "errcode"),
    [
        # "If the string starts with a dot, the request MUST be rejected".
        ("override", ".m.rule.master", {"actions": []}, "", 400, "M_INVALID_PARAM"),
        ("override", ".mine", {"actions": []}, "", 400, "M_INVALID_PARAM"),
        ("override", "back\\slash", {"actions": []}, "", 400, "M_INVALID_PARAM"),
        ("global", "x", {"actions": []}, "", 400, "M_INVALID_PARAM"),
        ("override", "x", {}, "", 400, "M_MISSING_PARAM"),
        ("content", "x", {"actions": []}, "", 400, "M_MISSING_PARAM"),
        ("content", "x", {"actions": [], "pattern": ["cake"]}, "", 400, "M_BAD_JSON"),
        ("override", "x", {"actions": "notify"}, "", 400, "M_BAD_JSON"),
        ("override", "x", {"actions": ["explode"]}, "", 400, "M_INVALID_PARAM"),
        ("override", "x", {"actions": [], "conditions": [{"key": "type"}]}, "", 400, "M_BAD_JSON"),
        (
            "override",
            "x",
            {"actions": [], "conditions": [{"kind": "room_member_count", "is": "lots"}]},
            "",
            400,
            "M_INVALID_PARAM",
        ),
        # The OpenAPI's 400: "before/after rule not found: someRuleId", M_UNKNOWN.
        ("override", "x", {"actions": []}, "?before=someRuleId", 400, "M_UNKNOWN"),
        ("override", "x", {"actions": []}, "?after=someRuleId", 400, "M_UNKNOWN"),
        # "It is not possible to add a rule relative to a predefined server rule."
        ("override", "x", {"actions": []}, "?after=.m.rule.master", 400, "M_UNKNOWN"),
        ("underride", "x", {"actions": []}, "?before=.m.rule.message", 400, "M_UNKNOWN"),
    ],
)
def test_put_refusals(
    api: MatrixTestClient,
    alice: Persona,
    kind: str,
    rule_id: str,
    body: Any,
    query: str,
    status: int,
    errcode: str,
) -> None:
    before = ruleset(api, alice)
    response = put_rule(api, alice, kind, rule_id, body, query)
    assert (response.status, response.errcode) == (status, errcode), response.body
    assert ruleset(api, alice) == before


def test_put_refuses_what_is_not_json(api: MatrixTestClient, alice: Persona) -> None:
    response = api.request(
        "PUT", rules_path("override", "x"), raw=b"{not json", token=alice.access_token
    )
    assert (response.status, response.errcode) == (400, "M_NOT_JSON")
    response = api.put(rules_path("override", "x"), ["actions"], token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_BAD_JSON")


def test_historical_actions_are_kept_as_sent(api: MatrixTestClient, alice: Persona) -> None:
    # The client reads back what it wrote; the evaluator ignores them ("MUST ignore").
    put_rule(api, alice, "override", "quiet", {"actions": ["dont_notify", "coalesce"]})
    response = api.get(rules_path("override", "quiet", "actions"), token=alice.access_token)
    assert response.body == {"actions": ["dont_notify", "coalesce"]}


@pytest.mark.parametrize(
    ("kind", "rule_id"),
    [
        # "The rule_id is a unique string within the kind of rule": a room rule's ID is
        # the room it names, but the spec refuses only a leading dot and slashes.
        ("room", "#spam:example.com"),
        ("room", "not-a-room"),
        ("sender", "not-a-user"),
        ("content", "\u0442\u0435\u0441\u0442"),
    ],
)
def test_rule_ids_are_any_string(
    api: MatrixTestClient, alice: Persona, kind: str, rule_id: str
) -> None:
    body = {"actions": ["notify"], "pattern": "x"}
    assert put_rule(api, alice, kind, rule_id, body).status == 200
    response = api.get(rules_path(kind, rule_id), token=alice.access_token)
    assert (response.status, response.body["rule_id"]) == (200, rule_id)
    assert ids(ruleset(api, alice)[kind]) == [rule_id]


def test_before_and_after_name_rules_with_any_characters(
    api: MatrixTestClient, alice: Persona
) -> None:
    for rule_id in ("#a:example.com", "#b:example.com"):
        assert put_rule(api, alice, "room", rule_id, {"actions": ["notify"]}).status == 200
    after = "?after=" + quote("#b:example.com", safe="")
    assert put_rule(api, alice, "room", "#c:example.com", {"actions": []}, after).status == 200
    before = "?before=" + quote("#a:example.com", safe="")
    assert put_rule(api, alice, "room", "#d:example.com", {"actions": []}, before).status == 200
    assert ids(ruleset(api, alice)["room"]) == [
        "#b:example.com",
        "#c:example.com",
        "#d:example.com",
        "#a:example.com",
    ]


def test_delete(api: MatrixTestClient, alice: Persona) -> None:
    put_rule(api, alice, "room", ROOM, {"actions": []})
    response = api.delete(rules_path("room", ROOM), token=alice.access_token)
    assert (response.status, response.body) == (200, {})
    assert ruleset(api, alice)["room"] == []
    again = api.delete(rules_path("room", ROOM), token=alice.access_token)
    assert (again.status, again.errcode) == (404, "M_NOT_FOUND")


def test_server_default_rules_cannot_be_deleted(api: MatrixTestClient, alice: Persona) -> None:
    response = api.delete(rules_path("underride", ".m.rule.message"), token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    assert ".m.rule.message" in ids(ruleset(api, alice)["underride"])


# --- enabled and actions -----------------------------------------------------------------


def test_enable_the_master_rule(api: MatrixTestClient, alice: Persona) -> None:
    path = rules_path("override", ".m.rule.master", "enabled")
    assert api.get(path, token=alice.access_token).body == {"enabled": False}
    response = api.put(path, {"enabled": True}, token=alice.access_token)
    assert (response.status, response.body) == (200, {})
    assert api.get(path, token=alice.access_token).body == {"enabled": True}
    master = ruleset(api, alice)["override"][0]
    assert (master["rule_id"], master["enabled"], master["default"]) == (
        ".m.rule.master",
        True,
        True,
    )


def test_enabled_of_an_own_rule(api: MatrixTestClient, alice: Persona) -> None:
    put_rule(api, alice, "sender", SPAMBOT, {"actions": []})
    path = rules_path("sender", SPAMBOT, "enabled")
    assert api.put(path, {"enabled": False}, token=alice.access_token).status == 200
    assert api.get(path, token=alice.access_token).body == {"enabled": False}
    assert ruleset(api, alice)["sender"][0]["enabled"] is False


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({}, "M_MISSING_PARAM"),
        ({"enabled": "yes"}, "M_BAD_JSON"),
        ({"enabled": None}, "M_BAD_JSON"),
    ],
)
def test_put_enabled_refusals(
    api: MatrixTestClient, alice: Persona, body: Any, errcode: str
) -> None:
    path = rules_path("override", ".m.rule.master", "enabled")
    response = api.put(path, body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, errcode)


def test_set_actions_of_a_default_rule(api: MatrixTestClient, alice: Persona) -> None:
    path = rules_path("underride", ".m.rule.message", "actions")
    assert api.get(path, token=alice.access_token).body == {"actions": ["notify"]}
    # The OpenAPI's example.
    actions = ["notify", {"set_tweak": "highlight"}]
    assert api.put(path, {"actions": actions}, token=alice.access_token).status == 200
    assert api.get(path, token=alice.access_token).body == {"actions": actions}
    message = next(
        r for r in ruleset(api, alice)["underride"] if r["rule_id"] == ".m.rule.message"
    )
    assert message["default"] is True
    assert message["actions"] == actions


def test_actions_and_enabled_of_every_default_rule(api: MatrixTestClient, alice: Persona) -> None:
    # Each server-default rule's actions and enabled flag read back as written, a
    # historical action included.
    for kind, rules in ruleset(api, alice).items():
        for rule in rules:
            actions = rules_path(kind, rule["rule_id"], "actions")
            enabled = rules_path(kind, rule["rule_id"], "enabled")
            put = api.put(actions, {"actions": ["dont_notify"]}, token=alice.access_token)
            assert put.status == 200, rule["rule_id"]
            assert api.get(actions, token=alice.access_token).body == {"actions": ["dont_notify"]}
            flipped = not rule["enabled"]
            assert api.put(enabled, {"enabled": flipped}, token=alice.access_token).status == 200
            assert api.get(enabled, token=alice.access_token).body == {"enabled": flipped}
    for rules in ruleset(api, alice).values():
        for rule in rules:
            assert rule["default"] is True
            assert rule["actions"] == ["dont_notify"]


def test_set_actions_refusals(api: MatrixTestClient, alice: Persona) -> None:
    path = rules_path("underride", ".m.rule.message", "actions")
    for body, status, errcode in (
        ({}, 400, "M_MISSING_PARAM"),
        ({"actions": "notify"}, 400, "M_BAD_JSON"),
        ({"actions": ["sing"]}, 400, "M_INVALID_PARAM"),
    ):
        response = api.put(path, body, token=alice.access_token)
        assert (response.status, response.errcode) == (status, errcode), body
    missing = rules_path("underride", "missing", "actions")
    response = api.put(missing, {"actions": []}, token=alice.access_token)
    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    response = api.put(
        rules_path("override", "missing", "enabled"), {"enabled": True}, token=alice.access_token
    )
    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_rule_ids_with_characters_escaped_in_paths(api: MatrixTestClient, alice: Persona) -> None:
    rule_id = "a b#c?d%e:f"
    body = {"pattern": "x", "actions": []}
    assert put_rule(api, alice, "content", rule_id, body).status == 200
    assert ids(ruleset(api, alice)["content"]) == [rule_id]
    response = api.get(rules_path("content", rule_id, "enabled"), token=alice.access_token)
    assert response.body == {"enabled": True}
    assert api.delete(rules_path("content", rule_id), token=alice.access_token).status == 200


def test_rules_are_capped_in_size(api: MatrixTestClient, alice: Persona) -> None:
    # About 32 KB a rule: the cap (128 KiB of the user's changes) falls on the fifth.
    conditions = [{"kind": "event_match", "key": "content.body", "pattern": "x" * 1000}] * 30
    statuses = [
        put_rule(api, alice, "override", rule_id, {"actions": [], "conditions": conditions})
        for rule_id in "abcde"
    ]
    assert [r.status for r in statuses] == [200, 200, 200, 200, 413]
    assert statuses[-1].errcode == "M_TOO_LARGE"
    assert ids(ruleset(api, alice)["override"])[:5] == [".m.rule.master", "d", "c", "b", "a"]
