"""rooms/recent.py: the newest events, read once per process for the /sync requests that
wake for them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rooms import recent
from rooms.models import Event
from streams import positions
from tests.conftest import MatrixTestClient, Persona
from tests.rooms.helpers import create_room, send


def test_a_range_is_read_once_oldest_first_with_the_children_flag(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    before = positions.current_position(positions.EVENTS)
    first = send(api, alice, room, "one")
    second = send(api, alice, room, "two")
    reply = {
        "body": "t",
        "m.relates_to": {"rel_type": "m.thread", "event_id": first},
    }
    third = send(api, alice, room, reply)
    now = positions.current_position(positions.EVENTS)

    rows = recent.events_between(before, now)
    assert rows is not None
    assert [row.event_id for row in rows] == [first, second, third]
    assert [row.has_children for row in rows] == [True, False, False]
    with CaptureQueriesContext(connection) as queries:
        again = recent.events_between(before, now)
    assert again == rows
    assert len(queries) == 0


def test_an_empty_range_needs_no_query(api: MatrixTestClient, alice: Persona) -> None:
    create_room(api, alice)
    now = positions.current_position(positions.EVENTS)
    with CaptureQueriesContext(connection) as queries:
        assert recent.events_between(now, now) == ()
    assert len(queries) == 0


def test_a_long_range_is_not_kept(
    api: MatrixTestClient, alice: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recent, "MAX_EVENTS", 2)
    room = create_room(api, alice)
    before = positions.current_position(positions.EVENTS)
    for body in ("one", "two", "three"):
        send(api, alice, room, body)
    now = positions.current_position(positions.EVENTS)

    assert recent.events_between(before, now) is None
    assert recent.events_between(now - 2, now) is not None


def test_copies_carry_the_callers_room_and_leave_the_shared_rows_alone(
    api: MatrixTestClient, alice: Persona
) -> None:
    room_id = create_room(api, alice)
    other = create_room(api, alice)
    before = positions.current_position(positions.EVENTS)
    here = send(api, alice, room_id, "here")
    send(api, alice, other, "there")
    now = positions.current_position(positions.EVENTS)
    rows = recent.events_between(before, now)
    assert rows is not None
    room = Event.objects.get(event_id=here).room

    copies = recent.copies_in_room(rows, room)

    assert [row.event_id for row in copies] == [here]
    assert copies[0].room is room
    assert copies[0] is not rows[0]
    assert "room" not in rows[0]._state.fields_cache
