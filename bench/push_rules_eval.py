"""Cost of evaluating push rules on the send path (protocol.push, no server, no database).

    .venv/bin/python bench/push_rules_eval.py [--users 100] [--rounds 2000]

One m.room.message (with a mention of one member) evaluated for ``users`` recipients:
building the event's PushEvent once, then each recipient's actions, for three cases:
everyone on the default rules (one compiled ruleset shared by all), everyone with a
ruleset of their own (compiled per user, as after any change), and everyone with their
own ruleset plus two content rules and a display-name condition. Prints microseconds per
event and per 10 recipients (the target: well under 1 ms per 10).
"""

from __future__ import annotations

import argparse
import timeit
from typing import Any

from protocol.push.evaluator import CompiledRules, PushEvent
from protocol.push.rules import predefined_rules, ruleset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    users = [f"@user{i}:example.org" for i in range(args.users)]
    event: dict[str, Any] = {
        "type": "m.room.message",
        "sender": "@sender:example.org",
        "room_id": "!room:example.org",
        "event_id": "$event",
        "origin_server_ts": 1,
        "content": {
            "msgtype": "m.text",
            "body": "Hello there, how about lunch at noon? Bring cake.",
            "m.mentions": {"user_ids": [users[len(users) // 2]]},
        },
    }
    stand_in = "@ stand-in"
    shared = CompiledRules(predefined_rules(stand_in), owner=stand_in)
    own = {u: CompiledRules(predefined_rules(u), owner=u) for u in users}
    custom_changes = {
        "custom": {
            "content": [
                {"rule_id": "cake", "enabled": True, "pattern": "cake*", "actions": ["notify"]},
                {"rule_id": "tea", "enabled": True, "pattern": "tea", "actions": ["notify"]},
            ],
            "override": [
                {
                    "rule_id": "name",
                    "enabled": True,
                    "conditions": [{"kind": "contains_display_name"}],
                    "actions": ["notify", {"set_tweak": "highlight"}],
                }
            ],
        }
    }
    custom = {u: CompiledRules(ruleset(u, custom_changes), owner=u) for u in users}

    def evaluate(compiled: dict[str, CompiledRules] | None) -> None:
        push_event = PushEvent(event, room_member_count=len(users) + 1, sender_power_level=0)
        for user_id in users:
            rules = shared if compiled is None else compiled[user_id]
            rules.actions(push_event, user_id, "User")

    for name, compiled in (
        ("default rules, shared", None),
        ("own rulesets", own),
        (
            "own rulesets + content rules + display name",
            custom,
        ),
    ):
        seconds = timeit.timeit(lambda c=compiled: evaluate(c), number=args.rounds) / args.rounds
        per_ten = seconds * 1e6 * 10 / len(users)
        print(f"{name}: {seconds * 1e6:.0f} us per event, {per_ten:.1f} us per 10 recipients")


if __name__ == "__main__":
    main()
