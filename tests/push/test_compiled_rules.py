"""push.rules.compiled_rules_for: the send path's compiled rules, cached per process and
refreshed by one query when any process changed a user's rules."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from protocol.push.evaluator import CompiledRules, PushEvent
from push import rules
from push.models import PushRules
from tests.conftest import MatrixTestClient, Persona
from tests.push.test_push_rules import put_rule


def message(sender: str, **content: Any) -> PushEvent:
    event = {
        "type": "m.room.message",
        "sender": sender,
        "room_id": "!r:example.org",
        "content": {"msgtype": "m.text", "body": "hello", **content},
    }
    return PushEvent(event, room_member_count=3, sender_power_level=0)


def queries(call: Any) -> tuple[Any, int]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, len(captured.captured_queries)


@pytest.mark.django_db
def test_users_who_changed_nothing_share_the_default_rules(alice: Persona, bob: Persona) -> None:
    compiled, count = queries(lambda: rules.compiled_rules_for([alice.user_id, bob.user_id]))
    # A process's first call also reads where the account_data stream is.
    assert count == 2
    assert compiled[alice.user_id] is compiled[bob.user_id] is rules.DEFAULT_RULES
    event = message(bob.user_id, **{"m.mentions": {"user_ids": [alice.user_id]}})
    assert compiled[alice.user_id].match(event, alice.user_id) == ".m.rule.is_user_mention"
    assert compiled[alice.user_id].match(event, "@carol:test") == ".m.rule.message"


def test_cached_rules_cost_one_query_and_see_every_change(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    users = [alice.user_id, bob.user_id, "@carol:test"]
    rules.compiled_rules_for(users)
    compiled, count = queries(lambda: rules.compiled_rules_for(users))
    assert count == 1
    assert compiled[alice.user_id] is rules.DEFAULT_RULES

    # Alice silences bob: only her rules are compiled again.
    put_rule(api, alice, "sender", bob.user_id, {"actions": []})
    compiled, count = queries(lambda: rules.compiled_rules_for(users))
    assert count == 1
    assert compiled[alice.user_id] is not rules.DEFAULT_RULES
    assert compiled[bob.user_id] is rules.DEFAULT_RULES
    assert compiled[alice.user_id].match(message(bob.user_id), alice.user_id) == bob.user_id
    assert compiled[alice.user_id].actions(message(bob.user_id), alice.user_id) == []
    same, _ = queries(lambda: rules.compiled_rules_for(users))
    assert same[alice.user_id] is compiled[alice.user_id]

    # A change written by another process (no call in this one) is seen as well.
    api.put(
        "pushrules/global/override/.m.rule.master/enabled",
        {"enabled": True},
        token=alice.access_token,
    )
    compiled = rules.compiled_rules_for([alice.user_id])
    assert compiled[alice.user_id].match(message(bob.user_id), alice.user_id) == ".m.rule.master"


def test_newly_wanted_users_are_read_in_the_same_query(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    put_rule(api, bob, "underride", "everything", {"actions": ["notify"]})
    rules.compiled_rules_for([alice.user_id])
    compiled, count = queries(lambda: rules.compiled_rules_for([alice.user_id, bob.user_id]))
    assert count == 1
    event = PushEvent(
        {"type": "m.room.name", "sender": alice.user_id, "content": {"name": "x"}},
        room_member_count=3,
        sender_power_level=0,
    )
    assert compiled[bob.user_id].match(event, bob.user_id) == "everything"
    assert compiled[alice.user_id].match(event, alice.user_id) is None


def test_a_stale_version_never_replaces_a_newer_one(api: MatrixTestClient, alice: Persona) -> None:
    put_rule(api, alice, "underride", "first", {"actions": []})
    rules.compiled_rules_for([alice.user_id])
    row = PushRules.objects.get(user_id=alice.user_id)
    # A concurrent call stored a version newer than the row this call is about to read.
    newer = CompiledRules({})
    rules._compiled[alice.user_id] = (row.stream_id + 1, newer)
    rules._seen = 0
    assert rules.compiled_rules_for([alice.user_id])[alice.user_id] is newer
