"""Knocks across servers (Server-Server API, "Knocking upon a room"): the resident side
(GET /make_knock, PUT /send_knock) for Dan of dave.test knocking on alice's room, and
alice knocking on Carol's room (carol.test), which this server is not in: the knock goes
through Carol's server, /sync shows it with the knock_room_state Carol's server sent,
and rescinding it (leave) goes through make_leave/send_leave.
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.conf import settings

from federation.models import OutboundPDU
from protocol.events import Event as PDUEvent
from protocol.hashing import add_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.models import CurrentState, Event, Membership, Room
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import network
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.federation_peers import Peer, Peers, peers
from tests.rooms.helpers import create_room, leave
from tests.sync.helpers import section, sync

__all__ = ["network", "peers"]

CAROL_SERVER = "carol.test:8448"
DAVE_SERVER = "dave.test:8448"
CAROL = f"@carol:{CAROL_SERVER}"
DAN = f"@dan:{DAVE_SERVER}"


# --- the resident side: Dan knocks on alice's room ---------------------------------------------


def knocking_room(api: MatrixTestClient, alice: Persona, join_rule: str = "knock") -> str:
    return create_room(
        api,
        alice,
        name="Knock here",
        initial_state=[
            {"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": join_rule}}
        ],
    )


def make_knock(
    api: MatrixTestClient, server: RemoteServer, room_id: str, user_id: str, versions: list[str]
) -> Any:
    query = urlencode([("ver", v) for v in versions])
    path = f"{F}/make_knock/{room_id}/{user_id}?{query}"
    return fed(api, server, "GET", path)


def signed_knock(server: RemoteServer, answer: dict[str, Any]) -> dict[str, Any]:
    """Dan's server's knock from a make_knock answer: hashed and signed by it."""
    version = KNOWN_ROOM_VERSIONS[answer["room_version"]]
    pdu = dict(answer["event"])
    pdu["origin_server_ts"] = 1_800_000_000_000
    return server.sign(add_content_hash(pdu), version)


def send_knock(
    api: MatrixTestClient, server: RemoteServer, room_id: str, pdu: dict[str, Any]
) -> Any:
    event_id = _event_id(room_id, pdu)
    return fed(api, server, "PUT", f"{F}/send_knock/{room_id}/{event_id}", pdu)


def _event_id(room_id: str, pdu: dict[str, Any]) -> str:
    version = Room.objects.get(room_id=room_id).room_version
    return PDUEvent(pdu, KNOWN_ROOM_VERSIONS[version]).event_id


def dan(peers: Peers) -> RemoteServer:
    return peers.add(RemoteServer(DAVE_SERVER)).server


def test_a_remote_user_knocks_through_make_and_send_knock(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    server = dan(peers)
    room_id = knocking_room(api, alice)

    made = make_knock(api, server, room_id, DAN, ["10", "11", "12"])

    assert made.status == 200, made.body
    assert made.body["room_version"] == Room.objects.get(room_id=room_id).room_version
    template = made.body["event"]
    assert (template["type"], template["state_key"], template["sender"]) == (
        "m.room.member",
        DAN,
        DAN,
    )
    assert template["content"] == {"membership": "knock"}
    assert "signatures" not in template
    assert "hashes" not in template
    knock = signed_knock(server, made.body)

    sent = send_knock(api, server, room_id, knock)

    assert sent.status == 200, sent.body
    state = {(e["type"], e["state_key"]) for e in sent.body["knock_room_state"]}
    assert {("m.room.create", ""), ("m.room.join_rules", ""), ("m.room.name", "")} <= state
    assert all("signatures" in e for e in sent.body["knock_room_state"])
    event_id = _event_id(room_id, knock)
    member = CurrentState.objects.get(room__room_id=room_id, state_key=DAN)
    assert member.event_id == event_id
    assert Membership.objects.get(room__room_id=room_id, user_id=DAN).membership == "knock"
    # Sent on to the room's other servers (none here), never back to the knocker's.
    assert not OutboundPDU.objects.exists()
    # A retried send_knock is answered again.
    assert send_knock(api, server, room_id, knock).status == 200
    assert not OutboundPDU.objects.exists()


def test_make_knock_refusals(api: MatrixTestClient, alice: Persona, peers: Peers) -> None:
    server = dan(peers)
    room_id = knocking_room(api, alice)
    version = Room.objects.get(room_id=room_id).room_version

    other_servers_user = make_knock(api, server, room_id, CAROL, [version])
    assert (other_servers_user.status, other_servers_user.body["errcode"]) == (403, "M_FORBIDDEN")

    old_versions = make_knock(api, server, room_id, DAN, ["1", "2"])
    assert (old_versions.status, old_versions.body["errcode"]) == (
        400,
        "M_INCOMPATIBLE_ROOM_VERSION",
    )
    assert old_versions.body["room_version"] == version

    public = create_room(api, alice, preset="public_chat")
    no_knocks = make_knock(api, server, public, DAN, [version])
    assert (no_knocks.status, no_knocks.body["errcode"]) == (403, "M_FORBIDDEN")

    unknown = make_knock(api, server, "!nowhere:carol.test", DAN, [version])
    assert (unknown.status, unknown.body["errcode"]) == (404, "M_NOT_FOUND")

    no_ver = fed(api, server, "GET", f"{F}/make_knock/{room_id}/{DAN}")
    assert (no_ver.status, no_ver.body["errcode"]) == (400, "M_MISSING_PARAM")


@pytest.mark.parametrize("forgery", ["bad signature", "not a knock", "another's user"])
def test_a_forged_knock_is_refused_and_changes_nothing(
    api: MatrixTestClient, alice: Persona, peers: Peers, forgery: str
) -> None:
    server = dan(peers)
    eve = peers.add(RemoteServer("eve.test:8448")).server
    room_id = knocking_room(api, alice)
    made = make_knock(api, server, room_id, DAN, ["10", "11", "12"])
    answer = copy.deepcopy(made.body)
    sender = server
    if forgery == "not a knock":
        answer["event"]["content"] = {"membership": "join"}
    knock = signed_knock(server, answer)
    if forgery == "bad signature":
        key_id = next(iter(knock["signatures"][DAVE_SERVER]))
        knock["signatures"][DAVE_SERVER][key_id] = knock["signatures"][DAVE_SERVER][key_id][::-1]
    if forgery == "another's user":
        sender = eve
    events = Event.objects.count()

    sent = send_knock(api, sender, room_id, knock)

    assert (sent.status, sent.body["errcode"]) == (400, "M_INVALID_PARAM"), sent.body
    assert Event.objects.count() == events
    assert not Membership.objects.filter(user_id=DAN).exists()
    assert not OutboundPDU.objects.exists()


# --- this server's user knocks on a room elsewhere ----------------------------------------------


def carols_knock_room(peers: Peers, **peer_kwargs: Any) -> tuple[Peer, RemoteRoom]:
    carol = peers.add(RemoteServer(CAROL_SERVER), **peer_kwargs)
    room = carol.server.create_room(CAROL, "11", join_rule="knock")
    return carol, room


def knock(
    api: MatrixTestClient, who: Persona, target: str, *, via: list[str], expect: int = 200
) -> Any:
    query = urlencode([("via", v) for v in via])
    path = f"knock/{quote(target, safe='')}" + (f"?{query}" if query else "")
    response = api.post(path, {"reason": "let me in"}, token=who.access_token)
    assert response.status == expect, response.body
    return response


def knock_id(room: RemoteRoom, user_id: str) -> str:
    return next(
        e
        for e in room.reference.order
        if room.event(e).membership == "knock" and room.event(e).state_key == user_id
    )


def test_knocking_on_a_room_elsewhere_goes_through_its_server(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_knock_room(peers)
    since = sync(api, alice)["next_batch"]

    response = knock(api, alice, room.room_id, via=[CAROL_SERVER])

    assert response.body == {"room_id": room.room_id}
    (make,) = carol.paths(f"{F}/make_knock/")
    assert "ver=11" in make
    event_id = knock_id(room, alice.user_id)
    assert room.event(event_id).content == {"membership": "knock", "reason": "let me in"}
    row = Event.objects.get(event_id=event_id)
    assert row.outlier
    assert row.stream_ordering is not None
    membership = Membership.objects.get(user_id=alice.user_id)
    assert (membership.membership, membership.event_id) == ("knock", event_id)
    for body in (sync(api, alice, since=since), sync(api, alice)):
        knocked = section(body, "knock")[room.room_id]["knock_state"]["events"]
        assert {(e["type"], e["state_key"]) for e in knocked} == {
            ("m.room.create", ""),
            ("m.room.join_rules", ""),
            ("m.room.member", alice.user_id),
        }
        assert all(set(e) == {"type", "state_key", "sender", "content"} for e in knocked)


def test_rescinding_a_knock_goes_through_make_leave(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_knock_room(peers)
    knock(api, alice, room.room_id, via=[CAROL_SERVER])
    since = sync(api, alice)["next_batch"]

    leave(api, alice, room.room_id)

    assert carol.paths(f"{F}/make_leave/")
    membership = Membership.objects.get(user_id=alice.user_id)
    assert membership.membership == "leave"
    assert room.event(membership.event_id).state_key == alice.user_id
    left = section(sync(api, alice, since=since), "leave")[room.room_id]
    assert [e["event_id"] for e in left["timeline"]["events"]] == [membership.event_id]


def test_knocking_by_a_remote_alias(api: MatrixTestClient, alice: Persona, peers: Peers) -> None:
    carol, room = carols_knock_room(peers)
    alias = f"#knock:{CAROL_SERVER}"
    carol.aliases[alias] = (room.room_id, [CAROL_SERVER])

    response = knock(api, alice, alias, via=[])

    assert response.body == {"room_id": room.room_id}
    assert Membership.objects.get(user_id=alice.user_id).membership == "knock"


def test_a_refused_knock_is_forbidden_and_stores_nothing(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    _, room = carols_knock_room(peers, refuse={f"{F}/make_knock/": (403, "M_FORBIDDEN")})
    response = knock(api, alice, room.room_id, via=[CAROL_SERVER], expect=403)
    assert response.body["errcode"] == "M_FORBIDDEN"
    assert not Room.objects.filter(room_id=room.room_id).exists()
    assert not Membership.objects.filter(user_id=alice.user_id).exists()


def test_knock_room_state_that_fails_its_checks_is_dropped(
    api: MatrixTestClient, alice: Persona, peers: Peers
) -> None:
    carol, room = carols_knock_room(peers)
    unsigned = {"type": "m.room.topic", "state_key": "", "sender": CAROL, "content": {}}
    carol.knock_room_state[room.room_id] = [
        room.pdus[room.id("CREATE")],
        room.forge_bad_signature(room.pdus[room.id("JR")]),
        unsigned,
    ]

    knock(api, alice, room.room_id, via=[CAROL_SERVER])

    knocked = section(sync(api, alice), "knock")[room.room_id]["knock_state"]["events"]
    assert {(e["type"], e["state_key"]) for e in knocked} == {
        ("m.room.create", ""),
        ("m.room.member", alice.user_id),
    }


def test_no_server_to_knock_through(api: MatrixTestClient, alice: Persona, peers: Peers) -> None:
    _carol, room = carols_knock_room(peers, reachable=False)
    response = knock(api, alice, room.room_id, via=[CAROL_SERVER], expect=502)
    assert response.body["errcode"] == "M_UNKNOWN"
    unknown = knock(api, alice, f"!nowhere:{settings.SERVER_NAME}", via=[], expect=404)
    assert unknown.body["errcode"] == "M_NOT_FOUND"
