"""Transactions from other servers (PUT /_matrix/federation/v1/send/{txnId}): each PDU
through the pipeline with a result per event ID; idempotent per origin and transaction
ID; stored before acknowledged; limits; forged PDUs, PDUs of another server than the
origin and of servers the room's ACL denies refused, nothing of them stored."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from federation import leases
from federation.models import InboundPdu, InboundRoomLease, InboundTransaction
from protocol.events import Event as PDUEvent
from rooms import tasks
from rooms.federation import transactions
from rooms.models import Event
from tests.federation.helpers import FakeNetwork, json_response, network
from tests.graph.delivery import deliver, deliver_all, install_keys
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed

__all__ = ["network"]

CAROL_SERVER = "carol.example:8448"
CAROL = f"@carol:{CAROL_SERVER}"
DAVE = "@dave:dave.test"


@dataclass
class Scene:
    carol: RemoteServer
    dave: RemoteServer
    room: RemoteRoom


@pytest.fixture
def scene(db: None) -> Scene:
    """Carol's room, known here, with Dave's server in it too."""
    carol, dave = RemoteServer(CAROL_SERVER), RemoteServer("dave.test")
    room = carol.create_room(CAROL)
    room.add_server(dave)
    room.member(DAVE, DAVE, "join", name="DAVE_JOIN")
    install_keys(room)
    deliver_all(room, room.delivery_pdus())
    return Scene(carol, dave, room)


def txn(*pdus: dict[str, Any], edus: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"origin": CAROL_SERVER, "origin_server_ts": 1, "pdus": list(pdus)}
    if edus is not None:
        body["edus"] = edus
    return body


def event_id(room: RemoteRoom, pdu: dict[str, Any]) -> str:
    return PDUEvent(pdu, room.room_version).event_id


def stored(event_id: str) -> bool:
    return Event.objects.filter(event_id=event_id).exists()


def in_timeline(event_id: str) -> bool:
    return Event.objects.filter(
        event_id=event_id, outlier=False, rejected_reason__isnull=True
    ).exists()


def test_a_transaction_is_processed_and_answered_per_pdu(api: Any, scene: Scene) -> None:
    room = scene.room
    first = room.send(CAROL, "m.room.message", {"body": "one"})
    second = room.send(CAROL, "m.room.message", {"body": "two"})

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(first, second))

    assert got.status == 200, got.body
    assert got.body == {"pdus": {event_id(room, first): {}, event_id(room, second): {}}}
    assert in_timeline(event_id(room, first))
    assert in_timeline(event_id(room, second))
    row = InboundTransaction.objects.get(origin=CAROL_SERVER, txn_id="t1")
    assert row.response == got.body
    assert row.body["pdus"] == [first, second]
    queued = InboundPdu.objects.filter(transaction=row).order_by("pk")
    assert [(q.event_id, q.result) for q in queued] == [
        (event_id(room, first), {}),
        (event_id(room, second), {}),
    ]


def test_a_retried_transaction_is_answered_from_the_store(api: Any, scene: Scene) -> None:
    room = scene.room
    first = room.send(CAROL, "m.room.message", {"body": "one"})
    answer = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(first)).body
    count = Event.objects.count()

    # The same transaction ID again, even with other content: the stored answer, and
    # nothing processed.
    other = room.send(CAROL, "m.room.message", {"body": "other"})
    again = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(other))

    assert (again.status, again.body) == (200, answer)
    assert Event.objects.count() == count
    assert not stored(event_id(room, other))
    assert InboundTransaction.objects.filter(txn_id="t1").count() == 1
    # Another server's transaction of the same ID is another transaction.
    join = room.member(DAVE, DAVE, "leave")
    body = {**txn(join), "origin": "dave.test"}
    from_dave = fed(api, scene.dave, "PUT", f"{F}/send/t1", body)
    assert from_dave.body == {"pdus": {event_id(room, join): {}}}


def test_what_was_acknowledged_survives_a_worker_dying(
    api: Any, scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    room = scene.room
    message = room.send(CAROL, "m.room.message", {"body": "one"})

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died")

    monkeypatch.setattr(transactions, "receive_pdu", crash)
    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(message))
    # Acknowledged: the PDU is stored, queued for its room.
    assert got.body == {"pdus": {event_id(room, message): {}}}
    queued = InboundPdu.objects.get(event_id=event_id(room, message))
    assert (queued.pdu, queued.processed_ts) == (message, None)
    assert not stored(event_id(room, message))
    monkeypatch.undo()

    # The sender's retry is answered from the store, nothing processed twice.
    assert fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(message)).body == got.body
    assert InboundPdu.objects.count() == 1
    # Not yet stale: the periodic resumption leaves it alone.
    assert tasks.resume_inbound_pdus() == 0
    monkeypatch.setattr(transactions, "RESUME_AFTER_MS", -1)
    assert tasks.resume_inbound_pdus() == 1
    assert in_timeline(event_id(room, message))
    queued.refresh_from_db()
    assert queued.result == {}
    assert queued.processed_ts is not None
    assert tasks.resume_inbound_pdus() == 0


def test_a_room_held_by_another_worker_is_left_to_it(api: Any, scene: Scene) -> None:
    """One worker per room: while another holds the room's lease, a hand-over does
    nothing; the holder (here, the next run after its lease is released) takes it."""
    room = scene.room
    InboundRoomLease.objects.create(
        room_id=room.room_id, lease_token="other", lease_until_ts=2**62
    )
    message = room.send(CAROL, "m.room.message", {"body": "one"})

    assert fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(message)).status == 200
    assert not stored(event_id(room, message))
    assert transactions.process_room_queue(room.room_id) == 0

    InboundRoomLease.objects.filter(room_id=room.room_id).update(
        lease_token=None, lease_until_ts=None
    )
    assert transactions.process_room_queue(room.room_id) == 1
    assert in_timeline(event_id(room, message))


def test_a_lease_left_by_a_worker_that_died_on_this_host_is_taken_over_at_once(
    api: Any, scene: Scene
) -> None:
    """A worker killed while it held a room's lease: its process is gone, so the next
    worker takes the room (and the periodic resume hands it out) without waiting for the
    lease to expire; a live holder's lease still holds."""
    room = scene.room
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = leases.new_token()
    host, _pid, lifetime, nonce = token.split(":")
    dead_token = f"{host}:{dead.pid}:{lifetime}:{nonce}"
    assert leases.holder_is_gone(dead_token)
    assert not leases.holder_is_gone(token)
    assert not leases.holder_is_gone("another-host:1:x:y")
    # The live holder: this process.
    InboundRoomLease.objects.create(room_id=room.room_id, lease_token=token, lease_until_ts=2**62)
    message = room.send(CAROL, "m.room.message", {"body": "one"})
    assert fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(message)).status == 200
    assert not stored(event_id(room, message))
    assert transactions.process_room_queue(room.room_id) == 0
    # Queued long ago, as the periodic resume looks for.
    InboundTransaction.objects.update(received_ts=0)
    assert room.room_id not in transactions.rooms_to_resume()

    InboundRoomLease.objects.filter(room_id=room.room_id).update(lease_token=dead_token)
    assert room.room_id in transactions.rooms_to_resume()
    assert transactions.process_room_queue(room.room_id) == 1
    assert in_timeline(event_id(room, message))


@pytest.mark.parametrize(("pdus", "edus"), [(51, 0), (0, 101)])
def test_transactions_over_the_limits_are_refused(
    api: Any, scene: Scene, pdus: int, edus: int
) -> None:
    message = scene.room.build(CAROL, "m.room.message", {"body": "x"})
    edu = {"edu_type": "m.typing", "content": {}}
    body = txn(*[message] * pdus, edus=[edu] * edus)

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", body)

    assert (got.status, got.body["errcode"]) == (400, "M_BAD_JSON")
    assert not InboundTransaction.objects.exists()
    # At the limits, accepted.
    body = txn(*[message] * min(pdus, 50), edus=[edu] * min(edus, 100))
    assert fed(api, scene.carol, "PUT", f"{F}/send/t2", body).status == 200


def test_a_forged_pdu_gets_an_error_and_nothing_is_stored(api: Any, scene: Scene) -> None:
    room = scene.room
    good = room.build(CAROL, "m.room.message", {"body": "good"})
    forged = room.forge_bad_signature(room.build(CAROL, "m.room.message", {"body": "forged"}))

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(forged, good))

    assert got.status == 200, got.body
    results = got.body["pdus"]
    assert "error" in results[event_id(room, forged)]
    assert results[event_id(room, good)] == {}
    assert not stored(event_id(room, forged))
    assert not InboundPdu.objects.filter(event_id=event_id(room, forged)).exists()
    assert in_timeline(event_id(room, good))


def test_a_pdu_of_another_server_than_the_origin_is_refused(api: Any, scene: Scene) -> None:
    room = scene.room
    # Dave's, validly signed by Dave's server, but relayed by Carol's.
    daves = room.build(DAVE, "m.room.message", {"body": "from dave"})

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(daves))

    assert "error" in got.body["pdus"][event_id(room, daves)]
    assert not stored(event_id(room, daves))
    assert not InboundPdu.objects.exists()


def test_a_pdu_from_a_server_the_acl_denies_is_refused(api: Any, scene: Scene) -> None:
    room = scene.room
    acl = {"allow": ["*"], "deny": ["dave.test"]}
    deliver(room, room.send(CAROL, "m.room.server_acl", acl, state_key=""))
    daves = room.build(DAVE, "m.room.message", {"body": "from dave"})

    got = fed(api, scene.dave, "PUT", f"{F}/send/t1", {**txn(daves), "origin": "dave.test"})

    assert got.status == 200
    assert "ACL" in got.body["pdus"][event_id(room, daves)]["error"]
    assert not stored(event_id(room, daves))
    assert not InboundPdu.objects.exists()


def test_pdus_of_unknown_rooms_are_dropped(api: Any, scene: Scene) -> None:
    elsewhere = scene.carol.create_room(CAROL)
    create = elsewhere.pdus[elsewhere.id("JOIN")]

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(create))

    assert (got.status, got.body) == (200, {"pdus": {}})


def test_an_unsigned_transaction_is_unauthorized(api: Any, scene: Scene) -> None:
    got = fed(api, None, "PUT", f"{F}/send/t1", txn())
    assert (got.status, got.body["errcode"]) == (401, "M_UNAUTHORIZED")
    assert not InboundTransaction.objects.exists()


def test_missing_events_are_asked_of_the_origin(
    api: Any, scene: Scene, network: FakeNetwork
) -> None:
    """A PDU after a gap: the events in between come from the origin, in one POST
    /get_missing_events (not GET /event for each), through federation.event_source over
    the signing client."""
    room = scene.room
    gap = [room.send(CAROL, "m.room.message", {"body": f"gap {n}"}) for n in range(2)]
    latest = room.send(CAROL, "m.room.message", {"body": "latest"})
    server = network.add(CAROL_SERVER)
    missing_path = f"{F}/get_missing_events/{quote(room.room_id, safe='')}"
    server.routes[missing_path] = json_response({"events": gap})

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(latest))

    assert got.body == {"pdus": {event_id(room, latest): {}}}
    for pdu in [*gap, latest]:
        assert in_timeline(event_id(room, pdu))
    (asked,) = [r for r in network.sent if r.target.host_header == CAROL_SERVER]
    assert (asked.method, asked.path) == ("POST", missing_path)
    assert asked.headers["Authorization"].startswith("X-Matrix ")


def test_a_pdu_whose_missing_events_the_origin_does_not_give_is_dropped(
    api: Any, scene: Scene, network: FakeNetwork
) -> None:
    """(sytest 50federation/36state) The origin answers /get_missing_events with nothing:
    the PDU is dropped, and the state at what is missing is not asked for."""
    room = scene.room
    withheld = room.send(CAROL, "m.room.message", {"body": "withheld"})
    latest = room.send(CAROL, "m.room.message", {"body": "latest"})
    server = network.add(CAROL_SERVER)
    server.routes[f"{F}/get_missing_events/{quote(room.room_id, safe='')}"] = json_response(
        {"events": []}
    )

    got = fed(api, scene.carol, "PUT", f"{F}/send/t1", txn(latest))

    assert got.body == {"pdus": {event_id(room, latest): {}}}
    ids = [event_id(room, pdu) for pdu in (withheld, latest)]
    assert not Event.objects.filter(event_id__in=ids).exists()
    assert not [r for r in network.sent if "/state_ids/" in r.path or "/event/" in r.path]
    row = InboundPdu.objects.get(event_id=event_id(room, latest))
    assert "could not be had" in row.result["error"]
