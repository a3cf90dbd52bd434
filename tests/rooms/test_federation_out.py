"""Events made here go to the other servers in the room (rooms.federation_out): every
server with a joined member, and an invitee's server; events received from other servers
are not sent on.

The remote member, carol of carol.example:8448, joins alice's room as she would over
federation: her server signs her join, and it goes through rooms.services.incoming.
"""

from __future__ import annotations

from typing import Any

from federation.models import Destination, OutboundPDU
from federation.tasks import resume_destinations
from protocol.auth_rules import auth_types_for_event
from protocol.hashing import add_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.models import CurrentState, Event, ForwardExtremity, Room
from rooms.services.incoming import receive_pdu
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, network
from tests.federation.inbox import DAVE, Inbox, inbox
from tests.graph.remote import RemoteServer
from tests.rooms.federation_peers import Peers, peers
from tests.rooms.helpers import create_room, join, room_path, send

__all__ = ["inbox", "network", "peers"]


def remote_join(room_id: str, server: RemoteServer, user_id: str) -> str:
    """``user_id``'s join of a local room, made and signed by ``server``, received through
    the event pipeline; its event ID."""
    room = Room.objects.get(room_id=room_id)
    version = KNOWN_ROOM_VERSIONS[room.room_version]
    content = {"membership": "join"}
    state = dict(
        ((t, k), e)
        for t, k, e in CurrentState.objects.filter(room=room).values_list(
            "type", "state_key", "event_id"
        )
    )
    keys = auth_types_for_event(version, "m.room.member", user_id, user_id, content)
    prev = list(ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True))
    depth = max(Event.objects.filter(event_id__in=prev).values_list("depth", flat=True)) + 1
    pdu: dict[str, Any] = {
        "type": "m.room.member",
        "room_id": room_id,
        "sender": user_id,
        "state_key": user_id,
        "content": content,
        "origin_server_ts": 1_800_000_000_000,
        "depth": depth,
        "prev_events": prev,
        "auth_events": sorted(state[key] for key in keys if key in state),
    }
    signed = server.sign(add_content_hash(pdu), version)
    return receive_pdu(signed, origin=server.server_name).event_id


def queued(server: str) -> list[str]:
    return list(
        OutboundPDU.objects.filter(destination__server_name=server)
        .order_by("id")
        .values_list("event_id", flat=True)
    )


def member_event_id(room_id: str, user_id: str) -> str:
    return CurrentState.objects.get(
        room__room_id=room_id, type="m.room.member", state_key=user_id
    ).event_id


def room_with_carol(api: MatrixTestClient, alice: Persona) -> str:
    room_id = create_room(api, alice, preset="public_chat")
    server = RemoteServer(CAROL)
    server.install_keys()
    remote_join(room_id, server, server.user("carol"))
    return room_id


def test_a_local_event_is_queued_for_the_servers_of_joined_members(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = room_with_carol(api, alice)
    # carol's own join came from her server: it is not sent back or on.
    assert queued(CAROL) == []

    join(api, bob, room_id)
    message = send(api, alice, room_id, "hello carol")

    bob_join = member_event_id(room_id, bob.user_id)
    assert queued(CAROL) == [bob_join, message]
    # The PDU as stored and signed here.
    row = OutboundPDU.objects.get(event_id=message)
    assert row.pdu == Event.objects.get(event_id=message).pdu
    assert row.room_id == room_id


def test_an_invite_reaches_the_invitees_server_by_invite_and_a_rescinding_leave_too(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """The invitee's server has the invite from PUT /invite (it countersigned it); it
    is not sent again in a transaction, for a server with nobody in the room. Rescinding
    the invite is sent to it, as Synapse does."""
    room_id = room_with_carol(api, alice)
    dan = f"@dan:{DAVE}"
    peers.add(RemoteServer(DAVE))

    response = api.post(room_path(room_id, "invite"), {"user_id": dan}, token=alice.access_token)

    assert response.status == 200
    invite = member_event_id(room_id, dan)
    assert peers.peers[DAVE].paths("/_matrix/federation/v2/invite/")
    assert queued(DAVE) == []
    assert queued(CAROL) == [invite]

    response = api.post(room_path(room_id, "kick"), {"user_id": dan}, token=alice.access_token)

    assert response.status == 200
    rescinded = member_event_id(room_id, dan)
    assert queued(DAVE) == [rescinded]
    assert queued(CAROL) == [invite, rescinded]


def test_a_room_without_other_servers_queues_nothing(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    join(api, bob, room_id)
    send(api, alice, room_id, "just us")

    assert not OutboundPDU.objects.exists()


def test_a_local_send_reaches_the_remote_server_after_the_commit(
    api: MatrixTestClient,
    alice: Persona,
    inbox: Inbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = room_with_carol(api, alice)

    with django_capture_on_commit_callbacks(execute=True):
        first = send(api, alice, room_id, "one")
        second = send(api, alice, room_id, "two")

    assert inbox.received(CAROL) == [first, second]
    assert queued(CAROL) == []


def test_the_queue_keeps_the_rooms_order_for_a_server_that_is_down(
    api: MatrixTestClient,
    alice: Persona,
    inbox: Inbox,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room_id = room_with_carol(api, alice)
    inbox.status[CAROL] = None

    with django_capture_on_commit_callbacks(execute=True):
        sent = [send(api, alice, room_id, f"message {n}") for n in range(3)]

    # The first send's run failed; the others found the server backed off.
    assert len(inbox.requests) == 1
    assert queued(CAROL) == sent

    # Back, and its backoff over: the sweep sends everything, in order.
    inbox.status[CAROL] = 200
    Destination.objects.filter(server_name=CAROL).update(retry_at_ts=None)
    resume_destinations()

    assert inbox.received(CAROL) == sent
    assert queued(CAROL) == []
