"""Forged and broken input from other servers, over the real endpoints, as local members
see it: a room on Carol's server (with Dave's in it) that Alice joined. Whatever a server
sends (a PDU with a bad signature or content hash, one its sender had no power to send,
one of another server's user, one from a server the room's ACL denies, a transaction
over the limits, a request unsigned or badly signed, PDUs of every wrong shape), Alice's
/sync, /messages and /state do not change but as the spec says they must (a PDU whose
content hash fails is kept redacted), and nothing is answered with a 500."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings

from federation.models import InboundPdu
from protocol.events import Event as PDUEvent
from protocol.signing import generate_signing_key
from protocol.x_matrix import format_authorization, sign_request
from rooms.models import Event
from tests.conftest import MatrixTestClient, Persona, Response
from tests.graph.delivery import deliver, deliver_all, install_keys
from tests.graph.remote import RemoteRoom, RemoteServer
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import messages, state_map
from tests.rooms.remote_servers import ServingNetwork, join_through, serving
from tests.sync.helpers import joined, sync

__all__ = ["serving"]

CAROL_SERVER = "carol.example:8448"
DAVE_SERVER = "dave.test"
CAROL = f"@carol:{CAROL_SERVER}"
DAVE = f"@dave:{DAVE_SERVER}"


@dataclass
class Scene:
    carol: RemoteServer
    dave: RemoteServer
    room: RemoteRoom
    alice: Persona


@dataclass(frozen=True)
class View:
    """What Alice sees of the room."""

    timeline: list[str]
    state: dict[tuple[str, str], str]


@pytest.fixture
def scene(api: MatrixTestClient, alice: Persona, serving: ServingNetwork) -> Scene:
    carol, dave = RemoteServer(CAROL_SERVER), RemoteServer(DAVE_SERVER)
    room = carol.create_room(CAROL)
    room.add_server(dave)
    room.member(DAVE, DAVE, "join")
    room.send(CAROL, "m.room.message", {"body": "before"})
    install_keys(room)
    deliver_all(room, room.delivery_pdus())
    serving.add(carol)
    serving.add(dave)
    join_through(room, carol, alice.user_id)
    deliver(room, room.send(CAROL, "m.room.message", {"body": "welcome"}))
    # The history before Alice's join is fetched now, once (tests/rooms/test_backfill.py).
    view(api, Scene(carol, dave, room, alice))
    return Scene(carol, dave, room, alice)


def view(api: MatrixTestClient, scene: Scene) -> View:
    room_id = scene.room.room_id
    page = messages(api, scene.alice, room_id, dir="b", limit=100)
    assert page.status == 200, page.body
    assert "end" not in page.body
    state = {key: event["event_id"] for key, event in state_map(api, scene.alice, room_id).items()}
    return View([e["event_id"] for e in page.body["chunk"]], state)


def event_id(room: RemoteRoom, pdu: dict[str, Any]) -> str:
    return PDUEvent(pdu, room.room_version).event_id


def send(
    api: MatrixTestClient, server: RemoteServer | None, body: Any, txn_id: str = "t1"
) -> Response:
    """PUT /send/{txnId} from ``server``, signed by it."""
    return fed(api, server, "PUT", f"{F}/send/{txn_id}", body)


def txn(origin: str, *pdus: Any, edus: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"origin": origin, "origin_server_ts": 1, "pdus": list(pdus)}
    if edus is not None:
        body["edus"] = edus
    return body


def assert_unchanged(api: MatrixTestClient, scene: Scene, before: View, since: str) -> None:
    """Alice's /messages and /state are as before, and her /sync since then is empty."""
    assert view(api, scene) == before
    assert scene.room.room_id not in joined(sync(api, scene.alice, since=since, timeout=0))


def test_a_pdu_with_a_bad_signature_is_refused_and_seen_by_no_one(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    forged = room.forge_bad_signature(room.build(CAROL, "m.room.message", {"body": "forged"}))

    got = send(api, scene.carol, txn(CAROL_SERVER, forged))

    assert got.status == 200, got.body
    assert "signature" in got.body["pdus"][event_id(room, forged)]["error"]
    assert not Event.objects.filter(event_id=event_id(room, forged)).exists()
    assert_unchanged(api, scene, before, since)


def test_a_pdu_whose_content_hash_fails_is_kept_redacted(
    api: MatrixTestClient, scene: Scene
) -> None:
    """Server-Server API, "Checks performed on receipt of a PDU", 3: the event is redacted
    before it is processed further. Alice sees it, but never the changed content."""
    room = scene.room
    since = sync(api, scene.alice)["next_batch"]
    tampered = room.send(
        CAROL,
        "m.room.message",
        {"msgtype": "m.text", "body": "signed"},
        content_after_hashing={"msgtype": "m.text", "body": "tampered"},
    )

    got = send(api, scene.carol, txn(CAROL_SERVER, tampered))

    assert got.body == {"pdus": {event_id(room, tampered): {}}}
    timeline = joined(sync(api, scene.alice, since=since, timeout=0))[room.room_id]["timeline"]
    (seen,) = timeline["events"]
    assert (seen["event_id"], seen["content"]) == (event_id(room, tampered), {})
    page = messages(api, scene.alice, room.room_id, dir="b", limit=1)
    assert page.body["chunk"][0]["content"] == {}
    assert "tampered" not in json.dumps(Event.objects.get(event_id=seen["event_id"]).pdu)


def test_an_event_its_sender_had_no_power_to_send_is_rejected(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    # Dave (power 0) gives himself power, and changes the topic, which needs 50.
    grab = room.build(
        DAVE, "m.room.power_levels", {"users": {CAROL: 100, DAVE: 100}}, state_key=""
    )
    topic = room.build(DAVE, "m.room.topic", {"topic": "dave's now"}, state_key="")

    got = send(api, scene.dave, txn(DAVE_SERVER, grab, topic))

    # Accepted for processing (its checks need the room's state), then rejected.
    assert got.body == {"pdus": {event_id(room, grab): {}, event_id(room, topic): {}}}
    rows = Event.objects.filter(event_id__in=[event_id(room, grab), event_id(room, topic)])
    assert len(rows) == 2
    assert all(row.rejected_reason for row in rows)
    assert_unchanged(api, scene, before, since)


def test_an_event_citing_auth_events_of_another_room_gains_nothing(
    api: MatrixTestClient, scene: Scene
) -> None:
    """Dave has all power in a room of his own, known here; citing its events as the auth
    events of a power grab in Carol's room does not make it pass: it is rejected (auth
    rule 2.5), and stored with no auth edge into the other room's graph."""
    room = scene.room
    own = scene.dave.create_room(DAVE)
    deliver_all(own, own.delivery_pdus())
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    grab = room.build(
        DAVE,
        "m.room.power_levels",
        {"users": {CAROL: 100, DAVE: 100}},
        state_key="",
        auth=[own.id("CREATE"), own.id("POWER"), own.id("JOIN")],
    )

    got = send(api, scene.dave, txn(DAVE_SERVER, grab), "t-cross")

    assert got.status == 200, got.body
    row = Event.objects.get(event_id=event_id(room, grab))
    assert row.rejected_reason is not None
    assert "belongs to room" in row.rejected_reason
    assert not row.auth_edges.exists()
    assert_unchanged(api, scene, before, since)


def test_the_same_pdu_twice_in_a_transaction_is_received_once(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    since = sync(api, scene.alice)["next_batch"]
    again = room.send(CAROL, "m.room.message", {"body": "twice"})

    got = send(api, scene.carol, txn(CAROL_SERVER, again, again))

    assert got.body == {"pdus": {event_id(room, again): {}}}
    timeline = joined(sync(api, scene.alice, since=since, timeout=0))[room.room_id]["timeline"]
    assert [e["event_id"] for e in timeline["events"]] == [event_id(room, again)]


def test_a_pdu_of_another_server_than_the_origin_is_dropped(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    # Dave's, validly signed by Dave's server, relayed by Carol's.
    daves = room.build(DAVE, "m.room.message", {"body": "from dave"})

    got = send(api, scene.carol, txn(CAROL_SERVER, daves))

    assert "not a user of" in got.body["pdus"][event_id(room, daves)]["error"]
    assert not Event.objects.filter(event_id=event_id(room, daves)).exists()
    assert_unchanged(api, scene, before, since)


def test_a_pdu_from_a_server_the_acl_denies_is_refused(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    deliver(
        room,
        room.send(
            CAROL, "m.room.server_acl", {"allow": ["*"], "deny": [DAVE_SERVER]}, state_key=""
        ),
    )
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    daves = room.build(DAVE, "m.room.message", {"body": "from dave"})

    got = send(api, scene.dave, txn(DAVE_SERVER, daves))

    assert got.status == 200
    assert "ACL" in got.body["pdus"][event_id(room, daves)]["error"]
    assert not Event.objects.filter(event_id=event_id(room, daves)).exists()
    assert_unchanged(api, scene, before, since)
    # Nor may it read the room.
    read = fed(api, scene.dave, "GET", f"{F}/state_ids/{room.room_id}?event_id={daves}")
    assert (read.status, read.body["errcode"]) == (403, "M_FORBIDDEN")


@pytest.mark.parametrize(("pdus", "edus"), [(51, 0), (0, 101), (51, 101)])
def test_a_transaction_over_the_limits_is_refused_whole(
    api: MatrixTestClient, scene: Scene, pdus: int, edus: int
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    messages_ = [room.build(CAROL, "m.room.message", {"body": f"{n}"}) for n in range(pdus)]
    typing = {"edu_type": "m.typing", "content": {"room_id": room.room_id, "user_id": CAROL}}

    got = send(api, scene.carol, txn(CAROL_SERVER, *messages_, edus=[typing] * edus))

    assert (got.status, got.body["errcode"]) == (400, "M_BAD_JSON")
    assert not InboundPdu.objects.exists()
    assert_unchanged(api, scene, before, since)


def _signed_by(key_server: RemoteServer, body: Any, *, path: str, origin: str) -> str:
    key = key_server.signing_key
    auth = sign_request(key, "PUT", path, origin, settings.SERVER_NAME, body)
    return format_authorization(auth)


@pytest.mark.parametrize(
    "authorization",
    ["none", "another key", "another body", "another path", "another destination", "garbage"],
)
def test_a_request_without_a_valid_x_matrix_signature_is_unauthorized(
    api: MatrixTestClient, scene: Scene, authorization: str
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    body = txn(CAROL_SERVER, room.build(CAROL, "m.room.message", {"body": "unsigned"}))
    path = f"{F}/send/t1"
    impostor = RemoteServer(CAROL_SERVER)
    impostor.signing_key = generate_signing_key(scene.carol.signing_key.version)
    headers = {
        "none": None,
        "another key": _signed_by(impostor, body, path=path, origin=CAROL_SERVER),
        "another body": _signed_by(
            scene.carol, {**body, "pdus": []}, path=path, origin=CAROL_SERVER
        ),
        "another path": _signed_by(scene.carol, body, path=f"{F}/send/t2", origin=CAROL_SERVER),
        "another destination": format_authorization(
            sign_request(
                scene.carol.signing_key, "PUT", path, CAROL_SERVER, "elsewhere.test", body
            )
        ),
        "garbage": "X-Matrix origin=",
    }

    got = api.client.generic(
        "PUT",
        path,
        data=json.dumps(body),
        content_type="application/json",
        headers={"Authorization": headers[authorization]} if headers[authorization] else {},
        RAW_URI=path,
    )

    assert got.status_code in (400, 401), got.content
    assert json.loads(got.content)["errcode"] == "M_UNAUTHORIZED"
    assert not InboundPdu.objects.exists()
    assert_unchanged(api, scene, before, since)


def _malformed(room: RemoteRoom) -> list[Any]:
    good = room.build(CAROL, "m.room.message", {"body": "shape"})
    variants: list[Any] = [
        None,
        "a string",
        [good],
        {},
        {"room_id": 5},
        {"room_id": room.room_id},
        {"room_id": "!unknown:carol.example:8448", "type": "m.room.message"},
    ]
    for key, value in [
        ("depth", "1"),
        ("depth", -1),
        ("depth", 2**70),
        ("prev_events", "$x"),
        ("prev_events", [5]),
        ("prev_events", ["$x"] * 21),
        ("auth_events", None),
        ("content", []),
        ("sender", "carol"),
        ("sender", 7),
        ("type", None),
        ("origin_server_ts", 1.5),
        ("hashes", {"sha256": 5}),
        ("hashes", "abc"),
        ("signatures", {CAROL_SERVER: "x"}),
        ("signatures", None),
        ("state_key", 5),
        ("content", {"body": 1.5}),
        ("content", {"big": "x" * 70_000}),
    ]:
        variant = copy.deepcopy(good)
        variant[key] = value
        variants.append(variant)
    return variants


def test_pdus_of_every_wrong_shape_are_refused_one_by_one_never_a_500(
    api: MatrixTestClient, scene: Scene
) -> None:
    room = scene.room
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    variants = _malformed(room)
    stored = Event.objects.count()

    for n, start in enumerate(range(0, len(variants), 10)):
        got = send(api, scene.carol, txn(CAROL_SERVER, *variants[start : start + 10]), f"m{n}")
        assert got.status == 200, got.body
        assert all("error" in result for result in got.body["pdus"].values()), got.body

    assert Event.objects.count() == stored
    assert_unchanged(api, scene, before, since)


@pytest.mark.parametrize(
    "body",
    [
        {"origin": CAROL_SERVER, "origin_server_ts": 1},
        {"origin": CAROL_SERVER, "origin_server_ts": 1, "pdus": {}},
        {"origin": CAROL_SERVER, "origin_server_ts": 1, "pdus": [], "edus": {}},
        {"origin": CAROL_SERVER, "origin_server_ts": 1, "pdus": [], "edus": [None, 5, "x"]},
        [],
    ],
)
def test_transactions_of_a_wrong_shape_are_bad_requests_or_ignored(
    api: MatrixTestClient, scene: Scene, body: Any
) -> None:
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]

    got = send(api, scene.carol, body)

    assert got.status in (200, 400), got.body
    if got.status == 400:
        assert got.body["errcode"] in ("M_BAD_JSON", "M_NOT_JSON")
    assert_unchanged(api, scene, before, since)


def test_a_body_no_server_could_have_signed_is_refused(
    api: MatrixTestClient, scene: Scene
) -> None:
    """A lone surrogate (valid JSON, invalid Unicode) has no canonical form to sign."""
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    path = f"{F}/send/t1"
    pdu = scene.room.build(CAROL, "m.room.message", {"body": "x"})
    raw = json.dumps(txn(CAROL_SERVER, pdu)).replace('"x"', '"\\ud800"')
    authorization = format_authorization(
        sign_request(scene.carol.signing_key, "PUT", path, CAROL_SERVER, settings.SERVER_NAME, {})
    )

    got = api.client.generic(
        "PUT",
        path,
        data=raw,
        content_type="application/json",
        headers={"Authorization": authorization},
        RAW_URI=path,
    )

    assert got.status_code in (400, 401), got.content
    assert not InboundPdu.objects.exists()
    assert_unchanged(api, scene, before, since)


def test_an_event_id_sent_percent_encoded_is_verified_as_sent(
    api: MatrixTestClient, scene: Scene
) -> None:
    """The X-Matrix signature covers the request target as sent: ``$`` as ``%24`` (as
    Synapse sends event IDs), ``:`` as ``%3A``, in the path and in the query."""
    room = scene.room
    welcome = room.reference.order[-1]
    encoded = quote(welcome, safe="")
    assert encoded.startswith("%24")

    event = fed(api, scene.dave, "GET", f"{F}/event/{encoded}")
    backfill = fed(
        api, scene.dave, "GET", f"{F}/backfill/{quote(room.room_id, safe='')}?v={encoded}&limit=2"
    )

    assert event.status == 200, event.body
    assert event.body["pdus"] == [room.pdus[welcome]]
    assert backfill.status == 200, backfill.body
    assert backfill.body["pdus"][0] == room.pdus[welcome]


def test_an_overlong_transaction_id_is_refused_not_a_500(
    api: MatrixTestClient, scene: Scene
) -> None:
    before, since = view(api, scene), sync(api, scene.alice)["next_batch"]
    message = scene.room.build(CAROL, "m.room.message", {"body": "long"})

    got = send(api, scene.carol, txn(CAROL_SERVER, message), "x" * 300)

    assert (got.status, got.body["errcode"]) == (400, "M_INVALID_PARAM")
    assert_unchanged(api, scene, before, since)
