"""Joining with partial state (rooms.services.partial_state): send_join asked with
``omit_members=true``, a resident that leaves the member events out, the room recorded
as partial with the join, the rest of the state fetched by the worker that takes the
room's inbound queue, and what waits for it meanwhile: inbound PDUs, local events, the
member list, other servers' membership and state requests.

Carol's server (carol.example:8448) is the resident; dave's (dave.example:8448) is in
the room too. Both answer as tests/rooms/resident.py says.
"""

from __future__ import annotations

from typing import Any

import pytest

from federation.transport import HttpResponse
from rooms import partial
from rooms.federation.transactions import process_room_queue, rooms_to_resume
from rooms.models import BackwardExtremity, Event, PartialStateRoom, Room
from rooms.services import backfill
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import json_response, network
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import bodies, messages, room_path, send
from tests.rooms.resident import Resident, ResidentNetwork, residents
from tests.rooms.test_federation_edus import queued_edus
from tests.rooms.test_remote_join import (
    CAROL,
    carols_room,
    current_state,
    event_id,
    join,
    membership_of,
)
from tests.sync.helpers import joined, sync

__all__ = ["network", "residents"]

MEMBER = "m.room.member"
DAVE_SERVER = "dave.example:8448"
DAVE = f"@dave:{DAVE_SERVER}"


@pytest.fixture
def carol(residents: ResidentNetwork) -> Resident:
    resident = residents.add(RemoteServer("carol.example:8448"))
    resident.partial = True
    return resident


@pytest.fixture
def dave(residents: ResidentNetwork) -> Resident:
    return residents.add(RemoteServer(DAVE_SERVER))


@pytest.fixture
def room(carol: Resident, dave: Resident) -> RemoteRoom:
    """Carol's room, with dave joined and a topic set."""
    room = carols_room(carol)
    room.add_server(dave.server)
    room.member(DAVE, DAVE, "join")
    room.send(CAROL, "m.room.topic", {"topic": "partial"}, state_key="")
    return room


def _refused() -> HttpResponse:
    return json_response({"errcode": "M_UNKNOWN", "error": "not now"}, 500)


def _partial_join(api: MatrixTestClient, alice: Persona, room: RemoteRoom, carol: Resident) -> str:
    """Alice joins with partial state, the worker's fetch not run yet; the join's ID."""
    got = join(api, alice, room.room_id)
    assert got.status == 200, got.body
    (join_id,) = carol.joins
    return join_id


def _stuck_partial_join(
    api: MatrixTestClient, alice: Persona, room: RemoteRoom, carol: Resident, dave: Resident
) -> str:
    """Alice joins with partial state and no server gives the rest: the worker's fetch
    has run and failed, so the room stays partial. The join's ID."""
    join_id = _partial_join(api, alice, room, carol)
    carol.refuse["state"] = dave.refuse["state"] = _refused()
    assert process_room_queue(room.room_id) == 0
    return join_id


def test_the_join_asks_for_partial_state_and_the_worker_fetches_the_rest(
    api: MatrixTestClient,
    alice: Persona,
    carol: Resident,
    room: RemoteRoom,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks() as queued:
        join_id = _partial_join(api, alice, room, carol)

    # The answer left carol's and dave's member events out: the state here is partial.
    whole = room.reference.state_after[join_id]
    state = current_state(room.room_id)
    for member in (CAROL, DAVE):
        assert (MEMBER, member) in whole
        assert (MEMBER, member) not in state
    assert state[("m.room.topic", "")] == whole[("m.room.topic", "")]
    assert state[(MEMBER, alice.user_id)] == join_id
    row = Room.objects.get(room_id=room.room_id)
    assert row.partial_state
    pending = PartialStateRoom.objects.get(room=row)
    assert pending.join_event_id == join_id
    # The server that answered first, then those it named.
    assert pending.servers == [carol.name, DAVE_SERVER]

    # The worker queued with the join fetches the whole state at the join.
    for callback in queued:
        callback()
    assert any(path.startswith(f"{F}/state/") for _m, path in carol.requests)
    assert current_state(room.room_id) == whole
    assert not Room.objects.get(room_id=room.room_id).partial_state
    assert not PartialStateRoom.objects.exists()
    assert membership_of(room.room_id, DAVE) == "join"
    assert membership_of(room.room_id, CAROL) == "join"
    # The join's own state is the whole one now: later events build on it.
    join_row = Event.objects.get(event_id=join_id)
    assert (join_row.outlier, join_row.rejected_reason) == (False, None)


def test_sync_sends_the_members_once_they_are_fetched(
    api: MatrixTestClient, alice: Persona, carol: Resident, room: RemoteRoom
) -> None:
    join_id = _partial_join(api, alice, room, carol)
    first = sync(api, alice)
    room_sync = joined(first)[room.room_id]
    members = {e["state_key"] for e in room_sync["state"]["events"] if e["type"] == MEMBER}
    timeline = [e["event_id"] for e in room_sync["timeline"]["events"]]
    assert join_id in timeline
    assert DAVE not in members

    assert process_room_queue(room.room_id) == 0

    later = sync(api, alice, since=first["next_batch"], timeout=0)
    state = joined(later)[room.room_id]["state"]["events"]
    got = {(e["type"], e["state_key"]): e["event_id"] for e in state}
    whole = room.reference.state_after[join_id]
    assert got[(MEMBER, DAVE)] == whole[(MEMBER, DAVE)]
    assert got[(MEMBER, CAROL)] == whole[(MEMBER, CAROL)]
    # Only what the client did not have.
    assert (MEMBER, alice.user_id) not in got


def test_inbound_pdus_wait_until_the_state_is_whole(
    api: MatrixTestClient, alice: Persona, carol: Resident, dave: Resident, room: RemoteRoom
) -> None:
    _partial_join(api, alice, room, carol)
    carol.refuse["state"] = dave.refuse["state"] = _refused()

    # Dave's message: its sender's membership is one of those left out. Acknowledged
    # and queued, not judged on the partial state.
    hello = room.send(DAVE, "m.room.message", {"msgtype": "m.text", "body": "hello alice"})
    body = {"origin": DAVE_SERVER, "origin_server_ts": 1, "pdus": [hello]}
    got = fed(api, dave.server, "PUT", f"{F}/send/t1", body)
    assert got.body["pdus"] == {event_id(room, hello): {}}
    assert not Event.objects.filter(event_id=event_id(room, hello)).exists()
    pending = PartialStateRoom.objects.get()
    assert pending.attempts == 1
    assert carol.name in pending.last_error
    assert DAVE_SERVER in pending.last_error
    # The periodic resume hands the room out again.
    assert room.room_id in rooms_to_resume()

    # The next try reaches dave's server: the state, then the message, accepted.
    del dave.refuse["state"]
    assert process_room_queue(room.room_id) == 1
    row = Event.objects.get(event_id=event_id(room, hello))
    assert (row.outlier, row.rejected_reason, row.soft_failed) == (False, None, False)
    timeline = messages(api, alice, room.room_id, dir="b", limit=5).body["chunk"]
    assert bodies(timeline)[0] == "hello alice"
    assert room.room_id not in rooms_to_resume()


def test_local_events_and_the_member_list_wait_for_the_whole_state(
    api: MatrixTestClient,
    alice: Persona,
    bob: Persona,
    carol: Resident,
    dave: Resident,
    room: RemoteRoom,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _stuck_partial_join(api, alice, room, carol, dave)
    monkeypatch.setattr(partial, "WAIT_S", 0.2)
    before = Event.objects.count()

    # Still partial after the wait: 503, nothing made.
    for got in (
        api.put(
            room_path(room.room_id, "send", "m.room.message", "t1"),
            {"msgtype": "m.text", "body": "too soon"},
            token=alice.access_token,
        ),
        join(api, bob, room.room_id),
        api.get(room_path(room.room_id, "members"), token=alice.access_token),
        api.get(room_path(room.room_id, "joined_members"), token=alice.access_token),
    ):
        assert (got.status, got.errcode) == (503, "M_UNKNOWN"), got.body
    assert Event.objects.count() == before

    # Once the state is whole, they go through.
    carol.refuse.clear()
    dave.refuse.clear()
    assert process_room_queue(room.room_id) == 0
    sent = send(api, alice, room.room_id, "now")
    assert Event.objects.get(event_id=sent).rejected_reason is None
    assert join(api, bob, room.room_id).status == 200
    got = api.get(room_path(room.room_id, "joined_members"), token=alice.access_token)
    assert set(got.body["joined"]) == {CAROL, DAVE, alice.user_id, bob.user_id}


def test_other_servers_are_not_served_the_partial_state(
    api: MatrixTestClient, alice: Persona, carol: Resident, dave: Resident, room: RemoteRoom
) -> None:
    join_id = _stuck_partial_join(api, alice, room, carol, dave)

    erin = f"@erin:{DAVE_SERVER}"
    for path in (
        f"{F}/make_join/{room.room_id}/{erin}?ver=11",
        f"{F}/state_ids/{room.room_id}?event_id={join_id}",
        f"{F}/state/{room.room_id}?event_id={join_id}",
    ):
        got = fed(api, dave.server, "GET", path)
        assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND"), (path, got.body)


def test_a_resident_that_answers_in_whole_gives_a_room_with_whole_state(
    api: MatrixTestClient, alice: Persona, carol: Resident, room: RemoteRoom
) -> None:
    carol.partial = False
    join_id = _partial_join(api, alice, room, carol)

    assert not Room.objects.get(room_id=room.room_id).partial_state
    assert not PartialStateRoom.objects.exists()
    assert current_state(room.room_id) == room.reference.state_after[join_id]


def test_history_is_asked_of_the_servers_the_answer_named_meanwhile(
    api: MatrixTestClient, alice: Persona, carol: Resident, dave: Resident, room: RemoteRoom
) -> None:
    _stuck_partial_join(api, alice, room, carol, dave)
    row = Room.objects.get(room_id=room.room_id)
    gaps = list(BackwardExtremity.objects.filter(room=row).values_list("event_id", flat=True))
    assert gaps

    # No member of another server is known here yet; the join's answer named two.
    assert set(backfill.servers_at(row, gaps)) == {carol.name, DAVE_SERVER}


def test_edus_go_to_the_servers_the_answer_named_meanwhile(
    api: MatrixTestClient, alice: Persona, carol: Resident, dave: Resident, room: RemoteRoom
) -> None:
    join_id = _stuck_partial_join(api, alice, room, carol, dave)
    assert membership_of(room.room_id, DAVE) is None  # dave's membership is not known here

    typing = api.put(
        room_path(room.room_id, "typing", alice.user_id),
        {"typing": True, "timeout": 30000},
        token=alice.access_token,
    )
    assert typing.status == 200, typing.body
    receipt = api.post(
        room_path(room.room_id, "receipt", "m.read", join_id), {}, token=alice.access_token
    )
    assert receipt.status == 200, receipt.body
    renamed = api.put(
        f"/_matrix/client/v3/devices/{alice.device_id}",
        {"display_name": "phone"},
        token=alice.access_token,
    )
    assert renamed.status == 200, renamed.body

    for server in (carol.name, DAVE_SERVER):
        (typed,) = queued_edus(server, "m.typing")
        assert typed == {"room_id": room.room_id, "user_id": alice.user_id, "typing": True}
        (read,) = queued_edus(server, "m.receipt")
        assert read[room.room_id]["m.read"][alice.user_id]["event_ids"] == [join_id]
        updates = queued_edus(server, "m.device_list_update")
        assert [u["device_id"] for u in updates] == [alice.device_id]
