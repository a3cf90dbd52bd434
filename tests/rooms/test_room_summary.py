"""Room summaries (Client-Server API, GET /_matrix/client/v1/room_summary/{roomIdOrAlias},
Matrix 1.15): for members and for those who may join, knock or read; 404 otherwise."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, invite, join, set_state


def summary(api: MatrixTestClient, who: Persona | None, room: str) -> Response:
    path = f"/_matrix/client/v1/room_summary/{quote(room, safe='')}"
    return api.get(path, token=who.access_token if who else None)


def test_a_public_room_by_id_and_alias_with_and_without_a_token(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api, alice, preset="public_chat", name="Lobby", topic="Hello", room_alias_name="lobby"
    )
    set_state(api, alice, room, "m.room.encryption", {"algorithm": "m.megolm.v1.aes-sha2"})

    member = summary(api, alice, room)
    assert member.status == 200, member.body
    assert member.body == {
        "room_id": room,
        "name": "Lobby",
        "topic": "Hello",
        "canonical_alias": f"#lobby:{settings.SERVER_NAME}",
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
        "room_version": "12",
        "encryption": "m.megolm.v1.aes-sha2",
        "membership": "join",
    }
    by_alias = summary(api, bob, f"#lobby:{settings.SERVER_NAME}")
    assert by_alias.status == 200, by_alias.body
    assert by_alias.body["room_id"] == room
    assert "membership" not in by_alias.body
    anonymous = summary(api, None, room)
    assert anonymous.status == 200, anonymous.body
    assert "membership" not in anonymous.body


def test_a_private_room_only_for_its_members_and_invitees(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="private_chat")
    carol = api.register("carol")

    for outsider in (carol, None):
        response = summary(api, outsider, room)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
    invite(api, alice, room, bob)
    invited = summary(api, bob, room)
    assert invited.status == 200, invited.body
    assert invited.body["membership"] == "invite"
    assert invited.body["join_rule"] == "invite"


def test_a_restricted_room_for_the_members_of_its_allowed_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    space = create_room(api, alice, preset="public_chat")
    room = create_room(
        api,
        alice,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": space}],
                },
            }
        ],
    )
    assert summary(api, bob, room).status == 404
    join(api, bob, space)
    response = summary(api, bob, room)
    assert response.status == 200, response.body
    assert response.body["allowed_room_ids"] == [space]


def test_unknown_rooms_and_aliases(api: MatrixTestClient, alice: Persona) -> None:
    for target in (f"!nowhere:{settings.SERVER_NAME}", f"#nowhere:{settings.SERVER_NAME}"):
        response = summary(api, alice, target)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND"), target
