"""Read markers (Client-Server API, "Fully read markers").

POST /read_markers sets the m.fully_read room account data (which /sync then carries)
and, optionally, the m.read and m.read.private receipts, as /receipt would.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, room_path, send
from tests.sync.ephemeral_helpers import ephemeral, shared_room, sync


def read_markers(
    api: MatrixTestClient, who: Persona, room: str, body: dict[str, Any]
) -> tuple[int, str | None]:
    response = api.post(room_path(room, "read_markers"), body, token=who.access_token)
    return response.status, response.errcode


def fully_read(body: dict[str, Any], room: str) -> Any:
    room_body = body.get("rooms", {}).get("join", {}).get(room, {})
    for event in room_body.get("account_data", {}).get("events", []):
        if event["type"] == "m.fully_read":
            return event["content"]
    return None


def receipt_types(body: dict[str, Any], room: str) -> dict[str, set[str]]:
    """{event_id: receipt types} over the room's m.receipt events in a sync body."""
    found: dict[str, set[str]] = {}
    for event in ephemeral(body, room, "m.receipt"):
        for event_id, types in event["content"].items():
            found.setdefault(event_id, set()).update(types)
    return found


def test_fully_read_marker_reaches_sync(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)
    token = sync(api, alice)["next_batch"]

    assert read_markers(api, alice, room, {"m.fully_read": event}) == (200, None)

    body = sync(api, alice, token)
    assert fully_read(body, room) == {"event_id": event}
    assert receipt_types(body, room) == {}


def test_markers_and_receipts_together(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    marker = send(api, alice, room)
    public = send(api, alice, room)
    private = send(api, alice, room)
    token = sync(api, alice)["next_batch"]

    status = read_markers(
        api, alice, room, {"m.fully_read": marker, "m.read": public, "m.read.private": private}
    )

    assert status == (200, None)
    body = sync(api, alice, token)
    assert fully_read(body, room) == {"event_id": marker}
    assert receipt_types(body, room) == {public: {"m.read"}, private: {"m.read.private"}}


def test_receipts_alone_leave_the_marker(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    event = send(api, alice, room)
    token = sync(api, alice)["next_batch"]

    assert read_markers(api, bob, room, {"m.read": event}) == (200, None)

    body = sync(api, alice, token)
    assert receipt_types(body, room) == {event: {"m.read"}}
    assert fully_read(sync(api, bob), room) is None


def test_the_marker_only_moves_forwards(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    older = send(api, alice, room)
    newer = send(api, alice, room)
    read_markers(api, alice, room, {"m.fully_read": newer})
    token = sync(api, alice)["next_batch"]

    assert read_markers(api, alice, room, {"m.fully_read": older}) == (200, None)

    assert fully_read(sync(api, alice, token), room) is None
    assert fully_read(sync(api, alice), room) == {"event_id": newer}


def test_the_marker_cannot_be_set_as_account_data(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    response = api.put(
        f"user/{alice.user_id}/rooms/{room}/account_data/m.fully_read",
        {"event_id": event},
        token=alice.access_token,
    )

    assert response.status == 405


def test_events_must_belong_to_the_room(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)
    elsewhere = send(api, alice, create_room(api, alice))

    assert read_markers(api, alice, room, {"m.fully_read": elsewhere}) == (404, "M_NOT_FOUND")
    assert read_markers(api, alice, room, {"m.read": "$unknown"}) == (404, "M_NOT_FOUND")


def test_non_members_are_refused(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    room = create_room(api, alice)
    event = send(api, alice, room)

    assert read_markers(api, bob, room, {"m.fully_read": event}) == (403, "M_FORBIDDEN")


def test_malformed_bodies_are_refused(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice)

    status, errcode = read_markers(api, alice, room, {"m.fully_read": 5})

    assert (status, errcode) == (400, "M_BAD_JSON")
