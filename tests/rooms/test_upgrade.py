"""Room upgrades: POST /rooms/{roomId}/upgrade (Client-Server API, "Room Upgrades")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import (
    create_room,
    join,
    membership_action,
    room_path,
    send,
    set_state,
    state_map,
)


def upgrade(
    api: MatrixTestClient, who: Persona, room: str, new_version: str = "11", **body: Any
) -> Response:
    return api.post(
        room_path(room, "upgrade"), {"new_version": new_version, **body}, token=who.access_token
    )


def upgraded(api: MatrixTestClient, who: Persona, room: str, **body: Any) -> str:
    response = upgrade(api, who, room, **body)
    assert response.status == 200, response.body
    return response.body["replacement_room"]


def content(state: dict[tuple[str, str], Any], event_type: str, state_key: str = "") -> Any:
    return state[(event_type, state_key)]["content"]


def test_the_replacement_room_names_its_predecessor(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice, room_version="10", creation_content={"type": "m.space"})
    last = send(api, alice, old, "last words")

    new = upgraded(api, alice, old, new_version="11")

    create = content(state_map(api, alice, new), "m.room.create")
    assert create["room_version"] == "11"
    # The predecessor's event is the old room's tombstone (as Synapse; sytest).
    tombstone = state_map(api, alice, old)[("m.room.tombstone", "")]
    assert tombstone["content"]["replacement_room"] == new
    assert create["predecessor"] == {"room_id": old, "event_id": tombstone["event_id"]}
    assert tombstone["event_id"] != last
    fetched = api.get(room_path(old, "event", tombstone["event_id"]), token=alice.access_token)
    assert fetched.status == 200
    assert fetched.body["type"] == "m.room.tombstone"
    assert create["type"] == "m.space"
    assert "creator" not in create  # v11: the sender is the creator


def test_the_old_room_gets_a_tombstone_and_restricted_power_levels(
    api: MatrixTestClient, alice: Persona
) -> None:
    old = create_room(api, alice, room_version="10", preset="public_chat")

    new = upgraded(api, alice, old)

    state = state_map(api, alice, old)
    tombstone = content(state, "m.room.tombstone")
    assert tombstone["replacement_room"] == new
    assert isinstance(tombstone["body"], str)
    power_levels = content(state, "m.room.power_levels")
    assert power_levels["events_default"] == 50
    assert power_levels["invite"] == 50


def test_restricted_levels_stay_above_users_default(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(
        api,
        alice,
        room_version="10",
        power_level_content_override={"users_default": 60, "events_default": 100},
    )

    upgraded(api, alice, old)

    power_levels = content(state_map(api, alice, old), "m.room.power_levels")
    assert power_levels["invite"] == 61
    assert power_levels["events_default"] == 100  # already higher: left alone


def test_transferable_state_is_copied(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    old = create_room(
        api, alice, room_version="10", preset="public_chat", name="Old name", topic="A topic"
    )
    join(api, bob, old)
    for event_type, body in [
        ("m.room.avatar", {"url": "mxc://example.org/pic"}),
        ("m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"}),
        (
            "m.room.server_acl",
            {"allow": ["*"], "deny": ["evil.example"], "allow_ip_literals": False},
        ),
        ("m.room.guest_access", {"guest_access": "can_join"}),
        ("m.room.history_visibility", {"history_visibility": "joined"}),
        ("m.room.join_rules", {"join_rule": "knock"}),
        ("org.example.custom", {"not": "copied"}),
    ]:
        set_state(api, alice, old, event_type, body)

    new = upgraded(api, alice, old)

    old_state, new_state = state_map(api, alice, old), state_map(api, alice, new)
    for event_type in (
        "m.room.name",
        "m.room.topic",
        "m.room.avatar",
        "m.room.encryption",
        "m.room.server_acl",
        "m.room.guest_access",
        "m.room.history_visibility",
        "m.room.join_rules",
    ):
        assert content(new_state, event_type) == content(old_state, event_type), event_type
    assert ("org.example.custom", "") not in new_state
    # Members are not carried over: only the upgrader is in the new room.
    members = [k for k, e in new_state.items() if k[0] == "m.room.member"]
    assert members == [("m.room.member", alice.user_id)]


def test_copied_state_is_the_only_such_event_of_the_new_room(
    api: MatrixTestClient, alice: Persona
) -> None:
    # initial_state "takes precedence over events set by preset": the preset's own
    # history visibility is not sent before the copied one.
    old = create_room(api, alice, room_version="10", preset="public_chat")
    set_state(api, alice, old, "m.room.history_visibility", {"history_visibility": "joined"})
    set_state(api, alice, old, "m.room.guest_access", {"guest_access": "can_join"})

    new = upgraded(api, alice, old)

    response = api.get(room_path(new, "messages") + "?dir=b&limit=50", token=alice.access_token)
    assert response.status == 200, response.body
    for event_type, key, value in (
        ("m.room.history_visibility", "history_visibility", "joined"),
        ("m.room.guest_access", "guest_access", "can_join"),
    ):
        sent = [e["content"][key] for e in response.body["chunk"] if e["type"] == event_type]
        assert sent == [value], event_type


def test_a_room_closed_to_federation_stays_closed(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice, room_version="10", creation_content={"m.federate": False})

    new = upgraded(api, alice, old)

    assert content(state_map(api, alice, new), "m.room.create")["m.federate"] is False


def put_account_data(
    api: MatrixTestClient, who: Persona, data_type: str, body: dict[str, Any], room: str = ""
) -> None:
    user = quote(who.user_id, safe="")
    where = f"rooms/{quote(room, safe='')}/" if room else ""
    response = api.put(
        f"user/{user}/{where}account_data/{data_type}", body, token=who.access_token
    )
    assert response.status == 200, response.body


def get_account_data(
    api: MatrixTestClient, who: Persona, data_type: str, room: str = ""
) -> Response:
    user = quote(who.user_id, safe="")
    where = f"rooms/{quote(room, safe='')}/" if room else ""
    return api.get(f"user/{user}/{where}account_data/{data_type}", token=who.access_token)


def test_direct_rooms_and_tags_follow_the_upgrade(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_room(api, alice, room_version="10", preset="public_chat")
    join(api, bob, old)
    for who, other in ((alice, bob), (bob, alice)):
        put_account_data(api, who, "m.direct", {other.user_id: [old]})
        put_account_data(api, who, "m.tag", {"tags": {"m.favourite": {"order": 0.5}}}, old)

    new = upgraded(api, alice, old)
    # The upgrader's at once; bob's when he joins the replacement.
    join(api, bob, new)

    for who, other in ((alice, bob), (bob, alice)):
        direct = get_account_data(api, who, "m.direct").body
        assert direct == {other.user_id: [old, new]}
        tags = get_account_data(api, who, "m.tag", new).body
        assert tags == {"tags": {"m.favourite": {"order": 0.5}}}


def test_power_levels_are_copied(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    old = create_room(
        api,
        alice,
        room_version="10",
        power_level_content_override={
            "users": {alice.user_id: 100, bob.user_id: 42},
            "events": {"m.sticker": 7},
        },
    )

    new = upgraded(api, alice, old)

    power_levels = content(state_map(api, alice, new), "m.room.power_levels")
    assert power_levels["users"] == {alice.user_id: 100, bob.user_id: 42}
    assert power_levels["events"] == {"m.sticker": 7}


def test_upgrading_to_v12_leaves_the_creators_out_of_users(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_room(
        api,
        alice,
        room_version="11",
        power_level_content_override={"users": {alice.user_id: 100, bob.user_id: 50}},
    )

    new = upgraded(api, alice, old, new_version="12", additional_creators=[bob.user_id])

    state = state_map(api, alice, new)
    assert content(state, "m.room.power_levels")["users"] == {}
    create = state[("m.room.create", "")]
    assert create["sender"] == alice.user_id
    assert create["content"]["additional_creators"] == [bob.user_id]
    # v12 room IDs are the create event's hash: the event ID without its sigil.
    assert new == "!" + create["event_id"][1:]


def test_a_moderator_with_tombstone_power_keeps_their_level(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_room(
        api,
        alice,
        room_version="10",
        preset="public_chat",
        power_level_content_override={
            "users": {alice.user_id: 100, bob.user_id: 50},
            "events": {"m.room.tombstone": 50, "m.room.encryption": 100},
        },
    )
    join(api, bob, old)
    set_state(api, alice, old, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})

    new = upgraded(api, bob, old)

    state = state_map(api, bob, new)
    # bob was lifted to copy the encryption event, then set back to 50.
    assert content(state, "m.room.encryption") == {"algorithm": "m.megolm.v1.aes-sha2"}
    assert content(state, "m.room.power_levels")["users"][bob.user_id] == 50


def test_aliases_and_the_directory_listing_move(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice, room_version="10", visibility="public", room_alias_name="moving")
    alias = f"#moving:{settings.SERVER_NAME}"

    new = upgraded(api, alice, old)

    assert api.get(f"directory/room/{quote(alias, safe='')}").body["room_id"] == new
    assert content(state_map(api, alice, new), "m.room.canonical_alias") == {"alias": alias}
    assert content(state_map(api, alice, old), "m.room.canonical_alias") == {}
    listed = [e["room_id"] for e in api.get("publicRooms").body["chunk"]]
    assert listed == [new]


def test_bans_are_copied(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    old = create_room(api, alice, room_version="10", preset="public_chat")
    join(api, bob, old)
    membership_action(api, alice, old, "ban", bob, reason="spam")

    new = upgraded(api, alice, old)

    ban = content(state_map(api, alice, new), "m.room.member", bob.user_id)
    assert ban == {"membership": "ban", "reason": "spam"}
    join(api, bob, new, expect=403)


def test_a_member_without_tombstone_power_cannot_upgrade(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_room(api, alice, preset="public_chat")
    join(api, bob, old)

    response = upgrade(api, bob, old)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert ("m.room.tombstone", "") not in state_map(api, alice, old)


def test_a_stranger_cannot_upgrade(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    old = create_room(api, alice)

    assert upgrade(api, bob, old).status == 403


@pytest.mark.parametrize("version", ["999", "", "1.0-nonsense"])
def test_an_unknown_room_version_is_unsupported(
    api: MatrixTestClient, alice: Persona, version: str
) -> None:
    old = create_room(api, alice)

    response = upgrade(api, alice, old, new_version=version)

    assert (response.status, response.errcode) == (400, "M_UNSUPPORTED_ROOM_VERSION")


def test_new_version_is_required(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice)

    response = api.post(room_path(old, "upgrade"), {}, token=alice.access_token)

    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


def test_an_unknown_room_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = upgrade(api, alice, f"!nowhere:{settings.SERVER_NAME}")

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_bad_additional_creators_are_refused(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice)

    response = upgrade(api, alice, old, new_version="12", additional_creators=["not-a-user"])

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_the_upgrader_can_talk_in_the_new_room_and_not_much_in_the_old(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    old = create_room(api, alice, room_version="10", preset="public_chat")
    join(api, bob, old)

    new = upgraded(api, alice, old, new_version="12")

    send(api, alice, new, "hello, new room")
    send(api, bob, old, "anyone here?", expect=403)
    join(api, bob, new)


def test_a_v12_room_upgrades_to_v12(api: MatrixTestClient, alice: Persona) -> None:
    old = create_room(api, alice, name="Twelve")

    new = upgraded(api, alice, old, new_version="12")

    state = state_map(api, alice, new)
    assert content(state, "m.room.name") == {"name": "Twelve"}
    assert content(state, "m.room.create")["predecessor"]["room_id"] == old
    assert content(state_map(api, alice, old), "m.room.tombstone")["replacement_room"] == new


def test_from_v12_the_old_creators_keep_the_top_level(
    api: MatrixTestClient, alice: Persona
) -> None:
    old = create_room(api, alice)  # v12: alice's power comes from being the creator

    new = upgraded(api, alice, old, new_version="11")

    power_levels = content(state_map(api, alice, new), "m.room.power_levels")
    assert power_levels["users"][alice.user_id] >= 100
    # ... and with it she can still upgrade the new room.
    upgraded(api, alice, new, new_version="12")
