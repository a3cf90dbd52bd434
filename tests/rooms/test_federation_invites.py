"""Invites across servers (Server-Server API, "Inviting to a room", "Leaving Rooms
(Rejecting Invites)"): served PUT /invite (v2, v1), an invitee's view of a room this
server is not in (/sync's invite_state from the stripped state sent), rejecting it
through the inviting server or, failing that, here alone, and inviting a user of another
server (their server countersigns before the invite is persisted).

Carol (carol.test:8448) hosts a room and invites alice; Dan (dave.test:8448) is invited
to alice's room. Forged invites (a bad signature, another server's user, a user that is
not ours, something other than an invite) are refused and change nothing.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import unquote

import pytest
from django.conf import settings

from accounts.models import User
from federation.keys import server_signing_key
from federation.models import OutboundPDU
from protocol.events import Event as PDUEvent
from protocol.hashing import add_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from push.models import PushAction
from rooms.models import CurrentState, Event, Membership, OutOfBandMembership, Room
from rooms.services.incoming import receive_joined_room
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import network
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import fed
from tests.rooms.federation_peers import Peer, Peers, peers
from tests.rooms.helpers import create_room, leave, room_path
from tests.sync.helpers import section, sync

__all__ = ["network", "peers"]

CAROL_SERVER = "carol.test:8448"
DAVE_SERVER = "dave.test:8448"
CAROL = f"@carol:{CAROL_SERVER}"
DAN = f"@dan:{DAVE_SERVER}"
V2 = "/_matrix/federation/v2"
V1 = "/_matrix/federation/v1"


def carols_room(peers: Peers, alice: Persona, room_version: str = "11") -> tuple[Peer, RemoteRoom]:
    """Carol's room, named, with alice invited (the invite is in Carol's graph, not here)."""
    carol = peers.add(RemoteServer(CAROL_SERVER))
    room = carol.server.create_room(CAROL, room_version, join_rule="invite")
    room.send(CAROL, "m.room.name", {"name": "Carol's place"}, state_key="", name="NAME")
    room.member(CAROL, alice.user_id, "invite", name="INVITE")
    return carol, room


def invite_room_state(room: RemoteRoom) -> list[dict[str, Any]]:
    return [copy.deepcopy(room.pdus[room.id(name)]) for name in ("CREATE", "JR", "NAME", "JOIN")]


def put_invite(
    api: MatrixTestClient,
    server: RemoteServer,
    room: RemoteRoom,
    pdu: dict[str, Any],
    *,
    state: list[dict[str, Any]] | None = None,
    room_version: str | None = None,
) -> Any:
    event_id = PDUEvent(pdu, room.room_version).event_id
    body = {
        "room_version": room_version or room.room_version.identifier,
        "event": pdu,
        "invite_room_state": invite_room_state(room) if state is None else state,
    }
    return fed(api, server, "PUT", f"{V2}/invite/{room.room_id}/{event_id}", body)


def invited_alice(api: MatrixTestClient, peers: Peers, alice: Persona) -> tuple[Peer, RemoteRoom]:
    carol, room = carols_room(peers, alice)
    got = put_invite(api, carol.server, room, room.pdus[room.id("INVITE")])
    assert got.status == 200, got.body
    return carol, room


def nothing_stored(room_id: str) -> bool:
    return not (
        Room.objects.filter(room_id=room_id).exists()
        or Event.objects.filter(room__room_id=room_id).exists()
        or Membership.objects.filter(room__room_id=room_id).exists()
    )


# --- served PUT /invite -----------------------------------------------------------------------


def test_an_invite_is_countersigned_and_kept_out_of_band(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_room(peers, alice)
    invite = room.pdus[room.id("INVITE")]

    got = put_invite(api, carol.server, room, invite)

    assert got.status == 200, got.body
    signed = got.body["event"]
    assert set(signed["signatures"]) == {CAROL_SERVER, settings.SERVER_NAME}
    assert {k: v for k, v in signed.items() if k != "signatures"} == {
        k: v for k, v in invite.items() if k != "signatures"
    }
    row = Event.objects.get(event_id=room.id("INVITE"))
    assert row.outlier
    assert row.stream_ordering is not None
    assert row.state_group_id is None
    assert row.pdu["signatures"] == signed["signatures"]
    stored_room = Room.objects.get(room_id=room.room_id)
    assert stored_room.room_version == "11"
    assert stored_room.current_state_group_id is None
    membership = Membership.objects.get(room=stored_room, user_id=alice.user_id)
    assert (membership.membership, membership.event_id) == ("invite", row.event_id)
    assert OutOfBandMembership.objects.get(event_id=row.event_id).servers == [CAROL_SERVER]
    # The push rules ran for it (.m.rule.invite_for_me notifies).
    assert PushAction.objects.filter(user_id=alice.user_id, event_id=row.event_id).exists()


def test_the_invitee_sees_the_invite_with_the_stripped_state_in_sync(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    before = sync(api, alice)["next_batch"]
    _, room = invited_alice(api, peers, alice)

    for body in (sync(api, alice, since=before), sync(api, alice)):
        invited = section(body, "invite")[room.room_id]
        events = invited["invite_state"]["events"]
        by_type = {(e["type"], e["state_key"]): e for e in events}
        assert set(by_type) == {
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.name", ""),
            ("m.room.member", CAROL),
            ("m.room.member", alice.user_id),
        }
        # Stripped: nothing but type, state_key, sender and content.
        assert all(set(e) == {"type", "state_key", "sender", "content"} for e in events)
        assert by_type[("m.room.name", "")]["content"] == {"name": "Carol's place"}
        assert by_type[("m.room.member", alice.user_id)] == {
            "type": "m.room.member",
            "state_key": alice.user_id,
            "sender": CAROL,
            "content": {"membership": "invite"},
        }
        assert room.room_id not in section(body, "join")


def v1_invite(server: RemoteServer, room_id: str, invitee: str) -> dict[str, Any]:
    """An invite in the first event format (room versions 1 and 2, which the test graphs
    do not build): its own event ID, prev and auth events as [ID, hashes] pairs."""
    version = KNOWN_ROOM_VERSIONS["1"]
    cited = ["$create:carol.test:8448", {"sha256": "aGFzaA"}]
    pdu = {
        "event_id": "$invite:carol.test:8448",
        "room_id": room_id,
        "type": "m.room.member",
        "sender": CAROL,
        "state_key": invitee,
        "content": {"membership": "invite"},
        "origin": CAROL_SERVER,
        "origin_server_ts": 1_800_000_000_000,
        "depth": 5,
        "prev_events": [cited],
        "auth_events": [cited],
    }
    return server.sign(add_content_hash(pdu), version)


def test_a_v1_invite_is_answered_in_the_v1_shape(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol = peers.add(RemoteServer(CAROL_SERVER))
    room_id = "!old:carol.test:8448"
    invite = v1_invite(carol.server, room_id, alice.user_id)
    stripped = {
        "type": "m.room.name",
        "state_key": "",
        "sender": CAROL,
        "content": {"name": "Old"},
    }
    body = {**invite, "unsigned": {"invite_room_state": [stripped]}}

    got = fed(api, carol.server, "PUT", f"{V1}/invite/{room_id}/{invite['event_id']}", body)

    assert got.status == 200, got.body
    status, answer = got.body
    assert status == 200
    assert set(answer["event"]["signatures"]) == {CAROL_SERVER, settings.SERVER_NAME}
    assert Membership.objects.get(user_id=alice.user_id).membership == "invite"
    assert Room.objects.get(room_id=room_id).room_version == "1"
    # A server older than 1.16 sent stripped events: kept (room versions 1 to 11).
    invited = section(sync(api, alice), "invite")[room_id]["invite_state"]["events"]
    assert stripped in invited


def test_a_retried_invite_is_answered_again(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = invited_alice(api, peers, alice)
    again = put_invite(api, carol.server, room, room.pdus[room.id("INVITE")])
    assert again.status == 200, again.body
    assert Event.objects.filter(event_id=room.id("INVITE")).count() == 1


def test_an_unsupported_room_version_is_incompatible(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_room(peers, alice)
    got = put_invite(
        api, carol.server, room, room.pdus[room.id("INVITE")], room_version="org.example.99"
    )
    assert (got.status, got.body["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")
    assert got.body["room_version"] == "org.example.99"
    assert nothing_stored(room.room_id)


@pytest.mark.parametrize("forgery", ["bad signature", "not an invite", "another room's"])
def test_a_forged_invite_is_refused_and_changes_nothing(
    api: MatrixTestClient, alice: Persona, peers: Peers, forgery: str
) -> None:
    carol, room = carols_room(peers, alice)
    invite = room.pdus[room.id("INVITE")]
    if forgery == "bad signature":
        pdu = room.forge_bad_signature(invite)
    elif forgery == "not an invite":
        pdu = room.build(CAROL, "m.room.member", {"membership": "join"}, state_key=alice.user_id)
    else:
        other = carol.server.create_room(CAROL)
        pdu = other.member(CAROL, alice.user_id, "invite")
    got = put_invite(api, carol.server, room, pdu)
    # A signature that does not hold is 403, as Synapse answers (sytest checks it).
    expected = (403, "M_FORBIDDEN") if forgery == "bad signature" else (400, "M_INVALID_PARAM")
    assert (got.status, got.body["errcode"]) == expected, got.body
    assert nothing_stored(room.room_id)
    assert not Membership.objects.filter(user_id=alice.user_id).exists()


def test_an_invite_sent_by_another_servers_user_is_refused(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """Eve's server passes on Carol's (validly signed) invite: its sender is not Eve's."""
    _, room = carols_room(peers, alice)
    eve = peers.add(RemoteServer("eve.test:8448"))
    got = put_invite(api, eve.server, room, room.pdus[room.id("INVITE")])
    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")
    assert nothing_stored(room.room_id)


def test_an_invite_of_a_user_who_is_not_ours_is_refused(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_room(peers, alice)
    pdu = room.member(CAROL, "@dan:dave.test:8448", "invite")
    got = put_invite(api, carol.server, room, pdu)
    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")
    assert nothing_stored(room.room_id)


def test_an_invite_of_a_local_id_nobody_registered_waits_for_them(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """As Synapse: the invite is countersigned and kept; whoever registers the ID has it."""
    carol, room = carols_room(peers, alice)
    pdu = room.member(CAROL, f"@nobody:{settings.SERVER_NAME}", "invite")
    got = put_invite(api, carol.server, room, pdu)
    assert got.status == 200, got.body
    nobody = api.register("nobody")
    assert room.room_id in sync(api, nobody)["rooms"]["invite"]


def test_an_invite_of_a_deactivated_account_is_forbidden(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_room(peers, alice)
    gone = api.register("gone")
    User.objects.filter(localpart="gone").update(is_active=False)
    got = put_invite(api, carol.server, room, room.member(CAROL, gone.user_id, "invite"))
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    assert nothing_stored(room.room_id)


def test_a_room_version_12_invite_needs_its_create_event(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_room(peers, alice, room_version="12")
    state = [s for s in invite_room_state(room) if s["type"] != "m.room.create"]
    got = put_invite(api, carol.server, room, room.pdus[room.id("INVITE")], state=state)
    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")
    assert nothing_stored(room.room_id)
    got = put_invite(api, carol.server, room, room.pdus[room.id("INVITE")])
    assert got.status == 200, got.body


def test_an_unsigned_request_is_unauthorized(api: MatrixTestClient, alice: Persona) -> None:
    got = fed(api, None, "PUT", f"{V2}/invite/!r:carol.test/$e", {"room_version": "11"})
    assert (got.status, got.body["errcode"]) == (401, "M_UNAUTHORIZED")


# --- rejecting ------------------------------------------------------------------------------


def test_rejecting_goes_through_the_inviting_server(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = invited_alice(api, peers, alice)
    since = sync(api, alice)["next_batch"]

    leave(api, alice, room.room_id)

    assert carol.paths(f"{V1}/make_leave/")
    assert carol.paths(f"{V2}/send_leave/")
    leave_id = next(e for e in room.reference.order if room.event(e).membership == "leave")
    assert room.event(leave_id).state_key == alice.user_id
    membership = Membership.objects.get(user_id=alice.user_id)
    assert (membership.membership, membership.event_id) == ("leave", leave_id)
    left = section(sync(api, alice, since=since), "leave")[room.room_id]
    assert [e["event_id"] for e in left["timeline"]["events"]] == [leave_id]
    assert room.room_id not in section(sync(api, alice), "invite")


def test_rejecting_falls_back_to_send_leave_v1(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = invited_alice(api, peers, alice)
    carol.v1_only = True
    leave(api, alice, room.room_id)
    assert carol.paths(f"{V1}/send_leave/")
    assert Membership.objects.get(user_id=alice.user_id).membership == "leave"


def test_rejecting_when_no_server_answers_rejects_here(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = invited_alice(api, peers, alice)
    carol.reachable = False

    leave(api, alice, room.room_id, expect=200)

    membership = Membership.objects.get(user_id=alice.user_id)
    assert membership.membership == "leave"
    local = Event.objects.get(event_id=membership.event_id)
    assert local.sender == alice.user_id
    assert local.outlier
    assert local.pdu["prev_events"] == [room.id("INVITE")]
    assert set(local.pdu["signatures"]) == {settings.SERVER_NAME}
    assert room.room_id not in section(sync(api, alice), "invite")
    assert not OutboundPDU.objects.exists()


# --- the server joins later -------------------------------------------------------------------


def test_joining_later_takes_over_from_the_invite(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """send_join's answer (rooms.services.incoming.receive_joined_room) makes the room a
    room of this server's like any other; the invite is part of its state."""
    _, room = invited_alice(api, peers, alice)
    us = RemoteServer(settings.SERVER_NAME)
    us.signing_key = server_signing_key()
    room.add_server(us)
    state_before = dict(room.reference.state_for_prevs(room.reference.tips()))
    join = room.member(alice.user_id, alice.user_id, "join", name="ALICE_JOIN")
    state = [room.pdus[e] for e in state_before.values()]
    chain = [room.pdus[e] for e in room.reference.auth_chain_ids(list(state_before.values()))]

    receive_joined_room(join, state, chain, origin=CAROL_SERVER)

    membership = Membership.objects.get(user_id=alice.user_id)
    assert (membership.membership, membership.event_id) == ("join", room.id("ALICE_JOIN"))
    current = CurrentState.objects.filter(room__room_id=room.room_id)
    assert (
        current.get(type="m.room.member", state_key=alice.user_id).event_id == membership.event_id
    )
    assert current.count() == len(state)
    body = sync(api, alice)
    assert room.room_id in section(body, "join")
    assert room.room_id not in section(body, "invite")


# --- inviting a user of another server --------------------------------------------------------


def invite_dan(api: MatrixTestClient, alice: Persona, room_id: str, expect: int = 200) -> Any:
    response = api.post(room_path(room_id, "invite"), {"user_id": DAN}, token=alice.access_token)
    assert response.status == expect, response.body
    return response


def dans_invite(room_id: str) -> Event | None:
    row = CurrentState.objects.filter(
        room__room_id=room_id, type="m.room.member", state_key=DAN
    ).first()
    return Event.objects.get(event_id=row.event_id) if row is not None else None


def test_inviting_a_remote_user_asks_their_server_first(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    dave = peers.add(RemoteServer(DAVE_SERVER))
    room_id = create_room(api, alice, name="Alice's")

    invite_dan(api, alice, room_id)

    (path,) = dave.paths(f"{V2}/invite/")
    _, _, body = next(r for r in dave.requests if r[1] == path)
    assert body["room_version"] == Room.objects.get(room_id=room_id).room_version
    sent_types = {(e["type"], e.get("state_key")) for e in body["invite_room_state"]}
    assert {("m.room.create", ""), ("m.room.name", ""), ("m.room.join_rules", "")} <= sent_types
    assert ("m.room.member", alice.user_id) in sent_types
    # Full PDUs (Matrix 1.16), signed.
    assert all("signatures" in e for e in body["invite_room_state"])
    invite = dans_invite(room_id)
    assert invite is not None
    assert invite.membership == "invite"
    assert set(invite.pdu["signatures"]) == {settings.SERVER_NAME, DAVE_SERVER}
    assert unquote(path).endswith(invite.event_id)
    # The invitee's server has it from PUT /invite; nobody else is in the room.
    assert not OutboundPDU.objects.exists()


def test_a_state_event_invite_is_countersigned_too(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    dave = peers.add(RemoteServer(DAVE_SERVER))
    room_id = create_room(api, alice)
    response = api.put(
        room_path(room_id, "state", "m.room.member", DAN),
        {"membership": "invite"},
        token=alice.access_token,
    )
    assert response.status == 200, response.body
    assert dave.paths(f"{V2}/invite/")
    invite = dans_invite(room_id)
    assert invite is not None
    assert DAVE_SERVER in invite.pdu["signatures"]


def test_an_old_server_is_asked_with_v1_in_a_version_1_room(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    dave = peers.add(RemoteServer(DAVE_SERVER), v1_only=True)
    room_id = create_room(api, alice, room_version="1")
    invite_dan(api, alice, room_id)
    assert dave.paths(f"{V2}/invite/")
    assert dave.paths(f"{V1}/invite/")
    assert dans_invite(room_id) is not None


@pytest.mark.parametrize(
    ("refusal", "status", "errcode"),
    [
        ((403, "M_FORBIDDEN"), 403, "M_FORBIDDEN"),
        ((400, "M_INCOMPATIBLE_ROOM_VERSION"), 400, "M_INCOMPATIBLE_ROOM_VERSION"),
        ((400, "M_INVALID_PARAM"), 502, "M_UNKNOWN"),
    ],
)
def test_a_refused_invite_is_not_persisted(
    api: MatrixTestClient,
    alice: Persona,
    peers: Peers,
    refusal: tuple[int, str],
    status: int,
    errcode: str,
) -> None:
    peers.add(RemoteServer(DAVE_SERVER), refuse={f"{V2}/invite/": refusal})
    room_id = create_room(api, alice)
    count = Event.objects.count()

    response = invite_dan(api, alice, room_id, expect=status)

    assert response.body["errcode"] == errcode
    assert dans_invite(room_id) is None
    assert Event.objects.count() == count
    assert not OutboundPDU.objects.exists()


def test_an_unreachable_server_is_a_bad_gateway(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    peers.add(RemoteServer(DAVE_SERVER), reachable=False)
    room_id = create_room(api, alice)
    response = invite_dan(api, alice, room_id, expect=502)
    assert response.body["errcode"] == "M_UNKNOWN"
    assert dans_invite(room_id) is None


def test_a_countersigned_event_that_is_not_ours_is_refused(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    def tamper(pdu: dict[str, Any]) -> dict[str, Any]:
        return {**pdu, "content": {"membership": "join"}}

    peers.add(RemoteServer(DAVE_SERVER), tamper=tamper)
    room_id = create_room(api, alice)
    invite_dan(api, alice, room_id, expect=502)
    assert dans_invite(room_id) is None


def test_a_bad_countersignature_is_refused(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    def tamper(pdu: dict[str, Any]) -> dict[str, Any]:
        signatures = copy.deepcopy(pdu["signatures"])
        key_id = next(iter(signatures[DAVE_SERVER]))
        signatures[DAVE_SERVER][key_id] = signatures[settings.SERVER_NAME][
            next(iter(signatures[settings.SERVER_NAME]))
        ]
        return {**pdu, "signatures": signatures}

    peers.add(RemoteServer(DAVE_SERVER), tamper=tamper)
    room_id = create_room(api, alice)
    invite_dan(api, alice, room_id, expect=502)
    assert dans_invite(room_id) is None


def test_create_room_invites_remote_users_through_their_server(
    api: MatrixTestClient, alice: Persona, bob: Persona, peers: Peers
) -> None:
    dave = peers.add(RemoteServer(DAVE_SERVER))
    room_id = create_room(api, alice, invite=[DAN, bob.user_id])
    assert dave.paths(f"{V2}/invite/")
    assert dans_invite(room_id) is not None
    assert Membership.objects.get(room__room_id=room_id, user_id=bob.user_id).membership == (
        "invite"
    )


def test_room_version_of_the_stored_room_wins(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    """An invite naming another version than the room has here is incompatible."""
    carol, room = invited_alice(api, peers, alice)
    again = room.member(CAROL, alice.user_id, "invite")
    got = put_invite(api, carol.server, room, again, room_version="10")
    assert got.status == 400
    assert got.body["errcode"] in (
        "M_INVALID_PARAM",
        "M_INCOMPATIBLE_ROOM_VERSION",
    )
    membership = Membership.objects.get(user_id=alice.user_id)
    assert membership.event_id == room.id("INVITE")
    assert Room.objects.get(room_id=room.room_id).room_version == "11"
