"""Device keys, one-time keys and fallback keys: POST /keys/upload, /keys/query,
/keys/claim, and the key counts in /sync (Client-Server API, "End-to-End Encryption",
"Key Distribution" and "Extensions to /sync").

A device publishes identity keys signed by its own ed25519 key; other users' clients
read them with /keys/query and claim one one-time key per device, oldest first, or the
fallback key once none is left. Anything malformed, misattributed, badly signed or too
large is refused with a Matrix error and stores nothing.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MatrixTestClient, Persona, second_device
from tests.e2ee.helpers import (
    CrossSigning,
    Device,
    claim,
    public,
    publish,
    query,
    upload,
)
from tests.sync.extension_helpers import sync

OTK = "signed_curve25519"


def test_uploaded_keys_are_counted_and_queryable(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    body = upload(
        api, device, device_keys=device.device_keys(), one_time_keys=device.one_time_keys(5)
    )
    assert body == {"one_time_key_counts": {OTK: 5}}

    api.put(
        f"devices/{alice.device_id}", {"display_name": "Alice's phone"}, token=alice.access_token
    )
    result = query(api, bob, alice.user_id)

    shown = result["device_keys"][alice.user_id][alice.device_id]
    assert shown == {**device.device_keys(), "unsigned": {"device_display_name": "Alice's phone"}}
    assert result["failures"] == {}


def test_query_of_named_devices_and_of_devices_without_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    publish(api, alice)
    other = second_device(api, alice)  # logged in, no keys yet
    published_other = publish(api, other)
    third = second_device(api, alice)

    response = api.post(
        "keys/query",
        {"device_keys": {alice.user_id: [other.device_id, third.device_id, "NOSUCH"]}},
        token=bob.access_token,
    )

    assert response.status == 200
    assert set(response.body["device_keys"][alice.user_id]) == {other.device_id}
    assert (
        response.body["device_keys"][alice.user_id][other.device_id]["keys"]
        == (published_other.device_keys()["keys"])
    )


def test_query_of_unknown_and_remote_users(api: MatrixTestClient, alice: Persona) -> None:
    response = api.post(
        "keys/query",
        {"device_keys": {"@nobody:localhost:8008": [], "@carol:elsewhere.example": []}},
        token=alice.access_token,
    )
    assert response.status == 200
    assert response.body["device_keys"] == {"@nobody:localhost:8008": {}}
    assert set(response.body["failures"]) == {"elsewhere.example"}


def test_claims_hand_out_keys_in_upload_order_then_the_fallback_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    first = device.one_time_keys(2)
    upload(api, device, one_time_keys=first)
    second = device.one_time_keys(1)
    fallback = device.fallback_key()
    upload(api, device, one_time_keys=second, fallback_keys=fallback)
    wanted = {alice.user_id: {alice.device_id: OTK}}

    claimed = [claim(api, bob, wanted)["one_time_keys"] for _ in range(5)]

    got = [c[alice.user_id][alice.device_id] for c in claimed]
    # The first upload's keys first (in any order among themselves), then the second's.
    assert {next(iter(g)) for g in got[:2]} == set(first)
    assert got[0] != got[1]
    assert got[2] == second
    # Then the fallback key, again and again: it is not consumed.
    assert got[3] == fallback
    assert got[4] == fallback


def test_sync_counts_one_time_keys_and_unused_fallback_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice, one_time_keys=1)
    upload(api, device, fallback_keys=device.fallback_key())
    body = sync(api, alice)
    assert body["device_one_time_keys_count"] == {OTK: 1}
    assert body["device_unused_fallback_key_types"] == [OTK]

    wanted = {alice.user_id: {alice.device_id: OTK}}
    claim(api, bob, wanted)
    claim(api, bob, wanted)  # the fallback key now

    body = sync(api, alice)
    assert body["device_one_time_keys_count"] == {OTK: 0}
    assert body["device_unused_fallback_key_types"] == []
    # A new fallback key is unused again.
    upload(api, device, fallback_keys=device.fallback_key())
    assert sync(api, alice)["device_unused_fallback_key_types"] == [OTK]


def test_sync_of_a_device_without_keys(api: MatrixTestClient, alice: Persona) -> None:
    body = sync(api, alice)
    assert body["device_one_time_keys_count"] == {OTK: 0}
    assert body["device_unused_fallback_key_types"] == []


def test_claim_of_unknown_devices_users_and_algorithms(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    publish(api, alice, one_time_keys=1)
    body = claim(
        api,
        bob,
        {
            alice.user_id: {alice.device_id: "other_algorithm", "NOSUCH": OTK},
            "@nobody:localhost:8008": {"X": OTK},
            "@carol:elsewhere.example": {"X": OTK},
        },
    )
    assert body["one_time_keys"] == {}
    assert set(body["failures"]) == {"elsewhere.example"}
    # Alice's key is still there.
    assert sync(api, alice)["device_one_time_keys_count"] == {OTK: 1}


def test_reuploading_the_same_keys_changes_nothing(api: MatrixTestClient, alice: Persona) -> None:
    device = Device(alice)
    keys = device.one_time_keys(3)
    upload(api, device, device_keys=device.device_keys(), one_time_keys=keys)
    body = upload(api, device, device_keys=device.device_keys(), one_time_keys=keys)
    assert body["one_time_key_counts"] == {OTK: 3}


def test_a_device_may_replace_its_identity_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    publish(api, alice)
    rekeyed = Device(alice)
    upload(api, rekeyed, device_keys=rekeyed.device_keys())
    shown = query(api, bob, alice.user_id)["device_keys"][alice.user_id][alice.device_id]
    assert shown["keys"][f"ed25519:{alice.device_id}"] == public(rekeyed.ed25519)


def test_deleting_a_device_deletes_its_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    other = second_device(api, alice)
    publish(api, other, one_time_keys=2)
    api.post("logout", token=other.access_token)

    assert query(api, bob, alice.user_id)["device_keys"][alice.user_id] == {}
    body = claim(api, bob, {alice.user_id: {other.device_id: OTK}})
    assert body["one_time_keys"] == {}


# --- bad input: a Matrix error, and nothing stored ----------------------------------------


def stored_nothing(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    assert query(api, bob, alice.user_id)["device_keys"][alice.user_id] == {}
    body = sync(api, alice)
    assert body["device_one_time_keys_count"] == {OTK: 0}
    assert body["device_unused_fallback_key_types"] == []


def refused(
    api: MatrixTestClient, who: Persona, body: dict[str, Any], errcode: str = "M_INVALID_PARAM"
) -> None:
    response = api.post("keys/upload", body, token=who.access_token)
    assert response.status in (400, 413), response.body
    assert response.errcode == errcode, response.body


def test_device_keys_with_a_bad_signature_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    keys = device.device_keys()
    keys["algorithms"] = ["m.megolm.v1.aes-sha2"]  # changed after signing
    refused(api, alice, {"device_keys": keys, "one_time_keys": device.one_time_keys(2)})
    # Signed by some other key than the one published.
    forged = device.device_keys()
    forged["signatures"] = Device(alice).device_keys()["signatures"]
    refused(api, alice, {"device_keys": forged})
    unsigned = device.device_keys()
    del unsigned["signatures"]
    # A required key missing: M_BAD_JSON ("missing required keys").
    refused(api, alice, {"device_keys": unsigned}, "M_BAD_JSON")
    stored_nothing(api, alice, bob)


@pytest.mark.parametrize("missing", ["user_id", "device_id", "algorithms", "keys", "signatures"])
def test_device_keys_missing_a_required_key_are_bad_json(
    api: MatrixTestClient, alice: Persona, bob: Persona, missing: str
) -> None:
    """sytest 41end-to-end-keys "Rejects invalid device keys": the spec's M_BAD_JSON is
    for "missing required keys"."""
    keys = Device(alice).device_keys()
    del keys[missing]
    refused(api, alice, {"device_keys": keys}, "M_BAD_JSON")
    stored_nothing(api, alice, bob)


def test_keys_for_another_user_or_device_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # Bob's own, correctly signed keys, uploaded with Alice's token.
    refused(api, alice, {"device_keys": Device(bob).device_keys()})
    other = second_device(api, alice)
    refused(api, alice, {"device_keys": Device(other).device_keys()})
    stored_nothing(api, alice, bob)


@pytest.mark.parametrize(
    "key_id",
    ["signed_curve25519", "signed_curve25519:", ":AAAA", "signed curve:AAAA", "a:b:c", 7],
)
def test_malformed_one_time_key_ids_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona, key_id: Any
) -> None:
    device = Device(alice)
    _, obj = device.one_time_key()
    good = device.one_time_keys(1)
    bad = {str(key_id) if not isinstance(key_id, str) else key_id: obj}
    refused(
        api,
        alice,
        {"device_keys": device.device_keys(), "one_time_keys": {**good, **bad}},
    )
    stored_nothing(api, alice, bob)


def test_malformed_device_key_ids_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    keys = device.device_keys()
    body = {k: v for k, v in keys.items() if k != "signatures"}
    body["keys"] = {**body["keys"], "curve25519:SOMEONEELSE": device.curve25519}
    refused(api, alice, {"device_keys": device.sign(body)})
    no_ed25519 = {k: v for k, v in keys.items() if k != "signatures"}
    no_ed25519["keys"] = {f"curve25519:{alice.device_id}": device.curve25519}
    refused(api, alice, {"device_keys": device.sign(no_ed25519)})
    stored_nothing(api, alice, bob)


def test_one_time_keys_with_bad_signatures_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    key_id, obj = device.one_time_key()
    obj["key"] = Device(alice).curve25519  # not the key that was signed
    refused(api, alice, {"device_keys": device.device_keys(), "one_time_keys": {key_id: obj}})
    # Signed by another key than the device's.
    stranger = Device(alice)
    key_id, obj = stranger.one_time_key()
    refused(api, alice, {"device_keys": device.device_keys(), "one_time_keys": {key_id: obj}})
    # A signed algorithm as a bare string.
    refused(
        api,
        alice,
        {"device_keys": device.device_keys(), "one_time_keys": {f"{OTK}:AAAB": "abc"}},
    )
    stored_nothing(api, alice, bob)


def test_signed_keys_need_the_device_keys_first(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    refused(api, alice, {"one_time_keys": device.one_time_keys(1)})
    stored_nothing(api, alice, bob)


def test_a_one_time_key_id_cannot_be_reused_for_another_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    key_id, obj = device.one_time_key()
    upload(api, device, one_time_keys={key_id: obj})
    _, other = device.one_time_key()
    refused(api, alice, {"one_time_keys": {key_id: other, **device.one_time_keys(1)}})
    assert sync(api, alice)["device_one_time_keys_count"] == {OTK: 1}


def test_two_fallback_keys_of_one_algorithm_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    refused(
        api,
        alice,
        {
            "device_keys": device.device_keys(),
            "fallback_keys": {**device.fallback_key(), **device.fallback_key()},
        },
    )
    stored_nothing(api, alice, bob)


def test_oversized_uploads_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = Device(alice)
    refused(
        api,
        alice,
        {"device_keys": device.device_keys(), "one_time_keys": device.one_time_keys(1001)},
        "M_TOO_LARGE",
    )
    key_id, obj = device.one_time_key()
    big = device.sign({**{k: v for k, v in obj.items() if k != "signatures"}, "pad": "x" * 5000})
    refused(
        api,
        alice,
        {"device_keys": device.device_keys(), "one_time_keys": {key_id: big}},
        "M_TOO_LARGE",
    )
    stored_nothing(api, alice, bob)
    # Past the request size limit, the body is not even read.
    response = api.request(
        "POST", "keys/upload", token=alice.access_token, raw=b'{"x": "' + b"y" * 1_100_000 + b'"}'
    )
    assert (response.status, response.errcode) == (413, "M_TOO_LARGE")


@pytest.mark.parametrize(
    "body",
    [
        {"device_keys": "no"},
        {"one_time_keys": []},
        {"fallback_keys": 3},
        {"device_keys": {"user_id": 1}},
    ],
)
def test_wrong_shapes_are_matrix_errors(
    api: MatrixTestClient, alice: Persona, bob: Persona, body: dict[str, Any]
) -> None:
    response = api.post("keys/upload", body, token=alice.access_token)
    assert response.status == 400
    assert response.errcode in ("M_BAD_JSON", "M_INVALID_PARAM")
    stored_nothing(api, alice, bob)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("keys/query", {}),
        ("keys/query", {"device_keys": []}),
        ("keys/query", {"device_keys": {"not a user": []}}),
        ("keys/query", {"device_keys": {"@a:b": "DEVICE"}}),
        ("keys/claim", {}),
        ("keys/claim", {"one_time_keys": {"@a:b": {"D": 1}}}),
        ("keys/claim", {"one_time_keys": {"nobody": {}}}),
    ],
)
def test_bad_queries_and_claims(
    api: MatrixTestClient, alice: Persona, path: str, body: dict[str, Any]
) -> None:
    response = api.post(path, body, token=alice.access_token)
    assert response.status == 400
    assert response.errcode in ("M_BAD_JSON", "M_INVALID_PARAM", "M_MISSING_PARAM")


def test_keys_endpoints_need_a_token(api: MatrixTestClient) -> None:
    for path in ("keys/upload", "keys/query", "keys/claim"):
        assert api.post(path, {}).errcode == "M_MISSING_TOKEN"


def test_cross_signing_public_key_as_new_device_id_is_refused(
    api: MatrixTestClient, alice: Persona
) -> None:
    keys = CrossSigning(alice.user_id)
    response = api.post("keys/device_signing/upload", keys.upload_body(), token=alice.access_token)
    assert response.status == 200, response.body
    login = api.login(alice.localpart, alice.password, device_id=public(keys.master))
    assert login.status == 400
    assert login.errcode == "M_INVALID_PARAM"


def test_a_claim_over_many_devices_is_answered_batch_by_batch(
    api: MatrixTestClient, alice: Persona, bob: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    from e2ee.services import keys

    monkeypatch.setattr(keys, "CLAIM_BATCH", 2)
    devices = [
        publish(api, persona, one_time_keys=1)
        for persona in (alice, second_device(api, alice), second_device(api, alice))
    ]
    wanted = {alice.user_id: {d.persona.device_id: OTK for d in devices}}
    wanted[bob.user_id] = {"NOSUCH": OTK}

    body = claim(api, bob, wanted)

    got = body["one_time_keys"][alice.user_id]
    assert set(got) == {d.persona.device_id for d in devices}
    assert bob.user_id not in body["one_time_keys"]


def test_a_claim_of_too_many_devices_is_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    from e2ee.services import keys

    publish(api, alice, one_time_keys=1)
    wanted = {alice.user_id: {f"D{n}": OTK for n in range(keys.MAX_CLAIMED_DEVICES)}}
    wanted[alice.user_id][alice.device_id] = OTK

    response = api.post("keys/claim", {"one_time_keys": wanted}, token=bob.access_token)

    assert response.status == 400, response.body
    assert response.errcode == "M_INVALID_PARAM"
    # Nothing was claimed.
    assert sync(api, alice)["device_one_time_keys_count"] == {OTK: 1}
