"""GET /rooms/{roomId}/context/{eventId} (Client-Server API, "Event Context")."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import (
    bodies,
    create_room,
    join,
    messages,
    room_path,
    send,
    set_state,
)


def context(
    api: MatrixTestClient, who: Persona, room: str, event_id: str, **params: Any
) -> Response:
    if isinstance(params.get("filter"), dict):
        params["filter"] = json.dumps(params["filter"])
    query = urlencode(params)
    path = room_path(room, "context", event_id) + (f"?{query}" if query else "")
    return api.get(path, token=who.access_token)


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, bob: Persona) -> str:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    return room_id


@pytest.fixture
def numbered(api: MatrixTestClient, alice: Persona, room: str) -> list[str]:
    """Ten messages "0".."9" from alice."""
    return [send(api, alice, room, str(i)) for i in range(10)]


def test_events_before_and_after_share_the_limit(
    api: MatrixTestClient, bob: Persona, room: str, numbered: list[str]
) -> None:
    response = context(api, bob, room, numbered[5], limit=4)

    assert response.status == 200
    assert response.body["event"]["event_id"] == numbered[5]
    # Before: reverse-chronological; after: chronological.
    assert bodies(response.body["events_before"]) == ["4", "3"]
    assert bodies(response.body["events_after"]) == ["6", "7"]


def test_start_and_end_continue_with_messages(
    api: MatrixTestClient, bob: Persona, room: str, numbered: list[str]
) -> None:
    body = context(api, bob, room, numbered[5], limit=4).body

    earlier = messages(api, bob, room, dir="b", limit=2, **{"from": body["start"]})
    later = messages(api, bob, room, dir="f", limit=2, **{"from": body["end"]})

    assert bodies(earlier.body["chunk"]) == ["2", "1"]
    assert bodies(later.body["chunk"]) == ["8", "9"]


def test_limit_zero_returns_the_event_alone(
    api: MatrixTestClient, bob: Persona, room: str, numbered: list[str]
) -> None:
    body = context(api, bob, room, numbered[3], limit=0).body

    assert body["event"]["event_id"] == numbered[3]
    assert body["events_before"] == []
    assert body["events_after"] == []
    earlier = messages(api, bob, room, dir="b", limit=1, **{"from": body["start"]})
    assert bodies(earlier.body["chunk"]) == ["2"]


def test_the_filter_applies_around_the_event_not_to_it(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    send(api, alice, room, "from alice before")
    send(api, bob, room, "from bob before")
    target = send(api, alice, room, "target")
    send(api, bob, room, "from bob after")
    send(api, alice, room, "from alice after")

    body = context(api, bob, room, target, filter={"senders": [bob.user_id]}).body

    assert body["event"]["event_id"] == target
    assert bodies(body["events_before"]) == ["from bob before"]
    assert bodies(body["events_after"]) == ["from bob after"]
    assert {e["sender"] for e in body["state"]} == {bob.user_id}


def test_state_is_at_the_last_event_and_members_can_be_lazy_loaded(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, room: str
) -> None:
    join(api, carol, room)
    send(api, alice, room, "before")
    target = send(api, alice, room, "hello")
    send(api, bob, room, "hi")

    full = context(api, alice, room, target, limit=2).body
    lazy = context(api, alice, room, target, limit=2, filter={"lazy_load_members": True}).body

    full_keys = {(e["type"], e["state_key"]) for e in full["state"]}
    assert ("m.room.create", "") in full_keys
    assert ("m.room.member", carol.user_id) in full_keys
    lazy_members = {e["state_key"] for e in lazy["state"] if e["type"] == "m.room.member"}
    assert lazy_members == {alice.user_id, bob.user_id}
    assert ("m.room.create", "") in {(e["type"], e["state_key"]) for e in lazy["state"]}


def test_context_events_carry_bundled_aggregations(
    api: MatrixTestClient, alice: Persona, bob: Persona, room: str
) -> None:
    target = send(api, alice, room, "v1")
    fixed = send(
        api,
        alice,
        room,
        {
            "msgtype": "m.text",
            "body": "* v2",
            "m.new_content": {"msgtype": "m.text", "body": "v2"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": target},
        },
    )

    body = context(api, bob, room, target).body

    assert body["event"]["unsigned"]["m.relations"]["m.replace"]["event_id"] == fixed


def test_a_room_the_user_may_not_read_is_forbidden(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # sytest "/context/ on non world readable room does not work": 403, as Synapse.
    private = create_room(api, alice, preset="private_chat")
    secret = send(api, alice, private, "secret")

    response = context(api, bob, private, secret)
    unknown_too = context(api, bob, private, "$missing")

    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert (unknown_too.status, unknown_too.errcode) == (403, "M_FORBIDDEN")


def test_unknown_or_invisible_events_are_not_found(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    private = create_room(api, alice, preset="public_chat")
    set_state(api, alice, private, "m.room.history_visibility", {"history_visibility": "joined"})
    secret = send(api, alice, private, "secret")
    join(api, bob, private)

    unknown = context(api, alice, private, "$missing")
    hidden = context(api, bob, private, secret)
    bad_filter = context(api, alice, private, secret, filter="[1]")

    assert (unknown.status, unknown.errcode) == (404, "M_NOT_FOUND")
    assert (hidden.status, hidden.errcode) == (404, "M_NOT_FOUND")
    assert (bad_filter.status, bad_filter.errcode) == (400, "M_INVALID_PARAM")
