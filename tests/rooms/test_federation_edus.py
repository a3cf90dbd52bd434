"""Typing notifications and receipts between servers (Server-Server API, "Typing
Notifications", "Receipts", "Server Access Control Lists").

Alice and Bob are local members of Alice's room; Carol (carol.example:8448) and Dave
(dave.example:8448) joined it from their servers. What their servers send in
transactions (PUT /send) reaches local /sync like local typing and receipts, once, if
the user is of the sending server and joined, and the room's ACL lets the server in.
Alice's typing and m.read receipts are queued for Carol's and Dave's servers (never her
private receipts, never for a server the ACL denies), the latest state only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache

from federation.models import OutboundEDU, OutboundPDU
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.federation_out import TYPING_KEEPALIVE_MS
from rooms.models import Event, Room
from rooms.services import typing as typing_service
from rooms.services.incoming import receive_pdu
from sync.tokens import SyncToken
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, network
from tests.federation.inbox import DAVE, Inbox, inbox
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed, remote_pdu
from tests.rooms.helpers import create_room, join, room_path, send, set_state
from tests.sync.ephemeral_helpers import ephemeral, send_receipt, set_typing, sync

__all__ = ["inbox", "network"]

ACL_DENYING_DAVE = {"allow": ["*"], "deny": ["dave.example"], "allow_ip_literals": True}


@dataclass
class Scene:
    room_id: str
    carol_server: RemoteServer
    dave_server: RemoteServer
    carol: str
    dave: str


@pytest.fixture
def scene(api: MatrixTestClient, alice: Persona, bob: Persona) -> Scene:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    servers = []
    for name in (CAROL, DAVE):
        server = RemoteServer(name)
        server.install_keys()
        user_id = server.user(name.split(".")[0])
        joined = remote_pdu(
            room_id, server, user_id, "m.room.member", {"membership": "join"}, user_id
        )
        receive_pdu(joined, origin=name)
        servers.append(server)
    carol_server, dave_server = servers
    return Scene(
        room_id, carol_server, dave_server, carol_server.user("carol"), dave_server.user("dave")
    )


class FakeClock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, start_ms: int) -> None:
        self.now = start_ms
        for module in ("rooms.services.typing", "rooms.sync_providers"):
            monkeypatch.setattr(f"{module}.now_ms", lambda: self.now)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    return FakeClock(monkeypatch, 1_700_000_000_000)


def put_transaction(
    api: MatrixTestClient,
    server: RemoteServer,
    txn_id: str,
    *edus: Any,
    pdus: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    body = {
        "origin": server.server_name,
        "origin_server_ts": 1,
        "pdus": pdus or [],
        "edus": list(edus),
    }
    got = fed(api, server, "PUT", f"{F}/send/{txn_id}", body)
    assert got.status == 200, got.body
    answer: dict[str, Any] = got.body
    return answer


def pdu_event_id(room_id: str, pdu: dict[str, Any]) -> str:
    version = Room.objects.get(room_id=room_id).room_version
    return PDUEvent(pdu, KNOWN_ROOM_VERSIONS[version]).event_id


def typing_edu(room_id: str, user_id: str, typing: bool = True, **extra: Any) -> dict[str, Any]:
    content = {"room_id": room_id, "user_id": user_id, "typing": typing, **extra}
    return {"edu_type": "m.typing", "content": content}


def receipt_edu(
    room_id: str, user_id: str, event_id: str, ts: int = 1234, **data: Any
) -> dict[str, Any]:
    receipt = {"event_ids": [event_id], "data": {"ts": ts, **data}}
    return {"edu_type": "m.receipt", "content": {room_id: {"m.read": {user_id: receipt}}}}


def typists(body: dict[str, Any], room_id: str) -> list[str] | None:
    events = ephemeral(body, room_id, "m.typing")
    assert len(events) <= 1
    return events[0]["content"]["user_ids"] if events else None


def readers(body: dict[str, Any], room_id: str) -> dict[str, dict[str, Any]]:
    """{user ID: {"event_id", **receipt}} of the room's m.read receipts in a sync body."""
    found: dict[str, dict[str, Any]] = {}
    for event in ephemeral(body, room_id, "m.receipt"):
        for event_id, by_type in event["content"].items():
            for user_id, receipt in by_type.get("m.read", {}).items():
                found[user_id] = {"event_id": event_id, **receipt}
    return found


def queued_edus(server: str, edu_type: str) -> list[dict[str, Any]]:
    """The contents of the EDUs of ``edu_type`` waiting for ``server``, in queue order."""
    rows = OutboundEDU.objects.filter(destination__server_name=server, edu_type=edu_type)
    return list(rows.order_by("id").values_list("content", flat=True))


# --- Inbound -----------------------------------------------------------------------------


def test_remote_typing_reaches_local_sync_and_stops(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    token = sync(api, alice)["next_batch"]

    put_transaction(api, scene.carol_server, "t1", typing_edu(room_id, scene.carol))

    body = sync(api, alice, token)
    assert typists(body, room_id) == [scene.carol]

    put_transaction(api, scene.carol_server, "t2", typing_edu(room_id, scene.carol, False))

    assert typists(sync(api, alice, body["next_batch"]), room_id) == []
    # Received, not sent on: no typing is queued for the other servers (Alice's
    # presence is: her /sync marks her online).
    assert not OutboundEDU.objects.exclude(edu_type="m.presence").exists()


def test_remote_typing_times_out(
    api: MatrixTestClient, alice: Persona, scene: Scene, clock: FakeClock
) -> None:
    room_id = scene.room_id
    put_transaction(api, scene.carol_server, "t1", typing_edu(room_id, scene.carol))
    token = sync(api, alice)["next_batch"]

    # An EDU carries no timeout: a remote typist lasts as long as Synapse keeps one.
    clock.now += typing_service.FEDERATION_TYPING_TIMEOUT_MS - 1
    assert typists(sync(api, alice), room_id) == [scene.carol]
    assert typing_service.do_expire_typing() == 0
    clock.now += 2
    assert typing_service.do_expire_typing() == 1
    assert typists(sync(api, alice, token), room_id) == []

    # A shorter timeout, if the sending server gives one, is kept.
    put_transaction(api, scene.carol_server, "t2", typing_edu(room_id, scene.carol, timeout=5000))
    clock.now += 5001
    assert typists(sync(api, alice), room_id) is None


def test_a_remote_keep_alive_does_not_move_the_stream(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    put_transaction(api, scene.carol_server, "t1", typing_edu(room_id, scene.carol))
    token = sync(api, alice)["next_batch"]

    put_transaction(api, scene.carol_server, "t2", typing_edu(room_id, scene.carol))

    body = sync(api, alice, token)
    assert typists(body, room_id) is None
    assert SyncToken.parse(body["next_batch"]).typing == SyncToken.parse(token).typing


def test_remote_receipt_reaches_local_sync(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    first = send(api, alice, room_id, "one")
    second = send(api, alice, room_id, "two")
    token = sync(api, alice)["next_batch"]

    put_transaction(
        api, scene.carol_server, "t1", receipt_edu(room_id, scene.carol, second, ts=1234)
    )

    body = sync(api, alice, token)
    assert readers(body, room_id) == {scene.carol: {"event_id": second, "ts": 1234}}
    # Receipts only move forwards, from other servers too.
    put_transaction(api, scene.carol_server, "t2", receipt_edu(room_id, scene.carol, first))
    assert readers(sync(api, alice, body["next_batch"]), room_id) == {}
    # A threaded receipt keeps its thread.
    put_transaction(
        api,
        scene.carol_server,
        "t3",
        receipt_edu(room_id, scene.carol, second, ts=99, thread_id="main"),
    )
    assert readers(sync(api, alice, body["next_batch"]), room_id) == {
        scene.carol: {"event_id": second, "ts": 99, "thread_id": "main"}
    }


def test_a_receipt_for_an_event_of_the_same_transaction(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    """The receipt is applied as the transaction is taken in, before its PDU has been
    through the room's worker: it stands for an event not stored yet, and once the
    event is stored, receipts move forwards from it as from any other."""
    room_id = scene.room_id
    earlier = send(api, alice, room_id)
    message = remote_pdu(
        room_id, scene.carol_server, scene.carol, "m.room.message", {"body": "hi"}
    )
    event_id = pdu_event_id(room_id, message)
    token = sync(api, alice)["next_batch"]

    answer = put_transaction(
        api, scene.carol_server, "t1", receipt_edu(room_id, scene.carol, event_id), pdus=[message]
    )

    assert answer == {"pdus": {event_id: {}}}
    assert Event.objects.filter(event_id=event_id, outlier=False).exists()
    body = sync(api, alice, token)
    assert readers(body, room_id)[scene.carol]["event_id"] == event_id
    put_transaction(api, scene.carol_server, "t2", receipt_edu(room_id, scene.carol, earlier))
    assert readers(sync(api, alice, body["next_batch"]), room_id) == {}


def test_edus_about_users_of_another_server_or_not_joined_are_ignored(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    event = send(api, alice, room_id)
    token = sync(api, alice)["next_batch"]
    stranger = scene.carol_server.user("stranger")

    # Carol's server speaking for Dave, and for a user of its own not in the room.
    put_transaction(
        api,
        scene.carol_server,
        "t1",
        typing_edu(room_id, scene.dave),
        receipt_edu(room_id, scene.dave, event),
        typing_edu(room_id, stranger),
        receipt_edu(room_id, stranger, event),
    )

    body = sync(api, alice, token)
    assert typists(body, room_id) is None
    assert readers(body, room_id) == {}
    assert SyncToken.parse(body["next_batch"]).typing == SyncToken.parse(token).typing
    assert SyncToken.parse(body["next_batch"]).receipts == SyncToken.parse(token).receipts


def test_malformed_edus_and_unknown_rooms_do_not_stop_the_others(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    token = sync(api, alice)["next_batch"]

    put_transaction(
        api,
        scene.carol_server,
        "t1",
        "not an object",
        {"edu_type": "m.typing"},
        {"edu_type": "m.typing", "content": {"room_id": room_id, "user_id": scene.carol}},
        {"edu_type": "m.receipt", "content": {room_id: {"m.read": {scene.carol: "x"}}}},
        typing_edu("!unknown:carol.example:8448", scene.carol),
        {"edu_type": "org.example.unknown", "content": {}},
        typing_edu(room_id, scene.carol),
    )

    assert typists(sync(api, alice, token), room_id) == [scene.carol]


def test_edus_from_a_server_the_acl_denies_are_ignored(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    set_state(api, alice, room_id, "m.room.server_acl", ACL_DENYING_DAVE)
    event = send(api, alice, room_id)
    token = sync(api, alice)["next_batch"]

    put_transaction(
        api,
        scene.dave_server,
        "t1",
        typing_edu(room_id, scene.dave),
        receipt_edu(room_id, scene.dave, event),
    )
    put_transaction(api, scene.carol_server, "t1", receipt_edu(room_id, scene.carol, event))

    body = sync(api, alice, token)
    assert typists(body, room_id) is None
    assert set(readers(body, room_id)) == {scene.carol}


def test_a_retried_transaction_applies_its_edus_once(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    first = put_transaction(api, scene.carol_server, "t1", typing_edu(room_id, scene.carol))
    put_transaction(api, scene.carol_server, "t2", typing_edu(room_id, scene.carol, False))
    token = sync(api, alice)["next_batch"]

    # The first transaction again (its answer lost on the way back): answered from the
    # store, and Carol does not start typing again.
    again = put_transaction(api, scene.carol_server, "t1", typing_edu(room_id, scene.carol))

    assert again == first
    body = sync(api, alice, token)
    assert typists(body, room_id) is None
    assert typists(sync(api, alice), room_id) is None
    assert SyncToken.parse(body["next_batch"]).typing == SyncToken.parse(token).typing


# --- Outbound ----------------------------------------------------------------------------


def test_local_typing_is_queued_for_the_other_servers_in_the_room(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id

    set_typing(api, alice, room_id)

    started = {"room_id": room_id, "user_id": alice.user_id, "typing": True}
    assert queued_edus(CAROL, "m.typing") == [started]
    assert queued_edus(DAVE, "m.typing") == [started]
    # Only to them: this server has its own users' typing.
    destinations = OutboundEDU.objects.values_list("destination__server_name", flat=True)
    assert sorted(destinations) == sorted([CAROL, DAVE])

    # Stopping replaces the start still waiting: a server gets the latest state only.
    set_typing(api, alice, room_id, False)
    stopped = {**started, "typing": False}
    assert queued_edus(CAROL, "m.typing") == [stopped]
    assert queued_edus(DAVE, "m.typing") == [stopped]


def test_typing_goes_out_on_changes_and_an_occasional_keep_alive(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    started = {"room_id": room_id, "user_id": alice.user_id, "typing": True}
    set_typing(api, alice, room_id)
    # In flight: a later EDU goes after it instead of replacing it.
    OutboundEDU.objects.update(txn_id="in-flight")

    # A client's keep-alive within TYPING_KEEPALIVE_MS of the last EDU: nothing new.
    set_typing(api, alice, room_id)
    assert queued_edus(CAROL, "m.typing") == [started]

    # Once the interval is over (its mark in the cache gone), the next keep-alive goes out.
    assert TYPING_KEEPALIVE_MS < typing_service.FEDERATION_TYPING_TIMEOUT_MS
    cache.clear()
    set_typing(api, alice, room_id)
    assert queued_edus(CAROL, "m.typing") == [started, started]


def test_a_local_typist_timing_out_is_sent_as_stopping(
    api: MatrixTestClient, alice: Persona, scene: Scene, clock: FakeClock
) -> None:
    room_id = scene.room_id
    set_typing(api, alice, room_id, timeout=5000)
    OutboundEDU.objects.all().delete()

    clock.now += 5001
    assert typing_service.do_expire_typing() == 1

    stopped = {"room_id": room_id, "user_id": alice.user_id, "typing": False}
    assert queued_edus(CAROL, "m.typing") == [stopped]
    assert queued_edus(DAVE, "m.typing") == [stopped]


def queued_receipts(server: str, room_id: str, user_id: str) -> list[tuple[str, str | None]]:
    """(event ID, thread ID) of each of the user's receipts waiting for ``server``."""
    found = []
    for content in queued_edus(server, "m.receipt"):
        assert list(content) == [room_id]
        receipt = content[room_id]["m.read"][user_id]
        [event_id] = receipt["event_ids"]
        assert isinstance(receipt["data"]["ts"], int)
        found.append((event_id, receipt["data"].get("thread_id")))
    return found


def test_local_read_receipts_are_queued_and_private_ones_are_not(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    first = send(api, bob, room_id, "one")
    second = send(api, bob, room_id, "two")

    assert send_receipt(api, alice, room_id, second, "m.read.private").status == 200
    assert queued_edus(CAROL, "m.receipt") == []

    assert send_receipt(api, alice, room_id, first).status == 200
    assert queued_receipts(CAROL, room_id, alice.user_id) == [(first, None)]
    assert queued_edus(DAVE, "m.receipt") == queued_edus(CAROL, "m.receipt")

    # A later receipt replaces the one still waiting; a threaded one is kept apart.
    assert send_receipt(api, alice, room_id, second).status == 200
    assert send_receipt(api, alice, room_id, second, thread_id="main").status == 200
    assert queued_receipts(CAROL, room_id, alice.user_id) == [(second, None), (second, "main")]

    # /read_markers: its private receipt and fully read marker stay here, its m.read goes.
    third = send(api, bob, room_id, "three")
    markers = room_path(room_id, "read_markers")
    private = {"m.read.private": third, "m.fully_read": third}
    assert api.post(markers, private, token=alice.access_token).status == 200
    assert queued_receipts(CAROL, room_id, alice.user_id) == [(second, None), (second, "main")]
    assert api.post(markers, {"m.read": third}, token=alice.access_token).status == 200
    assert queued_receipts(CAROL, room_id, alice.user_id) == [(second, "main"), (third, None)]


def test_nothing_of_the_room_goes_to_a_server_the_acl_denies(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = scene.room_id
    acl = set_state(api, alice, room_id, "m.room.server_acl", ACL_DENYING_DAVE).body["event_id"]
    message = send(api, alice, room_id)
    set_typing(api, alice, room_id)
    send_receipt(api, alice, room_id, message)

    carol_pdus = OutboundPDU.objects.filter(destination__server_name=CAROL)
    assert set(carol_pdus.values_list("event_id", flat=True)) >= {acl, message}
    # Dave's server is denied by the ACL event itself, which it is not sent either.
    assert not OutboundPDU.objects.filter(
        destination__server_name=DAVE, event_id__in=[acl, message]
    ).exists()
    assert len(queued_edus(CAROL, "m.typing")) == 1
    assert len(queued_edus(CAROL, "m.receipt")) == 1
    assert not OutboundEDU.objects.filter(destination__server_name=DAVE).exists()


def test_queued_edus_reach_the_other_servers_in_a_transaction(
    api: MatrixTestClient,
    alice: Persona,
    scene: Scene,
    inbox: Inbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = scene.room_id
    message = send(api, alice, room_id)
    OutboundPDU.objects.all().delete()

    with django_capture_on_commit_callbacks(execute=True):
        set_typing(api, alice, room_id)
    with django_capture_on_commit_callbacks(execute=True):
        send_receipt(api, alice, room_id, message)

    for server in (CAROL, DAVE):
        edus = [
            edu
            for destination, _, body in inbox.requests
            if destination == server
            for edu in body.get("edus", [])
        ]
        assert [edu["edu_type"] for edu in edus] == ["m.typing", "m.receipt"]
        assert edus[0]["content"] == {"room_id": room_id, "user_id": alice.user_id, "typing": True}
        assert edus[1]["content"][room_id]["m.read"][alice.user_id]["event_ids"] == [message]
    assert not OutboundEDU.objects.exists()
