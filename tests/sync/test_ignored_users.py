"""Ignoring users (Client-Server API, "Ignoring Users").

m.ignored_user_list must list user IDs; once a user is ignored their events leave /sync
timelines and /messages, except state events, and their invites are not sent. The
list's change itself reaches the client through account data.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, invite, join, messages, send, set_state
from tests.sync.extension_helpers import joined, section, sync, timeline_ids


@pytest.fixture
def carol(api: MatrixTestClient) -> Persona:
    return api.register("carol")


def ignore(api: MatrixTestClient, who: Persona, *users: Persona, expect: int = 200) -> Any:
    response = api.put(
        f"user/{quote(who.user_id, safe='')}/account_data/m.ignored_user_list",
        {"ignored_users": {u.user_id: {} for u in users}},
        token=who.access_token,
    )
    assert response.status == expect, response.body
    return response


def shared_room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    """A room of bob's (so bob may set its state) that alice joined."""
    room = create_room(api, bob)
    invite(api, bob, room, alice)
    join(api, alice, room)
    return room


def test_the_list_must_map_user_ids_to_objects(api: MatrixTestClient, alice: Persona) -> None:
    path = f"user/{quote(alice.user_id, safe='')}/account_data/m.ignored_user_list"

    def errcode(content: Any) -> str | None:
        return api.put(path, content, token=alice.access_token).errcode

    assert errcode({"ignored_users": []}) == "M_BAD_JSON"
    assert errcode({"ignored_users": {"bob": {}}}) == "M_BAD_JSON"
    assert errcode({"ignored_users": {"@bob:example.org": True}}) == "M_BAD_JSON"
    assert errcode({"ignored_users": {"@bob:example.org": {}}}) is None


def test_ignored_users_messages_leave_the_timeline_but_state_stays(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    ignore(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    hidden = send(api, bob, room, "you won't see this")
    topic = set_state(api, bob, room, "m.room.topic", {"topic": "still here"}).body["event_id"]
    shown = send(api, alice, room, "mine")

    body = sync(api, alice, since=token)

    assert timeline_ids(joined(body)[room]) == [topic, shown]
    assert hidden not in timeline_ids(joined(body)[room])


def test_an_initial_sync_hides_them_too(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    hidden = send(api, bob, room, "hello")
    ignore(api, alice, bob)

    ids = timeline_ids(joined(sync(api, alice))[room])

    assert hidden not in ids
    # The room's state events, bob's included, are still there.
    assert ids


def test_other_users_still_see_them(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = shared_room(api, alice, bob)
    ignore(api, alice, bob)
    event_id = send(api, bob, room, "hello")

    assert event_id in timeline_ids(joined(sync(api, bob))[room])


def test_invites_from_ignored_users_are_not_sent(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    ignore(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    from_bob = create_room(api, bob)
    invite(api, bob, from_bob, alice)
    from_carol = create_room(api, carol)
    invite(api, carol, from_carol, alice)

    invites = section(sync(api, alice, since=token), "invite")
    initial = section(sync(api, alice), "invite")

    assert set(invites) == set(initial) == {from_carol}


def test_messages_hides_their_events_but_not_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    hidden = send(api, bob, room, "hello")
    topic = set_state(api, bob, room, "m.room.topic", {"topic": "t"}).body["event_id"]
    ignore(api, alice, bob)

    ids = [e["event_id"] for e in messages(api, alice, room, limit=50).body["chunk"]]

    assert hidden not in ids
    assert topic in ids


def test_unignoring_brings_new_events_back(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    ignore(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    ignore(api, alice)
    event_id = send(api, bob, room, "back")

    body = sync(api, alice, since=token)

    assert event_id in timeline_ids(joined(body)[room])
    # The list's change is delivered, so the client can decide to resync.
    assert {"type": "m.ignored_user_list", "content": {"ignored_users": {}}} in body[
        "account_data"
    ]["events"]
