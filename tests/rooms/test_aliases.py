"""Room aliases: PUT/GET/DELETE /directory/room/{roomAlias}, GET /rooms/{roomId}/aliases,
and the checks on m.room.canonical_alias (Client-Server API, "Room aliases")."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.conf import settings

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import CAROL, FakeServer, carol, network
from tests.rooms.helpers import create_room, get_state, join, room_path, set_state

__all__ = ["carol", "network"]


def local(localpart: str) -> str:
    return f"#{localpart}:{settings.SERVER_NAME}"


def alias_path(alias: str) -> str:
    return f"directory/room/{quote(alias, safe='')}"


def put_alias(api: MatrixTestClient, who: Persona, alias: str, room_id: str) -> Response:
    return api.put(alias_path(alias), {"room_id": room_id}, token=who.access_token)


def delete_alias(api: MatrixTestClient, who: Persona, alias: str) -> Response:
    return api.delete(alias_path(alias), token=who.access_token)


def test_an_alias_maps_to_its_room_and_names_this_server(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    assert put_alias(api, alice, local("coffee"), room).status == 200

    response = api.get(alias_path(local("coffee")))  # no access token needed

    assert response.status == 200, response.body
    assert response.body == {"room_id": room, "servers": [settings.SERVER_NAME]}


def test_an_alias_can_be_used_to_join(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    put_alias(api, alice, local("lobby"), room)

    assert join(api, bob, local("lobby")).body == {"room_id": room}


def test_an_unknown_alias_is_not_found(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get(alias_path(local("nowhere")), token=alice.access_token)

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_a_remote_alias_its_server_does_not_know_is_not_found(
    api: MatrixTestClient, carol: FakeServer
) -> None:
    # Carol answers 404 to the directory query (tests/rooms/test_federation_directory.py
    # has the rest of remote aliases).
    response = api.get(alias_path(f"#somewhere:{CAROL}"))

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_an_existing_alias_cannot_be_taken_again(api: MatrixTestClient, alice: Persona) -> None:
    first = create_room(api, alice)
    second = create_room(api, alice)
    put_alias(api, alice, local("taken"), first)

    response = put_alias(api, alice, local("taken"), second)

    assert (response.status, response.errcode) == (409, "M_UNKNOWN")
    assert api.get(alias_path(local("taken"))).body["room_id"] == first


@pytest.mark.parametrize(
    "alias",
    ["nohash:localhost", "#", "#nodomain", "#bad:domain with spaces", "#:" + "a"],
)
def test_an_invalid_alias_is_refused(api: MatrixTestClient, alice: Persona, alias: str) -> None:
    room = create_room(api, alice)

    response = put_alias(api, alice, alias, room)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_an_alias_localpart_may_hold_spaces_but_not_nul(
    api: MatrixTestClient, alice: Persona
) -> None:
    # Appendices, "Room Aliases": any non-surrogate code point except ":" and NUL.
    room = create_room(api, alice)
    assert put_alias(api, alice, local("tea and cake"), room).status == 200
    assert api.get(alias_path(local("tea and cake"))).body["room_id"] == room

    response = put_alias(api, alice, local("tea\x00cake"), room)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_an_alias_on_another_server_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    response = put_alias(api, alice, "#coffee:elsewhere.example", room)

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_an_alias_for_an_unknown_room_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = put_alias(api, alice, local("ghost"), f"!nosuchroom:{settings.SERVER_NAME}")

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_only_members_may_point_an_alias_at_a_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)

    response = put_alias(api, bob, local("hijack"), room)

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")


def test_put_alias_needs_an_access_token(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    response = api.put(alias_path(local("anon")), {"room_id": room})

    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


def test_put_alias_needs_a_room_id(api: MatrixTestClient, alice: Persona) -> None:
    response = api.put(alias_path(local("empty")), {}, token=alice.access_token)

    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


def test_the_creator_may_delete_their_alias(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    put_alias(api, alice, local("gone"), room)

    assert delete_alias(api, alice, local("gone")).status == 200

    assert api.get(alias_path(local("gone"))).status == 404
    assert delete_alias(api, alice, local("gone")).errcode == "M_NOT_FOUND"


def test_a_member_without_power_cannot_delete_anothers_alias(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    put_alias(api, alice, local("mine"), room)

    response = delete_alias(api, bob, local("mine"))

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert api.get(alias_path(local("mine"))).status == 200


def test_a_member_with_canonical_alias_power_may_delete_anothers_alias(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    put_alias(api, bob, local("bobs"), room)

    assert delete_alias(api, alice, local("bobs")).status == 200


def test_a_server_admin_may_delete_any_alias(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    put_alias(api, alice, local("admin-me"), room)
    User.objects.filter(localpart=bob.localpart).update(is_staff=True)

    assert delete_alias(api, bob, local("admin-me")).status == 200


def test_deleting_an_alias_drops_it_from_the_canonical_alias(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, room_alias_name="main")
    put_alias(api, alice, local("alt"), room)
    set_state(
        api,
        alice,
        room,
        "m.room.canonical_alias",
        {"alias": local("main"), "alt_aliases": [local("alt")]},
    )

    delete_alias(api, alice, local("alt"))
    delete_alias(api, alice, local("main"))

    assert get_state(api, alice, room, "m.room.canonical_alias").body == {"alt_aliases": []}


def test_local_aliases_of_a_room_are_listed_for_members(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, room_alias_name="first")
    put_alias(api, alice, local("second"), room)

    mine = api.get(room_path(room, "aliases"), token=alice.access_token)
    theirs = api.get(room_path(room, "aliases"), token=bob.access_token)

    assert mine.status == 200
    assert sorted(mine.body["aliases"]) == [local("first"), local("second")]
    assert (theirs.status, theirs.errcode) == (403, "M_FORBIDDEN")


def test_local_aliases_of_a_world_readable_room_are_listed_for_anyone(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, room_alias_name="open")
    set_state(
        api, alice, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )

    response = api.get(room_path(room, "aliases"), token=bob.access_token)

    assert response.body == {"aliases": [local("open")]}


class TestCanonicalAlias:
    def test_an_alias_pointing_at_the_room_is_accepted(
        self, api: MatrixTestClient, alice: Persona
    ) -> None:
        room = create_room(api, alice)
        put_alias(api, alice, local("here"), room)
        put_alias(api, alice, local("also"), room)

        set_state(
            api,
            alice,
            room,
            "m.room.canonical_alias",
            {"alias": local("here"), "alt_aliases": [local("also"), "#far:remote.example"]},
        )

    def test_an_alias_pointing_elsewhere_is_a_bad_alias(
        self, api: MatrixTestClient, alice: Persona
    ) -> None:
        room = create_room(api, alice)
        other = create_room(api, alice)
        put_alias(api, alice, local("other"), other)

        response = set_state(
            api, alice, room, "m.room.canonical_alias", {"alias": local("other")}, expect=400
        )

        assert response.errcode == "M_BAD_ALIAS"

    def test_an_unknown_local_alt_alias_is_a_bad_alias(
        self, api: MatrixTestClient, alice: Persona
    ) -> None:
        room = create_room(api, alice)

        response = set_state(
            api,
            alice,
            room,
            "m.room.canonical_alias",
            {"alt_aliases": [local("missing")]},
            expect=400,
        )

        assert response.errcode == "M_BAD_ALIAS"

    @pytest.mark.parametrize(
        "content",
        [{"alias": "not-an-alias"}, {"alt_aliases": ["#nodomain"]}, {"alt_aliases": "#a:b"}],
    )
    def test_invalid_syntax_is_an_invalid_param(
        self, api: MatrixTestClient, alice: Persona, content: dict
    ) -> None:
        room = create_room(api, alice)

        response = set_state(api, alice, room, "m.room.canonical_alias", content, expect=400)

        assert response.errcode == "M_INVALID_PARAM"

    def test_no_alias_at_all_is_fine(self, api: MatrixTestClient, alice: Persona) -> None:
        room = create_room(api, alice)

        set_state(api, alice, room, "m.room.canonical_alias", {})

    def test_aliases_already_listed_are_not_checked_again(
        self, api: MatrixTestClient, alice: Persona, bob: Persona
    ) -> None:
        room = create_room(api, alice, preset="public_chat", room_alias_name="main")
        join(api, bob, room)
        put_alias(api, bob, local("bobs"), room)
        set_state(
            api,
            alice,
            room,
            "m.room.canonical_alias",
            {"alias": local("main"), "alt_aliases": [local("bobs")]},
        )
        # bob may delete his alias, but not edit the canonical alias event: it stays there.
        assert delete_alias(api, bob, local("bobs")).status == 200

        set_state(
            api,
            alice,
            room,
            "m.room.canonical_alias",
            {"alt_aliases": [local("bobs")]},
        )

    def test_create_room_may_name_the_alias_it_creates(
        self, api: MatrixTestClient, alice: Persona
    ) -> None:
        room = create_room(
            api,
            alice,
            room_alias_name="fresh",
            initial_state=[
                {"type": "m.room.canonical_alias", "content": {"alias": local("fresh")}}
            ],
        )

        assert get_state(api, alice, room, "m.room.canonical_alias").body == {
            "alias": local("fresh")
        }

    def test_create_room_may_not_name_another_rooms_alias(
        self, api: MatrixTestClient, alice: Persona
    ) -> None:
        other = create_room(api, alice, room_alias_name="elsewhere")
        assert other

        response = api.post(
            "createRoom",
            {
                "initial_state": [
                    {"type": "m.room.canonical_alias", "content": {"alias": local("elsewhere")}}
                ]
            },
            token=alice.access_token,
        )

        assert (response.status, response.errcode) == (400, "M_BAD_ALIAS")
