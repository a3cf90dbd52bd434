"""Lazy-loaded members are not repeated: an incremental /sync leaves out the member
event of a sender the device was already sent (Client-Server API, "Lazy-loading room
members"), unless the filter asks for redundant members, and a sync from a token that
predates the response that carried it gets it again."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, join, send, set_state
from tests.sync.helpers import joined, members_in, sync


def members_seen(room: dict[str, Any]) -> set[str]:
    """Users whose member event a room's state or timeline carries."""
    timeline = room["timeline"]["events"]
    return members_in(room) | {e["state_key"] for e in timeline if e["type"] == "m.room.member"}


LAZY: dict[str, Any] = {"room": {"state": {"lazy_load_members": True}}}
REDUNDANT: dict[str, Any] = {
    "room": {"state": {"lazy_load_members": True, "include_redundant_members": True}}
}


def _room_with_talk(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    return room


def test_a_sender_already_sent_is_not_sent_again(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = _room_with_talk(api, alice, bob)
    send(api, alice, room, "one")
    first = sync(api, bob, filter=LAZY)
    assert alice.user_id in members_seen(joined(first)[room])

    send(api, alice, room, "two")
    second = sync(api, bob, filter=LAZY, since=first["next_batch"])
    assert joined(second)[room]["timeline"]["events"]
    assert alice.user_id not in members_in(joined(second)[room])


def test_include_redundant_members_sends_them_every_time(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = _room_with_talk(api, alice, bob)
    send(api, alice, room, "one")
    first = sync(api, bob, filter=REDUNDANT)
    send(api, alice, room, "two")
    second = sync(api, bob, filter=REDUNDANT, since=first["next_batch"])
    assert alice.user_id in members_in(joined(second)[room])


def test_a_retry_from_an_older_token_gets_the_member_again(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = _room_with_talk(api, alice, bob)
    first = sync(api, bob, filter=LAZY)
    # carol's first message: the response carrying her member event may be lost...
    carol = api.register("carol")
    join(api, carol, room)
    send(api, carol, room, "hi")
    lost = sync(api, bob, filter=LAZY, since=first["next_batch"])
    assert carol.user_id in {
        e["state_key"]
        for e in joined(lost)[room]["timeline"]["events"]
        if e["type"] == "m.room.member"
    } | members_in(joined(lost)[room])
    # ...so a retry with the same token carries it again, and so does a later one that
    # still predates it.
    send(api, carol, room, "again")
    retry = sync(api, bob, filter=LAZY, since=first["next_batch"])
    carried = members_in(joined(retry)[room]) | {
        e["state_key"]
        for e in joined(retry)[room]["timeline"]["events"]
        if e["type"] == "m.room.member"
    }
    assert carol.user_id in carried


def test_a_new_member_event_is_sent_even_if_an_older_one_was(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = _room_with_talk(api, alice, bob)
    send(api, alice, room, "one")
    first = sync(api, bob, filter=LAZY)
    # alice's member event changes and the gap hides it: a limited timeline.
    response = api.put(
        f"rooms/{room}/state/m.room.member/{alice.user_id}",
        {"membership": "join", "displayname": "Alice A."},
        token=alice.access_token,
    )
    assert response.status == 200, response.body
    for n in range(3):
        send(api, alice, room, f"m{n}")
    second = sync(
        api,
        bob,
        filter={"room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 1}}},
        since=first["next_batch"],
    )
    state = joined(second)[room]["state"]["events"]
    names = [
        e["content"].get("displayname")
        for e in state
        if e["type"] == "m.room.member" and e["state_key"] == alice.user_id
    ]
    assert names == ["Alice A."]


# A room with a name or a canonical alias is named from it, never from its heroes
# (Instant Messaging, "Calculating the display name for a room"): lazy loading then
# carries the member events of the timeline's senders only.
NAMED_BY = {
    "name": {"name": "Team room"},
    "canonical alias": {"room_alias_name": "team"},
}
LAZY_SHORT: dict[str, Any] = {
    "room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}
}


def _crowded_room(api: MatrixTestClient, owner: Persona, **create: Any) -> tuple[str, list[str]]:
    """A public room of ``owner`` and six others; the others' user IDs."""
    room = create_room(api, owner, preset="public_chat", **create)
    others = [api.register(name) for name in ("bob", "carol", "dan", "erin", "frank", "grace")]
    for other in others:
        join(api, other, room)
    return room, [other.user_id for other in others]


@pytest.mark.parametrize("create", NAMED_BY.values(), ids=NAMED_BY.keys())
def test_a_named_room_carries_only_the_timeline_senders(
    api: MatrixTestClient, alice: Persona, create: dict[str, Any]
) -> None:
    room, others = _crowded_room(api, alice, **create)
    bob = api.login("bob", "correct horse").body
    reader = Persona("bob", "correct horse", others[0], bob["access_token"], bob["device_id"])
    for n in range(3):
        send(api, alice, room, f"m{n}")

    entry = joined(sync(api, reader, filter=LAZY_SHORT))[room]

    # The sender and the reader themself; no hero's member event.
    assert members_seen(entry) == {alice.user_id, reader.user_id}
    # A named room's summary lists no heroes: the client names it from its state.
    assert "m.heroes" not in entry["summary"]
    assert entry["summary"]["m.joined_member_count"] == 7


def test_a_room_whose_name_is_empty_carries_its_heroes(
    api: MatrixTestClient, alice: Persona
) -> None:
    room, others = _crowded_room(api, alice, name="Team room")
    set_state(api, alice, room, "m.room.name", {"name": ""})
    bob = api.login("bob", "correct horse").body
    reader = Persona("bob", "correct horse", others[0], bob["access_token"], bob["device_id"])
    for n in range(3):
        send(api, alice, room, f"m{n}")

    entry = joined(sync(api, reader, filter=LAZY_SHORT))[room]

    heroes = entry["summary"]["m.heroes"]
    assert len(heroes) == 5
    assert members_seen(entry) == {alice.user_id, reader.user_id, *heroes}


def test_a_name_given_in_the_timeline_needs_no_heroes(
    api: MatrixTestClient, alice: Persona
) -> None:
    room, others = _crowded_room(api, alice)
    bob = api.login("bob", "correct horse").body
    reader = Persona("bob", "correct horse", others[0], bob["access_token"], bob["device_id"])
    unnamed = joined(sync(api, reader, filter=LAZY_SHORT))[room]
    assert set(unnamed["summary"]["m.heroes"]) <= members_seen(unnamed)

    set_state(api, alice, room, "m.room.name", {"name": "Named at last"})
    send(api, alice, room, "one")
    send(api, alice, room, "two")
    entry = joined(sync(api, reader, filter=LAZY_SHORT))[room]

    assert members_seen(entry) == {alice.user_id, reader.user_id}


def test_a_gap_resends_its_membership_changes_but_not_known_senders(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # "When a sync is limited, the server MUST return membership events for events in
    # the gap ... regardless as to whether or not they are redundant" (GET /sync): the
    # gap's changes; a sender whose member event the client has is still redundant.
    room = _room_with_talk(api, alice, bob)
    carol = api.register("carol")
    join(api, carol, room)
    short: dict[str, Any] = {
        "room": {"state": {"lazy_load_members": True}, "timeline": {"limit": 3}}
    }
    send(api, alice, room, "from alice")
    first = sync(api, bob, filter=short)
    assert alice.user_id in members_seen(joined(first)[room])

    dan = api.register("dan")
    join(api, dan, room)
    response = api.post(f"rooms/{room}/leave", {}, token=carol.access_token)
    assert response.status == 200, response.body
    for n in range(5):
        send(api, alice, room, f"filler {n}")
    second = joined(sync(api, bob, filter=short, since=first["next_batch"]))[room]

    assert second["timeline"]["limited"] is True
    memberships = {
        e["state_key"]: e["content"]["membership"]
        for e in second["state"]["events"]
        if e["type"] == "m.room.member"
    }
    assert memberships == {dan.user_id: "join", carol.user_id: "leave"}
