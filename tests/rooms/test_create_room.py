"""POST /createRoom (Client-Server API, "Room creation")."""

from __future__ import annotations

import pytest
from django.conf import settings

from rooms.models import Room
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, messages, send, state_map

ALL_ROOM_VERSIONS = [str(n) for n in range(1, 13)]


def timeline_types(api: MatrixTestClient, who: Persona, room: str) -> list[tuple[str, str]]:
    """(type, state_key) of every event of the room, oldest first."""
    response = messages(api, who, room, dir="f", limit=100)
    assert response.status == 200, response.body
    return [(e["type"], e.get("state_key", "")) for e in response.body["chunk"]]


# -- presets ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "join_rule", "history_visibility", "guest_access"),
    [
        ("private_chat", "invite", "shared", "can_join"),
        ("trusted_private_chat", "invite", "shared", "can_join"),
        ("public_chat", "public", "shared", "forbidden"),
    ],
)
def test_a_preset_sets_join_rules_history_visibility_and_guest_access(
    api: MatrixTestClient,
    alice: Persona,
    preset: str,
    join_rule: str,
    history_visibility: str,
    guest_access: str,
) -> None:
    room = create_room(api, alice, preset=preset)

    state = state_map(api, alice, room)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": join_rule}
    assert state[("m.room.history_visibility", "")]["content"] == {
        "history_visibility": history_visibility
    }
    assert state[("m.room.guest_access", "")]["content"] == {"guest_access": guest_access}


@pytest.mark.parametrize(
    ("visibility", "join_rule"), [(None, "invite"), ("private", "invite"), ("public", "public")]
)
def test_without_a_preset_the_visibility_picks_one(
    api: MatrixTestClient, alice: Persona, visibility: str | None, join_rule: str
) -> None:
    body = {} if visibility is None else {"visibility": visibility}

    room = create_room(api, alice, **body)

    assert state_map(api, alice, room)[("m.room.join_rules", "")]["content"] == {
        "join_rule": join_rule
    }


def test_public_visibility_publishes_the_room_in_the_directory(
    api: MatrixTestClient, alice: Persona
) -> None:
    public = create_room(api, alice, visibility="public")
    private = create_room(api, alice)
    private_but_joinable = create_room(api, alice, preset="public_chat")

    assert Room.objects.get(room_id=public).is_public is True
    assert Room.objects.get(room_id=private).is_public is False
    assert Room.objects.get(room_id=private_but_joinable).is_public is False


def test_the_creator_is_joined_and_the_room_is_listed_in_joined_rooms(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)

    member = state_map(api, alice, room)[("m.room.member", alice.user_id)]
    assert member["content"]["membership"] == "join"
    assert member["sender"] == alice.user_id
    joined = api.get("joined_rooms", token=alice.access_token).body["joined_rooms"]
    assert joined == [room]


# -- name, topic, invites --------------------------------------------------------------


def test_name_and_topic_become_state_with_a_plain_text_m_topic(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, name="The Grand Duke Pub", topic="All about happy hour")

    state = state_map(api, alice, room)
    assert state[("m.room.name", "")]["content"] == {"name": "The Grand Duke Pub"}
    assert state[("m.room.topic", "")]["content"] == {
        "topic": "All about happy hour",
        "m.topic": {"m.text": [{"mimetype": "text/plain", "body": "All about happy hour"}]},
    }


def test_without_name_or_topic_there_is_no_such_state(
    api: MatrixTestClient, alice: Persona
) -> None:
    state = state_map(api, alice, create_room(api, alice))

    assert ("m.room.name", "") not in state
    assert ("m.room.topic", "") not in state


def test_name_and_topic_overwrite_the_same_events_in_initial_state(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(
        api,
        alice,
        name="from name",
        topic="from topic",
        initial_state=[
            {"type": "m.room.name", "content": {"name": "from initial_state"}},
            {"type": "m.room.topic", "content": {"topic": "from initial_state"}},
        ],
    )

    state = state_map(api, alice, room)
    assert state[("m.room.name", "")]["content"] == {"name": "from name"}
    assert state[("m.room.topic", "")]["content"]["topic"] == "from topic"


def test_invitees_are_invited_and_is_direct_marks_their_invites(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    direct = create_room(api, alice, invite=[bob.user_id], is_direct=True)
    group = create_room(api, alice, invite=[bob.user_id, carol.user_id])

    bob_direct = state_map(api, alice, direct)[("m.room.member", bob.user_id)]
    assert bob_direct["content"]["membership"] == "invite"
    assert bob_direct["content"]["is_direct"] is True
    assert bob_direct["sender"] == alice.user_id
    group_state = state_map(api, alice, group)
    for invitee in (bob, carol):
        content = group_state[("m.room.member", invitee.user_id)]["content"]
        assert content["membership"] == "invite"
        assert "is_direct" not in content


def test_inviting_oneself_is_ignored(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, invite=[alice.user_id])

    member = state_map(api, alice, room)[("m.room.member", alice.user_id)]
    assert member["content"]["membership"] == "join"


# -- the order of the initial events ---------------------------------------------------


def test_initial_events_are_sent_in_the_order_the_spec_lists(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_alias_name="pub",
        name="Pub",
        topic="Beer",
        invite=[bob.user_id],
        initial_state=[
            {"type": "org.example.second", "state_key": "b", "content": {}},
            {"type": "org.example.first", "state_key": "a", "content": {}},
        ],
    )

    assert timeline_types(api, alice, room) == [
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
        ("m.room.power_levels", ""),
        ("m.room.canonical_alias", ""),
        ("m.room.join_rules", ""),
        ("m.room.history_visibility", ""),
        ("m.room.guest_access", ""),
        ("org.example.second", "b"),
        ("org.example.first", "a"),
        ("m.room.name", ""),
        ("m.room.topic", ""),
        ("m.room.member", bob.user_id),
    ]
    alias = f"#pub:{settings.SERVER_NAME}"
    assert state_map(api, alice, room)[("m.room.canonical_alias", "")]["content"] == {
        "alias": alias
    }


def test_initial_state_overrides_the_preset(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(
        api,
        alice,
        preset="private_chat",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "public"}},
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            },
        ],
    )

    state = state_map(api, alice, room)
    assert state[("m.room.join_rules", "")]["content"] == {"join_rule": "public"}
    assert state[("m.room.history_visibility", "")]["content"] == {
        "history_visibility": "world_readable"
    }


def test_a_taken_alias_is_refused_and_no_room_is_created(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    create_room(api, alice, room_alias_name="taken")
    rooms_before = Room.objects.count()

    response = api.post("createRoom", {"room_alias_name": "taken"}, token=bob.access_token)

    assert response.status == 400
    assert response.errcode == "M_ROOM_IN_USE"
    assert Room.objects.count() == rooms_before


# -- power levels ----------------------------------------------------------------------


def test_default_power_levels_in_room_versions_before_12_list_the_creator(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, room_version="11")

    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    assert levels["users"] == {alice.user_id: 100}
    assert levels["events"]["m.room.tombstone"] == 100
    assert levels["state_default"] == 50
    assert levels["events_default"] == 0


def test_the_v12_creator_has_infinite_power_and_is_not_in_power_levels(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, room_version="12")

    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    assert alice.user_id not in levels["users"]
    # createRoom, step 3: in v12+ a tombstone needs more than state_default.
    assert levels["events"]["m.room.tombstone"] > levels["state_default"]


def test_power_level_content_override_is_applied_on_top_of_the_defaults(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_version="11",
        power_level_content_override={
            "users": {alice.user_id: 100, bob.user_id: 75},
            "events_default": 20,
        },
    )

    levels = state_map(api, alice, room)[("m.room.power_levels", "")]["content"]
    assert levels["users"] == {alice.user_id: 100, bob.user_id: 75}
    assert levels["events_default"] == 20
    assert levels["state_default"] == 50


def test_an_override_that_locks_the_creator_out_is_an_invalid_room_state(
    api: MatrixTestClient, alice: Persona
) -> None:
    rooms_before = Room.objects.count()

    response = api.post(
        "createRoom",
        {
            "room_version": "11",
            "name": "unreachable",
            "power_level_content_override": {"events": {"m.room.name": 101}},
        },
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_INVALID_ROOM_STATE"
    assert Room.objects.count() == rooms_before


def test_a_v12_override_listing_the_creator_is_an_invalid_room_state(
    api: MatrixTestClient, alice: Persona
) -> None:
    # Room v12: creators have infinite power and may not appear in `users`.
    response = api.post(
        "createRoom",
        {"room_version": "12", "power_level_content_override": {"users": {alice.user_id: 100}}},
        token=alice.access_token,
    )

    assert response.status == 400
    assert response.errcode == "M_INVALID_ROOM_STATE"


def test_trusted_private_chat_in_v12_makes_invitees_additional_creators(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_version="12",
        preset="trusted_private_chat",
        invite=[bob.user_id],
        creation_content={"additional_creators": [carol.user_id, bob.user_id]},
    )

    state = state_map(api, alice, room)
    assert state[("m.room.create", "")]["content"]["additional_creators"] == [
        carol.user_id,
        bob.user_id,
    ]
    assert state[("m.room.power_levels", "")]["content"]["users"] == {}


def test_trusted_private_chat_before_v12_gives_invitees_the_creators_level(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api, alice, room_version="10", preset="trusted_private_chat", invite=[bob.user_id]
    )

    state = state_map(api, alice, room)
    assert state[("m.room.power_levels", "")]["content"]["users"] == {
        alice.user_id: 100,
        bob.user_id: 100,
    }
    assert "additional_creators" not in state[("m.room.create", "")]["content"]


def test_private_chat_invitees_get_no_extra_power(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, room_version="12", invite=[bob.user_id])

    state = state_map(api, alice, room)
    assert "additional_creators" not in state[("m.room.create", "")]["content"]
    assert state[("m.room.power_levels", "")]["content"]["users"] == {}


# -- creation_content and room versions ------------------------------------------------


def test_creation_content_is_kept_but_creator_and_room_version_are_the_servers(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        room_version="10",
        creation_content={"m.federate": False, "creator": bob.user_id, "room_version": "1"},
    )

    create = state_map(api, alice, room)[("m.room.create", "")]
    assert create["content"] == {
        "m.federate": False,
        "creator": alice.user_id,
        "room_version": "10",
    }
    assert create["sender"] == alice.user_id


def test_the_default_room_version_is_12(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    create = state_map(api, alice, room)[("m.room.create", "")]
    assert create["content"]["room_version"] == "12"


@pytest.mark.parametrize("version", ALL_ROOM_VERSIONS)
def test_every_known_room_version_can_be_created_and_used(
    api: MatrixTestClient, alice: Persona, bob: Persona, version: str
) -> None:
    room = create_room(api, alice, room_version=version, preset="public_chat", name="v")
    api.post(f"join/{room}", token=bob.access_token)
    event_id = send(api, bob, room, "hi")

    state = state_map(api, alice, room)
    create = state[("m.room.create", "")]
    assert create["content"]["room_version"] == version
    # Room v11 dropped `creator` from the create event; the sender is the creator.
    assert ("creator" in create["content"]) is (int(version) < 11)
    assert state[("m.room.member", bob.user_id)]["content"]["membership"] == "join"
    # Room v1 and v2 event IDs carry the server name; v3+ are hashes.
    assert (":" in event_id) is (int(version) < 3)
    assert Room.objects.get(room_id=room).room_version == version


@pytest.mark.parametrize("version", ALL_ROOM_VERSIONS[:-1])
def test_room_ids_before_v12_are_opaque_with_the_server_name(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    room = create_room(api, alice, room_version=version)

    assert room.startswith("!")
    assert room.endswith(f":{settings.SERVER_NAME}")


def test_a_v12_room_id_is_the_create_event_reference_hash(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, room_version="12")

    create = state_map(api, alice, room)[("m.room.create", "")]
    assert ":" not in room
    assert create["event_id"] == "$" + room[1:]
    assert create["room_id"] == room


@pytest.mark.parametrize("version", ["13", "0", "org.example.custom", ""])
def test_an_unknown_room_version_is_unsupported(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    response = api.post("createRoom", {"room_version": version}, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_UNSUPPORTED_ROOM_VERSION"


# -- bad requests ----------------------------------------------------------------------


def test_create_room_needs_an_access_token(api: MatrixTestClient) -> None:
    response = api.post("createRoom", {})

    assert response.status == 401
    assert response.errcode == "M_MISSING_TOKEN"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"\xff\xfe", b'{"name": NaN}'])
def test_a_body_that_is_not_json_is_m_not_json(
    api: MatrixTestClient, alice: Persona, raw: bytes
) -> None:
    response = api.request("POST", "createRoom", raw=raw, token=alice.access_token)

    assert response.status == 400
    assert response.errcode == "M_NOT_JSON"


@pytest.mark.parametrize(
    "body",
    [
        [],
        "a string",
        {"name": 5},
        {"topic": ["list"]},
        {"visibility": "secret"},
        {"preset": "party"},
        {"invite": "@bob:localhost"},
        {"invite": [5]},
        {"is_direct": "yes"},
        {"room_version": 12},
        {"creation_content": []},
        {"power_level_content_override": "all"},
        {"initial_state": {}},
        {"initial_state": ["m.room.name"]},
        {"initial_state": [{"type": "m.room.name"}]},
        {"initial_state": [{"content": {}}]},
    ],
    ids=lambda body: repr(body)[:40],
)
def test_a_malformed_body_is_m_bad_json(
    api: MatrixTestClient, alice: Persona, body: object
) -> None:
    rooms_before = Room.objects.count()

    response = api.post("createRoom", body, token=alice.access_token)

    assert response.status == 400, response.body
    assert response.errcode == "M_BAD_JSON"
    assert Room.objects.count() == rooms_before


@pytest.mark.parametrize(
    "body",
    [
        {"invite": ["not-a-user-id"]},
        {"room_alias_name": "has:colon"},
        {"room_alias_name": "has space"},
        {"room_alias_name": ""},
    ],
    ids=lambda body: repr(body)[:40],
)
def test_an_invalid_value_is_m_invalid_param(
    api: MatrixTestClient, alice: Persona, body: object
) -> None:
    response = api.post("createRoom", body, token=alice.access_token)

    assert response.status == 400, response.body
    assert response.errcode == "M_INVALID_PARAM"


def test_two_identical_rooms_in_the_same_millisecond_get_distinct_ids(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    # v12 room IDs are the create event's hash: the same creator, content and timestamp
    # would give the same ID (a 500 under load before).
    monkeypatch.setattr("rooms.services.events.now_ms", lambda: 1_800_000_000_000)
    first = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token)
    second = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token)

    assert first.status == second.status == 200, (first.body, second.body)
    assert first.body["room_id"] != second.body["room_id"]
