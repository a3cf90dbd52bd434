"""m.push_rules account data: in the initial /sync, in an incremental /sync whenever the
rules change ("Push Rules: Events"), readable and never writable through the account
data API (account data module, "Server Behaviour")."""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.push.test_push_rules import put_rule, ruleset
from tests.sync.helpers import sync


def push_rules_in(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e for e in body.get("account_data", {}).get("events", []) if e["type"] == "m.push_rules"
    ]


def test_initial_sync_has_the_default_rules(api: MatrixTestClient, alice: Persona) -> None:
    events = push_rules_in(sync(api, alice))
    assert events == [{"type": "m.push_rules", "content": {"global": ruleset(api, alice)}}]


def test_incremental_sync_has_them_when_they_change(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    first = sync(api, alice)
    bob_first = sync(api, bob)
    quiet = sync(api, alice, since=first["next_batch"], timeout=0)
    assert push_rules_in(quiet) == []

    put_rule(api, alice, "sender", "@spambot:matrix.org", {"actions": []})
    changed = sync(api, alice, since=quiet["next_batch"], timeout=0)
    (event,) = push_rules_in(changed)
    assert event["content"] == {"global": ruleset(api, alice)}
    assert event["content"]["global"]["sender"][0]["rule_id"] == "@spambot:matrix.org"
    # Only alice's sync carries her rules.
    assert push_rules_in(sync(api, bob, since=bob_first["next_batch"], timeout=0)) == []

    api.put(
        "pushrules/global/override/.m.rule.master/enabled",
        {"enabled": True},
        token=alice.access_token,
    )
    again = sync(api, alice, since=changed["next_batch"], timeout=0)
    (event,) = push_rules_in(again)
    assert event["content"]["global"]["override"][0]["enabled"] is True
    # A fresh initial sync has the changed rules, once.
    assert push_rules_in(sync(api, alice)) == [event]


def test_a_refused_change_moves_nothing(api: MatrixTestClient, alice: Persona) -> None:
    first = sync(api, alice)
    assert put_rule(api, alice, "override", ".bad", {"actions": []}).status == 400
    later = sync(api, alice, since=first["next_batch"], timeout=0)
    assert push_rules_in(later) == []
    assert later["next_batch"] == first["next_batch"]


def test_a_long_poll_after_a_change_answers_with_it(api: MatrixTestClient, alice: Persona) -> None:
    first = sync(api, alice)
    put_rule(api, alice, "content", "cake", {"pattern": "cake", "actions": ["notify"]})
    later = sync(api, alice, since=first["next_batch"], timeout=30000)
    assert [e["content"]["global"]["content"][0]["rule_id"] for e in push_rules_in(later)] == [
        "cake"
    ]


def test_the_account_data_filter_applies(api: MatrixTestClient, alice: Persona) -> None:
    body = sync(api, alice, filter={"account_data": {"not_types": ["m.push_rules"]}})
    assert push_rules_in(body) == []
    body = sync(api, alice, filter={"account_data": {"types": ["m.push_rules"]}})
    assert len(push_rules_in(body)) == 1


def test_account_data_api_reads_them(api: MatrixTestClient, alice: Persona) -> None:
    path = f"user/{alice.user_id}/account_data/m.push_rules"
    response = api.get(path, token=alice.access_token)
    assert (response.status, response.body) == (200, {"global": ruleset(api, alice)})
    put_rule(api, alice, "room", "!r:example.org", {"actions": []})
    response = api.get(path, token=alice.access_token)
    assert response.body == {"global": ruleset(api, alice)}
    assert response.body["global"]["room"][0]["rule_id"] == "!r:example.org"
    # Only global account data has them.
    room_path = f"user/{alice.user_id}/rooms/!r:example.org/account_data/m.push_rules"
    assert api.get(room_path, token=alice.access_token).errcode == "M_NOT_FOUND"


def test_account_data_api_cannot_set_them(api: MatrixTestClient, alice: Persona) -> None:
    for path in (
        f"user/{alice.user_id}/account_data/m.push_rules",
        f"user/{alice.user_id}/rooms/!r:example.org/account_data/m.push_rules",
    ):
        response = api.put(path, {"global": {}}, token=alice.access_token)
        assert (response.status, response.errcode) == (405, "M_BAD_JSON")
    assert push_rules_in(sync(api, alice))[0]["content"] == {"global": ruleset(api, alice)}
