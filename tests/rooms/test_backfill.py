"""/messages backfills: a local member paging back past the start of the history stored
here gets the rest from a server in the room (GET /backfill), in its place, with history
visibility as ever; /sync never sees it. Bounded: a server that is down costs no error
and is not asked again at once; at most two rounds a request; the gaps are found by one
indexed query (rooms.models.BackwardExtremity)."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps

from federation.event_source import FederationEventSource
from protocol.events import Event as PDUEvent
from rooms.models import BackwardExtremity, Event, Room
from rooms.services import backfill
from rooms.services.incoming import receive_pdu
from tests.conftest import MatrixTestClient, Persona
from tests.graph.delivery import deliver, install_keys
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.helpers import messages
from tests.rooms.remote_servers import ServingNetwork, join_through, serving
from tests.sync.helpers import joined, sync

__all__ = ["serving"]

CAROL_SERVER = "carol.test:8448"
DAVE_SERVER = "dave.test:8448"
CAROL = f"@carol:{CAROL_SERVER}"
OLD = 12


def event_id(room: RemoteRoom, pdu: dict[str, Any]) -> str:
    return PDUEvent(pdu, room.room_version).event_id


def remote_room(
    serving: ServingNetwork,
    alice: Persona,
    *,
    history_visibility: str = "shared",
    old: int = OLD,
    room_version: str = "11",
) -> tuple[RemoteServer, RemoteRoom]:
    """Carol's room with ``old`` messages, which Alice joins through Carol's server (so
    this server holds the state and nothing before her join), and a message after it."""
    carol = RemoteServer(CAROL_SERVER)
    room = carol.create_room(CAROL, room_version, history_visibility=history_visibility)
    for n in range(old):
        room.send(CAROL, "m.room.message", {"body": f"old {n}"})
    install_keys(room)
    serving.add(carol)
    join_through(room, carol, alice.user_id)
    deliver(room, room.send(CAROL, "m.room.message", {"body": "new"}))
    return carol, room


def page_back(
    api: MatrixTestClient, who: Persona, room_id: str, limit: int = 5, **params: Any
) -> list[dict[str, Any]]:
    """Every event /messages gives paging backwards from the end, ``limit`` at a time."""
    seen: list[dict[str, Any]] = []
    token = None
    for _ in range(50):
        query: dict[str, Any] = {"dir": "b", "limit": limit, **params}
        if token:
            query["from"] = token
        response = messages(api, who, room_id, **query)
        assert response.status == 200, response.body
        seen.extend(response.body["chunk"])
        token = response.body.get("end")
        if token is None:
            return seen
    raise AssertionError("pagination did not end")


def bodies(events: list[dict[str, Any]]) -> list[str]:
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


@pytest.mark.parametrize("room_version", ["11", "12"])
def test_paging_back_past_the_join_fetches_the_history_from_the_room(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork, room_version: str
) -> None:
    """(In room version 12 the create event has no room_id, and is backfilled all the
    same.)"""
    _carol, room = remote_room(serving, alice, room_version=room_version)
    since = sync(api, alice)["next_batch"]
    assert BackwardExtremity.objects.filter(room__room_id=room.room_id).count() == 1

    events = page_back(api, alice, room.room_id)

    assert bodies(events) == ["new"] + [f"old {n}" for n in reversed(range(OLD))]
    assert events[-1]["type"] == "m.room.create"
    assert [e["event_id"] for e in events] == list(reversed(room.reference.order))
    asked = serving.asked("backfill")
    assert asked, serving.requests
    assert {r.server for r in asked} == {CAROL_SERVER}
    assert all(r.headers["Authorization"].startswith("X-Matrix ") for r in asked)
    # The first asked for the event before Alice's join.
    join = room.pdus[room.reference.order[-2]]
    assert asked[0].query["v"] == join["prev_events"]
    # Stored as backfilled history: negative positions, and no gap left.
    old_ids = [
        event_id(room, p) for p in room.pdus.values() if p["content"].get("body", "")[:3] == "old"
    ]
    assert all(
        so < 0
        for so in Event.objects.filter(event_id__in=old_ids).values_list(
            "stream_ordering", flat=True
        )
    )
    assert not BackwardExtremity.objects.filter(room__room_id=room.room_id).exists()
    # Paging again asks no one: the room's start is here now.
    before = len(serving.requests)
    assert len(page_back(api, alice, room.room_id)) == len(events)
    assert len(serving.requests) == before
    # /sync never shows it.
    assert room.room_id not in joined(sync(api, alice, since=since, timeout=0))
    timeline = joined(sync(api, alice))[room.room_id]["timeline"]["events"]
    assert not [b for b in bodies(timeline) if b.startswith("old")]


def test_a_long_history_comes_a_batch_at_a_time_as_the_pages_reach_it(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    _carol, room = remote_room(serving, alice, old=45)

    events = page_back(api, alice, room.room_id)

    assert bodies(events) == ["new"] + [f"old {n}" for n in reversed(range(45))]
    assert [e["event_id"] for e in events] == list(reversed(room.reference.order))
    # Batches of MIN_EVENTS, each asked for when the pages reach the last one's start;
    # the state before each batch's oldest event from Carol's server.
    assert len(serving.asked("backfill")) == 3
    assert len(serving.asked("state_ids")) == 2
    assert not BackwardExtremity.objects.filter(room__room_id=room.room_id).exists()


def test_a_server_that_is_down_costs_no_error_and_is_not_asked_again_at_once(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    _carol, room = remote_room(serving, alice)
    serving.down.add(CAROL_SERVER)

    events = page_back(api, alice, room.room_id)

    # What is stored: the message and Alice's join, nothing before.
    assert bodies(events) == ["new"]
    assert [e["type"] for e in events] == ["m.room.message", "m.room.member"]
    assert [r.server for r in serving.asked("backfill")] == [CAROL_SERVER]
    gap = BackwardExtremity.objects.get(room__room_id=room.room_id)
    assert gap.failed_attempts == 1
    # Within the backoff, paging does not wait for the server again.
    page_back(api, alice, room.room_id)
    assert len(serving.asked("backfill")) == 1

    # Once it is over, and the server is back, the history comes.
    serving.down.clear()
    BackwardExtremity.objects.filter(pk=gap.pk).update(retry_at_ts=0)
    assert len(bodies(page_back(api, alice, room.room_id))) == OLD + 1


def test_the_server_with_most_members_at_the_gap_is_asked_first(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    carol = RemoteServer(CAROL_SERVER)
    dave = RemoteServer(DAVE_SERVER)
    room = carol.create_room(CAROL)
    room.add_server(dave)
    for name in ("dave", "dan"):
        user = dave.user(name)
        room.member(user, user, "join")
    for n in range(3):
        room.send(CAROL, "m.room.message", {"body": f"old {n}"})
    install_keys(room)
    serving.add(carol)
    serving.add(dave)
    serving.down.add(DAVE_SERVER)
    join_through(room, carol, alice.user_id)

    events = page_back(api, alice, room.room_id)

    # Dave's server (two members) first; down, so Carol's (one) next, which has it.
    assert [r.server for r in serving.asked("backfill")] == [DAVE_SERVER, CAROL_SERVER]
    assert bodies(events) == ["old 2", "old 1", "old 0"]
    assert backfill.servers_at(Room.objects.get(room_id=room.room_id), []) == [
        DAVE_SERVER,
        CAROL_SERVER,
    ]


def test_history_visibility_applies_to_backfilled_history(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    """The room is ``joined``: what was said before Alice joined is fetched (the server
    may hold it for other reasons) but not shown to her."""
    _carol, room = remote_room(serving, alice, history_visibility="joined")

    events = page_back(api, alice, room.room_id)

    assert bodies(events) == ["new"]
    assert Event.objects.filter(room__room_id=room.room_id, stream_ordering__lt=0).count() > OLD


def test_a_request_backfills_at_most_two_rounds(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page that never fills (a filter nothing matches) stops after MAX_ROUNDS rounds,
    each asking for a bounded number of events."""
    _carol, room = remote_room(serving, alice)
    monkeypatch.setattr(backfill, "MIN_EVENTS", 3)

    response = messages(
        api, alice, room.room_id, dir="b", limit=1, filter={"types": ["m.room.topic"]}
    )

    assert response.status == 200, response.body
    asked = serving.asked("backfill")
    assert len(asked) == backfill.MAX_ROUNDS == 2
    assert [r.query["limit"] for r in asked] == [["3"], ["3"]]
    assert all(r.timeout_s <= backfill.BACKFILL_TIMEOUT_S for r in serving.requests)


def test_an_answer_keeps_only_the_history_before_the_asked_events(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    carol, room = remote_room(serving, alice)
    stored = Room.objects.get(room_id=room.room_id)
    order = room.reference.order
    gap = order[-3]  # the last old message, before Alice's join
    elsewhere = carol.create_room(CAROL)

    kept = backfill.history_before(
        stored,
        [gap],
        [
            room.pdus[order[-1]],  # newer than the gap: not asked for
            room.pdus[gap],
            elsewhere.pdus[elsewhere.reference.order[-1]],  # another room
            room.pdus[order[-4]],
            room.pdus[order[2]],  # not linked to the gap within the answer
            {"room_id": room.room_id, "type": "m.room.message"},  # no event at all
        ],
    )

    assert [event_id(room, pdu) for pdu in kept] == [order[-4], gap]


def test_the_migration_records_the_gaps_of_rooms_stored_before_it(
    alice: Persona, serving: ServingNetwork
) -> None:
    remote_room(serving, alice)
    recorded = list(BackwardExtremity.objects.values_list("room_id", "event_id", "depth"))
    BackwardExtremity.objects.all().delete()
    migration = importlib.import_module("rooms.migrations.0009_backward_extremities")

    migration.record_existing_gaps(django_apps, None)

    assert list(BackwardExtremity.objects.values_list("room_id", "event_id", "depth")) == recorded
    assert len(recorded) == 1


def test_a_forged_event_in_the_history_is_left_out_and_the_rest_shown(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    _carol, room = remote_room(serving, alice)
    by_body = {p["content"].get("body"): e for e, p in room.pdus.items()}
    forged, after = by_body["old 5"], by_body["old 6"]
    # Carol's server serves it with a signature that does not verify.
    room.pdus[forged] = room.forge_bad_signature(room.pdus[forged])

    events = page_back(api, alice, room.room_id)

    # Left out with it: the event after it, whose state (after the forged event) cannot
    # be known; it stays an outlier.
    shown = [f"old {n}" for n in reversed(range(OLD)) if n not in (5, 6)]
    assert bodies(events) == ["new", *shown]
    assert events[-1]["type"] == "m.room.create"
    assert not Event.objects.filter(event_id=forged).exists()
    assert Event.objects.get(event_id=after).outlier
    # The gap it leaves is asked for again only after its backoff.
    gap = BackwardExtremity.objects.get(room__room_id=room.room_id)
    assert (gap.event_id, gap.failed_attempts) == (after, 1)
    asked = len(serving.asked("backfill"))
    page_back(api, alice, room.room_id)
    assert len(serving.asked("backfill")) == asked


def test_a_gap_in_what_arrives_is_filled_with_get_missing_events(
    api: MatrixTestClient, alice: Persona, serving: ServingNetwork
) -> None:
    """A PDU whose prev events are not here: the sending server is asked once for the
    events between this server's tips and it (POST /get_missing_events, as Synapse asks
    and sytest expects), not for each event by GET /event."""
    _carol, room = remote_room(serving, alice, old=2)
    pdus = [room.send(CAROL, "m.room.message", {"body": f"while away {n}"}) for n in range(3)]

    receive_pdu(pdus[-1], origin=CAROL_SERVER, source=FederationEventSource(CAROL_SERVER))

    (asked,) = serving.asked("get_missing_events")
    assert asked.method == "POST"
    assert not serving.asked("event")
    shown = bodies(page_back(api, alice, room.room_id, limit=3))
    assert shown[:3] == ["while away 2", "while away 1", "while away 0"]
