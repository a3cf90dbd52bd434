"""Regressions found by fuzzing the rooms endpoints (schemathesis against the spec, and
hand-made hostile inputs): each was a 500 or a response the spec's schema refuses."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, messages, room_path, send

# Tokens the old checks let through to int(): "²" passes str.isdigit, "--5" passed
# lstrip("-"), and more than 4300 digits is more than int() converts.
BAD_STREAM_TOKENS = ["s--5", "s\u00b2", "s" + "9" * 5000]


@pytest.mark.parametrize("token", BAD_STREAM_TOKENS)
def test_bad_stream_tokens_are_invalid_params(
    api: MatrixTestClient, alice: Persona, token: str
) -> None:
    room = create_room(api, alice)
    root = send(api, alice, room, "root")
    paths = [
        room_path(room, "messages") + "?" + urlencode({"from": token}),
        room_path(room, "messages") + "?" + urlencode({"to": token, "dir": "f"}),
        room_path(room, "members") + "?" + urlencode({"at": token}),
        "/_matrix/client/v1/" + room_path(room, "threads") + "?" + urlencode({"from": token}),
        "/_matrix/client/v1/"
        + room_path(room, "relations", root)
        + "?"
        + urlencode({"from": token}),
    ]
    for path in paths:
        response = api.get(path, token=alice.access_token)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), (path, response)


def test_good_stream_tokens_still_parse(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    send(api, alice, room, "hello")
    first = messages(api, alice, room, limit=1)
    assert first.status == 200, first.body
    again = messages(api, alice, room, **{"from": first.body["end"] + "_0_0", "limit": 1})
    assert again.status == 200, again.body


@pytest.mark.parametrize("since", ["o\u00b2", "o" + "9" * 5000])
def test_bad_public_rooms_tokens_are_invalid_params(
    api: MatrixTestClient, alice: Persona, since: str
) -> None:
    response = api.get("publicRooms?" + urlencode({"since": since}))
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response.body
    response = api.post("publicRooms", {"since": since}, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response.body


@pytest.mark.parametrize("limit", [-1, "5", True, 1.5])
def test_a_filter_limit_that_is_not_a_count_is_refused(
    api: MatrixTestClient, alice: Persona, limit: object
) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room, "hello")
    response = messages(api, alice, room, filter={"limit": limit})
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), response.body
    query = urlencode({"filter": json.dumps({"limit": limit})})
    response = api.get(room_path(room, "context", event) + "?" + query, token=alice.access_token)
    assert response.status == 400, response.body


def test_a_filter_limit_still_caps_messages(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    for body in ("one", "two", "three"):
        send(api, alice, room, body)
    response = messages(api, alice, room, filter={"limit": 2})
    assert response.status == 200, response.body
    assert len(response.body["chunk"]) == 2


@pytest.mark.parametrize(
    "creation_content",
    [
        {"additional_creators": "x"},
        {"additional_creators": ["not a user id"]},
        {"additional_creators": [5]},
        {"type": 5},
        {"predecessor": "x"},
        {"m.federate": "no"},
    ],
)
def test_create_room_refuses_creation_content_of_the_wrong_shape(
    api: MatrixTestClient, alice: Persona, creation_content: dict[str, object]
) -> None:
    response = api.post(
        "createRoom", {"creation_content": creation_content}, token=alice.access_token
    )
    assert response.status == 400
    assert response.errcode == "M_BAD_JSON"
    assert api.get("joined_rooms", token=alice.access_token).body["joined_rooms"] == []


@pytest.mark.parametrize(
    "room_filter", ['{"types":"x"}', '{"senders":[{}]}', '{"contains_url":"yes"}']
)
def test_messages_refuses_a_filter_of_the_wrong_shape(
    api: MatrixTestClient, alice: Persona, room_filter: str
) -> None:
    room = api.post("createRoom", {}, token=alice.access_token).body["room_id"]
    response = api.get(
        f"rooms/{room}/messages?filter={quote(room_filter)}", token=alice.access_token
    )
    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
