"""What this server serves other servers about a room (rooms.federation): each endpoint's
answer, and its refusals: unsigned, unknown room, a server the ACL denies, a server not in
the room, history the server may not see.

The room is Carol's (carol.test), delivered here through the pipeline; Dave's server
(dave.test) joins it later, after history visibility was set to ``joined``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings

from protocol.events import Event as PDUEvent
from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona
from tests.graph.delivery import deliver, deliver_all, install_keys
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import create_room, set_state

CAROL = "@carol:carol.test"
DAVE = "@dave:dave.test"
DIRECTORY = f"{F}/query/directory?room_alias="


def _missing(event_id: str) -> dict[str, Any]:
    return {"earliest_events": [], "latest_events": [event_id]}


def _sorted(pdus: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pdus, key=lambda pdu: json.dumps(pdu, sort_keys=True))


@dataclass
class Scene:
    carol: RemoteServer
    dave: RemoteServer
    eve: RemoteServer
    room: RemoteRoom


@pytest.fixture
def scene(db: None) -> Scene:
    """Carol's room: created ``shared``, "before" sent, then ``joined``, "hidden" sent,
    then Dave joins and "after" is sent. Eve's server never joins."""
    carol, dave = RemoteServer("carol.test"), RemoteServer("dave.test")
    eve = RemoteServer("eve.test")
    room = carol.create_room(CAROL)
    room.add_server(dave)
    room.send(CAROL, "m.room.message", {"body": "before"}, name="BEFORE")
    room.send(
        CAROL,
        "m.room.history_visibility",
        {"history_visibility": "joined"},
        state_key="",
        name="HV_JOINED",
    )
    room.send(CAROL, "m.room.message", {"body": "hidden"}, name="HIDDEN")
    room.member(DAVE, DAVE, "join", name="DAVE_JOIN")
    room.send(CAROL, "m.room.message", {"body": "after"}, name="AFTER")
    install_keys(room)
    eve.install_keys()
    deliver_all(room, room.delivery_pdus())
    return Scene(carol, dave, eve, room)


def test_event_is_served_as_a_transaction(api: MatrixTestClient, scene: Scene) -> None:
    event_id = scene.room.id("AFTER")
    got = fed(api, scene.dave, "GET", f"{F}/event/{event_id}")

    assert got.status == 200, got.body
    assert got.body["origin"] == settings.SERVER_NAME
    assert isinstance(got.body["origin_server_ts"], int)
    assert got.body["pdus"] == [scene.room.pdus[event_id]]


def test_history_the_server_may_not_see_is_refused(api: MatrixTestClient, scene: Scene) -> None:
    hidden = scene.room.id("HIDDEN")
    got = fed(api, scene.dave, "GET", f"{F}/event/{hidden}")
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")
    # Shared history before the change is visible; so is Dave's own join.
    for name in ("BEFORE", "HV_JOINED", "DAVE_JOIN"):
        event_id = scene.room.id(name)
        assert fed(api, scene.dave, "GET", f"{F}/event/{event_id}").status == 200, name
    # Carol's server sees everything.
    assert fed(api, scene.carol, "GET", f"{F}/event/{hidden}").status == 200
    got = fed(api, scene.dave, "GET", f"{F}/state_ids/{scene.room.room_id}?event_id={hidden}")
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")


def test_a_server_not_in_the_room_is_refused(api: MatrixTestClient, scene: Scene) -> None:
    room_id, event_id = scene.room.room_id, scene.room.id("BEFORE")
    for method, path, body in [
        ("GET", f"{F}/event/{event_id}", None),
        ("GET", f"{F}/state_ids/{room_id}?event_id={event_id}", None),
        ("GET", f"{F}/state/{room_id}?event_id={event_id}", None),
        ("GET", f"{F}/event_auth/{room_id}/{event_id}", None),
        ("GET", f"{F}/backfill/{room_id}?v={event_id}&limit=5", None),
        ("POST", f"{F}/get_missing_events/{room_id}", _missing(event_id)),
        ("GET", f"{F}/timestamp_to_event/{room_id}?ts=0&dir=f", None),
    ]:
        got = fed(api, scene.eve, method, path, body)
        assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN"), path


def test_unsigned_requests_are_unauthorized(api: MatrixTestClient, scene: Scene) -> None:
    room_id, event_id = scene.room.room_id, scene.room.id("BEFORE")
    for method, path in [
        ("GET", f"{F}/event/{event_id}"),
        ("GET", f"{F}/state_ids/{room_id}?event_id={event_id}"),
        ("GET", f"{F}/version"),
        ("PUT", f"{F}/send/t1"),
    ]:
        got = fed(api, None, method, path, {} if method == "PUT" else None)
        assert (got.status, got.body["errcode"]) == (401, "M_UNAUTHORIZED"), path


def test_state_without_an_event_id_is_malformed_whatever_the_room(
    api: MatrixTestClient, scene: Scene
) -> None:
    """The missing parameter is found before the room is looked up (sytest: "Inbound
    federation of state requires event_id as a mandatory paramater")."""
    for endpoint in ("state", "state_ids"):
        for room_id in (scene.room.room_id, "notaroombutitdoesntmatter"):
            got = fed(api, scene.dave, "GET", f"{F}/{endpoint}/{room_id}")
            assert (got.status, got.body["errcode"]) == (400, "M_MISSING_PARAM"), endpoint


def test_unknown_rooms_and_events_are_not_found(api: MatrixTestClient, scene: Scene) -> None:
    event_id = scene.room.id("BEFORE")
    got = fed(api, scene.dave, "GET", f"{F}/state_ids/!nowhere:carol.test?event_id={event_id}")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    got = fed(api, scene.dave, "GET", f"{F}/backfill/!nowhere:carol.test?v={event_id}&limit=1")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    got = fed(api, scene.dave, "GET", f"{F}/event/$unknown")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    got = fed(api, scene.dave, "GET", f"{F}/state_ids/{scene.room.room_id}?event_id=$unknown")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")


def test_a_server_the_acl_denies_is_forbidden(api: MatrixTestClient, scene: Scene) -> None:
    room = scene.room
    acl = room.send(
        CAROL,
        "m.room.server_acl",
        {"allow": ["*"], "deny": ["dave.test"]},
        state_key="",
        name="ACL",
    )
    deliver(room, acl)
    event_id = room.id("BEFORE")
    for method, path, body in [
        ("GET", f"{F}/event/{event_id}", None),
        ("GET", f"{F}/state_ids/{room.room_id}?event_id={event_id}", None),
        ("GET", f"{F}/backfill/{room.room_id}?v={event_id}&limit=5", None),
        ("POST", f"{F}/get_missing_events/{room.room_id}", _missing(event_id)),
    ]:
        got = fed(api, scene.dave, method, path, body)
        assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN"), path
    # Carol's server is still allowed.
    assert fed(api, scene.carol, "GET", f"{F}/event/{event_id}").status == 200


def test_state_and_state_ids_are_the_state_before_the_event(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    join = room.id("DAVE_JOIN")
    expected = sorted(room.reference.state_before[join].values())
    got = fed(api, scene.dave, "GET", f"{F}/state_ids/{room.room_id}?event_id={join}")
    assert got.status == 200, got.body
    assert sorted(got.body["pdu_ids"]) == expected
    assert join not in got.body["pdu_ids"]
    chain = room.reference.auth_chain_ids(expected) - set(expected)
    assert set(got.body["auth_chain_ids"]) == chain

    full = fed(api, scene.dave, "GET", f"{F}/state/{room.room_id}?event_id={join}")
    assert full.status == 200, full.body
    assert _sorted(full.body["pdus"]) == _sorted(room.pdus[e] for e in expected)
    assert len(full.body["auth_chain"]) == len(chain)


def test_the_state_at_a_rejected_event_is_not_found(api: MatrixTestClient, scene: Scene) -> None:
    """(sytest 50federation/36state) A rejected event is no part of the room's graph
    here (backfill and /get_missing_events leave it out): the state at it is not served,
    as at an outlier."""
    room = scene.room
    pdu = room.send("@mallory:dave.test", "m.room.message", {"body": "no member"}, name="REJ")
    deliver(room, pdu)
    rejected = room.id("REJ")
    assert Event.objects.get(event_id=rejected).rejected_reason is not None

    for endpoint in ("state", "state_ids"):
        got = fed(api, scene.dave, "GET", f"{F}/{endpoint}/{room.room_id}?event_id={rejected}")
        assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND"), endpoint


def test_event_auth_is_the_auth_chain(api: MatrixTestClient, scene: Scene) -> None:
    room = scene.room
    join = room.id("DAVE_JOIN")
    got = fed(api, scene.dave, "GET", f"{F}/event_auth/{room.room_id}/{join}")

    assert got.status == 200, got.body
    chain = room.reference.auth_chain_ids(room.event("DAVE_JOIN").auth_event_ids)
    chain |= set(room.event("DAVE_JOIN").auth_event_ids)
    assert _sorted(got.body["auth_chain"]) == _sorted(room.pdus[e] for e in chain)


def test_backfill_walks_back_from_v_and_redacts_what_is_not_visible(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    after = room.id("AFTER")
    got = fed(api, scene.dave, "GET", f"{F}/backfill/{room.room_id}?v={after}&limit=4")

    assert got.status == 200, got.body
    labels = [room.label(pdu_id) for pdu_id in _ids(room, got.body["pdus"])]
    assert labels == ["AFTER", "DAVE_JOIN", "HIDDEN", "HV_JOINED"]
    hidden = got.body["pdus"][2]
    assert hidden["content"] == {}
    assert got.body["pdus"][0]["content"] == {"body": "after"}
    # The limit is bounded, and counts the events of v.
    got = fed(api, scene.dave, "GET", f"{F}/backfill/{room.room_id}?v={after}&limit=1")
    assert len(got.body["pdus"]) == 1


def test_get_missing_events_walks_the_gap_oldest_first(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    body = {
        "earliest_events": [room.id("HV_JOINED")],
        "latest_events": [room.id("AFTER")],
        "limit": 10,
    }
    got = fed(api, scene.carol, "POST", f"{F}/get_missing_events/{room.room_id}", body)

    assert got.status == 200, got.body
    assert [room.label(e) for e in _ids(room, got.body["events"])] == ["HIDDEN", "DAVE_JOIN"]
    # min_depth leaves out the older ones.
    body["min_depth"] = room.event("DAVE_JOIN").depth
    got = fed(api, scene.carol, "POST", f"{F}/get_missing_events/{room.room_id}", body)
    assert [room.label(e) for e in _ids(room, got.body["events"])] == ["DAVE_JOIN"]


def test_timestamp_to_event_finds_the_closest_visible_event(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    hidden = room.event("HIDDEN")
    path = f"{F}/timestamp_to_event/{room.room_id}?ts={hidden.origin_server_ts}&dir="
    got = fed(api, scene.carol, "GET", path + "f")
    assert got.body == {"event_id": hidden.event_id, "origin_server_ts": hidden.origin_server_ts}
    # Dave may not see "hidden": the next event he may see, and the one before.
    got = fed(api, scene.dave, "GET", path + "f")
    assert got.body["event_id"] == room.id("DAVE_JOIN")
    got = fed(api, scene.dave, "GET", path + "b")
    assert got.body["event_id"] == room.id("HV_JOINED")
    got = fed(api, scene.dave, "GET", f"{F}/timestamp_to_event/{room.room_id}?ts=1&dir=b")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")


def _ids(room: RemoteRoom, pdus: list[dict[str, Any]]) -> list[str]:
    return [PDUEvent(pdu, room.room_version).event_id for pdu in pdus]


def test_version(api: MatrixTestClient, scene: Scene) -> None:
    got = fed(api, scene.eve, "GET", f"{F}/version")
    assert got.status == 200
    assert got.body["server"]["name"] == "Trellis"
    assert isinstance(got.body["server"]["version"], str)


def test_query_directory_resolves_local_aliases(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    room_id = create_room(api, alice, room_alias_name="lobby")
    got = fed(api, scene.eve, "GET", DIRECTORY + f"%23lobby:{settings.SERVER_NAME}")
    assert got.status == 200, got.body
    assert got.body == {"room_id": room_id, "servers": [settings.SERVER_NAME]}
    got = fed(api, scene.eve, "GET", DIRECTORY + f"%23nothing:{settings.SERVER_NAME}")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    got = fed(api, scene.eve, "GET", DIRECTORY + "%23lobby:elsewhere.test")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")


def test_query_profile(api: MatrixTestClient, alice: Persona, scene: Scene) -> None:
    token = alice.access_token
    api.put(f"profile/{alice.user_id}/displayname", {"displayname": "Alice"}, token=token)
    profile = f"{F}/query/profile?user_id={alice.user_id}"
    got = fed(api, scene.eve, "GET", profile)
    assert got.status == 200, got.body
    assert got.body["displayname"] == "Alice"
    got = fed(api, scene.eve, "GET", profile + "&field=displayname")
    assert got.body == {"displayname": "Alice"}
    got = fed(api, scene.eve, "GET", profile + "&field=avatar_url")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")
    got = fed(api, scene.eve, "GET", f"{F}/query/profile?user_id=@nobody:{settings.SERVER_NAME}")
    assert (got.status, got.body["errcode"]) == (404, "M_NOT_FOUND")


def test_events_of_a_local_room_are_served_to_a_server_in_it(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    """A room made here: its stored PDUs are what is served (signed by this server)."""
    room_id = create_room(api, alice, preset="public_chat")
    set_state(api, alice, room_id, "m.room.topic", {"topic": "t"})
    topic = Event.objects.get(room__room_id=room_id, type="m.room.topic")
    got = fed(api, scene.eve, "GET", f"{F}/event/{topic.event_id}")
    # Eve's server has nobody in the room.
    assert (got.status, got.body["errcode"]) == (403, "M_FORBIDDEN")


def test_invited_history_is_visible_from_the_invite_on(api: MatrixTestClient, db: None) -> None:
    """``invited``: a server sees events from its user's invite on, not before."""
    carol, dave = RemoteServer("carol.test"), RemoteServer("dave.test")
    room = carol.create_room(CAROL, history_visibility="invited")
    room.add_server(dave)
    room.send(CAROL, "m.room.message", {"body": "before"}, name="BEFORE")
    room.member(CAROL, DAVE, "invite", name="INVITE")
    room.send(CAROL, "m.room.message", {"body": "while invited"}, name="INVITED")
    room.member(DAVE, DAVE, "join", name="DAVE_JOIN")
    install_keys(room)
    deliver_all(room, room.delivery_pdus())

    def status(name: str) -> int:
        return fed(api, dave, "GET", f"{F}/event/{room.id(name)}").status

    assert [status(n) for n in ("BEFORE", "INVITE", "INVITED", "DAVE_JOIN")] == [
        403,
        200,
        200,
        200,
    ]
