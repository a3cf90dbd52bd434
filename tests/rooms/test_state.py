"""Room state: GET/PUT /rooms/{roomId}/state/{eventType}/{stateKey} and GET /state
(Client-Server API, "Getting events for a room" and "Sending events to a room")."""

from __future__ import annotations

import pytest
from django.conf import settings

from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import (
    create_room,
    get_state,
    invite,
    join,
    leave,
    room_path,
    set_state,
    state_map,
)
from tests.sync.helpers import joined, sync


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona) -> str:
    return create_room(api, alice, preset="public_chat", name="First name")


# -- reading ---------------------------------------------------------------------------


def test_get_state_answers_the_content(api: MatrixTestClient, alice: Persona, room: str) -> None:
    response = get_state(api, alice, room, "m.room.name")

    assert response.status == 200
    assert response.body == {"name": "First name"}


def test_an_empty_state_key_works_with_and_without_the_trailing_slash(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    without = api.get(room_path(room, "state", "m.room.name"), token=alice.access_token)
    with_slash = api.get(room_path(room, "state", "m.room.name") + "/", token=alice.access_token)

    assert without.status == with_slash.status == 200
    assert without.body == with_slash.body == {"name": "First name"}


def test_format_event_answers_the_whole_client_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    response = api.get(
        room_path(room, "state", "m.room.name", "") + "?format=event", token=alice.access_token
    )

    assert response.status == 200
    event = response.body
    assert event["type"] == "m.room.name"
    assert event["state_key"] == ""
    assert event["content"] == {"name": "First name"}
    assert event["sender"] == alice.user_id
    assert event["room_id"] == room
    assert event["event_id"].startswith("$")
    assert isinstance(event["origin_server_ts"], int)
    assert "age" in event["unsigned"]


def test_format_content_is_the_default(api: MatrixTestClient, alice: Persona, room: str) -> None:
    response = api.get(
        room_path(room, "state", "m.room.name", "") + "?format=content", token=alice.access_token
    )

    assert response.body == {"name": "First name"}


def test_the_full_state_lists_every_current_state_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    response = api.get(room_path(room, "state"), token=alice.access_token)

    assert response.status == 200
    keys = {(e["type"], e["state_key"]) for e in response.body}
    assert keys == {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("m.room.name", ""),
    }
    for event in response.body:
        assert event["room_id"] == room
        assert event["event_id"].startswith("$")
        assert "content" in event
        assert "sender" in event


@pytest.mark.parametrize(
    ("event_type", "state_key"),
    [("m.room.topic", ""), ("m.room.member", "@nobody:example.org"), ("m.room.name", "other")],
)
def test_missing_state_is_not_found(
    api: MatrixTestClient, alice: Persona, room: str, event_type: str, state_key: str
) -> None:
    response = get_state(api, alice, room, event_type, state_key)

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_state_of_an_unknown_room_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = get_state(api, alice, f"!nowhere:{settings.SERVER_NAME}", "m.room.name")

    assert response.status == 404
    assert response.errcode == "M_NOT_FOUND"


def test_a_non_member_cannot_read_the_state(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    single = get_state(api, bob, room, "m.room.name")
    full = api.get(room_path(room, "state"), token=bob.access_token)

    assert single.status == full.status == 403
    assert single.errcode == full.errcode == "M_FORBIDDEN"


def test_an_invited_user_cannot_read_the_state_yet(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, invite=[bob.user_id], name="secret")

    assert get_state(api, bob, room, "m.room.name").status == 403
    join(api, bob, room)
    assert get_state(api, bob, room, "m.room.name").body == {"name": "secret"}


def test_anyone_can_read_the_state_of_a_world_readable_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        name="open book",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )

    assert get_state(api, bob, room, "m.room.name").body == {"name": "open book"}
    assert api.get(room_path(room, "state"), token=bob.access_token).status == 200


def test_a_user_who_left_sees_the_state_as_it_was_when_they_left(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    join(api, bob, room)
    leave(api, bob, room)
    set_state(api, alice, room, "m.room.name", {"name": "Renamed after bob left"})
    set_state(api, alice, room, "m.room.topic", {"topic": "new topic"})
    join(api, carol, room)

    assert get_state(api, bob, room, "m.room.name").body == {"name": "First name"}
    assert get_state(api, bob, room, "m.room.topic").status == 404
    seen = state_map(api, bob, room)
    assert seen[("m.room.member", bob.user_id)]["content"]["membership"] == "leave"
    assert ("m.room.member", carol.user_id) not in seen
    assert seen[("m.room.name", "")]["content"] == {"name": "First name"}
    assert get_state(api, alice, room, "m.room.name").body == {"name": "Renamed after bob left"}


def test_a_banned_user_sees_the_state_as_it_was_when_they_were_banned(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    api.post(room_path(room, "ban"), {"user_id": bob.user_id}, token=alice.access_token)
    set_state(api, alice, room, "m.room.name", {"name": "Renamed after the ban"})

    assert get_state(api, bob, room, "m.room.name").body == {"name": "First name"}


def test_a_rejected_invite_gives_no_right_to_the_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # An invited user may not read the state; rejecting the invite must not open it.
    room = create_room(api, alice, invite=[bob.user_id], name="secret")
    leave(api, bob, room)

    for path in ("state", "state/m.room.name", "members"):
        response = api.get(room_path(room, *path.split("/")), token=bob.access_token)
        assert (response.status, response.errcode) == (403, "M_FORBIDDEN"), path


def test_after_leaving_and_rejecting_a_new_invite_the_state_is_as_when_they_left(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    leave(api, bob, room)
    set_state(api, alice, room, "m.room.name", {"name": "Renamed after bob left"})
    invite(api, alice, room, bob)
    leave(api, bob, room)

    assert get_state(api, bob, room, "m.room.name").body == {"name": "First name"}


# -- writing ---------------------------------------------------------------------------


def test_put_state_sets_it_and_answers_the_event_id(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    response = set_state(api, alice, room, "m.room.topic", {"topic": "Cheese"})

    event_id = response.body["event_id"]
    assert event_id.startswith("$")
    assert get_state(api, alice, room, "m.room.topic").body == {"topic": "Cheese"}
    assert state_map(api, alice, room)[("m.room.topic", "")]["event_id"] == event_id


def test_put_state_with_an_empty_state_key_and_a_trailing_slash(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    path = room_path(room, "state", "m.room.topic")
    with_slash = api.put(path + "/", {"topic": "with slash"}, token=alice.access_token)
    assert with_slash.status == 200
    assert get_state(api, alice, room, "m.room.topic").body == {"topic": "with slash"}

    without = api.put(path, {"topic": "without slash"}, token=alice.access_token)
    assert without.status == 200
    assert state_map(api, alice, room)[("m.room.topic", "")]["content"] == {
        "topic": "without slash"
    }


def test_state_keys_may_contain_slashes(api: MatrixTestClient, alice: Persona, room: str) -> None:
    # Encoded (as a client should send it) and raw: both name the same state key.
    encoded = set_state(api, alice, room, "org.example.path", {"n": 1}, "a/b/c")
    raw = api.put(
        room_path(room, "state", "org.example.path") + "/x/y", {"n": 2}, token=alice.access_token
    )

    assert encoded.status == raw.status == 200
    assert get_state(api, alice, room, "org.example.path", "a/b/c").body == {"n": 1}
    raw_get = api.get(
        room_path(room, "state", "org.example.path") + "/a/b/c", token=alice.access_token
    )
    assert raw_get.body == {"n": 1}
    state = state_map(api, alice, room)
    assert state[("org.example.path", "a/b/c")]["content"] == {"n": 1}
    assert state[("org.example.path", "x/y")]["content"] == {"n": 2}


def test_a_state_key_with_a_trailing_slash_is_kept_whole(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    set_state(api, alice, room, "org.example.k", {"n": 2}, "dir/")

    assert state_map(api, alice, room)[("org.example.k", "dir/")]["content"] == {"n": 2}


def test_a_state_key_that_is_a_user_id_belongs_to_that_user(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    # Auth rules: a state key starting with "@" must be the sender's own user ID.
    set_state(api, alice, room, "org.example.k", {"n": 1}, alice.user_id)
    refused = set_state(
        api, alice, room, "org.example.k", {"n": 1}, "@bob:example.org", expect=403
    )

    assert refused.errcode == "M_FORBIDDEN"
    state = state_map(api, alice, room)
    assert state[("org.example.k", alice.user_id)]["content"] == {"n": 1}
    assert ("org.example.k", "@bob:example.org") not in state


def test_replaced_state_carries_prev_content_in_unsigned(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first_id = state_map(api, alice, room)[("m.room.name", "")]["event_id"]

    set_state(api, alice, room, "m.room.name", {"name": "Second name"})

    event = api.get(
        room_path(room, "state", "m.room.name") + "?format=event", token=alice.access_token
    ).body
    assert event["content"] == {"name": "Second name"}
    assert event["unsigned"]["prev_content"] == {"name": "First name"}
    assert event["unsigned"]["replaces_state"] == first_id
    # The first state event of its kind replaces nothing.
    topic = set_state(api, alice, room, "m.room.topic", {"topic": "t"}).body["event_id"]
    topic_event = state_map(api, alice, room)[("m.room.topic", "")]
    assert topic_event["event_id"] == topic
    assert "prev_content" not in topic_event["unsigned"]


def events_in(room: str) -> int:
    return Event.objects.filter(room__room_id=room).count()


def test_setting_the_same_state_again_answers_the_same_event_and_makes_none(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first = set_state(api, alice, room, "m.room.topic", {"topic": "Cheese"}).body["event_id"]
    count = events_in(room)
    since = sync(api, alice)["next_batch"]

    again = set_state(api, alice, room, "m.room.topic", {"topic": "Cheese"})

    assert again.body == {"event_id": first}
    assert events_in(room) == count
    assert room not in joined(sync(api, alice, since=since, timeout=0))


def test_the_same_content_as_a_different_value_type_is_a_new_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    # 1 == True in Python, but not in JSON.
    first = set_state(api, alice, room, "org.example.flag", {"on": 1}).body["event_id"]

    second = set_state(api, alice, room, "org.example.flag", {"on": True}).body["event_id"]

    assert second != first
    assert get_state(api, alice, room, "org.example.flag").body == {"on": True}


def test_changed_state_content_is_a_new_event(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    first = set_state(api, alice, room, "m.room.topic", {"topic": "Cheese"}).body["event_id"]
    since = sync(api, alice)["next_batch"]

    second = set_state(api, alice, room, "m.room.topic", {"topic": "Wine"}).body["event_id"]

    assert second != first
    timeline = joined(sync(api, alice, since=since, timeout=0))[room]["timeline"]["events"]
    assert [e["event_id"] for e in timeline] == [second]


def test_the_same_state_from_another_sender_is_a_new_event(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    power = get_state(api, alice, room, "m.room.power_levels").body
    power["users"][bob.user_id] = 100
    set_state(api, alice, room, "m.room.power_levels", power)
    first = set_state(api, alice, room, "m.room.topic", {"topic": "Cheese"}).body["event_id"]

    by_bob = set_state(api, bob, room, "m.room.topic", {"topic": "Cheese"}).body["event_id"]

    assert by_bob != first
    event = api.get(
        room_path(room, "state", "m.room.topic") + "?format=event", token=alice.access_token
    ).body
    assert (event["event_id"], event["sender"]) == (by_bob, bob.user_id)


def test_bob_cannot_change_the_name_or_the_power_levels_without_power(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]

    name = set_state(api, bob, room, "m.room.name", {"name": "bob's"}, expect=403)
    power = set_state(
        api,
        bob,
        room,
        "m.room.power_levels",
        {**levels, "users": {bob.user_id: 100}},
        expect=403,
    )
    custom = set_state(api, bob, room, "org.example.state", {}, expect=403)

    assert name.errcode == power.errcode == custom.errcode == "M_FORBIDDEN"
    assert get_state(api, alice, room, "m.room.name").body == {"name": "First name"}
    assert get_state(api, alice, room, "m.room.power_levels").body == levels


def test_raising_bobs_level_lets_him_change_the_name(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    join(api, bob, room)
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]

    set_state(api, alice, room, "m.room.power_levels", {**levels, "users": {bob.user_id: 50}})

    set_state(api, bob, room, "m.room.name", {"name": "bob's"})
    assert get_state(api, alice, room, "m.room.name").body == {"name": "bob's"}
    # 50 is not enough for m.room.power_levels (100).
    set_state(api, bob, room, "m.room.power_levels", levels, expect=403)


def test_a_v12_creator_cannot_be_listed_in_power_levels(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, room_version="12")
    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]

    response = set_state(
        api,
        alice,
        room,
        "m.room.power_levels",
        {**levels, "users": {alice.user_id: 100}},
        expect=403,
    )

    assert response.errcode == "M_FORBIDDEN"


def test_a_non_member_cannot_set_state(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    response = set_state(api, bob, room, "org.example.state", {}, expect=403)

    assert response.errcode == "M_FORBIDDEN"


def test_an_invited_user_cannot_set_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    invite(api, alice, room, bob)

    assert set_state(api, bob, room, "org.example.state", {}, expect=403).errcode == "M_FORBIDDEN"


@pytest.mark.parametrize(
    ("raw", "errcode"),
    [(b"{", "M_NOT_JSON"), (b"[]", "M_BAD_JSON"), (b'"name"', "M_BAD_JSON")],
)
def test_the_state_body_must_be_a_json_object(
    api: MatrixTestClient, alice: Persona, room: str, raw: bytes, errcode: str
) -> None:
    response = api.request(
        "PUT", room_path(room, "state", "m.room.topic", ""), raw=raw, token=alice.access_token
    )

    assert response.status == 400
    assert response.errcode == errcode


@pytest.mark.parametrize("content", [{}, {"membership": 1}, {"membership": None}])
def test_a_member_event_without_a_membership_string_is_malformed(
    api: MatrixTestClient, alice: Persona, room: str, content: dict[str, object]
) -> None:
    # m.room.member requires a string "membership": this is a malformed request (400),
    # not a refused one (403), whoever the state key names.
    response = set_state(api, alice, room, "m.room.member", content, alice.user_id, expect=400)

    assert response.errcode == "M_BAD_JSON"


def test_post_is_not_supported_on_state_paths(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    response = api.post(room_path(room, "state", "m.room.topic", ""), {}, token=alice.access_token)

    assert response.status == 405
    assert response.errcode == "M_UNRECOGNIZED"


def test_state_group_entries_by_sql_and_by_orm_agree(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    from rooms.models import StateGroup
    from rooms.state import entries_of, entries_of_orm

    for n in range(3):
        response = api.put(
            f"/_matrix/client/v3/rooms/{room}/state/m.room.topic/",
            {"topic": str(n)},
            token=alice.access_token,
        )
        assert response.status == 200, response.body
    groups = list(StateGroup.objects.values_list("pk", flat=True))
    by_sql = sorted(entries_of(groups))
    assert by_sql == sorted(entries_of_orm(groups))
    assert {row[0] for row in by_sql} == set(groups)
