"""Keys and device lists across servers (Server-Server API, "Device Management" and
"End-to-End Encryption"; Client-Server API, "Key Distribution").

Alice is local; Carol (carol.example:8448) shares Alice's room from her server, Dave's
server (dave.example:8448) has users too. Served: other servers read local users' keys
(/user/keys/query, /user/keys/claim, /user/devices). Called: Alice's /keys/query and
/keys/claim about remote users go to their servers, once per server, or come from the
cache of remote device lists while it is fresh; updates from Carol's server keep it
current along their stream_id/prev_id chain, a gap makes it fetch the list again, and
forged updates (about another server's user, keys not signed by their device) are never
stored as given.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import quote

import pytest

from e2ee.models import RemoteDevice, RemoteDeviceList
from tests.conftest import MatrixTestClient, Persona
from tests.e2ee.helpers import CrossSigning, claim, publish, query
from tests.e2ee.remote import USER_DEVICES, USER_KEYS_CLAIM, USER_KEYS_QUERY, KeyServer
from tests.federation.helpers import CAROL, FakeNetwork, network
from tests.federation.inbox import DAVE
from tests.rooms.federation_helpers import F, fed
from tests.rooms.helpers import create_room
from tests.sync.ephemeral_helpers import sync

__all__ = ["network"]


@pytest.fixture
def carol_server(network: FakeNetwork) -> KeyServer:
    return KeyServer(network, CAROL)


@pytest.fixture
def dave_server(network: FakeNetwork) -> KeyServer:
    return KeyServer(network, DAVE)


@pytest.fixture
def room(api: MatrixTestClient, alice: Persona, carol_server: KeyServer) -> str:
    """Alice's room, which Carol joined from her server (her two devices published)."""
    room_id = create_room(api, alice, preset="public_chat")
    carol = carol_server.user("carol")
    carol.add_device("CAROLPHONE", "Carol's phone")
    carol.add_device("CAROLLAPTOP")
    carol_server.join_room(room_id, carol)
    return room_id


def carol_id(server: KeyServer) -> str:
    return server.user("carol").user_id


# --- Served -----------------------------------------------------------------------------


def test_other_servers_read_local_users_keys(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    device = publish(api, alice, one_time_keys=1)
    signing = CrossSigning(alice.user_id)
    assert (
        api.post(
            "keys/device_signing/upload", signing.upload_body(), token=alice.access_token
        ).status
        == 200
    )

    body = {"device_keys": {alice.user_id: [], "@carol:carol.example:8448": []}}
    got = fed(api, carol_server.remote, "POST", USER_KEYS_QUERY, body)

    assert got.status == 200, got.body
    assert set(got.body["device_keys"]) == {alice.user_id}
    served = got.body["device_keys"][alice.user_id][device.device_id]
    assert {k: v for k, v in served.items() if k != "unsigned"} == device.device_keys()
    assert got.body["master_keys"][alice.user_id] == signing.master_key()
    assert got.body["self_signing_keys"][alice.user_id] == signing.self_signing_key()
    # The user-signing key is the user's alone.
    assert "user_signing_keys" not in got.body

    claim_body = {"one_time_keys": {alice.user_id: {device.device_id: "signed_curve25519"}}}
    claimed = fed(api, carol_server.remote, "POST", USER_KEYS_CLAIM, claim_body)
    assert claimed.status == 200, claimed.body
    (key,) = claimed.body["one_time_keys"][alice.user_id][device.device_id].values()
    assert key["signatures"][alice.user_id]
    # Handed out once.
    again = fed(api, carol_server.remote, "POST", USER_KEYS_CLAIM, claim_body)
    assert again.body["one_time_keys"] == {}


def test_other_servers_read_a_local_users_device_list(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    device = publish(api, alice)
    assert (
        api.put(
            f"devices/{alice.device_id}",
            {"display_name": "Alice's laptop"},
            token=alice.access_token,
        ).status
        == 200
    )
    signing = CrossSigning(alice.user_id)
    api.post("keys/device_signing/upload", signing.upload_body(), token=alice.access_token)

    got = fed(api, carol_server.remote, "GET", USER_DEVICES + quote(alice.user_id, safe=""))

    assert got.status == 200, got.body
    assert got.body["user_id"] == alice.user_id
    assert isinstance(got.body["stream_id"], int)
    assert got.body["stream_id"] > 0
    (entry,) = got.body["devices"]
    assert entry == {
        "device_id": alice.device_id,
        "keys": device.device_keys(),
        "device_display_name": "Alice's laptop",
    }
    assert got.body["master_key"] == signing.master_key()
    assert got.body["self_signing_key"] == signing.self_signing_key()
    assert "user_signing_key" not in got.body


def test_served_key_endpoints_need_a_signature_and_a_local_user(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    unsigned = fed(api, None, "POST", USER_KEYS_QUERY, {"device_keys": {alice.user_id: []}})
    assert unsigned.status == 401
    unsigned_devices = fed(api, None, "GET", USER_DEVICES + quote(alice.user_id, safe=""))
    assert unsigned_devices.status == 401

    remote = fed(api, carol_server.remote, "GET", USER_DEVICES + quote(carol_id(carol_server)))
    assert remote.status == 400
    assert remote.body["errcode"] == "M_INVALID_PARAM"
    malformed = fed(api, carol_server.remote, "POST", USER_KEYS_QUERY, {"device_keys": []})
    assert malformed.status == 400


# --- Called: /keys/query and /keys/claim --------------------------------------------------


def test_remote_users_keys_are_asked_of_their_server_once_per_server(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    dave_server: KeyServer,
    network: FakeNetwork,
) -> None:
    erin = carol_server.user("erin")
    erin.add_device("ERIN1", "Erin's tablet")
    erin.cross_signing = CrossSigning(erin.user_id)
    dave = dave_server.user("dave")
    dave.add_device("DAVE1")
    network.servers["unreachable.example:8448"] = network.add(
        "unreachable.example:8448", reachable=False
    )

    answer = query(
        api,
        alice,
        erin.user_id,
        "@frank:carol.example:8448",
        dave.user_id,
        "@nobody:unreachable.example:8448",
    )

    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 1
    (_, _, asked) = carol_server.key_requests(USER_KEYS_QUERY)[0]
    assert asked == {"device_keys": {erin.user_id: [], "@frank:carol.example:8448": []}}
    assert answer["device_keys"][erin.user_id] == {"ERIN1": erin.keys_of("ERIN1")}
    assert answer["device_keys"]["@frank:carol.example:8448"] == {}
    assert answer["device_keys"][dave.user_id] == {"DAVE1": dave.keys_of("DAVE1")}
    assert answer["master_keys"][erin.user_id] == erin.cross_signing.master_key()
    assert answer["self_signing_keys"][erin.user_id] == erin.cross_signing.self_signing_key()
    assert answer["failures"] == {
        "unreachable.example:8448": {
            "status": 503,
            "message": answer["failures"]["unreachable.example:8448"]["message"],
        }
    }
    # Nobody shares a room with Alice: nothing is cached.
    assert not RemoteDeviceList.objects.exists()


def test_a_server_answering_with_an_error_is_a_failure(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    carol_server.failing_with = 500
    answer = query(api, alice, carol_id(carol_server))
    assert answer["failures"][CAROL]["status"] == 500
    assert carol_id(carol_server) not in answer["device_keys"]

    claimed = claim(api, alice, {carol_id(carol_server): {"CAROLPHONE": "signed_curve25519"}})
    assert claimed["failures"][CAROL]["status"] == 500
    assert claimed["one_time_keys"] == {}


def test_the_clients_timeout_bounds_each_servers_request(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    network: FakeNetwork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from federation import client

    timeouts: list[float] = []
    real_send = client.send

    def send(*args: Any, timeout_s: float, **kwargs: Any) -> Any:
        timeouts.append(timeout_s)
        return real_send(*args, timeout_s=timeout_s, **kwargs)

    monkeypatch.setattr(client, "send", send)
    wanted = {"device_keys": {carol_id(carol_server): []}, "timeout": 2500}
    assert api.post("keys/query", wanted, token=alice.access_token).status == 200
    claims = {"one_time_keys": {carol_id(carol_server): {"X": "signed_curve25519"}}}
    assert (
        api.post("keys/claim", {**claims, "timeout": 4000}, token=alice.access_token).status == 200
    )
    assert timeouts == [2.5, 4.0]


def test_keys_a_device_did_not_sign_are_not_passed_on(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    erin = carol_server.user("erin")
    good = erin.add_device("GOOD")
    erin.add_device("FORGED")
    forged = erin.devices["FORGED"]
    # Another device's key under this one's name: the signature does not check.
    forged.ed25519 = good.ed25519

    answer = query(api, alice, erin.user_id)

    assert set(answer["device_keys"][erin.user_id]) == {"GOOD"}


def test_remote_one_time_keys_are_claimed_from_their_server(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    carol = carol_server.user("carol")
    phone = carol.devices["CAROLPHONE"]
    key_id, key = phone.one_time_key()
    carol.one_time_keys["CAROLPHONE"] = {key_id: key}
    laptop = carol.devices["CAROLLAPTOP"]
    # A key signed by another device than the one it is claimed for.
    other_id, other_key = phone.one_time_key()
    carol.one_time_keys["CAROLLAPTOP"] = {other_id: other_key}
    assert laptop.ed25519 is not phone.ed25519
    query(api, alice, carol.user_id)  # caches Carol's devices

    claimed = claim(
        api,
        alice,
        {carol.user_id: {"CAROLPHONE": "signed_curve25519", "CAROLLAPTOP": "signed_curve25519"}},
    )

    assert claimed["one_time_keys"] == {carol.user_id: {"CAROLPHONE": {key_id: key}}}
    assert claimed["failures"] == {}
    (request,) = carol_server.key_requests(USER_KEYS_CLAIM)
    assert request[2] == {
        "one_time_keys": {
            carol.user_id: {"CAROLPHONE": "signed_curve25519", "CAROLLAPTOP": "signed_curve25519"}
        }
    }


# --- The cache ------------------------------------------------------------------------------


def test_a_user_sharing_a_room_is_cached_and_then_answered_from_the_cache(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    carol = carol_server.user("carol")

    first = query(api, alice, carol.user_id)
    second = query(api, alice, carol.user_id)

    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 1
    assert first["device_keys"] == second["device_keys"]
    assert second["device_keys"][carol.user_id] == {
        "CAROLPHONE": carol.keys_of("CAROLPHONE"),
        "CAROLLAPTOP": carol.keys_of("CAROLLAPTOP"),
    }
    # Only the devices asked for, from the cache too.
    response = api.post(
        "keys/query",
        {"device_keys": {carol.user_id: ["CAROLPHONE"]}},
        token=alice.access_token,
    )
    assert set(response.body["device_keys"][carol.user_id]) == {"CAROLPHONE"}
    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 1


def test_updates_along_the_chain_keep_the_cache_current(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    carol = carol_server.user("carol")
    query(api, alice, carol.user_id)
    token = sync(api, alice)["next_batch"]

    # The cache was filled without a stream_id: the first update resyncs.
    carol.add_device("CAROLTABLET", "Carol's tablet")
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "CAROLTABLET"))
    assert len(carol_server.key_requests(USER_DEVICES)) == 1
    assert RemoteDeviceList.objects.get(user_id=carol.user_id).stream_id == 1

    # The next follows on: applied as sent, nothing asked.
    carol.add_device("CAROLWATCH")
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(
            api,
            carol_server.device_update(carol, "CAROLWATCH"),
            carol_server.device_update(carol, "CAROLLAPTOP", deleted=True),
        )
    del carol.devices["CAROLLAPTOP"]
    assert len(carol_server.key_requests(USER_DEVICES)) == 1

    answer = query(api, alice, carol.user_id)
    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 1
    assert answer["device_keys"][carol.user_id] == {
        device_id: carol.keys_of(device_id)
        for device_id in ("CAROLPHONE", "CAROLTABLET", "CAROLWATCH")
    }
    # Alice's client is told Carol's devices changed.
    assert carol.user_id in sync(api, alice, token)["device_lists"]["changed"]


def test_an_update_after_a_gap_is_not_stored_as_given_but_resynced(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    carol = carol_server.user("carol")
    carol_server.stream_id = 5
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "CAROLPHONE"))
    # No cache yet: the update only tells local clients, which then query.
    assert not RemoteDeviceList.objects.exists()
    query(api, alice, carol.user_id)
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "CAROLPHONE"))
    assert RemoteDeviceList.objects.get(user_id=carol.user_id).stream_id == 7

    # An update is lost; the next names it as prev_id, and claims a device the list
    # fetched from the server does not have.
    carol_server.device_update(carol, "CAROLPHONE")
    carol_server.failing_with = 503
    evil = carol.add_device("EVIL")
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "EVIL"))
    del carol.devices["EVIL"]
    assert evil is not None

    row = RemoteDeviceList.objects.get(user_id=carol.user_id)
    assert row.stale
    assert row.retry_at_ts is not None
    assert not RemoteDevice.objects.filter(device_id="EVIL").exists()
    # A stale list answers nothing: the server is asked (and is down).
    answer = query(api, alice, carol.user_id)
    assert answer["failures"][CAROL]["status"] == 503

    # The server is back: the sweep fetches the list again, as the server has it.
    from e2ee.models import RemoteDeviceList as Rows
    from e2ee.tasks import resync_stale_device_lists

    carol_server.failing_with = None
    Rows.objects.filter(user_id=carol.user_id).update(retry_at_ts=0)
    assert resync_stale_device_lists() == 1
    row.refresh_from_db()
    assert not row.stale
    assert row.stream_id == carol_server.stream_id
    assert set(
        RemoteDevice.objects.filter(user_id=carol.user_id).values_list("device_id", flat=True)
    ) == {"CAROLPHONE", "CAROLLAPTOP"}


def test_forged_updates_are_ignored(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    dave_server: KeyServer,
    room: str,
    django_capture_on_commit_callbacks: Any,
) -> None:
    carol = carol_server.user("carol")
    dave = dave_server.user("dave")
    dave.add_device("DAVE1")
    dave_server.join_room(room, dave)
    query(api, alice, carol.user_id, dave.user_id)
    with django_capture_on_commit_callbacks(execute=True):
        dave_server.put_edus(api, dave_server.device_update(dave, "DAVE1"))
    assert RemoteDeviceList.objects.get(user_id=dave.user_id).stream_id == 1
    held = {(d.user_id, d.device_id): d.key_json for d in RemoteDevice.objects.all()}
    token = sync(api, alice)["next_batch"]

    # Carol's server speaking for Dave: an update and a signing key update.
    dave.add_device("IMPOSTOR")
    forged = dave_server.device_update(dave, "IMPOSTOR")
    impostor_signing = CrossSigning(dave.user_id)
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(
            api,
            forged,
            {
                "edu_type": "m.signing_key_update",
                "content": {
                    "user_id": dave.user_id,
                    "master_key": impostor_signing.master_key(),
                    "self_signing_key": impostor_signing.self_signing_key(),
                },
            },
        )
    # Carol's own update, with keys her device did not sign.
    carol.add_device("STOLEN")
    carol.devices["STOLEN"].ed25519 = carol.devices["CAROLPHONE"].ed25519
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "STOLEN"))
    # Malformed ones.
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(
            api,
            {"edu_type": "m.device_list_update", "content": {"user_id": carol.user_id}},
            {"edu_type": "m.device_list_update", "content": {"user_id": 5, "stream_id": "x"}},
            {
                "edu_type": "m.signing_key_update",
                "content": {"user_id": carol.user_id, "master_key": "nope"},
            },
        )

    after = {(d.user_id, d.device_id): d.key_json for d in RemoteDevice.objects.all()}
    assert after == held
    dave_row = RemoteDeviceList.objects.get(user_id=dave.user_id)
    assert dave_row.master_key is None
    assert not dave_row.stale
    # Nothing Dave's server did not say: no change of Dave's list shown.
    assert dave.user_id not in sync(api, alice, token)["device_lists"]["changed"]


def test_a_server_cannot_grow_a_users_list_without_bound(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    room: str,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from e2ee.services import remote_device_lists

    carol = carol_server.user("carol")
    query(api, alice, carol.user_id)
    with django_capture_on_commit_callbacks(execute=True):
        carol_server.put_edus(api, carol_server.device_update(carol, "CAROLPHONE"))
    monkeypatch.setattr(remote_device_lists, "MAX_DEVICES", 2)

    carol.add_device("ONEMORE")
    carol_server.put_edus(api, carol_server.device_update(carol, "ONEMORE"))

    held = RemoteDevice.objects.filter(user_id=carol.user_id).values_list("device_id", flat=True)
    assert set(held) == {"CAROLPHONE", "CAROLLAPTOP"}


def test_signing_key_updates_are_kept_only_if_they_check(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    room: str,
) -> None:
    carol = carol_server.user("carol")
    query(api, alice, carol.user_id)
    signing = CrossSigning(carol.user_id)

    carol_server.put_edus(
        api,
        {
            "edu_type": "m.signing_key_update",
            "content": {
                "user_id": carol.user_id,
                "master_key": signing.master_key(),
                "self_signing_key": signing.self_signing_key(),
            },
        },
    )
    answer = query(api, alice, carol.user_id)
    assert answer["master_keys"][carol.user_id] == signing.master_key()
    assert answer["self_signing_keys"][carol.user_id] == signing.self_signing_key()

    # A self-signing key the master key did not sign.
    rogue = CrossSigning(carol.user_id)
    carol_server.put_edus(
        api,
        {
            "edu_type": "m.signing_key_update",
            "content": {"user_id": carol.user_id, "self_signing_key": rogue.self_signing_key()},
        },
    )
    answer = query(api, alice, carol.user_id)
    assert answer["self_signing_keys"][carol.user_id] == signing.self_signing_key()
    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 1


def test_a_user_who_leaves_the_shared_rooms_is_asked_of_their_server_again(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    carol = carol_server.user("carol")
    query(api, alice, carol.user_id)
    carol_server.leave_room(room, carol)

    assert RemoteDeviceList.objects.get(user_id=carol.user_id).stale
    query(api, alice, carol.user_id)
    assert len(carol_server.key_requests(USER_KEYS_QUERY)) == 2

    # No longer sharing a room: the sweep drops the list rather than fetching it.
    from e2ee.tasks import resync_stale_device_lists

    assert resync_stale_device_lists() == 0
    assert not RemoteDeviceList.objects.exists()


def test_the_cache_does_not_outlive_the_last_local_member(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    from tests.rooms.helpers import leave

    carol = carol_server.user("carol")
    query(api, alice, carol.user_id)
    leave(api, alice, room)

    assert RemoteDeviceList.objects.get(user_id=carol.user_id).stale


# --- Outbound -------------------------------------------------------------------------------


def queued(server: str, edu_type: str) -> list[dict[str, Any]]:
    from federation.models import OutboundEDU

    rows = OutboundEDU.objects.filter(destination__server_name=server, edu_type=edu_type)
    return [
        json.loads(json.dumps(c)) for c in rows.order_by("id").values_list("content", flat=True)
    ]


def test_local_device_changes_go_to_servers_sharing_a_room_along_a_chain(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    device = publish(api, alice)
    second = api.register("alice2")  # another user: nothing of theirs goes
    assert second.user_id != alice.user_id
    assert (
        api.put(
            f"devices/{alice.device_id}", {"display_name": "Laptop"}, token=alice.access_token
        ).status
        == 200
    )
    new_login = api.login("alice", "correct horse")
    assert new_login.status == 200, new_login.body
    new_device = new_login.body["device_id"]
    assert (
        api.delete(
            f"devices/{new_device}",
            {
                "auth": {
                    "type": "m.login.password",
                    "password": "correct horse",
                    "identifier": {"type": "m.id.user", "user": "alice"},
                }
            },
            token=alice.access_token,
        ).status
        == 200
    )

    updates = queued(CAROL, "m.device_list_update")
    assert [(u["device_id"], u.get("deleted", False)) for u in updates] == [
        (alice.device_id, False),
        (alice.device_id, False),
        (new_device, False),
        (new_device, True),
    ]
    assert all(u["user_id"] == alice.user_id for u in updates)
    # Each follows the one before.
    for before, after in itertools.pairwise(updates):
        assert after["prev_id"] == [before["stream_id"]]
        assert after["stream_id"] > before["stream_id"]
    assert updates[0]["keys"] == device.device_keys()
    assert updates[1]["device_display_name"] == "Laptop"
    assert "keys" not in updates[2]
    # /user/devices gives the head of the chain.
    got = fed(api, carol_server.remote, "GET", USER_DEVICES + quote(alice.user_id, safe=""))
    assert got.body["stream_id"] == updates[-1]["stream_id"]


def test_cross_signing_changes_go_as_signing_key_updates(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    device = publish(api, alice)
    signing = CrossSigning(alice.user_id)
    api.post("keys/device_signing/upload", signing.upload_body(), token=alice.access_token)

    (update,) = queued(CAROL, "m.signing_key_update")
    assert update == {
        "user_id": alice.user_id,
        "master_key": signing.master_key(),
        "self_signing_key": signing.self_signing_key(),
    }

    # The self-signing key signs Alice's device: the device's update carries it.
    from protocol.signing import sign_json

    signed = sign_json(device.device_keys(), alice.user_id, signing.self_signing)
    response = api.post(
        "keys/signatures/upload",
        {alice.user_id: {alice.device_id: signed}},
        token=alice.access_token,
    )
    assert response.status == 200
    assert response.body["failures"] == {}
    last = queued(CAROL, "m.device_list_update")[-1]
    assert last["device_id"] == alice.device_id
    assert last["keys"]["signatures"][alice.user_id] == signed["signatures"][alice.user_id]


def test_nothing_goes_to_servers_sharing_no_room(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer
) -> None:
    publish(api, alice)
    assert queued(CAROL, "m.device_list_update") == []


def test_updates_reach_a_server_that_was_down_in_order(
    api: MatrixTestClient,
    alice: Persona,
    carol_server: KeyServer,
    room: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from federation import client, outbound
    from federation.transport import TransportError
    from tests.federation.helpers import json_response

    sent: list[dict[str, Any]] = []
    down = True

    def send(target: Any, method: str, path: str, **kwargs: Any) -> Any:
        if not path.startswith(f"{F}/send/"):
            raise AssertionError(path)
        if down:
            raise TransportError("connection refused")
        sent.append(json.loads(kwargs["body"]))
        return json_response({"pdus": {}})

    monkeypatch.setattr(client, "send", send)
    publish(api, alice)
    api.put(f"devices/{alice.device_id}", {"display_name": "one"}, token=alice.access_token)
    outbound.send_pending(CAROL)
    assert sent == []

    down = False
    from federation.models import Destination

    Destination.objects.filter(server_name=CAROL).update(retry_at_ts=None)
    outbound.send_pending(CAROL)
    edus = [edu for body in sent for edu in body.get("edus", [])]
    updates = [e["content"] for e in edus if e["edu_type"] == "m.device_list_update"]
    assert [u.get("device_display_name") for u in updates] == [None, "one"]
    assert updates[1]["prev_id"] == [updates[0]["stream_id"]]


# --- The admin ------------------------------------------------------------------------------


def test_the_operator_sees_remote_users_devices(
    api: MatrixTestClient, alice: Persona, carol_server: KeyServer, room: str
) -> None:
    from django.test import Client

    from accounts.models import User
    from tests.e2ee.helpers import public

    carol = carol_server.user("carol")
    carol.cross_signing = CrossSigning(carol.user_id)
    query(api, alice, carol.user_id)
    operator = Client()
    operator.force_login(User.objects.create_superuser("operator", "operator pw"))

    listing = operator.get("/admin/e2ee/remotedevicelist/").content.decode()
    assert carol.user_id in listing
    row = RemoteDeviceList.objects.get(user_id=carol.user_id)
    page = operator.get(f"/admin/e2ee/remotedevicelist/{row.pk}/change/").content.decode()
    phone = carol.devices["CAROLPHONE"]
    assert "CAROLPHONE" in page
    assert "Carol&#x27;s phone" in page
    assert public(phone.ed25519) in page
    assert phone.curve25519 in page
    assert public(carol.cross_signing.master) in page
    # Read-only.
    assert operator.post(f"/admin/e2ee/remotedevicelist/{row.pk}/change/", {}).status_code == 403
