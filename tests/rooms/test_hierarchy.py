"""The space hierarchy (Client-Server API, "Spaces", GET /rooms/{roomId}/hierarchy)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, invite, join, set_state


def hierarchy(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> Response:
    query = urlencode({k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()})
    path = f"/_matrix/client/v1/rooms/{quote(room, safe='')}/hierarchy"
    return api.get(path + (f"?{query}" if query else ""), token=who.access_token)


def space(api: MatrixTestClient, who: Persona, **body: Any) -> str:
    return create_room(api, who, creation_content={"type": "m.space"}, **body)


def add_child(
    api: MatrixTestClient, who: Persona, parent: str, child: str, **content: Any
) -> None:
    set_state(api, who, parent, "m.space.child", {"via": [settings.SERVER_NAME], **content}, child)


def room_ids(response: Response) -> list[str]:
    assert response.status == 200, response.body
    return [room["room_id"] for room in response.body["rooms"]]


def test_a_space_and_its_children_depth_first_in_the_spec_s_order(
    api: MatrixTestClient, alice: Persona
) -> None:
    root = space(api, alice, name="Root", preset="public_chat")
    sub = space(api, alice, name="Sub", preset="public_chat")
    late = create_room(api, alice, name="Late", preset="public_chat")
    early = create_room(api, alice, name="Early", preset="public_chat")
    ordered = create_room(api, alice, name="Ordered", preset="public_chat")
    inner = create_room(api, alice, name="Inner", preset="public_chat")
    add_child(api, alice, root, early)
    add_child(api, alice, root, sub)
    add_child(api, alice, root, late)
    # A valid order comes before every child without one.
    add_child(api, alice, root, ordered, order="a")
    add_child(api, alice, sub, inner)
    # A loop back to the root is walked once.
    add_child(api, alice, sub, root)

    response = hierarchy(api, alice, root)

    assert room_ids(response) == [root, ordered, early, sub, inner, late]
    first = response.body["rooms"][0]
    assert first["name"] == "Root"
    assert first["room_type"] == "m.space"
    assert first["num_joined_members"] == 1
    assert first["join_rule"] == "public"
    assert first["world_readable"] is False
    assert first["guest_can_join"] is False
    children = {c["state_key"]: c for c in first["children_state"]}
    assert set(children) == {ordered, early, sub, late}
    assert children[ordered]["content"] == {"via": [settings.SERVER_NAME], "order": "a"}
    assert children[ordered]["sender"] == alice.user_id
    assert isinstance(children[ordered]["origin_server_ts"], int)
    # A room that is not a space has no children_state.
    assert response.body["rooms"][1]["children_state"] == []


def test_max_depth_suggested_only_and_removed_children(
    api: MatrixTestClient, alice: Persona
) -> None:
    root = space(api, alice, preset="public_chat")
    sub = space(api, alice, preset="public_chat")
    inner = create_room(api, alice, preset="public_chat")
    gone = create_room(api, alice, preset="public_chat")
    add_child(api, alice, root, sub, suggested=True)
    add_child(api, alice, sub, inner)
    # A child without "via" is removed.
    set_state(api, alice, root, "m.space.child", {}, gone)

    assert room_ids(hierarchy(api, alice, root)) == [root, sub, inner]
    assert room_ids(hierarchy(api, alice, root, max_depth=1)) == [root, sub]
    assert room_ids(hierarchy(api, alice, root, max_depth=0)) == [root]
    assert room_ids(hierarchy(api, alice, root, suggested_only=True)) == [root, sub]


def test_pages_and_their_tokens(api: MatrixTestClient, alice: Persona) -> None:
    root = space(api, alice, preset="public_chat")
    children = [create_room(api, alice, preset="public_chat") for _ in range(3)]
    for n, child in enumerate(children):
        add_child(api, alice, root, child, order=str(n))

    first = hierarchy(api, alice, root, limit=2)
    assert room_ids(first) == [root, children[0]]
    second = hierarchy(api, alice, root, limit=2, **{"from": first.body["next_batch"]})
    assert room_ids(second) == children[1:]
    assert "next_batch" not in second.body

    changed = hierarchy(
        api, alice, root, limit=2, max_depth=1, **{"from": first.body["next_batch"]}
    )
    assert (changed.status, changed.errcode) == (400, "M_INVALID_PARAM")
    unknown = hierarchy(api, alice, root, **{"from": "nonsense"})
    assert (unknown.status, unknown.errcode) == (400, "M_INVALID_PARAM")
    for bad in ({"limit": 0}, {"max_depth": -1}, {"suggested_only": "yes"}):
        response = hierarchy(api, alice, root, **bad)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), bad


def test_only_rooms_the_user_may_see(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    root = space(api, alice, preset="public_chat")
    public = create_room(api, alice, preset="public_chat")
    private = create_room(api, alice, preset="private_chat")
    invited = create_room(api, alice, preset="private_chat")
    restricted = create_room(
        api,
        alice,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": root}],
                },
            }
        ],
    )
    for child in (public, private, invited, restricted):
        add_child(api, alice, root, child)
    invite(api, alice, invited, bob)

    # bob is not in the space yet: its restricted room is not for him.
    seen = set(room_ids(hierarchy(api, bob, root)))
    assert seen == {root, public, invited}
    join(api, bob, root)
    assert set(room_ids(hierarchy(api, bob, root))) == {root, public, invited, restricted}
    # alice, a member of all, sees all.
    assert set(room_ids(hierarchy(api, alice, root))) == {
        root,
        public,
        private,
        invited,
        restricted,
    }


def test_a_room_the_user_may_not_see_or_that_does_not_exist(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    private = space(api, alice, preset="private_chat")
    response = hierarchy(api, bob, private)
    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    missing = hierarchy(api, bob, f"!nowhere:{settings.SERVER_NAME}")
    assert (missing.status, missing.errcode) == (403, "M_FORBIDDEN")
