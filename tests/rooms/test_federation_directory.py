"""The published room directory between servers: GET/POST
/_matrix/federation/v1/publicRooms served to other servers, and a client's /publicRooms
?server=other answered by asking the other server."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.conf import settings

from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer, carol, json_response, network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import create_room

__all__ = ["carol", "network"]

PUBLIC_ROOMS = f"{F}/publicRooms"


@pytest.fixture
def dave(db: None) -> RemoteServer:
    """A remote server whose signed requests this server can check."""
    server = RemoteServer("dave.test")
    server.install_keys()
    return server


def ids(body: dict[str, Any]) -> list[str]:
    return [entry["room_id"] for entry in body["chunk"]]


# --- Served: GET and POST /_matrix/federation/v1/publicRooms ---------------------------


def test_other_servers_read_the_directory(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room = create_room(api, alice, visibility="public", name="Lobby", topic="Say hi")
    create_room(api, alice, name="Private")

    got = fed(api, dave, "GET", PUBLIC_ROOMS)

    assert got.status == 200, got.body
    assert got.body["chunk"] == [
        {
            "room_id": room,
            "num_joined_members": 1,
            "world_readable": False,
            "guest_can_join": False,
            "name": "Lobby",
            "topic": "Say hi",
            "join_rule": "public",
        }
    ]
    assert got.body["total_room_count_estimate"] == 1
    # The same entries a client sees.
    assert api.get("publicRooms").body["chunk"] == got.body["chunk"]


def test_rooms_other_servers_cannot_join_are_not_listed_to_them(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    local_only = create_room(
        api, alice, visibility="public", creation_content={"m.federate": False}
    )
    room = create_room(api, alice, visibility="public")

    got = fed(api, dave, "GET", PUBLIC_ROOMS)

    assert ids(got.body) == [room]
    assert got.body["total_room_count_estimate"] == 1
    assert sorted(ids(api.get("publicRooms").body)) == sorted([local_only, room])


def test_served_pages_follow_limit_and_since(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    rooms = {create_room(api, alice, visibility="public") for _ in range(3)}

    first = fed(api, dave, "GET", f"{PUBLIC_ROOMS}?limit=2")
    second = fed(api, dave, "GET", f"{PUBLIC_ROOMS}?limit=2&since={first.body['next_batch']}")
    by_post = fed(api, dave, "POST", PUBLIC_ROOMS, {"limit": 2, "since": first.body["next_batch"]})

    assert len(ids(first.body)) == 2
    assert set(ids(first.body)) | set(ids(second.body)) == rooms
    assert "next_batch" not in second.body
    assert second.body["prev_batch"] == "o0"
    assert by_post.body == second.body


def test_served_search_filters(api: MatrixTestClient, alice: Persona, dave: RemoteServer) -> None:
    lobby = create_room(api, alice, visibility="public", name="Lobby")
    space = create_room(
        api, alice, visibility="public", name="Space", creation_content={"type": "m.space"}
    )

    by_term = fed(api, dave, "POST", PUBLIC_ROOMS, {"filter": {"generic_search_term": "lob"}})
    by_type = fed(api, dave, "POST", PUBLIC_ROOMS, {"filter": {"room_types": ["m.space"]}})
    networks = fed(
        api,
        dave,
        "GET",
        f"{PUBLIC_ROOMS}?include_all_networks=false&third_party_instance_id=irc",
    )
    empty = fed(api, dave, "POST", PUBLIC_ROOMS, {})

    assert ids(by_term.body) == [lobby]
    assert ids(by_type.body) == [space]
    assert sorted(ids(networks.body)) == sorted([lobby, space])
    assert sorted(ids(empty.body)) == sorted([lobby, space])


def test_the_served_directory_needs_a_signature(api: MatrixTestClient) -> None:
    got = fed(api, None, "GET", PUBLIC_ROOMS)

    assert (got.status, got.body["errcode"]) == (401, "M_UNAUTHORIZED")


@pytest.mark.parametrize(
    ("method", "path", "body", "errcode"),
    [
        ("GET", f"{PUBLIC_ROOMS}?limit=ten", None, "M_INVALID_PARAM"),
        ("GET", f"{PUBLIC_ROOMS}?limit=-1", None, "M_INVALID_PARAM"),
        ("GET", f"{PUBLIC_ROOMS}?since=o-1", None, "M_INVALID_PARAM"),
        ("GET", f"{PUBLIC_ROOMS}?include_all_networks=yes", None, "M_INVALID_PARAM"),
        ("POST", PUBLIC_ROOMS, {"limit": "5"}, "M_BAD_JSON"),
        ("POST", PUBLIC_ROOMS, {"filter": []}, "M_BAD_JSON"),
        ("POST", PUBLIC_ROOMS, {"filter": {"room_types": "m.space"}}, "M_BAD_JSON"),
        ("POST", PUBLIC_ROOMS, {"include_all_networks": "true"}, "M_BAD_JSON"),
        ("POST", PUBLIC_ROOMS, {"since": "nope"}, "M_INVALID_PARAM"),
        ("POST", PUBLIC_ROOMS, [], "M_BAD_JSON"),
    ],
)
def test_bad_served_queries_are_refused(
    api: MatrixTestClient, dave: RemoteServer, method: str, path: str, body: Any, errcode: str
) -> None:
    got = fed(api, dave, method, path, body)

    assert (got.status, got.body["errcode"]) == (400, errcode)


# --- Client: /publicRooms?server=other -------------------------------------------------

REMOTE_ROOM = {
    "room_id": "!lobby:carol.example",
    "num_joined_members": 7,
    "world_readable": True,
    "guest_can_join": False,
    "name": "Carol's lobby",
    "join_rule": "public",
}


def serve_directory(server: FakeServer, *, filtered: bool = True) -> list[tuple[str, str, Any]]:
    """Carol answers /publicRooms with one good entry and junk; the requests are
    recorded. Without ``filtered``, carol refuses POST like a server that cannot filter."""
    requests: list[tuple[str, str, Any]] = []

    def handler(method: str, path: str, body: Any) -> Any:
        if not path.startswith(PUBLIC_ROOMS):
            return None
        requests.append((method, path, body))
        if method == "POST" and not filtered:
            return json_response({"errcode": "M_UNRECOGNIZED", "error": "?"}, 405)
        return json_response(
            {
                "chunk": [
                    {**REMOTE_ROOM, "secret": "not a spec field", "topic": 5},
                    {"room_id": "!bad:carol.example", "num_joined_members": "7"},
                    {**REMOTE_ROOM, "room_id": "not a room id"},
                    "junk",
                ],
                "next_batch": "carol-token",
                "total_room_count_estimate": 4,
            }
        )

    server.handler = handler
    return requests


def test_another_servers_directory_is_read_over_federation(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    requests = serve_directory(carol)

    response = api.get(f"publicRooms?server={CAROL}&limit=5&since=abc")

    assert response.status == 200, response.body
    # Malformed entries left out, unknown fields and fields of the wrong type dropped.
    assert response.body == {
        "chunk": [REMOTE_ROOM],
        "next_batch": "carol-token",
        "total_room_count_estimate": 4,
    }
    ((method, path, body),) = requests
    assert (method, body) == ("GET", None)
    assert parse_qs(urlsplit(path).query) == {"limit": ["5"], "since": ["abc"]}
    # Signed by this server, for carol.
    sent = next(r for r in network.sent if r.path == path)
    assert sent.headers["Authorization"].startswith("X-Matrix ")
    assert f'destination="{CAROL}"' in sent.headers["Authorization"]


def test_a_filtered_search_of_another_server_is_posted(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    requests = serve_directory(carol)
    search = {
        "limit": 3,
        "filter": {"generic_search_term": "lobby", "room_types": [None]},
        "third_party_instance_id": "irc",
    }

    response = api.post(f"publicRooms?server={CAROL}", search, token=alice.access_token)

    assert response.status == 200, response.body
    assert response.body["chunk"] == [REMOTE_ROOM]
    assert requests == [("POST", PUBLIC_ROOMS, search)]


def test_a_server_that_cannot_filter_is_filtered_here(
    api: MatrixTestClient, alice: Persona, carol: FakeServer, network: FakeNetwork
) -> None:
    requests = serve_directory(carol, filtered=False)

    found = api.post(
        f"publicRooms?server={CAROL}",
        {"limit": 3, "filter": {"generic_search_term": "LOBBY"}},
        token=alice.access_token,
    )
    missed = api.post(
        f"publicRooms?server={CAROL}",
        {"filter": {"generic_search_term": "kitchen"}},
        token=alice.access_token,
    )

    assert found.body == {"chunk": [REMOTE_ROOM]}
    assert missed.body == {"chunk": []}
    # The whole list, unpaginated, after the refused POST.
    assert [(m, p) for m, p, _ in requests][:2] == [("POST", PUBLIC_ROOMS), ("GET", PUBLIC_ROOMS)]


@pytest.mark.parametrize(
    "answer",
    [
        json_response({"errcode": "M_FORBIDDEN", "error": "no"}, 403),
        json_response({"errcode": "M_UNKNOWN", "error": "boom"}, 500),
        json_response({"chunk": "nope"}),
        json_response(["not", "an", "object"]),
    ],
)
def test_a_failing_server_is_a_bad_gateway(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork, answer: Any
) -> None:
    carol.handler = lambda method, path, body: answer

    response = api.get(f"publicRooms?server={CAROL}")

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert response.body["error"] == "Failed to fetch room list"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_server_that_cannot_be_reached_is_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork, method: str
) -> None:
    network.add(CAROL, reachable=False)

    response = api.request(method, f"publicRooms?server={CAROL}", {}, token=alice.access_token)

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")


def test_our_own_name_stays_local(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    room = create_room(api, alice, visibility="public")

    response = api.post(f"publicRooms?server={settings.SERVER_NAME}", {}, token=alice.access_token)

    assert ids(response.body) == [room]
    assert network.sent == []


# --- Client: GET /directory/room/{roomAlias} of another server -------------------------

CAROL_ALIAS = f"#lobby:{CAROL}"


def alias_path(alias: str) -> str:
    return "directory/room/" + quote(alias, safe="")


def test_an_alias_of_another_server_is_asked_of_it(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    query = f"{F}/query/directory?room_alias={quote(CAROL_ALIAS, safe='')}"
    carol.routes[query] = json_response(
        {"room_id": "!lobby:carol.example", "servers": [CAROL, "not a server", 5, "x.example"]}
    )

    response = api.get(alias_path(CAROL_ALIAS))

    assert response.status == 200, response.body
    assert response.body == {"room_id": "!lobby:carol.example", "servers": [CAROL, "x.example"]}
    assert [r.path for r in network.sent if r.path.startswith(F)] == [query]


@pytest.mark.parametrize(
    ("answer", "status", "errcode"),
    [
        (json_response({"errcode": "M_NOT_FOUND", "error": "no"}, 404), 404, "M_NOT_FOUND"),
        (json_response({"errcode": "M_FORBIDDEN", "error": "no"}, 403), 502, "M_UNKNOWN"),
        (json_response({"errcode": "M_UNKNOWN", "error": "boom"}, 500), 502, "M_UNKNOWN"),
        (json_response({"room_id": "lobby", "servers": []}), 502, "M_UNKNOWN"),
        (json_response({"room_id": "!lobby:carol.example", "servers": "x"}), 502, "M_UNKNOWN"),
        (json_response([1]), 502, "M_UNKNOWN"),
    ],
)
def test_remote_alias_failures_are_mapped(
    api: MatrixTestClient,
    carol: FakeServer,
    network: FakeNetwork,
    answer: Any,
    status: int,
    errcode: str,
) -> None:
    carol.handler = lambda method, path, body: answer if path.startswith(F) else None

    response = api.get(alias_path(CAROL_ALIAS))

    assert (response.status, response.errcode) == (status, errcode)


def test_an_alias_of_a_server_that_cannot_be_reached_is_a_bad_gateway(
    api: MatrixTestClient, network: FakeNetwork
) -> None:
    response = api.get(alias_path("#lobby:nowhere.example:8448"))

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")


def test_local_aliases_stay_local(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    room = create_room(api, alice, room_alias_name="here")

    response = api.get(alias_path(f"#here:{settings.SERVER_NAME}"))
    missing = api.get(alias_path(f"#nowhere:{settings.SERVER_NAME}"))

    assert response.body["room_id"] == room
    assert (missing.status, missing.errcode) == (404, "M_NOT_FOUND")
    assert network.sent == []
