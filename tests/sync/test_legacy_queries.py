"""The legacy endpoints' cost does not grow with the events they give: GET
/initialSync reads a room's messages, state, receipts and presence in a fixed number of
queries, and GET /events a batch of new events in a fixed number too."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import send
from tests.sync.ephemeral_helpers import shared_room


def queries(api: MatrixTestClient, who: Persona, path: str) -> int:
    api.get(path, token=who.access_token)  # caches warm (state groups, sessions)
    with CaptureQueriesContext(connection) as captured:
        response = api.get(path, token=who.access_token)
    assert response.status == 200, response.body
    return len(captured)


def test_initial_sync_queries_do_not_grow_with_the_messages(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    send(api, bob, room, "one")
    few = queries(api, alice, "initialSync?limit=20")
    room_few = queries(api, alice, f"rooms/{room}/initialSync?limit=20")

    for number in range(8):
        send(api, bob if number % 2 else alice, room, f"more {number}")

    assert few > 0
    assert queries(api, alice, "initialSync?limit=20") == few
    assert queries(api, alice, f"rooms/{room}/initialSync?limit=20") == room_few


def test_event_stream_queries_do_not_grow_with_the_events(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = shared_room(api, alice, bob)
    start = api.get("events?timeout=0", token=alice.access_token).body["end"]
    send(api, bob, room, "one")
    few = queries(api, alice, f"events?timeout=0&from={start}")

    for number in range(8):
        send(api, bob, room, f"more {number}")

    assert few > 0
    assert queries(api, alice, f"events?timeout=0&from={start}") == few
