"""Presence between servers (Server-Server API, "Presence": the m.presence EDU).

Alice and Bob are local. Carol (carol.example:8448) joined Alice's room, Dave
(dave.example:8448) Bob's. A change of Alice's presence goes to Carol's server only (the
one sharing a room with her), the latest per user, presence of several users in one EDU;
what Carol's server says of Carol reaches Alice's /sync and GET /presence, and what it
says of anyone else (Dave, a user of its own sharing no room here, Alice) is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from federation import outbound
from federation.models import OutboundEDU
from presence.models import Presence
from rooms.services.incoming import receive_pdu
from tests.conftest import MatrixTestClient, Persona
from tests.federation.helpers import CAROL, network
from tests.federation.inbox import DAVE, Inbox, inbox
from tests.graph.remote import RemoteServer
from tests.rooms.federation_helpers import F, fed, remote_pdu
from tests.rooms.helpers import create_room, join
from tests.sync.extension_helpers import sync
from tests.sync.test_presence import presence_events, put_presence, status_path

__all__ = ["inbox", "network"]


@dataclass
class Scene:
    carol_server: RemoteServer
    dave_server: RemoteServer
    carol: str
    dave: str


def remote_join(room_id: str, server: RemoteServer, localpart: str) -> str:
    user_id = server.user(localpart)
    pdu = remote_pdu(room_id, server, user_id, "m.room.member", {"membership": "join"}, user_id)
    receive_pdu(pdu, origin=server.server_name)
    return user_id


@pytest.fixture
def scene(api: MatrixTestClient, alice: Persona, bob: Persona) -> Scene:
    servers = []
    for name in (CAROL, DAVE):
        server = RemoteServer(name)
        server.install_keys()
        servers.append(server)
    carol_server, dave_server = servers
    alices_room = create_room(api, alice, preset="public_chat")
    bobs_room = create_room(api, bob, preset="public_chat")
    carol = remote_join(alices_room, carol_server, "carol")
    dave = remote_join(bobs_room, dave_server, "dave")
    return Scene(carol_server, dave_server, carol, dave)


def queued_presence(server: str) -> list[dict[str, Any]]:
    """The presence updates waiting for ``server``, in queue order."""
    rows = OutboundEDU.objects.filter(destination__server_name=server, edu_type="m.presence")
    return [
        item
        for content in rows.order_by("id").values_list("content", flat=True)
        for item in content["push"]
    ]


def put_transaction(
    api: MatrixTestClient, server: RemoteServer, txn_id: str, *updates: Any
) -> None:
    edu = {"edu_type": "m.presence", "content": {"push": list(updates)}}
    body = {"origin": server.server_name, "origin_server_ts": 1, "pdus": [], "edus": [edu]}
    got = fed(api, server, "PUT", f"{F}/send/{txn_id}", body)
    assert got.status == 200, got.body


def presence_of(api: MatrixTestClient, viewer: Persona, user_id: str) -> dict[str, Any]:
    response = api.get(status_path(user_id), token=viewer.access_token)
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def update(user_id: str, presence: str = "online", **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "presence": presence, "last_active_ago": 1000, **extra}


# --- Outbound ----------------------------------------------------------------------------


def test_a_change_goes_only_to_servers_sharing_a_room_the_latest_per_user(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: Scene
) -> None:
    put_presence(api, alice, presence="online", status_msg="here")

    [sent] = queued_presence(CAROL)
    assert sent["user_id"] == alice.user_id
    assert (sent["presence"], sent["status_msg"], sent["currently_active"]) == (
        "online",
        "here",
        True,
    )
    assert isinstance(sent["last_active_ago"], int)
    assert queued_presence(DAVE) == []

    # A later change replaces the one still waiting.
    put_presence(api, alice, presence="unavailable", status_msg="away")
    assert [(u["presence"], u["status_msg"]) for u in queued_presence(CAROL)] == [
        ("unavailable", "away")
    ]
    # Bob shares a room with Dave only.
    put_presence(api, bob, presence="online")
    assert [u["user_id"] for u in queued_presence(DAVE)] == [bob.user_id]
    assert [u["user_id"] for u in queued_presence(CAROL)] == [alice.user_id]


def test_activity_that_changes_nothing_visible_sends_nothing(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    put_presence(api, alice, presence="online")
    OutboundEDU.objects.all().delete()

    # The same state again, and a /sync marking her online: nobody sees a change.
    put_presence(api, alice, presence="online")
    Presence.objects.filter(user_id=alice.user_id).update(last_active_ts=0)
    sync(api, alice)

    assert [u["presence"] for u in queued_presence(CAROL)] == []


def test_presence_off_sends_nothing(
    api: MatrixTestClient, alice: Persona, scene: Scene, settings: Any
) -> None:
    settings.PRESENCE_ENABLED = False

    put_presence(api, alice, presence="online")

    assert queued_presence(CAROL) == []


def test_updates_of_several_users_travel_in_one_edu(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: Scene, inbox: Inbox
) -> None:
    alices_room = create_room(api, alice, preset="public_chat")
    join(api, bob, alices_room)
    remote_join(alices_room, scene.carol_server, "carol")
    OutboundEDU.objects.all().delete()
    put_presence(api, alice, presence="online")
    put_presence(api, bob, presence="unavailable")

    assert outbound.send_pending(CAROL).sent == 1

    [(_, _, body)] = [r for r in inbox.requests if r[0] == CAROL]
    [edu] = body["edus"]
    assert edu["edu_type"] == "m.presence"
    assert [(u["user_id"], u["presence"]) for u in edu["content"]["push"]] == [
        (alice.user_id, "online"),
        (bob.user_id, "unavailable"),
    ]


def test_local_users_who_are_about_are_pinged_periodically(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: Scene
) -> None:
    from config.celery import app
    from presence import federation_out

    put_presence(api, alice, presence="online", status_msg="still here")
    put_presence(api, bob, presence="offline")
    OutboundEDU.objects.all().delete()

    assert federation_out.do_send_presence_pings() == 1

    [ping] = queued_presence(CAROL)
    assert (ping["user_id"], ping["status_msg"]) == (alice.user_id, "still here")
    # Bob is offline: nothing to keep alive.
    assert queued_presence(DAVE) == []
    # Long inactive: left alone too.
    Presence.objects.filter(user_id=alice.user_id).update(last_active_ts=1)
    OutboundEDU.objects.all().delete()
    assert federation_out.do_send_presence_pings() == 0
    schedule = app.conf.beat_schedule["send-presence-pings"]["schedule"]
    assert schedule == federation_out.PING_INTERVAL_S


# --- Inbound -----------------------------------------------------------------------------


def test_remote_presence_reaches_sync_and_get_presence(
    api: MatrixTestClient, alice: Persona, bob: Persona, scene: Scene
) -> None:
    token = sync(api, alice)["next_batch"]

    put_transaction(
        api,
        scene.carol_server,
        "t1",
        update(scene.carol, status_msg="remote", currently_active=True),
    )

    body = sync(api, alice, since=token)
    seen = presence_events(body)[scene.carol]
    assert (seen["presence"], seen["status_msg"], seen["currently_active"]) == (
        "online",
        "remote",
        True,
    )
    assert 1000 <= seen["last_active_ago"] < 60_000
    assert presence_of(api, alice, scene.carol)["status_msg"] == "remote"
    # Bob shares no room with Carol.
    assert api.get(status_path(scene.carol), token=bob.access_token).status == 403

    # The same again is no news; a change is.
    put_transaction(
        api,
        scene.carol_server,
        "t2",
        update(scene.carol, status_msg="remote", currently_active=True),
    )
    body = sync(api, alice, since=body["next_batch"])
    assert scene.carol not in presence_events(body)
    put_transaction(api, scene.carol_server, "t3", update(scene.carol, "offline"))
    assert (
        presence_events(sync(api, alice, since=body["next_batch"]))[scene.carol]["presence"]
        == "offline"
    )
    # Received, not sent on (Alice's own, her /sync marking her online, goes).
    assert {u["user_id"] for u in queued_presence(CAROL) + queued_presence(DAVE)} == {
        alice.user_id
    }


def test_the_remote_servers_word_on_activity_stands(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    """Carol's server judges her idleness: online and active ten minutes after her last
    action it has not said otherwise, she reads as such (a local user would read as
    unavailable)."""
    put_transaction(
        api,
        scene.carol_server,
        "t1",
        {
            "user_id": scene.carol,
            "presence": "online",
            "last_active_ago": 600_000,
            "currently_active": True,
        },
    )

    body = presence_of(api, alice, scene.carol)

    assert (body["presence"], body["currently_active"]) == ("online", True)
    assert body["last_active_ago"] >= 600_000


def test_presence_of_users_not_of_the_origin_or_sharing_no_room_is_ignored(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    token = sync(api, alice)["next_batch"]
    stranger = scene.carol_server.user("stranger")

    put_transaction(
        api,
        scene.carol_server,
        "t1",
        update(scene.dave),
        update(alice.user_id, "offline"),
        update(stranger),
    )

    assert presence_events(sync(api, alice, since=token)) == {}
    assert not Presence.objects.filter(user_id__in=[scene.dave, stranger]).exists()
    assert Presence.objects.get(user_id=alice.user_id).state != "offline"


def test_malformed_updates_are_skipped_and_the_others_taken(
    api: MatrixTestClient, alice: Persona, scene: Scene
) -> None:
    put_transaction(
        api,
        scene.carol_server,
        "t1",
        "not an object",
        update("not a user"),
        update(scene.carol, "asleep"),
        update(scene.carol, last_active_ago=-1),
        update(scene.carol, last_active_ago="1"),
        update(scene.carol, status_msg="x" * 2000),
        update(scene.carol, "unavailable", status_msg="fine"),
    )
    put_transaction(api, scene.carol_server, "t2")  # an empty push list

    body = presence_of(api, alice, scene.carol)
    assert (body["presence"], body["status_msg"]) == ("unavailable", "fine")


def test_presence_off_takes_nothing(
    api: MatrixTestClient, alice: Persona, scene: Scene, settings: Any
) -> None:
    settings.PRESENCE_ENABLED = False

    put_transaction(api, scene.carol_server, "t1", update(scene.carol))

    assert not Presence.objects.filter(user_id=scene.carol).exists()
