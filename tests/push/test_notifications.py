"""GET /notifications (Push Notifications, "Listing Notifications"): the events the user
was notified about, newest first, with the actions, whether read, and a token for more.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.push.helpers import group_room, message, send_receipt
from tests.rooms.helpers import create_room, invite, send


def notifications(api: MatrixTestClient, who: Persona, **params: Any) -> dict[str, Any]:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    response = api.get("notifications" + (f"?{query}" if query else ""), token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def bodies(page: dict[str, Any]) -> list[str]:
    return [n["event"]["content"]["body"] for n in page["notifications"]]


def test_notifications_are_listed_newest_first_with_their_actions(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = group_room(api, alice, bob, carol)
    first = send(api, bob, room, "one")
    send(api, bob, room, message("two", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    send(api, alice, room, "mine")  # never listed for its sender

    page = notifications(api, alice)

    assert bodies(page) == ["two", "one"]
    assert "next_token" not in page
    mention, plain = page["notifications"]
    assert plain["room_id"] == room
    assert plain["actions"] == ["notify"]
    assert plain["event"]["event_id"] == first
    assert plain["event"]["sender"] == bob.user_id
    assert "room_id" not in plain["event"]
    assert isinstance(plain["ts"], int)
    assert {"set_tweak": "highlight"} in mention["actions"]
    # alice's own message read the room up to it.
    assert [n["read"] for n in page["notifications"]] == [True, True]
    # carol's: the three messages, then her invite.
    kinds = [n["event"]["type"] for n in notifications(api, carol)["notifications"]]
    assert kinds == ["m.room.message"] * 3 + ["m.room.member"]


def test_read_follows_the_receipts(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = group_room(api, alice, bob)
    first = send(api, bob, room, "one")
    send(api, bob, room, "two")
    assert [n["read"] for n in notifications(api, alice)["notifications"]] == [False, False]

    send_receipt(api, alice, room, first, "m.read.private")

    assert [n["read"] for n in notifications(api, alice)["notifications"]] == [False, True]


def test_notifications_paginate(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = group_room(api, alice, bob)
    for n in range(5):
        send(api, bob, room, f"m{n}")

    page = notifications(api, alice, limit=2)
    assert bodies(page) == ["m4", "m3"]
    page = notifications(api, alice, limit=2, **{"from": page["next_token"]})
    assert bodies(page) == ["m2", "m1"]
    page = notifications(api, alice, limit=2, **{"from": page["next_token"]})
    assert bodies(page) == ["m0"]
    assert "next_token" not in page


def test_only_highlight(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = group_room(api, alice, bob)
    send(api, bob, room, "plain")
    send(api, bob, room, message("ping", **{"m.mentions": {"user_ids": [alice.user_id]}}))
    send(api, bob, room, "plain again")

    assert bodies(notifications(api, alice, only="highlight")) == ["ping"]


def test_an_invite_is_a_notification_for_the_invitee(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    invite(api, alice, room, bob)

    [note] = notifications(api, bob)["notifications"]
    assert note["room_id"] == room
    assert note["event"]["type"] == "m.room.member"
    assert note["event"]["content"]["membership"] == "invite"
    assert "notify" in note["actions"]


def test_refusals(api: MatrixTestClient, alice: Persona) -> None:
    assert api.get("notifications").status == 401
    bad = api.get("notifications?from=abc", token=alice.access_token)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    bad = api.get("notifications?limit=-1", token=alice.access_token)
    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
