"""History persisted late: /messages pages in topological order, /sync never sees it.

Backfill (history fetched from another server, older than what the room holds here) is
simulated by inserting rows the way it persists them: a depth below the room's first
stored events, a negative stream ordering from streams.positions.next_backfill_position,
persisted after the rest. The room's own events are moved up by SHIFT in depth first, as
if this server's view of the room began there (it joined a room with a long past); no
event is sent after that (a new event takes its depth from its prev events' PDUs).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from django.conf import settings
from django.db.models import F

from rooms import history
from rooms.models import Event, Room
from streams import positions
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import bodies, create_room, messages, room_path, send
from tests.rooms.test_relations import relations
from tests.sync.helpers import joined, sync

SHIFT = 100
_ids = itertools.count()


def new_event_id() -> str:
    return f"$backfilled{next(_ids)}:{settings.SERVER_NAME}"


def shift(room_id: str) -> None:
    Event.objects.filter(room__room_id=room_id).update(depth=F("depth") + SHIFT)


def backfill(
    room_id: str, sender: str, body: str, depth: int, event_id: str | None = None, **fields: Any
) -> Event:
    """Persist an old m.room.message as backfill does: a negative stream ordering, the
    room's current state as its state (the sender was joined)."""
    room = Room.objects.get(room_id=room_id)
    event_id = event_id or new_event_id()
    content: dict[str, Any] = {"msgtype": "m.text", "body": body}
    if "relates_to" in fields:
        relation = {"rel_type": fields["rel_type"], "event_id": fields["relates_to"]}
        content["m.relates_to"] = relation
    return Event.objects.create(
        event_id=event_id,
        room=room,
        stream_ordering=positions.next_backfill_position(),
        depth=depth,
        type="m.room.message",
        sender=sender,
        origin_server_ts=1_000 + depth,
        pdu={
            "event_id": event_id,
            "room_id": room_id,
            "type": "m.room.message",
            "sender": sender,
            "content": content,
            "origin_server_ts": 1_000 + depth,
            "depth": depth,
            "prev_events": [],
            "auth_events": [],
        },
        state_group_id=room.current_state_group_id,
        **fields,
    )


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona) -> str:
    """A room with m0..m2 from alice at depths above SHIFT, then b0..b3 backfilled
    (fetched newest first, so b3 has stream ordering -1 and b0 -4) at depths 1..4."""
    room = create_room(api, alice, preset="public_chat")
    for n in range(3):
        send(api, alice, room, f"m{n}")
    shift(room)
    for n in reversed(range(4)):
        backfill(room, alice.user_id, f"b{n}", depth=n + 1)
    return room


def page(api: MatrixTestClient, who: Persona, room: str, **params: Any) -> dict[str, Any]:
    response = messages(api, who, room, **params)
    assert response.status == 200, response.body
    return response.body


def page_through(
    api: MatrixTestClient, who: Persona, room: str, direction: str, **params: Any
) -> list[dict[str, Any]]:
    """Every event from ``from`` (or the edge) on, two at a time, following ``end``."""
    seen: list[dict[str, Any]] = []
    token = params.pop("from", None)
    for _ in range(50):
        query: dict[str, Any] = {"dir": direction, "limit": 2, **params}
        if token:
            query["from"] = token
        body = page(api, who, room, **query)
        seen.extend(body["chunk"])
        token = body.get("end")
        if token is None:
            return seen
    raise AssertionError("pagination did not end")


def test_backfill_positions_count_down_from_minus_one(db: None) -> None:
    events = positions.current_position(positions.EVENTS)

    assert [positions.next_backfill_position() for _ in range(3)] == [-1, -2, -3]
    # The events stream is not touched.
    assert positions.current_position(positions.EVENTS) == events


def test_backwards_from_the_end_backfilled_history_comes_after_the_newer_events(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    events = page_through(api, alice, room, "b")

    assert bodies(events) == ["m2", "m1", "m0", "b3", "b2", "b1", "b0"]
    assert events[-1]["content"]["body"] == "b0"


def test_forwards_from_the_start_backfilled_history_comes_first(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    events = page_through(api, alice, room, "f")

    assert bodies(events) == ["b0", "b1", "b2", "b3", "m0", "m1", "m2"]
    assert events[4]["type"] == "m.room.create"


def test_tokens_are_topological_and_round_trip(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    live = Event.objects.filter(room__room_id=room, stream_ordering__gt=0).count()
    # Every event this server persisted live (the room's creation, m0..m2) ...
    newest = page(api, alice, room, dir="b", limit=live)
    end = newest["end"]
    assert end.startswith("t")

    older = page(api, alice, room, dir="b", limit=2, **{"from": end})
    newer = page(api, alice, room, dir="f", limit=10, **{"from": end})

    assert older["start"] == end
    assert bodies(older["chunk"]) == ["b3", "b2"]
    # ... and forwards from the same token, those again, oldest first.
    assert [e["event_id"] for e in newer["chunk"]] == [
        e["event_id"] for e in reversed(newest["chunk"])
    ]
    # A token is a position: parsing what was made gives it back.
    row = Event.objects.get(event_id=older["chunk"][0]["event_id"])
    assert history.parse_token(history.make_token((row.depth, row.stream_ordering)), row.room) == (
        row.depth,
        row.stream_ordering,
    )


def test_sync_tokens_work_as_from_and_lead_into_backfilled_history(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    timeline = joined(sync(api, alice, filter={"room": {"timeline": {"limit": 2}}}))[room][
        "timeline"
    ]
    prev_batch = timeline["prev_batch"]
    assert prev_batch.startswith("s")

    before = page_through(api, alice, room, "b", **{"from": prev_batch})

    assert bodies(timeline["events"]) == ["m1", "m2"]
    assert bodies(before) == ["m0", "b3", "b2", "b1", "b0"]


def test_a_sync_next_batch_works_as_from(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    for n in range(3):
        send(api, alice, room, f"m{n}")
    next_batch = sync(api, alice)["next_batch"]
    send(api, alice, room, "m3")

    newer = page(api, alice, room, dir="f", **{"from": next_batch})
    older = page(api, alice, room, dir="b", limit=2, **{"from": next_batch})

    assert bodies(newer["chunk"]) == ["m3"]
    assert bodies(older["chunk"]) == ["m2", "m1"]


def test_sync_never_shows_backfilled_history(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    send(api, alice, room, "m0")
    since = sync(api, alice)["next_batch"]
    backfill(room, alice.user_id, "b1", depth=2)
    backfill(room, alice.user_id, "b0", depth=1)

    # An initial sync with room in its timeline for every event.
    initial = joined(sync(api, alice, filter={"room": {"timeline": {"limit": 50}}}))[room]
    # An incremental sync from before the backfill: nothing new.
    incremental = sync(api, alice, since=since, timeout=0)
    # ... and after a new message, only that message.
    send(api, alice, room, "m1")
    after_news = joined(sync(api, alice, since=since, timeout=0))[room]

    assert "b0" not in bodies(initial["timeline"]["events"])
    assert bodies(initial["timeline"]["events"]) == ["m0"]
    assert initial["timeline"]["limited"] is False
    assert room not in joined(incremental)
    assert bodies(after_news["timeline"]["events"]) == ["m1"]
    # /messages has it (by depth: b0 and b1 are as deep as the room's first events).
    assert set(bodies(page_through(api, alice, room, "b"))) == {"m1", "m0", "b1", "b0"}


def test_context_of_a_backfilled_event_is_in_topological_order(
    api: MatrixTestClient, alice: Persona, room: str
) -> None:
    b3 = Event.objects.get(room__room_id=room, pdu__content__body="b3")

    response = api.get(
        room_path(room, "context", b3.event_id) + "?limit=4", token=alice.access_token
    )

    assert response.status == 200, response.body
    assert bodies(response.body["events_before"]) == ["b2", "b1"]
    assert [e["type"] for e in response.body["events_after"]] == [
        "m.room.create",
        "m.room.member",
    ]
    earlier = page(api, alice, room, dir="b", **{"from": response.body["start"]})
    later = page(api, alice, room, dir="f", limit=1, **{"from": response.body["end"]})
    assert bodies(earlier["chunk"]) == ["b0"]
    assert [e["type"] for e in later["chunk"]] == ["m.room.power_levels"]


def test_relations_are_in_topological_order(api: MatrixTestClient, alice: Persona) -> None:
    room = create_room(api, alice, preset="public_chat")
    root_id = new_event_id()
    # A reference to an event this server has not fetched yet...
    relation = {"rel_type": "m.reference", "event_id": root_id}
    live = send(api, alice, room, {"body": "live", "m.relates_to": relation})
    shift(room)
    # ... which backfill brings, with an older reference to it.
    root = backfill(room, alice.user_id, "root", depth=1, event_id=root_id)
    old = backfill(
        room, alice.user_id, "old", depth=3, relates_to=root.event_id, rel_type="m.reference"
    )

    backwards = relations(api, alice, room, root.event_id)
    first = relations(api, alice, room, root.event_id, dir="f", limit=1)
    after_first = {"from": first.body["next_batch"]}
    rest = relations(api, alice, room, root.event_id, dir="f", **after_first)

    assert [e["event_id"] for e in backwards.body["chunk"]] == [live, old.event_id]
    assert [e["event_id"] for e in first.body["chunk"]] == [old.event_id]
    assert [e["event_id"] for e in rest.body["chunk"]] == [live]


@pytest.mark.parametrize(
    "token", ["t1", "t1-", "t-1-2-3", "tx-1", "t9223372036854775808-1", "s9223372036854775808"]
)
def test_malformed_tokens_are_m_invalid_param(
    api: MatrixTestClient, alice: Persona, room: str, token: str
) -> None:
    response = messages(api, alice, room, dir="b", **{"from": token})

    assert response.status == 400
    assert response.errcode == "M_INVALID_PARAM"
