"""The published room directory: GET/PUT /directory/list/room/{roomId} and GET/POST
/publicRooms (Client-Server API, "Published room directory")."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from accounts.models import User
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import FakeNetwork, network
from tests.rooms.helpers import create_room, join, set_state

__all__ = ["network"]


def list_path(room_id: str) -> str:
    return f"directory/list/room/{quote(room_id, safe='')}"


def set_visibility(api: MatrixTestClient, who: Persona, room_id: str, visibility: str) -> Response:
    return api.put(list_path(room_id), {"visibility": visibility}, token=who.access_token)


def search(api: MatrixTestClient, who: Persona, **body: Any) -> Response:
    response = api.post("publicRooms", body, token=who.access_token)
    assert response.status == 200, response.body
    return response


def room_ids(response: Response) -> list[str]:
    return [entry["room_id"] for entry in response.body["chunk"]]


def test_visibility_follows_create_room(api: MatrixTestClient, alice: Persona) -> None:
    public = create_room(api, alice, visibility="public")
    private = create_room(api, alice)

    assert api.get(list_path(public)).body == {"visibility": "public"}
    assert api.get(list_path(private)).body == {"visibility": "private"}


def test_visibility_of_an_unknown_room_is_not_found(api: MatrixTestClient) -> None:
    response = api.get(list_path(f"!unknown:{settings.SERVER_NAME}"))

    assert (response.status, response.errcode) == (404, "M_NOT_FOUND")


def test_a_room_with_power_may_be_published_and_unpublished(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)

    assert set_visibility(api, alice, room, "public").status == 200
    assert room_ids(api.get("publicRooms")) == [room]
    assert set_visibility(api, alice, room, "private").status == 200
    assert room_ids(api.get("publicRooms")) == []


def test_visibility_defaults_to_public(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    assert api.put(list_path(room), {}, token=alice.access_token).status == 200

    assert api.get(list_path(room)).body == {"visibility": "public"}


def test_a_member_without_power_cannot_publish(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)

    response = set_visibility(api, bob, room, "public")

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert api.get(list_path(room)).body == {"visibility": "private"}


def test_a_stranger_cannot_unpublish(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice, visibility="public")

    assert set_visibility(api, bob, room, "private").status == 403


def test_a_server_admin_may_publish_any_room(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    User.objects.filter(localpart=bob.localpart).update(is_superuser=True)

    assert set_visibility(api, bob, room, "public").status == 200


def test_bad_visibility_and_missing_token(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    bad = set_visibility(api, alice, room, "hidden")
    anonymous = api.put(list_path(room), {"visibility": "public"})

    assert (bad.status, bad.errcode) == (400, "M_INVALID_PARAM")
    assert (anonymous.status, anonymous.errcode) == (401, "M_MISSING_TOKEN")


def test_an_entry_describes_the_room_from_its_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        visibility="public",
        preset="public_chat",
        name="Coffee",
        topic="Beans and brews",
        room_alias_name="coffee",
        creation_content={"type": "m.space"},
    )
    set_state(api, alice, room, "m.room.avatar", {"url": "mxc://example.org/cup"})
    set_state(api, alice, room, "m.room.guest_access", {"guest_access": "can_join"})
    set_state(
        api, alice, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    join(api, bob, room)

    response = api.get("publicRooms")

    assert response.status == 200
    assert response.body["chunk"] == [
        {
            "room_id": room,
            "name": "Coffee",
            "topic": "Beans and brews",
            "canonical_alias": f"#coffee:{settings.SERVER_NAME}",
            "num_joined_members": 2,
            "world_readable": True,
            "guest_can_join": True,
            "avatar_url": "mxc://example.org/cup",
            "join_rule": "public",
            "room_type": "m.space",
        }
    ]
    assert response.body["total_room_count_estimate"] == 1


def test_a_bare_entry_has_only_the_required_fields(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, visibility="public", preset="private_chat")

    (entry,) = api.get("publicRooms").body["chunk"]

    assert entry == {
        "room_id": room,
        "num_joined_members": 1,
        "world_readable": False,
        "guest_can_join": True,
        "join_rule": "invite",
    }


def test_rooms_are_listed_largest_first(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    small = create_room(api, alice, visibility="public", preset="public_chat")
    big = create_room(api, alice, visibility="public", preset="public_chat")
    join(api, bob, big)

    assert room_ids(api.get("publicRooms")) == [big, small]


def test_pagination_walks_forwards_and_back(api: MatrixTestClient, alice: Persona) -> None:
    rooms = [create_room(api, alice, visibility="public") for _ in range(5)]

    first = api.get("publicRooms?limit=2")
    second = api.get(f"publicRooms?limit=2&since={first.body['next_batch']}")
    third = search(api, alice, limit=2, since=second.body["next_batch"])
    back = api.get(f"publicRooms?limit=2&since={second.body['prev_batch']}")

    assert "prev_batch" not in first.body
    assert "next_batch" not in third.body
    assert sorted(room_ids(first) + room_ids(second) + room_ids(third)) == sorted(rooms)
    assert room_ids(back) == room_ids(first)
    assert first.body["total_room_count_estimate"] == 5


def test_a_bad_token_or_limit_is_refused(api: MatrixTestClient) -> None:
    assert api.get("publicRooms?since=garbage").errcode == "M_INVALID_PARAM"
    assert api.get("publicRooms?limit=ten").errcode == "M_INVALID_PARAM"
    assert api.get("publicRooms?limit=-1").errcode == "M_INVALID_PARAM"


def test_generic_search_term_matches_name_topic_and_alias(
    api: MatrixTestClient, alice: Persona
) -> None:
    by_name = create_room(api, alice, visibility="public", name="Gardening Club")
    by_topic = create_room(api, alice, visibility="public", topic="all about GARDENS")
    by_alias = create_room(api, alice, visibility="public", room_alias_name="garden-party")
    create_room(api, alice, visibility="public", name="Cooking")

    found = search(api, alice, filter={"generic_search_term": "garden"})

    assert sorted(room_ids(found)) == sorted([by_name, by_topic, by_alias])
    assert found.body["total_room_count_estimate"] == 3


def test_room_types_filter(api: MatrixTestClient, alice: Persona) -> None:
    space = create_room(api, alice, visibility="public", creation_content={"type": "m.space"})
    plain = create_room(api, alice, visibility="public")

    spaces = search(api, alice, filter={"room_types": ["m.space"]})
    untyped = search(api, alice, filter={"room_types": [None]})
    both = search(api, alice, filter={"room_types": [None, "m.space"]})

    assert room_ids(spaces) == [space]
    assert room_ids(untyped) == [plain]
    assert sorted(room_ids(both)) == sorted([space, plain])


def test_networks_are_accepted_and_ignored(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, visibility="public")

    found = search(api, alice, include_all_networks=True, third_party_instance_id="irc")

    assert room_ids(found) == [room]


def test_post_needs_an_access_token(api: MatrixTestClient) -> None:
    response = api.post("publicRooms", {})

    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


def test_our_own_server_name_lists_our_rooms(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, visibility="public")

    response = api.get(f"publicRooms?server={quote(settings.SERVER_NAME)}")

    assert room_ids(response) == [room]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_remote_server_that_cannot_be_reached_is_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork, method: str
) -> None:
    network.add("elsewhere.example", reachable=False)
    response = api.request(
        method, "publicRooms?server=elsewhere.example", {}, token=alice.access_token
    )

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")


def test_an_invalid_server_name_is_refused(api: MatrixTestClient) -> None:
    response = api.get("publicRooms?server=not%20a%20server")

    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")


def test_listing_costs_a_fixed_number_of_queries(
    api: MatrixTestClient, alice: Persona, django_assert_max_num_queries: Any
) -> None:
    for index in range(6):
        create_room(api, alice, visibility="public", name=f"room {index}", topic="t")
    api.get("publicRooms")  # warm the event cache like a running server

    with django_assert_max_num_queries(3):
        response = api.get("publicRooms")

    assert len(response.body["chunk"]) == 6
