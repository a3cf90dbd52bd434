"""The Push Gateway API request (protocol/push_gateway.py), without a database."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.push.evaluator import tweaks
from protocol.push.gateway import (
    Device,
    EventNotification,
    badge_body,
    check_gateway_url,
    notify_body,
    priority,
    rejected_pushkeys,
)

ALICE = "@alice:example.org"


def _notification(**overrides: Any) -> EventNotification:
    fields: dict[str, Any] = {
        "event_id": "$e",
        "room_id": "!r:example.org",
        "type": "m.room.message",
        "sender": "@bob:example.org",
        "content": {"msgtype": "m.text", "body": "hi"},
        "actions": ["notify"],
        "unread": 3,
        **overrides,
    }
    return EventNotification(**fields)


DEVICE = Device("org.example.app", "key", 1_700_000_000_123, {"url": "https://g/x", "k": 1})


def test_tweaks_follow_the_actions() -> None:
    actions = [
        "notify",
        {"set_tweak": "sound", "value": "default"},
        {"set_tweak": "highlight"},
        {"set_tweak": "org.example.light", "value": "blue"},
        "dont_notify",
        {"set_tweak": "custom-without-value"},
    ]
    assert tweaks(actions) == {
        "sound": "default",
        "highlight": True,
        "org.example.light": "blue",
    }
    assert tweaks([{"set_tweak": "highlight", "value": False}]) == {"highlight": False}


@pytest.mark.parametrize(
    ("event_type", "tweaks", "expected"),
    [
        ("m.room.message", {}, "low"),
        ("m.room.message", {"sound": "default"}, "high"),
        ("m.room.message", {"highlight": True}, "high"),
        ("m.room.message", {"highlight": False}, "low"),
        ("m.room.encrypted", {}, "high"),
    ],
)
def test_priority(event_type: str, tweaks: dict[str, Any], expected: str) -> None:
    assert priority(event_type, tweaks) == expected


def test_full_format_carries_the_event() -> None:
    body = notify_body(
        _notification(sender_display_name="Bob", room_name="Room", room_alias="#r:example.org"),
        DEVICE,
        ALICE,
    )
    assert body == {
        "notification": {
            "event_id": "$e",
            # Synapse's older name for event_id, sent beside it.
            "id": "$e",
            "room_id": "!r:example.org",
            "type": "m.room.message",
            "sender": "@bob:example.org",
            "sender_display_name": "Bob",
            "room_name": "Room",
            "room_alias": "#r:example.org",
            "prio": "low",
            "content": {"msgtype": "m.text", "body": "hi"},
            "counts": {"unread": 3},
            "devices": [
                {
                    "app_id": "org.example.app",
                    "pushkey": "key",
                    "pushkey_ts": 1_700_000_000,
                    "data": {"k": 1},
                    "tweaks": {},
                }
            ],
        }
    }


def test_event_id_only_and_zero_counts() -> None:
    device = Device("a", "k", 0, {"url": "https://g/x", "format": "event_id_only"})
    body = notify_body(_notification(unread=0), device, ALICE)["notification"]
    assert set(body) == {"event_id", "room_id", "prio", "counts", "devices"}
    assert body["counts"] == {}
    assert body["devices"][0]["data"] == {"format": "event_id_only"}


def test_member_events_say_whether_the_user_is_the_target_and_the_membership() -> None:
    invite = _notification(type="m.room.member", state_key=ALICE, content={"membership": "invite"})
    body = notify_body(invite, DEVICE, ALICE)["notification"]
    assert (body["user_is_target"], body["membership"]) == (True, "invite")
    other = _notification(type="m.room.member", state_key="@c:x", content={"membership": "join"})
    body = notify_body(other, DEVICE, ALICE)["notification"]
    assert (body["user_is_target"], body["membership"]) == (False, "join")
    message = notify_body(_notification(), DEVICE, ALICE)["notification"]
    assert "user_is_target" not in message
    assert "membership" not in message


def test_a_badge_update_carries_only_the_counts() -> None:
    device = {"app_id": "org.example.app", "pushkey": "key", "pushkey_ts": 1_700_000_000}
    device |= {"data": {"k": 1}, "tweaks": {}}
    assert badge_body(DEVICE, 4) == {
        "notification": {"prio": "low", "counts": {"unread": 4}, "devices": [device]}
    }
    assert badge_body(DEVICE, 0)["notification"]["counts"] == {}


def test_empty_content_is_left_out() -> None:
    assert "content" not in notify_body(_notification(content={}), DEVICE, ALICE)["notification"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://push.example.org/_matrix/push/v1/notify", True),
        ("https://push.example.org:8443/_matrix/push/v1/notify", True),
        ("http://push.example.org/_matrix/push/v1/notify", True),  # the caller decides
        ("https://push.example.org/_matrix/push/v1/notify?x=1", True),
        ("https://push.example.org/", False),
        ("https://push.example.org/_matrix/push/v2/notify", False),
        ("https:///_matrix/push/v1/notify", False),
        ("wss://push.example.org/_matrix/push/v1/notify", False),
        ("https://push.example.org:port/_matrix/push/v1/notify", False),
        ("https://u@push.example.org/_matrix/push/v1/notify", False),
        ("https://push.example.org/_matrix/push/v1/notify#f", False),
    ],
)
def test_gateway_urls(url: str, ok: bool) -> None:
    assert (check_gateway_url(url) is None) is ok


def test_rejected_pushkeys() -> None:
    assert rejected_pushkeys({"rejected": ["a", 3, "b"]}) == ["a", "b"]
    assert rejected_pushkeys({"rejected": "a"}) == []
    assert rejected_pushkeys({}) == []
    assert rejected_pushkeys(None) == []
    assert rejected_pushkeys(["a"]) == []
