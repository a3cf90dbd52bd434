"""GET /sync for rooms (Client-Server API, "Syncing" and "Filtering").

Initial syncs give each room in its membership section; incremental syncs give what
changed since the token; limited timelines come with a prev_batch for /messages and
the gap's state changes in ``state``; filters, lazy-loaded members, ``use_state_after``
and room summaries follow the spec; bad parameters are Matrix errors.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from sync import providers
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    bodies,
    create_room,
    invite,
    join,
    leave,
    membership_action,
    messages,
    send,
    set_state,
)
from tests.sync.helpers import (
    joined,
    members_in,
    section,
    state_ids,
    state_keys,
    sync,
    sync_response,
    timeline_ids,
)

KNOCK_RULES = [{"type": "m.room.join_rules", "content": {"join_rule": "knock"}}]


def knock(api: MatrixTestClient, who: Persona, room: str) -> None:
    response = api.post(f"knock/{quote(room, safe='')}", {}, token=who.access_token)
    assert response.status == 200, response.body


def shared_room(api: MatrixTestClient, alice: Persona, *others: Persona, **body: Any) -> str:
    room = create_room(api, alice, **body)
    for other in others:
        invite(api, alice, room, other)
        join(api, other, room)
    return room


def set_displayname(api: MatrixTestClient, who: Persona, name: str) -> None:
    response = api.put(
        f"profile/{quote(who.user_id, safe='')}/displayname",
        {"displayname": name},
        token=who.access_token,
    )
    assert response.status == 200, response.body


def put_account_data(
    api: MatrixTestClient, who: Persona, data_type: str, content: Any, room: str | None = None
) -> None:
    user = quote(who.user_id, safe="")
    path = (
        f"user/{user}/rooms/{quote(room, safe='')}/account_data/{data_type}"
        if room
        else f"user/{user}/account_data/{data_type}"
    )
    response = api.put(path, content, token=who.access_token)
    assert response.status == 200, response.body


# -- initial sync shapes ------------------------------------------------------------------


def test_initial_sync_gives_a_joined_room_with_its_state_and_timeline(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, name="Tea")
    message = send(api, alice, room, "hi")
    body = sync(api, alice)
    assert body["next_batch"]
    entry = joined(body)[room]
    assert timeline_ids(entry)[-1] == message
    assert entry["timeline"]["prev_batch"]
    # State and timeline together describe the whole current state.
    keys = state_keys(entry) | {
        (e["type"], e["state_key"]) for e in entry["timeline"]["events"] if "state_key" in e
    }
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.member", alice.user_id)} <= keys
    # Nothing is both in the state and the timeline.
    assert not state_ids(entry) & set(timeline_ids(entry))
    assert entry["summary"]["m.joined_member_count"] == 1
    assert entry["account_data"] == {"events": []}
    assert entry["ephemeral"] == {"events": []}
    assert "state_after" not in entry


def test_initial_sync_gives_invites_with_stripped_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, name="Tea")
    invite(api, alice, room, bob)
    body = sync(api, bob)
    assert room not in joined(body)
    events = section(body, "invite")[room]["invite_state"]["events"]
    by_key = {(e["type"], e["state_key"]): e for e in events}
    assert by_key[("m.room.name", "")]["content"] == {"name": "Tea"}
    assert by_key[("m.room.member", bob.user_id)]["content"]["membership"] == "invite"
    for event in events:
        assert set(event) == {"type", "state_key", "sender", "content"}


def test_initial_sync_gives_knocks_with_stripped_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, room_version="10", initial_state=KNOCK_RULES)
    knock(api, bob, room)
    body = sync(api, bob)
    events = section(body, "knock")[room]["knock_state"]["events"]
    by_key = {(e["type"], e["state_key"]): e for e in events}
    assert by_key[("m.room.member", bob.user_id)]["content"]["membership"] == "knock"
    assert by_key[("m.room.join_rules", "")]["content"] == {"join_rule": "knock"}


def test_stripped_state_is_the_state_at_the_invite_or_knock(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    # An invite or knock is sent once: an initial sync must not show a later change that
    # an incremental sync never carries, or the two views of the room disagree.
    room = create_room(api, alice, room_version="10", name="Tea", initial_state=KNOCK_RULES)
    invite(api, alice, room, bob)
    knock(api, carol, room)
    delivered = {
        who.user_id: sync(api, who)["rooms"][section_name][room][f"{section_name}_state"]
        for who, section_name in ((bob, "invite"), (carol, "knock"))
    }
    set_state(api, alice, room, "m.room.topic", {"topic": "later"})
    set_state(api, alice, room, "m.room.name", {"name": "Coffee"})
    for who, section_name in ((bob, "invite"), (carol, "knock")):
        stripped = sync(api, who)["rooms"][section_name][room][f"{section_name}_state"]
        assert stripped == delivered[who.user_id]
        by_key = {(e["type"], e["state_key"]): e for e in stripped["events"]}
        assert ("m.room.topic", "") not in by_key
        assert by_key[("m.room.name", "")]["content"] == {"name": "Tea"}


def test_left_rooms_only_with_include_leave_on_an_initial_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    send(api, bob, room, "bye")
    leave(api, bob, room)
    assert "leave" not in sync(api, bob).get("rooms", {})
    body = sync(api, bob, filter={"room": {"include_leave": True}})
    entry = section(body, "leave")[room]
    last = entry["timeline"]["events"][-1]
    assert (last["type"], last["state_key"]) == ("m.room.member", bob.user_id)
    assert last["content"]["membership"] == "leave"
    assert "ephemeral" not in entry


# -- incremental syncs --------------------------------------------------------------------


def test_an_empty_incremental_sync_lists_no_rooms(api: MatrixTestClient, alice: Persona) -> None:
    create_room(api, alice)
    token = sync(api, alice)["next_batch"]
    body = sync(api, alice, since=token)
    assert body.get("rooms", {}) == {}
    assert body["next_batch"] == token


def test_incremental_sync_after_a_message(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    message = send(api, alice, room, "news")
    entry = joined(sync(api, bob, since=token))[room]
    assert timeline_ids(entry) == [message]
    assert entry["timeline"]["limited"] is False
    assert entry["state"]["events"] == []


def test_incremental_sync_after_a_state_change(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    first = set_state(api, alice, room, "m.room.topic", {"topic": "old"}).body["event_id"]
    second = set_state(api, alice, room, "m.room.topic", {"topic": "new"}).body["event_id"]
    entry = joined(sync(api, bob, since=token))[room]
    assert timeline_ids(entry) == [first, second]
    assert entry["timeline"]["events"][1]["unsigned"]["prev_content"] == {"topic": "old"}
    assert entry["state"]["events"] == []


def test_incremental_sync_after_an_invite(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, name="Tea")
    token = sync(api, bob)["next_batch"]
    invite(api, alice, room, bob)
    body = sync(api, bob, since=token)
    assert room in section(body, "invite")
    # The invite is not repeated once delivered.
    again = sync(api, bob, since=body["next_batch"])
    assert room not in section(again, "invite")


def test_incremental_sync_after_joining_gives_the_full_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, name="Tea")
    for n in range(3):
        send(api, alice, room, f"before {n}")
    invite(api, alice, room, bob)
    token = sync(api, bob)["next_batch"]
    join(api, bob, room)
    entry = joined(sync(api, bob, since=token))[room]
    keys = state_keys(entry) | {
        (e["type"], e["state_key"]) for e in entry["timeline"]["events"] if "state_key" in e
    }
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.power_levels", "")} <= keys
    assert ("m.room.member", bob.user_id) in keys
    assert entry["summary"]["m.joined_member_count"] == 2


def test_a_room_joined_since_the_token_has_a_limited_timeline(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # A newly joined room comes with its state, and an incremental sync's state "will
    # therefore be empty unless the timeline was limited" ("Syncing").
    room = create_room(api, alice, preset="public_chat")
    for n in range(3):
        send(api, alice, room, f"before {n}")
    only_messages = {"room": {"timeline": {"types": ["m.room.message"], "limit": 10}}}
    token = sync(api, bob, filter=only_messages)["next_batch"]
    join(api, bob, room)
    entry = joined(sync(api, bob, since=token, filter=only_messages))[room]
    assert bodies(entry["timeline"]["events"]) == ["before 0", "before 1", "before 2"]
    assert entry["timeline"]["limited"] is True


def test_a_timeline_from_the_rooms_creation_is_not_limited(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    token = sync(api, bob)["next_batch"]
    join(api, bob, room)
    entry = joined(sync(api, bob, since=token, filter={"room": {"timeline": {"limit": 50}}}))[room]
    assert entry["timeline"]["events"][0]["type"] == "m.room.create"
    assert entry["timeline"]["limited"] is False
    assert entry["state"]["events"] == []


def test_current_state_shows_in_the_timeline_whatever_the_history_visibility(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    # carol joins while bob is away from a "joined" history room: her join is the
    # room's current state, which bob is given anyway, so it is in his timeline too.
    room = shared_room(api, alice, bob, preset="public_chat")
    set_state(api, alice, room, "m.room.history_visibility", {"history_visibility": "joined"})
    token = sync(api, bob)["next_batch"]
    leave(api, bob, room)
    for n in range(12):
        send(api, alice, room, f"unseen {n}")
    join(api, carol, room)
    for n in range(45):
        send(api, alice, room, f"also unseen {n}")
    join(api, bob, room)
    entry = joined(sync(api, bob, since=token))[room]
    events = entry["timeline"]["events"]
    assert [
        e["content"]["membership"]
        for e in events
        if e["type"] == "m.room.member" and e["state_key"] == carol.user_id
    ] == ["join"]
    # Messages from while bob was away stay hidden.
    assert not [b for b in bodies(events) if "unseen" in b]
    assert entry["timeline"]["events"][-1]["state_key"] == bob.user_id


def test_joining_and_leaving_between_two_syncs_gives_the_rooms_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    set_state(api, alice, room, "a.madeup.state", {"my_key": 1})
    invite(api, alice, room, bob)
    state_only = {
        "room": {
            "timeline": {"types": []},
            "state": {"types": ["a.madeup.state"]},
            "include_leave": True,
        }
    }
    token = sync(api, bob, filter=state_only)["next_batch"]
    join(api, bob, room)
    leave(api, bob, room)
    entry = section(sync(api, bob, since=token, filter=state_only), "leave")[room]
    assert [(e["type"], e["content"]) for e in entry["state"]["events"]] == [
        ("a.madeup.state", {"my_key": 1})
    ]


def test_other_members_joining_and_leaving_show_in_the_timeline(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, alice)["next_batch"]
    invite(api, alice, room, carol)
    join(api, carol, room)
    leave(api, bob, room)
    entry = joined(sync(api, alice, since=token))[room]
    memberships = [
        (e["state_key"], e["content"]["membership"]) for e in entry["timeline"]["events"]
    ]
    assert memberships == [
        (carol.user_id, "invite"),
        (carol.user_id, "join"),
        (bob.user_id, "leave"),
    ]
    assert entry["summary"]["m.joined_member_count"] == 2


def test_incremental_sync_after_leaving(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    send(api, alice, room, "before")
    leave(api, bob, room)
    send(api, alice, room, "after")
    body = sync(api, bob, since=token)
    assert room not in joined(body)
    entry = section(body, "leave")[room]
    assert bodies(entry["timeline"]["events"]) == ["before"]
    assert entry["timeline"]["events"][-1]["content"]["membership"] == "leave"
    # Delivered once.
    assert room not in section(sync(api, bob, since=body["next_batch"]), "leave")


@pytest.mark.parametrize("use_state_after", [False, True])
def test_a_rejected_invite_shows_nothing_the_invitee_could_not_see(
    api: MatrixTestClient, alice: Persona, bob: Persona, use_state_after: bool
) -> None:
    # history_visibility "shared": events before a user's join are theirs only once
    # they join, and bob never does; all he could see is his own membership.
    room = create_room(api, alice, preset="private_chat", name="Plans")
    set_state(api, alice, room, "m.room.topic", {"topic": "not for bob"})
    send(api, alice, room, "before the invite")
    token = sync(api, bob)["next_batch"]
    invite(api, alice, room, bob)
    send(api, alice, room, "while bob is invited")
    leave(api, bob, room)
    key = "state_after" if use_state_after else "state"
    mode = {"use_state_after": True} if use_state_after else {}
    for timeline_limit in (1, 10):
        room_filter = {"timeline": {"limit": timeline_limit}}
        incremental = sync(api, bob, since=token, filter={"room": room_filter}, **mode)
        initial = sync(api, bob, filter={"room": {**room_filter, "include_leave": True}}, **mode)
        for body in (incremental, initial):
            entry = section(body, "leave")[room]
            events = entry[key]["events"] + entry["timeline"]["events"]
            seen = {
                (e["type"], e.get("state_key"), e["content"].get("membership")) for e in events
            }
            member = "m.room.member"
            assert (member, bob.user_id, "leave") in seen
            assert seen <= {(member, bob.user_id, "invite"), (member, bob.user_id, "leave")}


def test_rejecting_a_new_invite_after_leaving_shows_nothing_from_while_away(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob, preset="private_chat", name="Plans")
    leave(api, bob, room)
    token = sync(api, bob)["next_batch"]
    set_state(api, alice, room, "m.room.name", {"name": "Renamed while bob was away"})
    invite(api, alice, room, bob)
    leave(api, bob, room)
    entry = section(sync(api, bob, since=token), "leave")[room]
    events = entry["state"]["events"] + entry["timeline"]["events"]
    assert {(e["type"], e["state_key"]) for e in events} == {("m.room.member", bob.user_id)}


def test_a_rejected_invite_keeps_the_state_history_visibility_shows(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        initial_state=[
            {"type": "m.room.history_visibility", "content": {"history_visibility": "invited"}}
        ],
    )
    set_state(api, alice, room, "m.room.topic", {"topic": "before"})
    invite(api, alice, room, bob)
    topic = set_state(api, alice, room, "m.room.topic", {"topic": "while invited"})
    send(api, alice, room, "while invited")
    leave(api, bob, room)
    body = sync(api, bob, filter={"room": {"include_leave": True, "timeline": {"limit": 1}}})
    entry = section(body, "leave")[room]
    # "invited": what happened while bob was invited is his to see, not what came before.
    assert topic.body["event_id"] in state_ids(entry)
    assert ("m.room.member", alice.user_id) not in state_keys(entry)


@pytest.mark.parametrize("action", ["kick", "ban"])
def test_incremental_sync_after_a_kick_or_ban(
    api: MatrixTestClient, alice: Persona, bob: Persona, action: str
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    membership_action(api, alice, room, action, bob, reason="out")
    body = sync(api, bob, since=token)
    entry = section(body, "leave")[room]
    last = entry["timeline"]["events"][-1]
    assert last["state_key"] == bob.user_id
    assert last["content"]["membership"] == ("leave" if action == "kick" else "ban")
    assert last["sender"] == alice.user_id


def test_incremental_sync_after_knocking_and_being_let_in(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, room_version="10", initial_state=KNOCK_RULES)
    token = sync(api, bob)["next_batch"]
    alice_token = sync(api, alice)["next_batch"]
    knock(api, bob, room)
    body = sync(api, bob, since=token)
    assert room in section(body, "knock")
    # The room's members see the knock in the timeline.
    [event] = joined(sync(api, alice, since=alice_token))[room]["timeline"]["events"]
    assert event["content"]["membership"] == "knock"
    invite(api, alice, room, bob)
    body = sync(api, bob, since=body["next_batch"])
    assert room in section(body, "invite")
    assert room not in section(body, "knock")


def test_a_profile_change_does_not_resend_old_history(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = shared_room(api, alice, bob)
    old = send(api, bob, room, "old news")
    token = sync(api, bob)["next_batch"]
    # The worker re-sends the join event with the new profile after commit.
    with django_capture_on_commit_callbacks(execute=True):
        set_displayname(api, bob, "Robert")
    entry = joined(sync(api, bob, since=token))[room]
    assert old not in timeline_ids(entry)
    [event] = entry["timeline"]["events"]
    assert event["content"]["displayname"] == "Robert"
    assert entry["timeline"]["limited"] is False


def test_rejoining_after_leaving_gives_the_room_back(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob, preset="public_chat")
    token = sync(api, bob)["next_batch"]
    leave(api, bob, room)
    set_state(api, alice, room, "m.room.topic", {"topic": "while away"})
    join(api, bob, room)
    entry = joined(sync(api, bob, since=token))[room]
    keys = state_keys(entry) | {
        (e["type"], e["state_key"]) for e in entry["timeline"]["events"] if "state_key" in e
    }
    assert ("m.room.topic", "") in keys


# -- limited timelines --------------------------------------------------------------------


def test_a_limited_timeline_has_a_prev_batch_that_fetches_the_gap(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    sent = [send(api, alice, room, f"m{n}") for n in range(7)]
    entry = joined(sync(api, bob, since=token, filter={"room": {"timeline": {"limit": 3}}}))[room]
    assert timeline_ids(entry) == sent[-3:]
    assert entry["timeline"]["limited"] is True
    gap = messages(api, bob, room, **{"from": entry["timeline"]["prev_batch"], "dir": "b"})
    assert gap.status == 200
    assert [e["event_id"] for e in gap.body["chunk"][:4]] == sent[3::-1]


def test_a_limited_timeline_carries_the_gaps_state_changes(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    topic = set_state(api, alice, room, "m.room.topic", {"topic": "gap"}).body["event_id"]
    invite(api, alice, room, carol)
    carol_join = join(api, carol, room).body
    assert carol_join["room_id"] == room
    for n in range(5):
        send(api, alice, room, f"m{n}")
    entry = joined(sync(api, bob, since=token, filter={"room": {"timeline": {"limit": 2}}}))[room]
    assert entry["timeline"]["limited"] is True
    state = {(e["type"], e["state_key"]): e for e in entry["state"]["events"]}
    assert state[("m.room.topic", "")]["event_id"] == topic
    assert state[("m.room.member", carol.user_id)]["content"]["membership"] == "join"
    # Unchanged state is not repeated.
    assert ("m.room.create", "") not in state


def test_the_gap_rule_holds_with_lazy_loaded_members(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    """ "When a sync is limited, the server MUST return membership events for events in
    the gap ... regardless as to whether or not they are redundant"."""
    room = shared_room(api, alice, bob)
    lazy = {"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": True}}}
    send(api, alice, room, "hello")
    first = sync(api, bob, filter=lazy)
    assert alice.user_id in members_in(joined(first)[room])
    invite(api, alice, room, carol)
    join(api, carol, room)
    for n in range(4):
        send(api, alice, room, f"m{n}")
    entry = joined(sync(api, bob, since=first["next_batch"], filter=lazy))[room]
    assert entry["timeline"]["limited"] is True
    # carol's join is in the gap; alice's member event, unchanged and already sent, is
    # not a membership event of the gap, and stays redundant.
    assert members_in(entry) == {carol.user_id}


def test_full_state_gives_all_state_with_an_incremental_timeline(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    message = send(api, alice, room, "new")
    entry = joined(sync(api, bob, since=token, full_state=True))[room]
    assert timeline_ids(entry) == [message]
    keys = state_keys(entry)
    assert {("m.room.create", ""), ("m.room.member", alice.user_id)} <= keys
    assert ("m.room.member", bob.user_id) in keys
    # A room without news is still listed with its full state.
    quiet = create_room(api, bob)
    token = sync(api, bob)["next_batch"]
    entry = joined(sync(api, bob, since=token, full_state=True))[quiet]
    assert ("m.room.create", "") in state_keys(entry)


# -- filters ------------------------------------------------------------------------------


def test_timeline_filter_types_not_types_and_senders(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    from_alice = send(api, alice, room, "a")
    from_bob = send(api, bob, room, "b")
    notice = send(api, alice, room, {"x": 1}, event_type="org.example.notice")

    def timeline(**event_filter: Any) -> list[str]:
        body = sync(api, bob, since=token, filter={"room": {"timeline": event_filter}})
        return timeline_ids(joined(body)[room]) if room in joined(body) else []

    assert timeline(types=["m.room.message"]) == [from_alice, from_bob]
    assert timeline(types=["org.example.*"]) == [notice]
    assert timeline(not_types=["m.room.message"]) == [notice]
    assert timeline(senders=[bob.user_id]) == [from_bob]
    assert timeline(not_senders=[bob.user_id]) == [from_alice, notice]


def test_a_filtered_timeline_still_delivers_state_changes(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    only_messages = {"room": {"timeline": {"types": ["m.room.message"]}}}
    token = sync(api, bob, filter=only_messages)["next_batch"]
    topic = set_state(api, alice, room, "m.room.topic", {"topic": "filtered"}).body["event_id"]
    send(api, alice, room, "after the topic")
    entry = joined(sync(api, bob, since=token, filter=only_messages))[room]
    assert topic in state_ids(entry)
    # Also when the timeline has nothing that passes the filter.
    token = sync(api, bob, filter=only_messages)["next_batch"]
    name = set_state(api, alice, room, "m.room.name", {"name": "N"}).body["event_id"]
    entry = joined(sync(api, bob, since=token, filter=only_messages))[room]
    assert name in state_ids(entry)


def test_event_format_federation_gives_the_pdus(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    message = send(api, alice, room, "as a pdu")
    body = sync(
        api, alice, filter={"event_format": "federation", "room": {"timeline": {"limit": 1}}}
    )
    (event,) = joined(body)[room]["timeline"]["events"]
    assert event["event_id"] == message
    assert event["room_id"] == room
    assert event["content"]["body"] == "as a pdu"
    for key in ("prev_events", "auth_events", "depth", "hashes", "signatures"):
        assert key in event
    assert "age" not in event.get("unsigned", {})
    state = joined(body)[room]["state"]["events"]
    assert state
    assert all("auth_events" in e for e in state)


def test_rooms_and_not_rooms(api: MatrixTestClient, alice: Persona) -> None:
    first = create_room(api, alice)
    second = create_room(api, alice)
    assert set(joined(sync(api, alice, filter={"room": {"rooms": [first]}}))) == {first}
    assert set(joined(sync(api, alice, filter={"room": {"not_rooms": [first]}}))) == {second}


def test_lazy_loaded_members_on_an_initial_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    others = [api.register(name) for name in ("dan", "erin", "frank", "grace")]
    room = shared_room(api, alice, bob, carol, *others)
    for n in range(3):
        send(api, alice, room, f"m{n}")
    lazy = {"room": {"timeline": {"limit": 3}, "state": {"lazy_load_members": True}}}
    entry = joined(sync(api, bob, filter=lazy))[room]
    heroes = entry["summary"]["m.heroes"]
    assert heroes == [alice.user_id, carol.user_id] + [o.user_id for o in others[:3]]
    # The senders of the timeline, the syncing user's own member event and the heroes'
    # (the summary's "m.heroes"): grace, the sixth other member, is left out.
    assert members_in(entry) == {alice.user_id, bob.user_id, *heroes}
    eager = joined(sync(api, bob, filter={"room": {"timeline": {"limit": 3}}}))[room]
    assert members_in(eager) == {alice.user_id, bob.user_id, carol.user_id} | {
        o.user_id for o in others
    }


@pytest.mark.parametrize("use_state_after", [False, True])
def test_lazy_loading_gives_the_member_events_of_new_heroes(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, use_state_after: bool
) -> None:
    others = [api.register(name) for name in ("dan", "erin", "frank", "grace")]
    room = shared_room(api, alice, bob, carol, *others)
    lazy = {"room": {"timeline": {"limit": 5}, "state": {"lazy_load_members": True}}}
    mode = {"use_state_after": True} if use_state_after else {}
    key = "state_after" if use_state_after else "state"
    for n in range(5):
        send(api, alice, room, f"m{n}")
    first = sync(api, bob, filter=lazy, **mode)
    grace = others[-1].user_id
    assert grace not in members_in(joined(first)[room], key)
    leave(api, carol, room)
    entry = joined(sync(api, bob, since=first["next_batch"], filter=lazy, **mode))[room]
    # Carol's leave makes grace a hero; she never sent anything, and bob's client has
    # not had her member event.
    assert grace in entry["summary"]["m.heroes"]
    assert grace in members_in(entry, key)


def test_lazy_loading_includes_own_member_event_on_join_and_full_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    invite(api, alice, room, bob)
    lazy = {"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}}}
    token = sync(api, bob, filter=lazy)["next_batch"]
    join(api, bob, room)
    send(api, alice, room, "welcome")
    entry = joined(sync(api, bob, since=token, filter=lazy))[room]
    assert bob.user_id in members_in(entry)
    assert alice.user_id in members_in(entry)
    token = sync(api, bob, filter=lazy)["next_batch"]
    entry = joined(sync(api, bob, since=token, filter=lazy, full_state=True))[room]
    assert bob.user_id in members_in(entry)


def test_account_data_and_its_filters(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)
    token = sync(api, alice)["next_batch"]
    put_account_data(api, alice, "org.example.a", {"a": 1})
    put_account_data(api, alice, "org.example.b", {"b": 2})
    put_account_data(api, alice, "org.example.r", {"r": 3}, room=room)
    body = sync(api, alice, since=token)
    assert {e["type"] for e in body["account_data"]["events"]} == {
        "org.example.a",
        "org.example.b",
    }
    assert joined(body)[room]["account_data"]["events"] == [
        {"type": "org.example.r", "content": {"r": 3}}
    ]
    filtered = sync(
        api,
        alice,
        since=token,
        filter={
            "account_data": {"types": ["org.example.a"]},
            "room": {"account_data": {"not_types": ["org.example.r"]}},
        },
    )
    assert [e["type"] for e in filtered["account_data"]["events"]] == ["org.example.a"]
    assert room not in joined(filtered)
    # Nobody else sees it: bob has only the account data the server manages for him.
    assert [e["type"] for e in sync(api, bob)["account_data"]["events"]] == ["m.push_rules"]


def test_use_state_after_gives_state_at_the_end_of_the_timeline(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    topic = set_state(api, alice, room, "m.room.topic", {"topic": "after"}).body["event_id"]
    message = send(api, alice, room, "m")
    entry = joined(sync(api, bob, since=token, use_state_after=True))[room]
    assert "state" not in entry
    assert timeline_ids(entry) == [topic, message]
    assert state_ids(entry, "state_after") == {topic}
    # Required even when empty, and on an initial sync it is the whole current state.
    token = sync(api, bob)["next_batch"]
    send(api, alice, room, "m2")
    entry = joined(sync(api, bob, since=token, use_state_after=True))[room]
    assert entry["state_after"] == {"events": []}
    initial = joined(sync(api, bob, use_state_after=True))[room]
    assert ("m.room.topic", "") in state_keys(initial, "state_after")
    assert ("m.room.member", bob.user_id) in state_keys(initial, "state_after")


def test_use_state_after_on_a_room_with_only_account_data(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    token = sync(api, alice)["next_batch"]
    put_account_data(api, alice, "org.example.r", {"r": 1}, room=room)
    entry = joined(sync(api, alice, since=token, use_state_after=True))[room]
    assert "state" not in entry
    assert entry["state_after"] == {"events": []}


# -- summaries ----------------------------------------------------------------------------


def test_summary_counts_and_heroes(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = shared_room(api, alice, bob)
    invite(api, alice, room, carol)
    summary = joined(sync(api, alice))[room]["summary"]
    assert summary == {
        "m.heroes": [bob.user_id, carol.user_id],
        "m.joined_member_count": 2,
        "m.invited_member_count": 1,
    }
    token = sync(api, alice)["next_batch"]
    join(api, carol, room)
    summary = joined(sync(api, alice, since=token))[room]["summary"]
    assert summary["m.joined_member_count"] == 3
    assert summary["m.invited_member_count"] == 0


def test_a_named_room_has_no_heroes_until_its_name_is_removed(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # m.heroes is "required if the room's m.room.name or m.room.canonical_alias state
    # events are unset or empty" (GET /sync): a named room's summary has the counts.
    room = shared_room(api, alice, bob)
    set_state(api, alice, room, "m.room.name", {"name": "Team room"})
    first = sync(api, alice)
    assert joined(first)[room]["summary"] == {
        "m.joined_member_count": 2,
        "m.invited_member_count": 0,
    }
    # Emptying the name makes the heroes needed: the summary comes with the change.
    set_state(api, alice, room, "m.room.name", {"name": ""})
    summary = joined(sync(api, alice, since=first["next_batch"]))[room]["summary"]
    assert summary["m.heroes"] == [bob.user_id]


def test_heroes_fall_back_to_departed_members(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    leave(api, bob, room)
    summary = joined(sync(api, alice))[room]["summary"]
    assert summary["m.heroes"] == [bob.user_id]
    assert summary["m.joined_member_count"] == 1


# -- bad requests -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "errcode"),
    [
        ({"since": "garbage"}, "M_INVALID_PARAM"),
        ({"since": "s1_x"}, "M_INVALID_PARAM"),
        ({"since": "s-1"}, "M_INVALID_PARAM"),
        ({"timeout": "soon"}, "M_INVALID_PARAM"),
        ({"timeout": "1.5"}, "M_INVALID_PARAM"),
        ({"full_state": "yes"}, "M_INVALID_PARAM"),
        ({"use_state_after": "1"}, "M_INVALID_PARAM"),
        ({"set_presence": "busy"}, "M_INVALID_PARAM"),
        ({"filter": "{not json"}, "M_NOT_JSON"),
        ({"filter": "[]"}, "M_INVALID_PARAM"),
        ({"filter": '{"room": {"timeline": {"limit": "ten"}}}'}, "M_BAD_JSON"),
        ({"filter": "12345"}, "M_INVALID_PARAM"),
    ],
)
def test_bad_parameters_are_matrix_errors(
    api: MatrixTestClient, alice: Persona, params: dict[str, str], errcode: str
) -> None:
    response = sync_response(api, alice, **params)
    assert response.status == 400, response.body
    assert response.errcode == errcode, response.body


@pytest.mark.parametrize("timeout", ["0", "5000"])
def test_a_since_token_from_the_future_gets_an_initial_sync(
    api: MatrixTestClient, alice: Persona, timeout: str
) -> None:
    # Positions this server never handed out (its database was restored from a backup,
    # say): what the client holds is unknown, so it gets everything, at once, and a
    # token that the next events move past.
    room = create_room(api, alice, name="Tea")
    put_account_data(api, alice, "org.example.a", {"a": 1})
    current = sync(api, alice)["next_batch"]
    future = "s" + "_".join(str(int(p) + 1000) for p in current[1:].split("_"))
    body = sync(api, alice, since=future, timeout=timeout)
    assert body["next_batch"] == current
    entry = joined(body)[room]
    assert ("m.room.name", "") in state_keys(entry) | {
        (e["type"], e.get("state_key")) for e in entry["timeline"]["events"]
    }
    assert {e["type"] for e in body["account_data"]["events"]} >= {"org.example.a"}
    event_id = send(api, alice, room, "after the restore")
    assert event_id in timeline_ids(joined(sync(api, alice, since=body["next_batch"]))[room])


def test_a_negative_timeout_means_return_at_once(api: MatrixTestClient, alice: Persona) -> None:
    token = sync(api, alice)["next_batch"]
    assert sync(api, alice, since=token, timeout="-5")["next_batch"] == token


def test_a_stored_filter_is_used_by_id(api: MatrixTestClient, alice: Persona) -> None:
    first = create_room(api, alice)
    create_room(api, alice)
    created = api.post(
        f"user/{quote(alice.user_id, safe='')}/filter",
        {"room": {"rooms": [first]}},
        token=alice.access_token,
    )
    assert created.status == 200
    body = sync(api, alice, filter=created.body["filter_id"])
    assert set(joined(body)) == {first}


def test_another_users_filter_id_is_unknown(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    created = api.post(
        f"user/{quote(alice.user_id, safe='')}/filter", {}, token=alice.access_token
    )
    response = sync_response(api, bob, filter=created.body["filter_id"])
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_missing_and_unknown_tokens_are_401(api: MatrixTestClient) -> None:
    missing = api.get("sync")
    assert (missing.status, missing.errcode) == (401, "M_MISSING_TOKEN")
    unknown = api.get("sync", token="nonsense")
    assert (unknown.status, unknown.errcode) == (401, "M_UNKNOWN_TOKEN")


def test_a_long_poll_without_news_returns_after_its_timeout(
    api: MatrixTestClient, alice: Persona
) -> None:
    create_room(api, alice)
    token = sync(api, alice)["next_batch"]
    body = sync(api, alice, since=token, timeout=50)
    assert body["next_batch"] == token
    assert body.get("rooms", {}) == {}


# -- query counts -------------------------------------------------------------------------


def provider_allowance() -> int:
    """Sections other apps provide (typing, receipts, to-device, presence) cost a query
    or two each, whatever the number of rooms."""
    return 2 * (len(providers._ephemeral) + len(providers._top_level))


def test_query_count_of_an_empty_incremental_sync(
    api: MatrixTestClient, alice: Persona, bob: Persona, django_assert_max_num_queries: Any
) -> None:
    for _ in range(10):
        shared_room(api, alice, bob)
    token = sync(api, bob)["next_batch"]
    # Token, joined rooms, positions, memberships, rooms with news, account data, and
    # one spare for the ignored-users list.
    with django_assert_max_num_queries(7 + provider_allowance()):
        body = sync(api, bob, since=token)
    assert body.get("rooms", {}) == {}


def test_query_count_of_one_message_in_one_of_ten_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona, django_assert_max_num_queries: Any
) -> None:
    rooms = [shared_room(api, alice, bob) for _ in range(10)]
    token = sync(api, bob)["next_batch"]
    message = send(api, alice, rooms[3], "only news")
    # The empty sync's queries, plus the room's timeline, its visibility and the
    # bundled aggregations of the timeline: none per room without news.
    with django_assert_max_num_queries(12 + provider_allowance()):
        body = sync(api, bob, since=token)
    assert set(joined(body)) == {rooms[3]}
    assert timeline_ids(joined(body)[rooms[3]]) == [message]


def test_query_count_of_state_changes_in_one_of_ten_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona, django_assert_max_num_queries: Any
) -> None:
    rooms = [shared_room(api, alice, bob) for _ in range(10)]
    set_state(api, alice, rooms[3], "m.room.topic", {"topic": "topic 0"})
    token = sync(api, bob)["next_batch"]
    for number in range(1, 31):
        set_state(api, alice, rooms[3], "m.room.topic", {"topic": f"topic {number}"})
    # As one message, plus the events the timeline replaced (prev_content) and whether
    # their senders were erased (rooms.selectors.as_served): once for the 30 events.
    with django_assert_max_num_queries(12 + 2 + provider_allowance()):
        body = sync(api, bob, since=token, filter={"room": {"timeline": {"limit": 30}}})
    timeline = joined(body)[rooms[3]]["timeline"]["events"]
    assert [e["unsigned"]["prev_content"]["topic"] for e in timeline] == [
        f"topic {number}" for number in range(30)
    ]
