"""A local user joins a room this server is not in, through a resident server
(rooms.services.remote_membership): an alias of another server resolved through it,
make_join with every supported version, the join built from the template with the
user's profile, send_join v2, the room stored from the answer; the next server tried
when one fails; the client told 403 or 404; restricted joins countersigned by the
resident; then the room's life here: events arriving, local events and the leave
queued for the resident, a second local user joining locally, PDUs refused once every
local user has left, and a rejoin through make_join again.

Carol's server (carol.example:8448) is the resident: tests/rooms/resident.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from federation.models import OutboundPDU
from federation.transport import HttpResponse
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.models import CurrentState, Event, Membership, Room
from rooms.services.events import insert_row
from rooms.services.incoming import receive_joined_room
from tests.conftest import MatrixTestClient, Persona, Response
from tests.federation.helpers import FakeNetwork, json_response, network
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import bodies, leave, messages, room_path, send
from tests.rooms.remote_servers import local_server
from tests.rooms.resident import Resident, ResidentNetwork, residents

__all__ = ["network", "residents"]

CAROL_SERVER = "carol.example:8448"
CAROL = f"@carol:{CAROL_SERVER}"
ALIAS = f"#room:{CAROL_SERVER}"


@pytest.fixture
def carol(residents: ResidentNetwork) -> Resident:
    return residents.add(RemoteServer(CAROL_SERVER))


def carols_room(carol: Resident, version: str = "11", **kwargs: Any) -> RemoteRoom:
    room = carol.server.create_room(CAROL, version, **kwargs)
    room.send(CAROL, "m.room.message", {"msgtype": "m.text", "body": "welcome"})
    carol.aliases[ALIAS] = room.room_id
    return room


def join(
    api: MatrixTestClient, who: Persona, target: str, *, via: list[str] | None = None
) -> Response:
    query = "&".join(f"via={quote(server)}" for server in via or [])
    path = f"join/{quote(target, safe='')}" + (f"?{query}" if query else "")
    return api.post(path, {}, token=who.access_token)


def current_state(room_id: str) -> dict[tuple[str, str], str]:
    rows = CurrentState.objects.filter(room__room_id=room_id)
    return {(r.type, r.state_key): r.event_id for r in rows}


def membership_of(room_id: str, user_id: str) -> str | None:
    row = Membership.objects.filter(room__room_id=room_id, user_id=user_id).first()
    return row.membership if row is not None else None


def deliver(api: MatrixTestClient, carol: Resident, txn_id: str, *pdus: dict[str, Any]) -> Any:
    """Carol's server sends its PDUs to this one (PUT /send); the per-PDU results."""
    body = {"origin": CAROL_SERVER, "origin_server_ts": 1, "pdus": list(pdus)}
    got = fed(api, carol.server, "PUT", f"{F}/send/{txn_id}", body)
    assert got.status == 200, got.body
    return got.body["pdus"]


def event_id(room: RemoteRoom, pdu: dict[str, Any]) -> str:
    return PDUEvent(pdu, room.room_version).event_id


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_a_local_user_joins_a_remote_room_by_its_alias(
    api: MatrixTestClient, alice: Persona, carol: Resident, version: str
) -> None:
    room = carols_room(carol, version)

    got = join(api, alice, ALIAS)

    assert got.status == 200, got.body
    assert got.body == {"room_id": room.room_id}
    # Every version this server supports was offered; partial state accepted.
    (make_join,) = [path for _m, path in carol.requests if "/make_join/" in path]
    assert all(f"ver={v}" in make_join for v in KNOWN_ROOM_VERSIONS)
    (send_join,) = [path for _m, path in carol.requests if "/send_join/" in path]
    assert send_join.startswith("/_matrix/federation/v2/")
    assert send_join.endswith("?omit_members=true")
    (join_id,) = carol.joins
    assert join_id not in room.reference.rejected
    assert room.event(join_id).content == {"membership": "join", "displayname": "alice"}
    # The room here is the resident's, the join its newest event.
    assert current_state(room.room_id) == room.reference.state_after[join_id]
    assert membership_of(room.room_id, alice.user_id) == "join"
    row = Event.objects.get(event_id=join_id)
    assert (row.outlier, row.rejected_reason, row.soft_failed) == (False, None, False)
    # The join is carol's to send on: nothing queued here.
    assert not OutboundPDU.objects.exists()


def test_the_room_lives_on_after_the_join_and_stops_at_the_last_leave(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Resident
) -> None:
    room = carols_room(carol)
    assert join(api, alice, room.room_id).status == 200
    # The room ID's server was asked: it names carol's.
    assert carol.made_joins() == 1

    hello = room.send(CAROL, "m.room.message", {"msgtype": "m.text", "body": "hello alice"})
    assert deliver(api, carol, "t1", hello) == {event_id(room, hello): {}}
    timeline = messages(api, alice, room.room_id, dir="b", limit=10).body["chunk"]
    assert bodies(timeline)[0] == "hello alice"

    # Local events go to carol's server.
    reply = send(api, alice, room.room_id, "hello carol")
    assert carol.take_outbound() == [reply]
    # A second local user joins here: no make_join, the join queued for carol.
    assert join(api, bob, room.room_id).status == 200
    assert carol.made_joins() == 1
    bob_join = current_state(room.room_id)[("m.room.member", bob.user_id)]
    assert carol.take_outbound() == [bob_join]

    leave(api, bob, room.room_id)
    leave(api, alice, room.room_id)
    leaves = carol.take_outbound()
    assert len(leaves) == 2
    assert membership_of(room.room_id, alice.user_id) == "leave"
    # Every local user left: carol's next events are refused.
    later = room.send(CAROL, "m.room.message", {"msgtype": "m.text", "body": "still there?"})
    assert "error" in deliver(api, carol, "t2", later)[event_id(room, later)]
    assert not Event.objects.filter(event_id=event_id(room, later)).exists()

    # A rejoin goes through carol again, and the room picks up from her state.
    assert join(api, alice, room.room_id).status == 200
    assert carol.made_joins() == 2
    rejoin = carol.joins[-1]
    assert membership_of(room.room_id, alice.user_id) == "join"
    assert current_state(room.room_id)[("m.room.member", alice.user_id)] == rejoin
    after = room.send(CAROL, "m.room.message", {"msgtype": "m.text", "body": "welcome back"})
    assert deliver(api, carol, "t3", after) == {event_id(room, after): {}}


def test_the_next_server_is_tried_when_one_fails(
    api: MatrixTestClient, alice: Persona, carol: Resident, network: FakeNetwork
) -> None:
    # Room version 12: the room ID names no server; the client must.
    room = carols_room(carol, "12")

    got = join(api, alice, room.room_id, via=["gone.example:8448", CAROL_SERVER])

    assert got.status == 200, got.body
    assert membership_of(room.room_id, alice.user_id) == "join"
    assert any(r.target.host_header == "gone.example:8448" for r in network.sent)


def test_a_room_no_server_knows_is_not_found(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol, "12")
    # No server to ask at all.
    got = join(api, alice, room.room_id)
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    assert carol.requests == []
    # Servers that do not know it.
    got = join(api, alice, "!unknown:carol.example:8448", via=["gone.example:8448"])
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    # An alias carol's server does not have.
    got = join(api, alice, f"#nothing:{CAROL_SERVER}")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    assert not Membership.objects.filter(user_id=alice.user_id).exists()


def test_a_refused_join_is_forbidden(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol)
    carol.refuse["make_join"] = _forbidden()

    got = join(api, alice, ALIAS)

    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    assert CAROL_SERVER in got.body["error"]
    assert not Event.objects.filter(room__room_id=room.room_id).exists()


@pytest.mark.parametrize(
    ("answer", "status", "errcode", "extra"),
    [
        (
            {"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "no", "room_version": "x-1"},
            400,
            "M_INCOMPATIBLE_ROOM_VERSION",
            {"room_version": "x-1"},
        ),
        ({"errcode": "M_TEST_ERROR_CODE", "error": "denied!"}, 400, "M_TEST_ERROR_CODE", {}),
    ],
)
def test_a_make_join_refusal_reaches_the_client_with_its_errcode(
    api: MatrixTestClient,
    alice: Persona,
    carol: Resident,
    answer: dict[str, str],
    status: int,
    errcode: str,
    extra: dict[str, str],
) -> None:
    """As Synapse passes them through (sytest: "Outbound federation passes make_join
    failures through to the client"), with the room version the other server named; the
    other server's text is not passed on."""
    carols_room(carol)
    carol.refuse["make_join"] = json_response(answer, 400)

    got = join(api, alice, ALIAS)

    assert (got.status, got.body["errcode"]) == (status, errcode)
    assert {key: got.body[key] for key in extra} == extra
    assert "denied!" not in got.body["error"]


def test_a_join_the_residents_state_rejects_is_forbidden(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    # The template is answered, but the room is invite-only: carol's server rejects
    # the join at send_join.
    room = carols_room(carol, join_rule="invite")

    got = join(api, alice, ALIAS)

    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    assert membership_of(room.room_id, alice.user_id) is None


def test_a_template_for_someone_else_is_passed_over(
    api: MatrixTestClient, alice: Persona, carol: Resident, residents: ResidentNetwork
) -> None:
    room = carols_room(carol)
    dave = residents.add(RemoteServer("dave.example:8448"))
    room.add_server(dave.server)
    dave.template_for = "@mallory:localhost:8008"

    got = join(api, alice, room.room_id, via=["dave.example:8448"])

    assert got.status == 200, got.body
    assert dave.made_joins() == 1
    assert dave.joins == []
    assert carol.joins != []


def test_a_restricted_join_takes_the_residents_countersigned_event(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol, "10", join_rule="restricted")
    carol.authoriser = CAROL

    got = join(api, alice, ALIAS)

    assert got.status == 200, got.body
    (join_id,) = carol.joins
    stored = Event.objects.get(event_id=join_id)
    assert set(stored.pdu["signatures"]) == {"localhost:8008", CAROL_SERVER}
    assert stored.pdu["content"]["join_authorised_via_users_server"] == CAROL
    assert membership_of(room.room_id, alice.user_id) == "join"


def test_the_resident_not_supporting_v2_send_join_is_asked_v1(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol)
    carol.refuse["send_join"] = _unrecognized()

    got = join(api, alice, ALIAS)

    # The fake resident has no v1 either: the join fails, after asking both.
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    paths = [path for _m, path in carol.requests if "/send_join/" in path]
    assert [p.split("/")[3] for p in paths] == ["v2", "v1"]
    assert membership_of(room.room_id, alice.user_id) is None


def test_invalid_via_is_refused(api: MatrixTestClient, alice: Persona) -> None:
    got = api.post(
        f"join/{quote('!room:example.org', safe='')}?via=not%20a%20server",
        {},
        token=alice.access_token,
    )
    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")


def test_the_room_join_endpoint_joins_remote_rooms_too(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol)

    got = api.post(room_path(room.room_id, "join"), {}, token=alice.access_token)

    assert got.status == 200, got.body
    assert membership_of(room.room_id, alice.user_id) == "join"


def test_a_remote_join_keeps_the_bodys_reason_and_content_keys(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    room = carols_room(carol)

    body = {"reason": "looking for support", "foo": "bar"}
    got = api.post(room_path(room.room_id, "join"), body, token=alice.access_token)

    assert got.status == 200, got.body
    (join_id,) = carol.joins
    assert room.event(join_id).content == {
        "membership": "join",
        "displayname": "alice",
        "reason": "looking for support",
        "foo": "bar",
    }


def test_a_profile_change_reaches_a_room_joined_over_federation(
    api: MatrixTestClient,
    alice: Persona,
    carol: Resident,
    django_capture_on_commit_callbacks: Any,
) -> None:
    room = carols_room(carol)
    assert join(api, alice, room.room_id).status == 200

    with django_capture_on_commit_callbacks() as after_commit:
        got = api.put(
            f"profile/{alice.user_id}/displayname",
            {"displayname": "Alicia"},
            token=alice.access_token,
        )
    # The propagation task runs (eager); what it queues stays queued for take_outbound.
    for callback in after_commit:
        callback()

    assert got.status == 200, got.body
    member_id = current_state(room.room_id)[("m.room.member", alice.user_id)]
    assert member_id not in carol.joins
    assert carol.take_outbound() == [member_id]
    assert room.event(member_id).content == {"membership": "join", "displayname": "Alicia"}
    assert member_id not in room.reference.rejected


def _forbidden() -> HttpResponse:
    return json_response({"errcode": "M_FORBIDDEN", "error": "not invited"}, 403)


def _unrecognized() -> HttpResponse:
    return json_response({"errcode": "M_UNRECOGNIZED", "error": "Unrecognized"}, 404)


def test_an_invited_user_joins_through_the_inviters_server(
    api: MatrixTestClient, alice: Persona, carol: Resident
) -> None:
    # Room version 12: the room ID names no server, and the client names none either.
    room = carols_room(carol, "12", join_rule="invite")
    invite = room.member(CAROL, alice.user_id, "invite")
    # The invite as this server keeps one that came over federation: the event stored
    # as an outlier, the invitee's membership pointing at it.
    stored = Room.objects.create(room_id=room.room_id, room_version="12", creator=CAROL)
    insert_row(stored, PDUEvent(invite, room.room_version), stream_ordering=None, outlier=True)
    Membership.objects.create(
        room=stored,
        user_id=alice.user_id,
        membership="invite",
        event_id=event_id(room, invite),
        stream_ordering=0,
    )

    got = join(api, alice, room.room_id)

    assert got.status == 200, got.body
    assert carol.made_joins() == 1
    assert membership_of(room.room_id, alice.user_id) == "join"


# --- a big room's answer ----------------------------------------------------------------------


def _crowded_room(carol: Resident, alias: str, size: int) -> RemoteRoom:
    """Carol's room with ``size`` more members of her server and ``size`` more state
    events."""
    room = carols_room(carol)
    carol.aliases[alias] = room.room_id
    for i in range(size):
        member = f"@member{i}:{CAROL_SERVER}"
        room.member(member, member, "join")
        room.send(CAROL, "org.example.state", {"i": i}, state_key=f"key{i}")
    return room


def test_joining_a_bigger_room_takes_no_more_queries(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Resident
) -> None:
    """The answer's events are checked and stored in bulk: no query per event (the
    signing keys read once, the outliers inserted together, their auth events judged
    in memory). (Up to the database's limit on parameters: SQLite's takes a statement
    per ~50 events inserted.)"""
    counts = []
    # The first join warms what any first request does (a room of its own, uncounted).
    for who, size in ((bob, 1), (alice, 5), (alice, 15)):
        alias = f"#room{size}-{who.localpart}:{CAROL_SERVER}"
        room = _crowded_room(carol, alias, size)
        with CaptureQueriesContext(connection) as queries:
            got = join(api, who, room.room_id)
        assert got.status == 200, got.body
        assert membership_of(room.room_id, who.user_id) == "join"
        assert current_state(room.room_id) == room.reference.state_after[carol.joins[-1]]
        counts.append(len(queries.captured_queries))

    assert counts[1] == counts[2], counts


def test_the_answers_events_are_judged_by_their_own_auth_events(alice: Persona) -> None:
    """Check 4 for every event of a send_join answer, made on the events of the answer
    itself: one failing it is stored rejected, one citing a rejected event is rejected
    too, one citing an event nobody has is dropped; the join still goes through."""
    carol = RemoteServer(CAROL_SERVER)
    carol.install_keys()
    room = carol.create_room(CAROL, join_rule="invite")
    room.add_server(local_server())
    eve = f"@eve:{CAROL_SERVER}"
    # Not invited: her join fails the join rules it cites.
    eve_join = room.build(
        eve, "m.room.member", {"membership": "join"}, state_key=eve, auth=["CREATE", "POWER", "JR"]
    )
    eve_topic = room.build(
        eve,
        "m.room.topic",
        {"topic": "eve's"},
        state_key="",
        auth=["CREATE", "POWER", event_id(room, eve_join)],
    )
    orphan = room.build(
        CAROL,
        "m.room.name",
        {"name": "orphan"},
        state_key="",
        auth=["CREATE", "POWER", "JOIN", "$notknownanywhere"],
    )
    room.member(CAROL, alice.user_id, "invite")
    join_pdu = room.member(alice.user_id, alice.user_id, "join")
    join_id = event_id(room, join_pdu)
    state_ids, chain_ids = carol.get_state_ids(room.room_id, join_id)
    state = carol.get_events(room.room_id, state_ids)
    # The chain in any order: each event is judged after the auth events it cites.
    chain = [eve_topic, orphan, *reversed(carol.get_events(room.room_id, chain_ids)), eve_join]

    row = receive_joined_room(join_pdu, state, chain, origin=CAROL_SERVER)

    assert (row.outlier, row.rejected_reason, row.soft_failed) == (False, None, False)
    rejected = dict(
        Event.objects.filter(
            event_id__in=[event_id(room, eve_join), event_id(room, eve_topic)]
        ).values_list("event_id", "rejected_reason")
    )
    assert rejected[event_id(room, eve_join)].startswith("auth events:")
    assert rejected[event_id(room, eve_topic)] == (
        f"auth events: auth event {event_id(room, eve_join)} was rejected"
    )
    assert not Event.objects.filter(event_id=event_id(room, orphan)).exists()
    # The state is stored, and is the room's.
    assert set(state_ids) <= set(Event.objects.values_list("event_id", flat=True))
    assert current_state(room.room_id) == room.reference.state_after[join_id]
    assert membership_of(room.room_id, alice.user_id) == "join"
