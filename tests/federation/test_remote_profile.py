"""GET /profile/{userId} (and /displayname, /avatar_url) for a user of another server:
asked of that server (GET /_matrix/federation/v1/query/profile), its failures mapped."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, FakeNetwork, FakeServer, json_response

CAROL_USER = f"@carol:{CAROL}"
QUERY_PROFILE = "/_matrix/federation/v1/query/profile"


def profile_path(user_id: str, *field: str) -> str:
    return "/".join(["profile", quote(user_id, safe=""), *field])


def serve_profile(server: FakeServer, profile: dict[str, Any]) -> list[dict[str, list[str]]]:
    """Carol answers profile queries from ``profile`` as the spec says (404 for a missing
    field); the queries are recorded."""
    queries: list[dict[str, list[str]]] = []

    def handler(method: str, path: str, body: Any) -> Any:
        if not path.startswith(QUERY_PROFILE + "?"):
            return None
        params = parse_qs(urlsplit(path).query)
        queries.append(params)
        field = params.get("field", [None])[0]
        if field is None:
            return json_response(profile)
        if field not in profile:
            return json_response({"errcode": "M_NOT_FOUND", "error": "not set"}, 404)
        return json_response({field: profile[field]})

    server.handler = handler
    return queries


def test_a_remote_profile_is_asked_of_its_server(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    queries = serve_profile(
        carol, {"displayname": "Carol", "avatar_url": "mxc://carol.example/a", "m.tz": 5}
    )

    response = api.get(profile_path(CAROL_USER))

    assert response.status == 200, response.body
    # A value of the wrong type for a field the spec defines is left out.
    assert response.body == {"displayname": "Carol", "avatar_url": "mxc://carol.example/a"}
    assert queries == [{"user_id": [CAROL_USER]}]


def test_one_field_of_a_remote_profile(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    queries = serve_profile(carol, {"displayname": "Carol"})

    name = api.get(profile_path(CAROL_USER, "displayname"))
    avatar = api.get(profile_path(CAROL_USER, "avatar_url"))

    assert name.body == {"displayname": "Carol"}
    assert (avatar.status, avatar.errcode) == (404, "M_NOT_FOUND")
    assert [q["field"] for q in queries] == [["displayname"], ["avatar_url"]]


def test_a_field_the_remote_server_leaves_out_is_not_found(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    # A server that answers the whole profile whatever field was asked for.
    carol.handler = lambda method, path, body: (
        json_response({"avatar_url": "mxc://carol.example/a"})
        if path.startswith(QUERY_PROFILE)
        else None
    )

    name = api.get(profile_path(CAROL_USER, "displayname"))
    avatar = api.get(profile_path(CAROL_USER, "avatar_url"))

    assert (name.status, name.errcode) == (404, "M_NOT_FOUND")
    assert avatar.body == {"avatar_url": "mxc://carol.example/a"}


@pytest.mark.parametrize(
    ("answer", "status", "errcode"),
    [
        (json_response({"errcode": "M_NOT_FOUND", "error": "no"}, 404), 404, "M_NOT_FOUND"),
        (json_response({"errcode": "M_FORBIDDEN", "error": "no"}, 403), 502, "M_UNKNOWN"),
        (json_response({"errcode": "M_UNKNOWN", "error": "boom"}, 500), 502, "M_UNKNOWN"),
        (json_response(["not", "a", "profile"]), 502, "M_UNKNOWN"),
    ],
)
def test_remote_failures_are_mapped(
    api: MatrixTestClient,
    carol: FakeServer,
    network: FakeNetwork,
    answer: Any,
    status: int,
    errcode: str,
) -> None:
    carol.handler = lambda method, path, body: answer if path.startswith(QUERY_PROFILE) else None

    for path in (profile_path(CAROL_USER), profile_path(CAROL_USER, "displayname")):
        response = api.get(path)
        assert (response.status, response.errcode) == (status, errcode), path
        # The remote error is never passed through.
        assert response.body["error"] != "boom"


def test_a_server_that_cannot_be_reached_is_a_bad_gateway(
    api: MatrixTestClient, network: FakeNetwork
) -> None:
    network.add(CAROL, reachable=False)

    response = api.get(profile_path(CAROL_USER))

    assert (response.status, response.errcode) == (502, "M_UNKNOWN")
    assert response.body["error"] == "Failed to fetch profile"


def test_local_profiles_stay_local(
    api: MatrixTestClient, alice: Persona, network: FakeNetwork
) -> None:
    response = api.get(profile_path(alice.user_id))
    nobody = api.get(profile_path("@nobody:" + alice.user_id.split(":", 1)[1]))
    invalid = api.get(profile_path("not-a-user"))

    assert response.status == 200
    assert (nobody.status, nobody.errcode) == (404, "M_NOT_FOUND")
    assert (invalid.status, invalid.errcode) == (404, "M_NOT_FOUND")
    assert network.sent == []


def test_an_answer_is_kept_briefly(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    queries = serve_profile(carol, {"displayname": "Carol"})

    first = api.get(profile_path(CAROL_USER))
    again = api.get(profile_path(CAROL_USER))
    name = api.get(profile_path(CAROL_USER, "displayname"))
    name_again = api.get(profile_path(CAROL_USER, "displayname"))
    missing = api.get(profile_path(CAROL_USER, "avatar_url"))
    missing_again = api.get(profile_path(CAROL_USER, "avatar_url"))

    assert first.body == again.body == {"displayname": "Carol"}
    assert name.body == name_again.body == {"displayname": "Carol"}
    assert (missing.status, missing_again.status) == (404, 404)
    # Asked once per user and field while the answer is kept (a 404 too).
    assert queries == [
        {"user_id": [CAROL_USER]},
        {"user_id": [CAROL_USER], "field": ["displayname"]},
        {"user_id": [CAROL_USER], "field": ["avatar_url"]},
    ]


def test_a_failure_is_not_kept(
    api: MatrixTestClient, carol: FakeServer, network: FakeNetwork
) -> None:
    asked = []

    def handler(method: str, path: str, body: Any) -> Any:
        asked.append(path)
        if len(asked) == 1:
            return json_response({"errcode": "M_UNKNOWN", "error": "boom"}, 500)
        return json_response({"displayname": "Carol"})

    carol.handler = handler

    assert api.get(profile_path(CAROL_USER)).status == 502
    assert api.get(profile_path(CAROL_USER)).body == {"displayname": "Carol"}
    assert len(asked) == 2
