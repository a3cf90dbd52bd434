"""Encrypted rooms and the rest of the key lifecycle: m.room.encryption state as clients
rely on it, m.room.encrypted to-device messages to many devices in one request, keys and
device lists across deactivation, and the operator's read-only view of published keys.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from e2ee.models import CrossSigningKey, DeviceKeys
from protocol.signing import sign_json
from tests.conftest import MatrixTestClient, Persona, second_device
from tests.e2ee.helpers import CrossSigning, public, publish, query
from tests.rooms.helpers import create_room, get_state, invite, join
from tests.sync.extension_helpers import sync

ENCRYPTION = {"algorithm": "m.megolm.v1.aes-sha2", "rotation_period_msgs": 100}


def test_encryption_from_initial_state_reaches_members_and_invitees(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(
        api,
        alice,
        initial_state=[{"type": "m.room.encryption", "state_key": "", "content": ENCRYPTION}],
    )
    assert get_state(api, alice, room, "m.room.encryption").body == ENCRYPTION
    invite(api, alice, room, bob)
    stripped = sync(api, bob)["rooms"]["invite"][room]["invite_state"]["events"]
    assert {
        "type": "m.room.encryption",
        "state_key": "",
        "sender": alice.user_id,
        "content": ENCRYPTION,
    } in stripped
    join(api, bob, room)
    joined = sync(api, bob)["rooms"]["join"][room]
    events = joined["state"]["events"] + joined["timeline"]["events"]
    assert [e["content"] for e in events if e["type"] == "m.room.encryption"] == [ENCRYPTION]


def test_only_privileged_members_may_change_the_encryption_state(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    path = f"rooms/{room}/state/m.room.encryption"
    assert api.put(path, ENCRYPTION, token=bob.access_token).status == 403
    assert api.put(path, ENCRYPTION, token=alice.access_token).status == 200


def test_encrypted_to_device_messages_reach_many_devices_in_one_request(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    bobs = [bob] + [second_device(api, bob) for _ in range(9)]
    carols = [carol] + [second_device(api, carol) for _ in range(9)]
    tokens = {p.device_id: sync(api, p)["next_batch"] for p in bobs + carols}
    messages = {
        who.user_id: {
            p.device_id: {
                "algorithm": "m.olm.v1.curve25519-aes-sha2",
                "sender_key": "alice's curve25519 key",
                "ciphertext": {"key": {"type": 0, "body": f"for {p.device_id}"}},
            }
            for p in personas
        }
        for who, personas in ((bob, bobs), (carol, carols))
    }

    response = api.put(
        "sendToDevice/m.room.encrypted/fan-out", {"messages": messages}, token=alice.access_token
    )
    assert response.status == 200

    for persona in bobs + carols:
        events = sync(api, persona, since=tokens[persona.device_id])["to_device"]["events"]
        assert len(events) == 1
        assert events[0]["type"] == "m.room.encrypted"
        assert events[0]["sender"] == alice.user_id
        assert events[0]["content"]["ciphertext"]["key"]["body"] == f"for {persona.device_id}"


def test_deactivation_removes_keys_and_announces_it(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice)
    invite(api, alice, room, bob)
    join(api, bob, room)
    publish(api, bob, one_time_keys=3)
    api.post(
        "keys/device_signing/upload",
        CrossSigning(bob.user_id).upload_body(),
        token=bob.access_token,
    )
    token = sync(api, alice)["next_batch"]

    response = api.post(
        "account/deactivate",
        {
            "auth": {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": bob.localpart},
                "password": bob.password,
            }
        },
        token=bob.access_token,
    )
    assert response.status == 200, response.body

    body = sync(api, alice, since=token)
    assert body["device_lists"]["left"] == [bob.user_id]
    seen = query(api, alice, bob.user_id)
    assert seen["device_keys"][bob.user_id] == {}
    assert seen["master_keys"] == {}
    assert seen["self_signing_keys"] == {}


# --- the admin ----------------------------------------------------------------------------


@pytest.fixture
def operator(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("operator", "operator pw"))
    return client


def test_the_operator_sees_devices_keys_counts_and_cross_signing_keys(
    api: MatrixTestClient, alice: Persona, operator: Client
) -> None:
    device = publish(api, alice, one_time_keys=4)
    fallback = device.fallback_key()
    api.post("keys/upload", {"fallback_keys": fallback}, token=alice.access_token)
    keys = CrossSigning(alice.user_id)
    api.post("keys/device_signing/upload", keys.upload_body(), token=alice.access_token)
    signed = sign_json(device.device_keys(), alice.user_id, keys.self_signing)
    api.post(
        "keys/signatures/upload",
        {alice.user_id: {alice.device_id: signed}},
        token=alice.access_token,
    )
    listing = operator.get("/admin/e2ee/devicekeys/")
    assert listing.status_code == 200
    text = listing.content.decode()
    assert alice.device_id in text
    assert public(device.ed25519) in text

    row = DeviceKeys.objects.get(device_id=alice.device_id)
    page = operator.get(f"/admin/e2ee/devicekeys/{row.pk}/change/").content.decode()
    assert f"curve25519:{alice.device_id}: {device.curve25519}" in page
    assert f"ed25519:{public(keys.self_signing)} (uploaded later)" in page
    assert '<div class="readonly">4</div>' in page  # unclaimed one-time keys
    assert f"{next(iter(fallback))} (unused)" in page

    master = CrossSigningKey.objects.get(user_id=alice.user_id, usage="master")
    page = operator.get(f"/admin/e2ee/crosssigningkey/{master.pk}/change/").content.decode()
    assert public(keys.master) in page

    # Read-only: no saving, no deleting.
    assert operator.post(f"/admin/e2ee/devicekeys/{row.pk}/change/", {}).status_code == 403
    assert (
        operator.post(f"/admin/e2ee/devicekeys/{row.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert DeviceKeys.objects.filter(pk=row.pk).exists()
