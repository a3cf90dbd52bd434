"""The push rules on the send path: reads bounded whatever the room's size, one bulk
insert of PushAction rows, and the verdicts committed with the event."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from push.models import PushAction
from tests.conftest import MatrixTestClient, Persona
from tests.push.helpers import group_room
from tests.rooms.helpers import send


def _send_queries(api: MatrixTestClient, sender: Persona, room: str) -> list[str]:
    send(api, sender, room, "warm-up")  # the room's audience is cached per state group
    with CaptureQueriesContext(connection) as queries:
        send(api, sender, room, "measured")
    return [query["sql"] for query in queries.captured_queries]


def test_a_send_reads_as_much_in_a_big_room_as_in_a_small_one(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    small = group_room(api, alice, bob, api.register("carol"))
    crowd = [api.register(f"member{n}") for n in range(20)]
    big = group_room(api, alice, bob, *crowd)

    in_small = _send_queries(api, bob, small)
    in_big = _send_queries(api, bob, big)

    assert len(in_big) == len(in_small), (in_small, in_big)
    inserts = [sql for sql in in_big if sql.startswith('INSERT INTO "push_pushaction"')]
    assert len(inserts) == 1, in_big
    # Everyone but the sender was notified of the measured message, in that one insert.
    measured = PushAction.objects.filter(room__room_id=big).order_by("-stream_ordering")
    latest = measured.first()
    assert latest is not None
    assert set(measured.filter(event_id=latest.event_id).values_list("user_id", flat=True)) == {
        alice.user_id,
        *(member.user_id for member in crowd),
    }
