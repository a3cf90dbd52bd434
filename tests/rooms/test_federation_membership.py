"""Joining and leaving alice's rooms from other servers (rooms.federation.membership):
make_join and send_join (v2, and v1's [200, {...}]), make_leave and send_leave; the
refusals (unsigned, a user of another server, the ACL, versions the joining server
lacks, join rules, forged and mismatched events); restricted joins countersigned here;
``omit_members``; the accepted event sent on to the other servers in the room, never
back; and a room every local user has left taking no more PDUs.

The remote servers are tests/graph/remote.py's: dave.test joins, erin.test is in the
room already where a test needs a third server.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from federation.models import OutboundPDU
from protocol.events import Event as PDUEvent
from protocol.hashing import add_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import compute_signature
from rooms.models import CurrentState, Event, ForwardExtremity, Membership
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import network
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.federation_peers import Peers, peers
from tests.rooms.helpers import create_room, get_state, join, leave, set_state

__all__ = ["network", "peers"]

F2 = "/_matrix/federation/v2"
ALL_VERSIONS = "&".join(f"ver={v}" for v in KNOWN_ROOM_VERSIONS)


@pytest.fixture
def dave(db: None, peers: Peers) -> RemoteServer:
    """dave.test, which also countersigns the invites of its users (an invite of a user of
    another server needs it)."""
    server = RemoteServer("dave.test")
    peers.add(server)
    return server


@pytest.fixture
def erin(db: None) -> RemoteServer:
    server = RemoteServer("erin.test")
    server.install_keys()
    return server


def make_join(
    api: MatrixTestClient, server: RemoteServer, room_id: str, user_id: str, versions: str = ""
) -> Response:
    query = versions or ALL_VERSIONS
    return fed(api, server, "GET", f"{F}/make_join/{room_id}/{user_id}?{query}")


def signed_from(server: RemoteServer, answer: dict[str, Any]) -> dict[str, Any]:
    """The template of a make_join or make_leave answer as the remote server completes
    it: its origin, a timestamp, (room versions 1 and 2) its event ID, hashed and signed."""
    version = KNOWN_ROOM_VERSIONS[answer["room_version"]]
    pdu = dict(answer["event"])
    pdu["origin"] = server.server_name
    pdu["origin_server_ts"] = 1_800_000_000_000
    if version.event_format.event_id_in_pdu:
        pdu["event_id"] = f"$joined{len(pdu['prev_events'])}:{server.server_name}"
    return server.sign(add_content_hash(pdu), version)


def event_id_of(pdu: dict[str, Any], version: RoomVersion | str) -> str:
    if isinstance(version, str):
        version = KNOWN_ROOM_VERSIONS[version]
    return PDUEvent(pdu, version).event_id


def send_join(
    api: MatrixTestClient,
    server: RemoteServer,
    room_id: str,
    pdu: dict[str, Any],
    version: str,
    *,
    api_version: int = 2,
    query: str = "",
) -> Response:
    prefix = F2 if api_version == 2 else F
    path = f"{prefix}/send_join/{room_id}/{event_id_of(pdu, version)}{query}"
    return fed(api, server, "PUT", path, pdu)


def remote_join(
    api: MatrixTestClient, server: RemoteServer, room_id: str, localpart: str = "dave"
) -> dict[str, Any]:
    """A user of ``server`` joins through make_join and send_join; the send_join answer."""
    template = make_join(api, server, room_id, server.user(localpart))
    assert template.status == 200, template.body
    pdu = signed_from(server, template.body)
    got = send_join(api, server, room_id, pdu, template.body["room_version"])
    assert got.status == 200, got.body
    return got.body


def membership_of(room_id: str, user_id: str) -> str | None:
    row = Membership.objects.filter(room__room_id=room_id, user_id=user_id).first()
    return row.membership if row is not None else None


def current_state(room_id: str) -> dict[tuple[str, str], str]:
    rows = CurrentState.objects.filter(room__room_id=room_id)
    return {(r.type, r.state_key): r.event_id for r in rows}


def queued(server: str) -> list[str]:
    return list(
        OutboundPDU.objects.filter(destination__server_name=server)
        .order_by("id")
        .values_list("event_id", flat=True)
    )


def ids_of(pdus: list[dict[str, Any]], version: str) -> set[str]:
    return {event_id_of(pdu, version) for pdu in pdus}


# --- make_join and send_join -----------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "6", "10", "11", "12"])
def test_a_remote_user_joins_through_make_join_and_send_join(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, version: str
) -> None:
    room_id = create_room(api, alice, preset="public_chat", room_version=version)
    state_before = current_state(room_id)
    tips = set(ForwardExtremity.objects.filter(room__room_id=room_id).values_list("event_id"))
    user = dave.user("dave")

    template = make_join(api, dave, room_id, user)

    assert template.status == 200, template.body
    assert template.body["room_version"] == version
    event = template.body["event"]
    assert (event["type"], event["room_id"], event["sender"], event["state_key"]) == (
        "m.room.member",
        room_id,
        user,
        user,
    )
    assert event["content"] == {"membership": "join"}
    assert event["origin"] == settings.SERVER_NAME
    assert isinstance(event["origin_server_ts"], int)
    room_version = KNOWN_ROOM_VERSIONS[version]
    cited = PDUEvent(event, room_version)
    assert {(e,) for e in cited.prev_event_ids} == tips
    depths = Event.objects.filter(event_id__in=cited.prev_event_ids).values_list(
        "depth", flat=True
    )
    assert event["depth"] == max(depths) + 1
    # Auth events selection: create (not in v12), power levels, join rules; no member event
    # of dave's yet.
    wanted = [("m.room.power_levels", ""), ("m.room.join_rules", "")]
    if not room_version.room_id_is_create_event_hash:
        wanted.append(("m.room.create", ""))
    assert sorted(cited.auth_event_ids) == sorted(state_before[key] for key in wanted)

    pdu = signed_from(dave, template.body)
    got = send_join(api, dave, room_id, pdu, version)

    assert got.status == 200, got.body
    assert got.body["origin"] == settings.SERVER_NAME
    assert got.body["members_omitted"] is False
    assert "event" not in got.body
    assert ids_of(got.body["state"], version) == set(state_before.values())
    chain = ids_of(got.body["auth_chain"], version)
    # The auth chain of the state and of the join: the create event, alice's join, the
    # power levels, the join rules...
    assert set(cited.auth_event_ids) <= chain
    assert state_before[("m.room.member", alice.user_id)] in chain
    join_id = event_id_of(pdu, version)
    assert membership_of(room_id, user) == "join"
    assert current_state(room_id)[("m.room.member", user)] == join_id
    row = Event.objects.get(event_id=join_id)
    assert (row.outlier, row.rejected_reason, row.soft_failed) == (False, None, False)


def test_the_send_join_auth_chain_lists_each_event_after_its_auth_events(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    """(sytest 50federation/36state) The join cites the current power levels, so they are
    in the auth chain with those they replaced: listed in the order they were authorised,
    a receiver that takes the last of each as the room's state takes the current ones."""
    room_id = create_room(api, alice, preset="public_chat", room_version="1")
    levels = get_state(api, alice, room_id, "m.room.power_levels").body
    for level in range(1, 7):
        levels["users"][dave.user("dave")] = level
        set_state(api, alice, room_id, "m.room.power_levels", levels)

    answer = remote_join(api, dave, room_id)

    version = KNOWN_ROOM_VERSIONS["1"]
    chain = [PDUEvent(pdu, version) for pdu in answer["auth_chain"]]
    seen: set[str] = set()
    for event in chain:
        cited = {e for e in event.auth_event_ids if e in ids_of(answer["auth_chain"], "1")}
        assert cited <= seen, f"{event.event_id} listed before its auth events {cited - seen}"
        seen.add(event.event_id)
    power_levels = [e.event_id for e in chain if e.type == "m.room.power_levels"]
    assert len(power_levels) == 7
    assert power_levels[-1] == current_state(room_id)[("m.room.power_levels", "")]


def test_a_retried_send_join_gets_the_same_answer(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    template = make_join(api, dave, room_id, dave.user("dave"))
    pdu = signed_from(dave, template.body)
    first = send_join(api, dave, room_id, pdu, "12")
    again = send_join(api, dave, room_id, pdu, "12")

    assert (again.status, again.body) == (200, first.body)


def test_v1_send_join_answers_a_status_and_the_answer(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat", room_version="11")
    template = make_join(api, dave, room_id, dave.user("dave"))
    pdu = signed_from(dave, template.body)

    got = send_join(api, dave, room_id, pdu, "11", api_version=1)

    assert got.status == 200, got.body
    status, answer = got.body
    assert status == 200
    assert {"origin", "state", "auth_chain"} <= set(answer)
    assert membership_of(room_id, dave.user("dave")) == "join"


def test_the_join_is_sent_on_to_the_other_servers_but_not_back(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    remote_join(api, erin, room_id, "erin")
    assert queued("erin.test") == []

    remote_join(api, dave, room_id)

    dave_join = current_state(room_id)[("m.room.member", dave.user("dave"))]
    assert queued("erin.test") == [dave_join]
    assert queued("dave.test") == []


# --- make_join's refusals ---------------------------------------------------------------------


def test_a_server_lacking_the_rooms_version_is_told_which_it_is(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat", room_version="12")

    got = make_join(api, dave, room_id, dave.user("dave"), "ver=10&ver=11")
    assert got.status == 400
    assert (got.body["errcode"], got.body["room_version"]) == ("M_INCOMPATIBLE_ROOM_VERSION", "12")
    # No ver at all: version 1 only.
    got = fed(api, dave, "GET", f"{F}/make_join/{room_id}/{dave.user('dave')}")
    assert (got.status, got.body["errcode"]) == (400, "M_INCOMPATIBLE_ROOM_VERSION")


def test_make_join_refusals(
    api: MatrixTestClient, alice: Persona, bob: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    user = dave.user("dave")
    # Unsigned.
    got = fed(api, None, "GET", f"{F}/make_join/{room_id}/{user}?{ALL_VERSIONS}")
    assert (got.status, got.body["errcode"]) == (401, "M_UNAUTHORIZED")
    # A user of another server than the one asking.
    got = make_join(api, dave, room_id, erin.user("erin"))
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # A room unknown here.
    got = make_join(api, dave, "!nowhere:dave.test", user)
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    # The room's ACL denies the server.
    set_state(api, alice, room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["dave.test"]})
    got = make_join(api, dave, room_id, user)
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # An invite-only room, without an invite.
    private = create_room(api, alice, preset="private_chat")
    got = make_join(api, dave, private, user)
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # ... and with one.
    response = api.post(f"rooms/{private}/invite", {"user_id": user}, token=alice.access_token)
    assert response.status == 200, response.body
    assert make_join(api, dave, private, user).status == 200
    # A room this server has left.
    gone = create_room(api, bob, preset="public_chat")
    leave(api, bob, gone)
    got = make_join(api, dave, gone, user)
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")


def test_a_banned_user_cannot_rejoin(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    remote_join(api, dave, room_id)
    response = api.post(
        f"rooms/{room_id}/ban", {"user_id": dave.user("dave")}, token=alice.access_token
    )
    assert response.status == 200

    got = make_join(api, dave, room_id, dave.user("dave"))
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")


# --- send_join's refusals ---------------------------------------------------------------------


def test_forged_and_mismatched_joins_are_refused_and_not_stored(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    other_room = create_room(api, alice, preset="public_chat")
    template = make_join(api, dave, room_id, dave.user("dave")).body
    pdu = signed_from(dave, template)
    join_id = event_id_of(pdu, "12")
    count = Event.objects.count()

    def refused(got: Response, status: int = 400, errcode: str = "M_INVALID_PARAM") -> None:
        assert (got.status, got.body["errcode"]) == (status, errcode), got.body

    # The event ID in the path is another.
    refused(fed(api, dave, "PUT", f"{F2}/send_join/{room_id}/$other", pdu))
    # The room in the path is another.
    refused(send_join(api, dave, other_room, pdu, "12"))
    # The sender is not a user of the requesting server (erin's own join, sent by dave).
    erin_pdu = signed_from(erin, make_join(api, erin, room_id, erin.user("erin")).body)
    refused(send_join(api, dave, room_id, erin_pdu, "12"))
    # Not a join.
    leave_pdu = signed_from(
        dave, {**template, "event": {**template["event"], "content": {"membership": "leave"}}}
    )
    refused(send_join(api, dave, room_id, leave_pdu, "12"))
    # The state_key is not the sender.
    other_target = {**template["event"], "state_key": dave.user("mallory")}
    refused(
        send_join(api, dave, room_id, signed_from(dave, {**template, "event": other_target}), "12")
    )
    # A signature that does not verify (over other bytes, the event ID unchanged).
    forged = signed_from(dave, template)
    forged["signatures"]["dave.test"][dave.signing_key.key_id] = compute_signature(
        {"not": "the event"}, dave.signing_key
    )
    # (Checked first, as Synapse does: 403.)
    refused(send_join(api, dave, room_id, forged, "12"), 403, "M_FORBIDDEN")
    # An ACL denying the server.
    assert Event.objects.count() == count
    assert not Event.objects.filter(event_id=join_id).exists()
    set_state(api, alice, room_id, "m.room.server_acl", {"allow": ["*"], "deny": ["dave.test"]})
    refused(send_join(api, dave, room_id, pdu, "12"), 403, "M_FORBIDDEN")
    assert not Event.objects.filter(event_id=join_id).exists()


def test_a_join_the_auth_rules_refuse_is_forbidden(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="private_chat")
    user = dave.user("dave")
    invite_dave = {"user_id": user}
    assert api.post(f"rooms/{room_id}/invite", invite_dave, token=alice.access_token).status == 200
    template = make_join(api, dave, room_id, user)
    assert template.status == 200, template.body
    # The invite is withdrawn before the join arrives: the join, built on the state with
    # the invite, fails against the current state (soft failure).
    assert api.post(f"rooms/{room_id}/kick", invite_dave, token=alice.access_token).status == 200
    pdu = signed_from(dave, template.body)

    got = send_join(api, dave, room_id, pdu, "12")

    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    assert membership_of(room_id, user) == "leave"
    # The kick went to dave's server; the refused join goes nowhere.
    assert event_id_of(pdu, "12") not in queued("dave.test")


# --- restricted rooms --------------------------------------------------------------------------


def _restricted_room(api: MatrixTestClient, alice: Persona, allowed: str, **extra: Any) -> str:
    return create_room(
        api,
        alice,
        preset="public_chat",
        room_version="10",
        initial_state=[
            {
                "type": "m.room.join_rules",
                "state_key": "",
                "content": {
                    "join_rule": "restricted",
                    "allow": [{"type": "m.room_membership", "room_id": allowed}],
                },
            }
        ],
        **extra,
    )


def test_a_restricted_join_is_authorised_and_countersigned_here(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    space = create_room(api, alice, preset="public_chat", room_version="10")
    remote_join(api, dave, space)
    room_id = _restricted_room(api, alice, space)

    template = make_join(api, dave, room_id, dave.user("dave"))

    assert template.status == 200, template.body
    content = template.body["event"]["content"]
    assert content == {"membership": "join", "join_authorised_via_users_server": alice.user_id}
    alice_member = current_state(room_id)[("m.room.member", alice.user_id)]
    assert (
        alice_member in PDUEvent(template.body["event"], KNOWN_ROOM_VERSIONS["10"]).auth_event_ids
    )
    pdu = signed_from(dave, template.body)
    got = send_join(api, dave, room_id, pdu, "10")

    assert got.status == 200, got.body
    signed = got.body["event"]
    assert set(signed["signatures"]) == {"dave.test", settings.SERVER_NAME}
    assert event_id_of(signed, "10") == event_id_of(pdu, "10")
    stored = Event.objects.get(event_id=event_id_of(pdu, "10"))
    assert settings.SERVER_NAME in stored.pdu["signatures"]
    assert membership_of(room_id, dave.user("dave")) == "join"


def test_restricted_join_refusals(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    space = create_room(api, alice, preset="public_chat", room_version="10")
    room_id = _restricted_room(api, alice, space)
    user = dave.user("dave")

    # Dave is in none of the allowed rooms, all of which this server is in.
    got = make_join(api, dave, room_id, user)
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # An allowed room this server is not in: it cannot tell.
    elsewhere = _restricted_room(api, alice, "!unknown:dave.test")
    got = make_join(api, dave, elsewhere, user)
    assert (got.status, got.body["errcode"]) == (400, "M_UNABLE_TO_AUTHORISE_JOIN")
    # Dave is in the allowed room, but no local member may invite.
    remote_join(api, dave, space)
    powerless = _restricted_room(api, alice, space, power_level_content_override={"invite": 101})
    got = make_join(api, dave, powerless, user)
    assert (got.status, got.body["errcode"]) == (400, "M_UNABLE_TO_GRANT_JOIN")


def test_a_join_naming_a_local_authoriser_it_does_not_qualify_for_is_not_signed(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    space = create_room(api, alice, preset="public_chat", room_version="10")
    room_id = _restricted_room(api, alice, space)
    # A template forged from a public room's, naming alice.
    public = create_room(api, alice, preset="public_chat", room_version="10")
    template = make_join(api, dave, public, dave.user("dave")).body
    event = dict(template["event"])
    event["room_id"] = room_id
    event["content"] = {"membership": "join", "join_authorised_via_users_server": alice.user_id}
    pdu = signed_from(dave, {**template, "event": event})

    got = send_join(api, dave, room_id, pdu, "10")

    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    assert not Event.objects.filter(event_id=event_id_of(pdu, "10")).exists()


# --- omit_members ------------------------------------------------------------------------------


def test_omit_members_leaves_out_all_but_the_heroes_member_events(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    others = [api.register(f"member{n}") for n in range(6)]
    for member in others:
        join(api, member, room_id)
    remote_join(api, erin, room_id, "erin")
    before = current_state(room_id)
    template = make_join(api, dave, room_id, dave.user("dave"))
    pdu = signed_from(dave, template.body)

    got = send_join(api, dave, room_id, pdu, "12", query="?omit_members=true")

    assert got.status == 200, got.body
    assert got.body["members_omitted"] is True
    assert sorted(got.body["servers_in_room"]) == sorted([settings.SERVER_NAME, "erin.test"])
    state = ids_of(got.body["state"], "12")
    members = {
        key[1]
        for key, event_id in before.items()
        if event_id in state and key[0] == "m.room.member"
    }
    # No name: the heroes, the first five members to join.
    assert members == {alice.user_id, *(m.user_id for m in others[:4])}
    assert {e for k, e in before.items() if k[0] != "m.room.member"} <= state
    chain = ids_of(got.body["auth_chain"], "12")
    assert not chain & state
    # The heroes' member events are authorised by the join rules and power levels (in
    # the state) and by the members' own earlier events: whatever they cite is there.
    for pdu_ in got.body["state"]:
        cited = set(PDUEvent(pdu_, KNOWN_ROOM_VERSIONS["12"]).auth_event_ids)
        assert cited <= state | chain


def test_omit_members_in_a_named_room_keeps_only_the_joiners_own_member_event(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="private_chat", name="The room")
    response = api.post(
        f"rooms/{room_id}/invite", {"user_id": dave.user("dave")}, token=alice.access_token
    )
    assert response.status == 200
    before = current_state(room_id)
    template = make_join(api, dave, room_id, dave.user("dave"))
    pdu = signed_from(dave, template.body)

    got = send_join(api, dave, room_id, pdu, "12", query="?omit_members=true")

    assert got.status == 200, got.body
    state = ids_of(got.body["state"], "12")
    members = {k[1] for k, e in before.items() if e in state and k[0] == "m.room.member"}
    assert members == {dave.user("dave")}
    bad = send_join(api, dave, room_id, pdu, "12", query="?omit_members=maybe")
    assert (bad.status, bad.body["errcode"]) == (400, "M_INVALID_PARAM")


# --- make_leave and send_leave ----------------------------------------------------------------


def test_a_remote_user_leaves_through_make_leave_and_send_leave(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    remote_join(api, erin, room_id, "erin")
    remote_join(api, dave, room_id)
    OutboundPDU.objects.all().delete()
    user = dave.user("dave")

    template = fed(api, dave, "GET", f"{F}/make_leave/{room_id}/{user}")

    assert template.status == 200, template.body
    assert template.body["room_version"] == "12"
    assert template.body["event"]["content"] == {"membership": "leave"}
    pdu = signed_from(dave, template.body)
    leave_id = event_id_of(pdu, "12")
    got = fed(api, dave, "PUT", f"{F2}/send_leave/{room_id}/{leave_id}", pdu)

    assert (got.status, got.body) == (200, {})
    assert membership_of(room_id, user) == "leave"
    assert queued("erin.test") == [leave_id]
    assert queued("dave.test") == []


def test_v1_send_leave_and_leave_refusals(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer, erin: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    user = dave.user("dave")
    # Not in the room: nothing to leave.
    got = fed(api, dave, "GET", f"{F}/make_leave/{room_id}/{user}")
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # Another server's user.
    got = fed(api, dave, "GET", f"{F}/make_leave/{room_id}/{erin.user('erin')}")
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    remote_join(api, dave, room_id)
    template = fed(api, dave, "GET", f"{F}/make_leave/{room_id}/{user}").body
    # A join sent as a leave.
    join_pdu = signed_from(
        dave, {**template, "event": {**template["event"], "content": {"membership": "join"}}}
    )
    got = fed(
        api, dave, "PUT", f"{F2}/send_leave/{room_id}/{event_id_of(join_pdu, '12')}", join_pdu
    )
    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")

    pdu = signed_from(dave, template)
    got = fed(api, dave, "PUT", f"{F}/send_leave/{room_id}/{event_id_of(pdu, '12')}", pdu)

    assert (got.status, got.body) == (200, [200, {}])
    assert membership_of(room_id, user) == "leave"


def test_a_leave_breaking_the_room_versions_json_rules_is_bad_json_whatever_else(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    """(sytest 50federation/35room-invite) A float in a v6 room's event: 400 M_BAD_JSON,
    checked before the event ID in the path (here not even an event ID) is compared."""
    room_id = create_room(api, alice, preset="public_chat", room_version="6")
    remote_join(api, dave, room_id)
    user = dave.user("dave")
    template = fed(api, dave, "GET", f"{F}/make_leave/{room_id}/{user}").body
    pdu = signed_from(dave, {**template, "event": {**template["event"], "bad_val": 1.1}})

    got = fed(api, dave, "PUT", f"{F2}/send_leave/{room_id}/xxx", pdu)

    assert (got.status, got.body["errcode"]) == (400, "M_BAD_JSON"), got.body
    assert membership_of(room_id, user) == "join"


# --- a room every local user has left ---------------------------------------------------------


def test_a_room_every_local_user_left_takes_no_more_pdus(
    api: MatrixTestClient, alice: Persona, dave: RemoteServer
) -> None:
    room_id = create_room(api, alice, preset="public_chat")
    remote_join(api, dave, room_id)
    before = _message(dave, room_id, "before")
    got = fed(api, dave, "PUT", f"{F}/send/t1", _txn(before))
    assert got.body["pdus"] == {event_id_of(before, "12"): {}}
    leave(api, alice, room_id)
    alice_leave = current_state(room_id)[("m.room.member", alice.user_id)]
    assert queued("dave.test") == [alice_leave]

    after = _message(dave, room_id, "after")
    got = fed(api, dave, "PUT", f"{F}/send/t2", _txn(after))

    assert got.status == 200
    assert got.body["pdus"][event_id_of(after, "12")]["error"]
    assert not Event.objects.filter(event_id=event_id_of(after, "12")).exists()
    # Nothing more goes to the room's servers either.
    assert queued("dave.test") == [alice_leave]


def _message(server: RemoteServer, room_id: str, body: str) -> dict[str, Any]:
    """A message of dave's on the room's tips, signed by his server."""
    tips = list(
        ForwardExtremity.objects.filter(room__room_id=room_id).values_list("event_id", flat=True)
    )
    state = current_state(room_id)
    depth = max(Event.objects.filter(event_id__in=tips).values_list("depth", flat=True)) + 1
    user = server.user("dave")
    pdu = {
        "type": "m.room.message",
        "room_id": room_id,
        "sender": user,
        "content": {"msgtype": "m.text", "body": body},
        "origin_server_ts": 1_800_000_000_000 + depth,
        "depth": depth,
        "prev_events": tips,
        "auth_events": sorted(
            state[key] for key in [("m.room.power_levels", ""), ("m.room.member", user)]
        ),
    }
    return server.sign(add_content_hash(pdu), KNOWN_ROOM_VERSIONS["12"])


def _txn(*pdus: dict[str, Any]) -> dict[str, Any]:
    return {"origin": "dave.test", "origin_server_ts": 1, "pdus": list(pdus)}
