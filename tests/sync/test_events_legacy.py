"""GET /events (deprecated, Client-Server API "Legacy"; with ``room_id``, "Room
Previews"): what happened since a token, flattened with the room IDs (sytest still
drives it), and GET /events/{eventId}."""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, invite, join, leave, send, set_state
from tests.sync.ephemeral_helpers import send_receipt, set_typing, shared_room


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
    # The whole invite event, as a ClientEvent is.
    assert invites[0]["event_id"].startswith("$")
    assert (invites[0]["sender"], invites[0]["state_key"]) == (bob.user_id, alice.user_id)
    assert body["start"] == token
    # Nothing more since its end.
    assert events(api, alice, **{"from": body["end"], "timeout": 0})["chunk"] == []


def test_a_bad_token_or_no_access_token_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    response = api.get("events?from=nonsense", token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_PARAM")
    response = api.get("events")
    assert (response.status, response.errcode) == (401, "M_MISSING_TOKEN")


def test_without_from_it_streams_from_now(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    send(api, alice, room, "before")

    body = events(api, alice, timeout=0)

    assert body["chunk"] == []
    # What happens next comes from its end.
    send(api, alice, room, "after")
    later = events(api, alice, **{"from": body["end"], "timeout": 0})
    assert [e["content"]["body"] for e in later["chunk"] if e["type"] == "m.room.message"] == [
        "after"
    ]


# The chunk's items as the spec's schema has them (old_sync.yaml, peeking_events.yaml:
# ClientEvent).
CLIENT_EVENT_KEYS = {"content", "event_id", "origin_server_ts", "room_id", "sender", "type"}


def test_the_stream_is_room_events_only(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    """The chunk is an array of ClientEvents: a receipt, typing, account data, a tag and
    presence since the token are left out (Synapse streams them; /sync carries them)."""
    room = shared_room(api, alice, bob)
    token = events(api, alice, timeout=0)["end"]
    event_id = send(api, bob, room, "hello")
    assert send_receipt(api, bob, room, event_id).status == 200
    assert set_typing(api, bob, room).status == 200
    api.put(f"user/{alice.user_id}/account_data/org.example.g", {"a": 1}, token=alice.access_token)
    api.put(f"user/{alice.user_id}/rooms/{room}/tags/work", {"order": 1}, token=alice.access_token)
    api.put(
        f"presence/{bob.user_id}/status",
        {"presence": "online", "status_msg": "busy"},
        token=bob.access_token,
    )

    chunk = events(api, alice, **{"from": token, "timeout": 0})["chunk"]

    assert [e["type"] for e in chunk] == ["m.room.message"]
    (message,) = chunk
    assert message.keys() >= CLIENT_EVENT_KEYS
    assert (message["event_id"], message["room_id"]) == (event_id, room)


def test_a_leave_is_in_the_stream_and_nothing_after_it(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, bob, alice)
    token = events(api, alice, timeout=0)["end"]
    leave(api, alice, room)
    send(api, bob, room, "after the leave")

    chunk = events(api, alice, **{"from": token, "timeout": 0})["chunk"]

    timeline = [e for e in chunk if e.get("room_id") == room and "event_id" in e]
    assert [(e["type"], e["content"].get("membership")) for e in timeline] == [
        ("m.room.member", "leave")
    ]


def test_limit_cuts_the_chunk_and_the_next_request_goes_on(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    token = events(api, alice, timeout=0)["end"]
    sent = [send(api, alice, room, f"message {n}") for n in range(5)]

    seen: list[str] = []
    for _ in range(4):
        body = events(api, alice, **{"from": token, "timeout": 0, "limit": 2})
        messages = [e for e in body["chunk"] if e["type"] == "m.room.message"]
        assert len(messages) <= 2
        seen.extend(e["event_id"] for e in messages)
        token = body["end"]

    assert seen == sent


def test_a_room_joined_since_the_token_gives_no_history_from_before(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob, preset="public_chat")
    send(api, bob, room, "before alice")
    token = events(api, alice, timeout=0)["end"]
    join(api, alice, room)

    chunk = events(api, alice, **{"from": token, "timeout": 0})["chunk"]

    timeline = [e for e in chunk if e.get("room_id") == room and "event_id" in e]
    assert [(e["type"], e["state_key"]) for e in timeline] == [("m.room.member", alice.user_id)]


def test_bad_limits_and_timeouts_are_refused(api: MatrixTestClient, alice: Persona) -> None:
    token = events(api, alice, timeout=0)["end"]
    for bad in ("limit=hello", "limit=-2", "timeout=hello"):
        response = api.get(f"events?from={token}&{bad}", token=alice.access_token)
        assert (response.status, response.errcode) == (400, "M_INVALID_PARAM"), bad


def test_room_id_peeks_into_a_world_readable_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = create_room(api, bob)
    set_state(
        api, bob, room, "m.room.history_visibility", {"history_visibility": "world_readable"}
    )
    token = events(api, alice, room_id=room, timeout=0)["end"]
    event_id = send(api, bob, room, "mice")
    assert send_receipt(api, bob, room, event_id).status == 200
    assert set_typing(api, bob, room).status == 200
    for who in (bob, carol):
        api.put(f"presence/{who.user_id}/status", {"presence": "online"}, token=who.access_token)

    chunk = events(api, alice, **{"from": token, "room_id": room, "timeout": 0})["chunk"]

    # The room's events only (ClientEvents), not its receipts, typing or presence.
    assert [e["event_id"] for e in chunk] == [event_id]
    assert all(e.keys() >= CLIENT_EVENT_KEYS and e["room_id"] == room for e in chunk)


def test_room_id_of_a_room_not_world_readable_is_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, bob)
    for query in (f"room_id={room}", "room_id=!nowhere:test"):
        response = api.get(f"events?timeout=0&{query}", token=alice.access_token)
        assert (response.status, response.errcode) == (403, "M_FORBIDDEN"), query


def test_a_single_event_by_id(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)
    event_id = send(api, alice, room, "hello")

    response = api.get(f"events/{event_id}", token=alice.access_token)
    assert response.status == 200, response.body
    assert (response.body["event_id"], response.body["room_id"]) == (event_id, room)
    assert response.body["content"]["body"] == "hello"
    # Someone who may not see it is told it is not there, as for an unknown event.
    for who, wanted in ((bob, event_id), (alice, "$unknown")):
        response = api.get(f"events/{wanted}", token=who.access_token)
        assert (response.status, response.errcode) == (404, "M_NOT_FOUND")
