"""GET /initialSync and GET /rooms/{roomId}/initialSync (deprecated, Client-Server API,
old_sync.yaml and room_initial_sync.yaml; "Room Previews" for world-readable rooms)."""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    create_room,
    invite,
    join,
    leave,
    room_path,
    send,
    set_state,
)
from tests.sync.ephemeral_helpers import send_receipt, shared_room


def initial_sync(api: MatrixTestClient, who: Persona, query: str = "") -> dict[str, Any]:
    response = api.get("initialSync" + (f"?{query}" if query else ""), token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def room_initial_sync(
    api: MatrixTestClient, who: Persona, room: str, query: str = "", *, expect: int = 200
) -> dict[str, Any]:
    path = room_path(room, "initialSync") + (f"?{query}" if query else "")
    response = api.get(path, token=who.access_token)
    assert response.status == expect, response.body
    body: dict[str, Any] = response.body
    return body


def by_room(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {room["room_id"]: room for room in body["rooms"]}


def state_of(room: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in room["state"]}


def bodies(chunk: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in chunk if e["type"] == "m.room.message"]


def test_it_gives_each_joined_room_its_state_and_latest_messages(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, visibility="public")
    set_state(api, alice, room, "m.room.topic", {"topic": "legacy"})
    for number in range(4):
        send(api, alice, room, f"message {number}")

    body = initial_sync(api, alice, "limit=2")

    entry = by_room(body)[room]
    assert entry["membership"] == "join"
    assert entry["visibility"] == "public"
    assert bodies(entry["messages"]["chunk"]) == ["message 2", "message 3"]
    assert {"start", "end"} <= entry["messages"].keys()
    state = state_of(entry)
    assert state[("m.room.topic", "")]["content"] == {"topic": "legacy"}
    member = state[("m.room.member", alice.user_id)]
    # The legacy event format: the sender also as user_id.
    assert member["user_id"] == alice.user_id
    assert member["room_id"] == room
    assert body["end"].startswith("s")


def test_limit_0_gives_no_messages_and_a_bad_limit_is_refused(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    send(api, alice, room, "hello")

    assert by_room(initial_sync(api, alice, "limit=0"))[room]["messages"]["chunk"] == []
    for bad in ("limit=hello", "limit=-2", "archived=maybe"):
        response = api.get(f"initialSync?{bad}", token=alice.access_token)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), bad
    response = api.get("initialSync")
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


def test_it_gives_invites_as_the_invite_event(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob)
    invite(api, bob, room, alice)

    entry = by_room(initial_sync(api, alice))[room]

    assert entry["membership"] == "invite"
    assert entry["invite"]["state_key"] == alice.user_id
    assert entry["invite"]["content"]["membership"] == "invite"
    assert "messages" not in entry
    assert "state" not in entry


def test_archived_adds_left_rooms_as_they_were_at_the_leave(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, bob, alice)
    set_state(api, bob, room, "m.room.topic", {"topic": "before"})
    send(api, bob, room, "before the leave")
    leave(api, alice, room)
    send(api, bob, room, "after the leave")
    set_state(api, bob, room, "m.room.topic", {"topic": "after"})

    assert room not in by_room(initial_sync(api, alice))
    entry = by_room(initial_sync(api, alice, "archived=true&limit=2"))[room]

    assert entry["membership"] == "leave"
    assert bodies(entry["messages"]["chunk"]) == ["before the leave"]
    assert entry["messages"]["chunk"][-1]["type"] == "m.room.member"
    assert state_of(entry)[("m.room.topic", "")]["content"] == {"topic": "before"}


def test_it_gives_presence_account_data_and_receipts(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event_id = send(api, bob, room, "read me")
    assert send_receipt(api, alice, room, event_id).status == 200
    api.put(
        f"user/{alice.user_id}/account_data/org.example.global", {"a": 1}, token=alice.access_token
    )
    api.put(f"user/{alice.user_id}/rooms/{room}/tags/work", {"order": 1}, token=alice.access_token)
    api.put(
        f"presence/{bob.user_id}/status",
        {"presence": "online", "status_msg": "here"},
        token=bob.access_token,
    )

    body = initial_sync(api, alice)

    presence = {e["content"]["user_id"]: e for e in body["presence"]}
    # Alice's own presence: the initial sync itself made her online.
    assert presence[alice.user_id]["content"]["presence"] == "online"
    assert "last_active_ago" in presence[alice.user_id]["content"]
    assert presence[bob.user_id]["content"]["status_msg"] == "here"
    assert presence[bob.user_id]["type"] == "m.presence"
    # What the user wrote: not the default push rules, which they never did.
    assert body["account_data"] == [{"type": "org.example.global", "content": {"a": 1}}]
    entry = by_room(body)[room]
    assert entry["account_data"] == [
        {"type": "m.tag", "content": {"tags": {"work": {"order": 1}}}}
    ]
    (receipt,) = [r for r in body["receipts"] if r["room_id"] == room]
    assert receipt["type"] == "m.receipt"
    assert alice.user_id in receipt["content"][event_id]["m.read"]


def test_room_initial_sync_of_a_joined_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event_id = send(api, alice, room, "hello")
    assert send_receipt(api, bob, room, event_id).status == 200
    api.put(
        f"user/{alice.user_id}/rooms/{room}/account_data/org.example.room",
        {"b": 2},
        token=alice.access_token,
    )

    body = room_initial_sync(api, alice, room)

    assert (body["room_id"], body["membership"]) == (room, "join")
    assert bodies(body["messages"]["chunk"]) == ["hello"]
    assert ("m.room.member", bob.user_id) in state_of(body)
    assert {e["content"]["user_id"] for e in body["presence"]} == {alice.user_id, bob.user_id}
    assert [r["content"][event_id]["m.read"].keys() for r in body["receipts"]] == [{bob.user_id}]
    assert body["account_data"] == [{"type": "org.example.room", "content": {"b": 2}}]


def test_room_initial_sync_of_a_left_room_stops_at_the_leave(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, bob, alice)
    send(api, bob, room, "before")
    leave(api, alice, room)
    send(api, bob, room, "after")
    set_state(api, bob, room, "m.room.name", {"name": "after"})

    body = room_initial_sync(api, alice, room, "limit=2")

    assert body["membership"] == "leave"
    assert bodies(body["messages"]["chunk"]) == ["before"]
    assert ("m.room.name", "") not in state_of(body)
    assert state_of(body)[("m.room.member", alice.user_id)]["content"]["membership"] == "leave"
    assert body["presence"] == []
    assert body["receipts"] == []


def test_room_initial_sync_peeks_into_world_readable_rooms_only(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob)
    send(api, bob, room, "private")
    room_initial_sync(api, alice, room, expect=403)
    set_state(
        api, bob, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    send(api, bob, room, "public")

    body = room_initial_sync(api, alice, room)

    # Only what was sent while the room was world readable (and the change itself).
    chunk = body["messages"]["chunk"]
    assert [e["type"] for e in chunk] == ["m.room.history_visibility", "m.room.message"]
    assert bodies(chunk) == ["public"]
    assert "membership" not in body
    assert ("m.room.create", "") in state_of(body)
    assert [e["content"]["user_id"] for e in body["presence"]] == [bob.user_id]


def test_room_initial_sync_refuses_unknown_rooms_and_rooms_never_joined(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    response = api.get(room_path("!nowhere:test", "initialSync"), token=alice.access_token)
    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    room = create_room(api, bob)
    invite(api, bob, room, alice)
    response = api.get(room_path(room, "initialSync"), token=alice.access_token)
    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    join(api, alice, room)
    assert room_initial_sync(api, alice, room)["membership"] == "join"
