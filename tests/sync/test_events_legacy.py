"""GET /events (deprecated, Client-Server API "Legacy"): new timeline events and invites
since a /sync token, flattened with their room IDs (sytest still drives it)."""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, invite, send


def events(api: MatrixTestClient, who: Persona, **params: Any) -> dict[str, Any]:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    response = api.get(f"events?{query}", token=who.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def test_without_from_it_gives_the_token_of_now_and_nothing(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    send(api, alice, room, "before")

    body = events(api, alice, timeout=0)

    assert body["chunk"] == []
    assert body["start"] == body["end"]
    assert body["end"].startswith("s")


def test_it_gives_what_happened_since_the_token(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    token = events(api, alice, timeout=0)["end"]
    send(api, alice, room, "one")
    send(api, alice, room, "two")
    other = create_room(api, bob)
    invite(api, bob, other, alice)

    body = events(api, alice, **{"from": token, "timeout": 0})

    bodies = [e["content"].get("body") for e in body["chunk"] if e["type"] == "m.room.message"]
    assert bodies == ["one", "two"]
    assert all(e["room_id"] == room for e in body["chunk"] if e["type"] == "m.room.message")
    invites = [e for e in body["chunk"] if e["type"] == "m.room.member"]
    assert [(e["room_id"], e["content"]["membership"]) for e in invites] == [(other, "invite")]
    assert body["start"] == token
    # Nothing more since its end.
    assert events(api, alice, **{"from": body["end"], "timeout": 0})["chunk"] == []


def test_a_bad_token_or_no_access_token_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("events?from=nonsense", token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    response = api.get("events")
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")
