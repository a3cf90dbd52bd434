"""Cross-signing: POST /keys/device_signing/upload, POST /keys/signatures/upload and the
keys and signatures /keys/query shows (Client-Server API, "Cross-signing").

The first upload of a master key needs no User-Interactive Authentication, nor does a
retry of the same keys; replacing keys does. The self-signing and user-signing keys must
be signed by the master key. Signatures are verified one by one and refused ones are
reported per key in ``failures``. Nobody but the signer sees a user-signing key's
signature of someone else's master key, nor anyone's user-signing key.
"""

from __future__ import annotations

from typing import Any

import pytest

from e2ee.models import KeySignature
from protocol.signing import sign_json
from tests.conftest import MatrixTestClient, Persona, second_device
from tests.e2ee.helpers import CrossSigning, new_key, public, publish, query

DEVICE_SIGNING = "keys/device_signing/upload"
SIGNATURES = "keys/signatures/upload"


def upload_cross_signing(
    api: MatrixTestClient, who: Persona, body: dict[str, Any], *, expect: int = 200
) -> dict[str, Any]:
    response = api.post(DEVICE_SIGNING, body, token=who.access_token)
    assert response.status == expect, response.body
    result: dict[str, Any] = response.body
    return result


def with_password(who: Persona, body: dict[str, Any], session: str) -> dict[str, Any]:
    return {
        **body,
        "auth": {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": who.localpart},
            "password": who.password,
            "session": session,
        },
    }


def test_first_upload_needs_no_uia_and_query_shows_the_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, keys.upload_body())

    mine = query(api, alice, alice.user_id)
    assert mine["master_keys"][alice.user_id] == keys.master_key()
    assert mine["self_signing_keys"][alice.user_id] == keys.self_signing_key()
    assert mine["user_signing_keys"][alice.user_id] == keys.user_signing_key()

    theirs = query(api, bob, alice.user_id)
    assert theirs["master_keys"][alice.user_id] == keys.master_key()
    assert theirs["self_signing_keys"][alice.user_id] == keys.self_signing_key()
    # "a user-signing key (USK) -- only visible to the user that it belongs to".
    assert theirs["user_signing_keys"] == {}


def test_repeating_the_same_keys_needs_no_uia(api: MatrixTestClient, alice: Persona) -> None:
    keys = CrossSigning(alice.user_id)
    body = keys.upload_body()
    upload_cross_signing(api, alice, body)
    upload_cross_signing(api, alice, body)
    upload_cross_signing(api, alice, {"master_key": body["master_key"]})


def test_replacing_keys_needs_uia(api: MatrixTestClient, alice: Persona, bob: Persona) -> None:
    first = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, first.upload_body())
    second = CrossSigning(alice.user_id)

    challenge = upload_cross_signing(api, alice, second.upload_body(), expect=401)
    assert challenge["flows"] == [{"stages": ["m.login.password"]}]
    assert query(api, bob, alice.user_id)["master_keys"][alice.user_id] == first.master_key()

    wrong = {**with_password(alice, second.upload_body(), challenge["session"])}
    wrong["auth"]["password"] = "not it"
    assert api.post(DEVICE_SIGNING, wrong, token=alice.access_token).status == 401

    upload_cross_signing(
        api, alice, with_password(alice, second.upload_body(), challenge["session"])
    )
    assert query(api, bob, alice.user_id)["master_keys"][alice.user_id] == second.master_key()


def test_a_new_self_signing_key_alone_needs_uia_too(api: MatrixTestClient, alice: Persona) -> None:
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, keys.upload_body())
    keys.self_signing = new_key()
    upload_cross_signing(api, alice, {"self_signing_key": keys.self_signing_key()}, expect=401)


def test_subkeys_must_be_signed_by_the_master_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    keys = CrossSigning(alice.user_id)
    body = keys.upload_body()
    stranger = new_key()
    body["self_signing_key"] = sign_json(
        keys.key("self_signing", keys.self_signing), alice.user_id, stranger
    )
    response = api.post(DEVICE_SIGNING, body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_SIGNATURE")
    unsigned = keys.upload_body()
    unsigned["user_signing_key"] = keys.key("user_signing", keys.user_signing)
    response = api.post(DEVICE_SIGNING, unsigned, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_SIGNATURE")
    assert query(api, bob, alice.user_id)["master_keys"] == {}


def test_subkeys_without_any_master_key(api: MatrixTestClient, alice: Persona) -> None:
    keys = CrossSigning(alice.user_id)
    response = api.post(
        DEVICE_SIGNING, {"self_signing_key": keys.self_signing_key()}, token=alice.access_token
    )
    assert (response.status, response.errcode) == (400, "M_MISSING_PARAM")


def test_subkeys_signed_by_the_stored_master_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, {"master_key": keys.master_key()})
    challenge = upload_cross_signing(
        api, alice, {"self_signing_key": keys.self_signing_key()}, expect=401
    )
    upload_cross_signing(
        api,
        alice,
        with_password(alice, {"self_signing_key": keys.self_signing_key()}, challenge["session"]),
    )
    assert query(api, bob, alice.user_id)["self_signing_keys"][alice.user_id] == (
        keys.self_signing_key()
    )


@pytest.mark.parametrize(
    "spoil",
    [
        lambda k: {**k, "user_id": "@bob:localhost:8008"},
        lambda k: {**k, "usage": ["self_signing"]},
        lambda k: {**k, "keys": {}},
        lambda k: {**k, "keys": {**k["keys"], "ed25519:other": "other"}},
        lambda k: {**k, "keys": {"ed25519:abc": next(iter(k["keys"].values()))}},
        lambda k: {**k, "keys": {f"curve25519:{v}": v for v in k["keys"].values()}},
        lambda k: {**k, "keys": {"ed25519:c2hvcnQ": "c2hvcnQ"}},
        lambda k: "a string",
    ],
)
def test_malformed_master_keys_are_refused(
    api: MatrixTestClient, alice: Persona, bob: Persona, spoil: Any
) -> None:
    keys = CrossSigning(alice.user_id)
    response = api.post(
        DEVICE_SIGNING, {"master_key": spoil(keys.master_key())}, token=alice.access_token
    )
    assert response.status == 400
    assert response.errcode in ("M_INVALID_PARAM", "M_BAD_JSON")
    assert query(api, bob, alice.user_id)["master_keys"] == {}


def test_a_public_key_may_not_be_a_device_id(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    keys = CrossSigning(alice.user_id)
    login = api.login(alice.localpart, alice.password, device_id=public(keys.master))
    assert login.status == 200
    response = api.post(DEVICE_SIGNING, keys.upload_body(), token=alice.access_token)
    assert (response.status, response.errcode) == (403, "M_FORBIDDEN")
    assert query(api, bob, alice.user_id)["master_keys"] == {}


def test_cross_signing_needs_a_token(api: MatrixTestClient) -> None:
    assert api.post(DEVICE_SIGNING, {}).errcode == "M_MISSING_TOKEN"
    assert api.post(SIGNATURES, {}).errcode == "M_MISSING_TOKEN"


# --- POST /keys/signatures/upload ---------------------------------------------------------


def upload_signatures(api: MatrixTestClient, who: Persona, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(SIGNATURES, body, token=who.access_token)
    assert response.status == 200, response.body
    failures: dict[str, Any] = response.body["failures"]
    return failures


def test_self_signing_a_device_and_device_signing_the_master_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, keys.upload_body())
    master_public = public(keys.master)
    signed_device = sign_json(device.device_keys(), alice.user_id, keys.self_signing)
    signed_master = device.sign(keys.master_key())

    failures = upload_signatures(
        api,
        alice,
        {alice.user_id: {alice.device_id: signed_device, master_public: signed_master}},
    )

    assert failures == {}
    seen = query(api, bob, alice.user_id)
    assert (
        seen["device_keys"][alice.user_id][alice.device_id]["signatures"]
        == (signed_device["signatures"])
    )
    assert seen["master_keys"][alice.user_id]["signatures"] == signed_master["signatures"]


def test_signing_another_users_master_key_is_seen_by_the_signer_only(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    alice_keys = CrossSigning(alice.user_id)
    bob_keys = CrossSigning(bob.user_id)
    upload_cross_signing(api, alice, alice_keys.upload_body())
    upload_cross_signing(api, bob, bob_keys.upload_body())
    signed = sign_json(bob_keys.master_key(), alice.user_id, alice_keys.user_signing)

    assert upload_signatures(api, alice, {bob.user_id: {public(bob_keys.master): signed}}) == {}

    assert query(api, alice, bob.user_id)["master_keys"][bob.user_id] == signed
    assert query(api, bob, bob.user_id)["master_keys"][bob.user_id] == bob_keys.master_key()
    assert query(api, carol, bob.user_id)["master_keys"][bob.user_id] == bob_keys.master_key()


def test_refused_signatures_are_reported_per_key_and_the_rest_stored(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    other = publish(api, second_device(api, alice))
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, keys.upload_body())
    good = sign_json(device.device_keys(), alice.user_id, keys.self_signing)
    forged = sign_json(other.device_keys(), alice.user_id, new_key(public(keys.self_signing)))
    changed = sign_json(
        {**device.device_keys(), "algorithms": ["x"]}, alice.user_id, keys.self_signing
    )

    failures = upload_signatures(
        api,
        alice,
        {
            alice.user_id: {
                alice.device_id: good,
                other.device_id: forged,
                "NOSUCHDEVICE": good,
            },
            bob.user_id: {"nosuchkey": good},
        },
    )

    assert failures[alice.user_id][other.device_id]["errcode"] == "M_INVALID_SIGNATURE"
    assert failures[alice.user_id]["NOSUCHDEVICE"]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id]["nosuchkey"]["errcode"] == "M_NOT_FOUND"
    assert all("error" in f for by_key in failures.values() for f in by_key.values())
    seen = query(api, bob, alice.user_id)["device_keys"][alice.user_id]
    assert seen[alice.device_id]["signatures"] == good["signatures"]
    assert seen[other.device_id]["signatures"] == other.device_keys()["signatures"]

    mismatch = upload_signatures(api, alice, {alice.user_id: {alice.device_id: changed}})
    assert mismatch[alice.user_id][alice.device_id]["errcode"] == "M_INVALID_PARAM"


def test_signing_without_the_right_key(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    bob_keys = CrossSigning(bob.user_id)
    upload_cross_signing(api, bob, bob_keys.upload_body())
    # Alice has no cross-signing keys: she can sign neither her device nor Bob.
    failures = upload_signatures(
        api,
        alice,
        {
            alice.user_id: {alice.device_id: device.device_keys()},
            bob.user_id: {public(bob_keys.master): bob_keys.master_key()},
        },
    )
    assert failures[alice.user_id][alice.device_id]["errcode"] == "M_NOT_FOUND"
    assert failures[bob.user_id][public(bob_keys.master)]["errcode"] == "M_NOT_FOUND"


@pytest.mark.parametrize(
    "body", [[], {"not a user": {}}, {"@a:b": []}, {"@a:b": {"K": "not an object"}}]
)
def test_malformed_signature_uploads(api: MatrixTestClient, alice: Persona, body: Any) -> None:
    response = api.post(SIGNATURES, body, token=alice.access_token)
    assert response.status == 400
    assert response.errcode in ("M_BAD_JSON", "M_INVALID_PARAM", "M_NOT_JSON")


def test_re_keying_a_device_drops_signatures_of_its_old_keys(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    keys = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, keys.upload_body())
    signed = sign_json(device.device_keys(), alice.user_id, keys.self_signing)
    assert upload_signatures(api, alice, {alice.user_id: {alice.device_id: signed}}) == {}

    rekeyed = publish(api, alice)

    seen = query(api, bob, alice.user_id)["device_keys"][alice.user_id][alice.device_id]
    assert seen["signatures"] == rekeyed.device_keys()["signatures"]


def test_device_signatures_on_an_uploaded_master_key_are_checked(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    keys = CrossSigning(alice.user_id)
    forged = sign_json(keys.master_key(), alice.user_id, new_key(alice.device_id))
    body = {**keys.upload_body(), "master_key": forged}
    response = api.post(DEVICE_SIGNING, body, token=alice.access_token)
    assert (response.status, response.errcode) == (400, "M_INVALID_SIGNATURE")
    assert query(api, bob, alice.user_id)["master_keys"] == {}

    signed = device.sign(keys.master_key())
    upload_cross_signing(api, alice, {**keys.upload_body(), "master_key": signed})
    assert query(api, bob, alice.user_id)["master_keys"][alice.user_id] == signed


def test_a_new_master_key_starts_without_the_old_ones_signatures(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    device = publish(api, alice)
    first = CrossSigning(alice.user_id)
    upload_cross_signing(api, alice, first.upload_body())
    signed = device.sign(first.master_key())
    assert upload_signatures(api, alice, {alice.user_id: {public(first.master): signed}}) == {}

    second = CrossSigning(alice.user_id)
    challenge = upload_cross_signing(api, alice, second.upload_body(), expect=401)
    upload_cross_signing(
        api, alice, with_password(alice, second.upload_body(), challenge["session"])
    )

    assert not KeySignature.objects.filter(target_key_id=public(first.master)).exists()
    assert query(api, bob, alice.user_id)["master_keys"][alice.user_id] == second.master_key()


def test_a_new_user_signing_key_is_news_to_its_owner_only(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    # Only its owner is shown a user-signing key (/keys/query), so only they have
    # anything to fetch again; a master key change is everyone's news.
    room = api.post("createRoom", {"preset": "public_chat"}, token=alice.access_token)
    assert room.status == 200, room.body
    joined = api.post(f"join/{room.body['room_id']}", {}, token=bob.access_token)
    assert joined.status == 200, joined.body
    keys = CrossSigning(alice.user_id)
    body = keys.upload_body()
    user_signing = body.pop("user_signing_key")
    upload_cross_signing(api, alice, body)

    def changed_since(who: Persona, token: str) -> list[str]:
        response = api.get(f"sync?since={token}&timeout=0", token=who.access_token)
        assert response.status == 200, response.body
        found: list[str] = response.body.get("device_lists", {}).get("changed", [])
        return found

    tokens = {}
    for who in (alice, bob):
        response = api.get("sync?timeout=0", token=who.access_token)
        tokens[who.user_id] = response.body["next_batch"]
    # Adding a key is a change of the user's keys: UIA, as sytest does it.
    challenge = upload_cross_signing(api, alice, {"user_signing_key": user_signing}, expect=401)
    upload_cross_signing(
        api,
        alice,
        with_password(alice, {"user_signing_key": user_signing}, challenge["session"]),
    )

    assert alice.user_id in changed_since(alice, tokens[alice.user_id])
    assert alice.user_id not in changed_since(bob, tokens[bob.user_id])

    tokens[bob.user_id] = api.get("sync?timeout=0", token=bob.access_token).body["next_batch"]
    keys.master = new_key()
    response = upload_cross_signing(api, alice, {"master_key": keys.master_key()}, expect=401)
    upload_cross_signing(
        api, alice, with_password(alice, {"master_key": keys.master_key()}, response["session"])
    )
    assert alice.user_id in changed_since(bob, tokens[bob.user_id])
