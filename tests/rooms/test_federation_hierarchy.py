"""The space hierarchy between servers: GET /_matrix/federation/v1/hierarchy/{roomId}
served to other servers, and a client's /hierarchy walking into rooms this server is not
in by asking the servers their m.space.child events name."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from django.conf import settings

from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer, carol, json_response, network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import create_room, set_state

__all__ = ["carol", "network"]


@pytest.fixture
def dave(db: None) -> RemoteServer:
    server = RemoteServer("dave.test")
    server.install_keys()
    return server


def space(api: MatrixTestClient, who: Persona, **body: Any) -> str:
    return create_room(api, who, creation_content={"type": "m.space"}, **body)


def add_child(
    api: MatrixTestClient, who: Persona, parent: str, child: str, via: list[str], **content: Any
) -> None:
    set_state(api, who, parent, "m.space.child", {"via": via, **content}, child)


def served(
    api: MatrixTestClient, server: RemoteServer | None, room_id: str, query: str = ""
) -> Response:
    return fed(api, server, "GET", f"{F}/hierarchy/{room_id}{query}")


# --- Served: GET /_matrix/federation/v1/hierarchy/{roomId} -----------------------------


def test_a_space_and_the_children_the_server_could_join(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    root = space(api, alice, name="Root", preset="public_chat")
    public = create_room(api, alice, name="Public", preset="public_chat")
    readable = create_room(
        api,
        alice,
        preset="private_chat",
        initial_state=[
            {
                "type": "m.room.history_visibility",
                "content": {"history_visibility": "world_readable"},
            }
        ],
    )
    private = create_room(api, alice, preset="private_chat")
    unknown = "!unknown:elsewhere.example"
    for child in (public, readable, private, unknown):
        add_child(api, alice, root, child, [settings.SERVER_NAME], order=child)

    got = served(api, dave, root)

    assert got.status == 200, got.body
    room = got.body["room"]
    assert (room["room_id"], room["name"], room["room_type"]) == (root, "Root", "m.space")
    assert room["room_version"]
    assert sorted(e["state_key"] for e in room["children_state"]) == sorted(
        [public, readable, private, unknown]
    )
    assert all(e["type"] == "m.space.child" for e in room["children_state"])
    assert all(isinstance(e["origin_server_ts"], int) for e in room["children_state"])
    children = {c["room_id"]: c for c in got.body["children"]}
    assert set(children) == {public, readable}
    assert children[public]["name"] == "Public"
    assert children[public]["children_state"] == []
    assert children[readable]["world_readable"] is True
    # The private room is known not to be for dave; the unknown one is left out.
    assert got.body["inaccessible_children"] == [private]


def test_suggested_only(api: MatrixTestClient, alice: Persona, dave: RemoteServer) -> None:
    root = space(api, alice, preset="public_chat")
    suggested = create_room(api, alice, preset="public_chat")
    other = create_room(api, alice, preset="public_chat")
    add_child(api, alice, root, suggested, [settings.SERVER_NAME], suggested=True)
    add_child(api, alice, root, other, [settings.SERVER_NAME])

    everything = served(api, dave, root, "?suggested_only=false")
    only = served(api, dave, root, "?suggested_only=true")

    assert {c["room_id"] for c in everything.body["children"]} == {suggested, other}
    assert [c["room_id"] for c in only.body["children"]] == [suggested]
    assert [e["state_key"] for e in only.body["room"]["children_state"]] == [suggested]


def test_a_server_the_acl_denies(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    root = space(api, alice, preset="public_chat")
    child = create_room(api, alice, preset="public_chat")
    add_child(api, alice, root, child, [settings.SERVER_NAME])
    set_state(api, alice, child, "m.room.server_acl", {"allow": ["*"], "deny": ["dave.test"]})

    assert served(api, dave, root).body["inaccessible_children"] == [child]

    set_state(api, alice, root, "m.room.server_acl", {"allow": ["*"], "deny": ["dave.test"]})
    got = served(api, dave, root)
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")


def test_rooms_the_server_cannot_see_are_not_found(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    private = space(api, alice, preset="private_chat")

    hidden = served(api, dave, private)
    unknown = served(api, dave, f"!nowhere:{settings.SERVER_NAME}")

    assert (hidden.status, hidden.body["errcode"]) == (404, "M_NOT_FOUND")
    assert (unknown.status, unknown.body["errcode"]) == (404, "M_NOT_FOUND")


def test_the_served_hierarchy_needs_a_signature_and_good_input(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    root = space(api, alice, preset="public_chat")

    unsigned = served(api, None, root)
    bad_flag = served(api, dave, root, "?suggested_only=yes")

    assert (unsigned.status, unsigned.body["errcode"]) == (401, "M_UNAUTHORIZED")
    assert (bad_flag.status, bad_flag.body["errcode"]) == (400, "M_INVALID_PARAM")


# --- Client: /hierarchy into rooms of other servers ------------------------------------

REMOTE_SPACE = "!space:carol.example"
REMOTE_CHILD = "!child:carol.example"
REMOTE_SECRET = "!secret:carol.example"


def summary(room_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "room_id": room_id,
        "num_joined_members": 3,
        "world_readable": False,
        "guest_can_join": False,
        "join_rule": "public",
        **fields,
    }


def child_event(room_id: str, via: list[str], **content: Any) -> dict[str, Any]:
    return {
        "type": "m.space.child",
        "state_key": room_id,
        "sender": f"@carol:{CAROL}",
        "content": {"via": via, **content},
        "origin_server_ts": 1,
    }


def carol_answers(server: FakeServer, answers: dict[str, Any]) -> list[str]:
    """Carol answers /hierarchy for the rooms in ``answers`` (404 for others); the
    rooms asked for are recorded."""
    asked: list[str] = []

    def handler(method: str, path: str, body: Any) -> Any:
        if not path.startswith(f"{F}/hierarchy/"):
            return None
        room_id = unquote(urlsplit(path).path.rsplit("/", 1)[1])
        asked.append(room_id)
        if room_id not in answers:
            return json_response({"errcode": "M_NOT_FOUND", "error": "no"}, 404)
        return json_response(answers[room_id])

    server.handler = handler
    return asked


def remote_space_answer(**room_fields: Any) -> dict[str, Any]:
    return {
        "room": summary(
            REMOTE_SPACE,
            name="Carol's space",
            room_type="m.space",
            children_state=[
                child_event(REMOTE_CHILD, [CAROL], order="a"),
                child_event(REMOTE_SECRET, [CAROL], order="b"),
            ],
            **room_fields,
        ),
        "children": [
            summary(REMOTE_CHILD, name="Carol's room", children_state=[]),
            {"room_id": "!junk:carol.example"},
            "junk",
        ],
        "inaccessible_children": [REMOTE_SECRET],
    }


def hierarchy(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> Response:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    path = f"/_matrix/client/v1/rooms/{quote(room, safe='')}/hierarchy"
    return api.get(path + (f"?{query}" if query else ""), token=who.access_token)


def rooms_of(response: Response) -> list[str]:
    assert response.status == 200, response.body
    return [room["room_id"] for room in response.body["rooms"]]


def test_a_child_space_of_another_server_is_asked_of_it(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    root = space(api, alice, preset="public_chat")
    add_child(api, alice, root, REMOTE_SPACE, [CAROL])
    asked = carol_answers(carol, {REMOTE_SPACE: remote_space_answer()})

    response = hierarchy(api, alice, root)

    # The root, carol's space, and its child as carol summarised it; the child carol
    # says we cannot reach is not asked for.
    assert rooms_of(response) == [root, REMOTE_SPACE, REMOTE_CHILD]
    remote_space = response.body["rooms"][1]
    assert remote_space["name"] == "Carol's space"
    assert [e["state_key"] for e in remote_space["children_state"]] == [
        REMOTE_CHILD,
        REMOTE_SECRET,
    ]
    assert response.body["rooms"][2]["children_state"] == []
    assert asked == [REMOTE_SPACE]
    # The answer is kept a while: a second page or request does not ask again.
    assert rooms_of(hierarchy(api, alice, root)) == [root, REMOTE_SPACE, REMOTE_CHILD]
    assert asked == [REMOTE_SPACE]


def test_a_remote_space_not_hosted_here_as_the_root(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    root = f"!root:{CAROL}"
    carol_answers(
        carol,
        {
            root: {
                "room": summary(
                    root, room_type="m.space", children_state=[child_event(REMOTE_SPACE, [CAROL])]
                ),
                "children": [],
                "inaccessible_children": [],
            },
            REMOTE_SPACE: remote_space_answer(),
        },
    )

    response = hierarchy(api, alice, root, limit=2)
    second = hierarchy(api, alice, root, limit=2, **{"from": response.body["next_batch"]})

    assert rooms_of(response) == [root, REMOTE_SPACE]
    assert rooms_of(second) == [REMOTE_CHILD]


def test_remote_rooms_the_user_may_not_preview_are_left_out(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    root = space(api, alice, preset="public_chat")
    add_child(api, alice, root, REMOTE_SPACE, [CAROL])
    carol_answers(carol, {REMOTE_SPACE: remote_space_answer(join_rule="invite")})

    assert rooms_of(hierarchy(api, alice, root)) == [root]


def test_remote_children_at_the_maximum_depth_are_not_asked_for(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    root = space(api, alice, preset="public_chat")
    add_child(api, alice, root, REMOTE_SPACE, [CAROL])
    asked = carol_answers(carol, {REMOTE_SPACE: remote_space_answer()})

    assert rooms_of(hierarchy(api, alice, root, max_depth=0)) == [root]
    assert asked == []


@pytest.mark.parametrize(
    "answer",
    [
        {"room": summary("!other:carol.example"), "children": [], "inaccessible_children": []},
        {"room": {"room_id": REMOTE_SPACE}, "children": [], "inaccessible_children": []},
        ["junk"],
    ],
)
def test_bad_remote_answers_are_left_out(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork, answer: Any
) -> None:
    root = space(api, alice, preset="public_chat")
    add_child(api, alice, root, REMOTE_SPACE, [CAROL])
    carol_answers(carol, {REMOTE_SPACE: answer})

    assert rooms_of(hierarchy(api, alice, root)) == [root]


def test_servers_that_cannot_be_reached_are_left_out(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    network.add(CAROL, reachable=False)
    root = space(api, alice, preset="public_chat")
    add_child(api, alice, root, REMOTE_SPACE, [CAROL, "nowhere.example:8448"])

    assert rooms_of(hierarchy(api, alice, root)) == [root]
    # An unknown root whose server cannot be reached is as unknown as any.
    unknown = hierarchy(api, alice, f"!root:{CAROL}")
    assert (unknown.status, unknown.errcode) == (403, "M_FORBIDDEN")


def test_local_children_are_not_asked_of_other_servers(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    root = space(api, alice, preset="public_chat")
    child = create_room(api, alice, preset="public_chat")
    add_child(api, alice, root, child, [CAROL])

    assert rooms_of(hierarchy(api, alice, root)) == [root, child]
    assert network.sent == []
