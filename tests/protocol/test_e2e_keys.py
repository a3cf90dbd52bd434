"""protocol.e2e_keys: the checks a server makes on published keys, without a database.

Device keys must be the device's own and signed by its ed25519 key; one-time and
fallback keys must be signed by it too; cross-signing keys must have the one
``ed25519:<public key>`` entry the CrossSigningKey schema describes. Signatures follow
the appendices' "Signing JSON" (canonical JSON without ``signatures`` and ``unsigned``).
"""

from __future__ import annotations

import os
from typing import Any

import nacl.signing
import pytest

from protocol import e2e_keys
from protocol.errors import MatrixError
from protocol.signing import SigningKey, sign_json
from protocol.unpadded_base64 import encode_base64

USER = "@alice:example.org"
DEVICE = "JLAFKJWSCS"


def key(name: str | None = None) -> SigningKey:
    raw = nacl.signing.SigningKey.generate()
    return SigningKey(name or encode_base64(bytes(raw.verify_key)), raw)


def public(signing_key: SigningKey) -> str:
    return encode_base64(signing_key.verify_key.encode())


def device_keys(signing_key: SigningKey, **changes: Any) -> dict[str, Any]:
    obj = {
        "user_id": USER,
        "device_id": DEVICE,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{DEVICE}": encode_base64(os.urandom(32)),
            f"ed25519:{DEVICE}": public(signing_key),
        },
        **changes,
    }
    return sign_json(obj, USER, signing_key)


def errcode(call: Any) -> str:
    with pytest.raises(MatrixError) as info:
        call()
    return info.value.errcode


def test_device_keys_signed_by_their_own_key_pass() -> None:
    signing_key = key(DEVICE)
    obj = {**device_keys(signing_key), "unsigned": {"device_display_name": "phone"}}
    checked = e2e_keys.check_device_keys(obj, USER, DEVICE)
    assert checked.ed25519 == public(signing_key)
    assert "unsigned" not in checked.json


def test_device_keys_of_someone_else_or_badly_signed_fail() -> None:
    signing_key = key(DEVICE)
    good = device_keys(signing_key)
    assert errcode(lambda: e2e_keys.check_device_keys(good, "@bob:example.org", DEVICE)) == (
        "M_INVALID_PARAM"
    )
    assert errcode(lambda: e2e_keys.check_device_keys(good, USER, "OTHER")) == "M_INVALID_PARAM"
    tampered = {**good, "algorithms": ["m.megolm.v1.aes-sha2"]}
    assert errcode(lambda: e2e_keys.check_device_keys(tampered, USER, DEVICE)) == (
        "M_INVALID_PARAM"
    )
    other_signer = device_keys(signing_key)
    other_signer["signatures"] = device_keys(key(DEVICE))["signatures"]
    assert errcode(lambda: e2e_keys.check_device_keys(other_signer, USER, DEVICE)) == (
        "M_INVALID_PARAM"
    )


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"ed25519:OTHER": "x"},
        {f"ed25519:{DEVICE}": "not base64!"},
        {f"ed25519:{DEVICE}": encode_base64(b"short")},
        {f"ed25519:{DEVICE}": encode_base64(os.urandom(32)) + "="},
        {f"curve25519:{DEVICE}": encode_base64(os.urandom(32))},
        {f":{DEVICE}": "x"},
        {f"ed 25519:{DEVICE}": "x"},
    ],
)
def test_malformed_device_key_maps_fail(keys: dict[str, Any]) -> None:
    signing_key = key(DEVICE)
    obj = sign_json(
        {"user_id": USER, "device_id": DEVICE, "algorithms": [], "keys": keys}, USER, signing_key
    )
    assert errcode(lambda: e2e_keys.check_device_keys(obj, USER, DEVICE)) == "M_INVALID_PARAM"


def test_oversized_device_keys_fail() -> None:
    signing_key = key(DEVICE)
    obj = device_keys(signing_key, algorithms=["x" * 200] * 200)
    assert errcode(lambda: e2e_keys.check_device_keys(obj, USER, DEVICE)) in (
        "M_TOO_LARGE",
        "M_INVALID_PARAM",
    )


@pytest.mark.parametrize(
    ("key_id", "valid"),
    [
        ("signed_curve25519:AAAAHg", True),
        ("signed_curve25519:AAAA/+==", True),
        ("signed_curve25519", False),
        ("signed_curve25519:", False),
        (":AAAA", False),
        ("a:b:c", False),
        ("signed curve25519:AAAA", False),
        ("signed_curve25519:AA AA", False),
        ("x" * 65 + ":A", False),
        ("a:" + "b" * 256, False),
    ],
)
def test_one_time_key_ids(key_id: str, valid: bool) -> None:
    if valid:
        assert e2e_keys.split_key_id(key_id)[0] == "signed_curve25519"
    else:
        assert errcode(lambda: e2e_keys.split_key_id(key_id)) == "M_INVALID_PARAM"


def test_signed_one_time_keys() -> None:
    device_key = key(DEVICE)
    obj = sign_json({"key": encode_base64(os.urandom(32))}, USER, device_key)
    checked = e2e_keys.check_one_time_key(
        "signed_curve25519:AAAB", obj, USER, device_key.verify_key
    )
    assert (checked.algorithm, checked.key_id, checked.json) == ("signed_curve25519", "AAAB", obj)

    fallback = sign_json(
        {"key": encode_base64(os.urandom(32)), "fallback": True}, USER, device_key
    )
    e2e_keys.check_one_time_key("signed_curve25519:AAAC", fallback, USER, device_key.verify_key)

    # Signed by a stranger, altered, unsigned, or with no device key to check against.
    stranger = sign_json({"key": encode_base64(os.urandom(32))}, USER, key(DEVICE))
    altered = {**obj, "key": encode_base64(os.urandom(32))}
    unsigned = {"key": obj["key"]}
    for bad in (stranger, altered, unsigned):
        assert (
            errcode(
                lambda bad=bad: e2e_keys.check_one_time_key(
                    "signed_curve25519:AAAD", bad, USER, device_key.verify_key
                )
            )
            == "M_INVALID_PARAM"
        )
    assert (
        errcode(lambda: e2e_keys.check_one_time_key("signed_curve25519:AAAE", obj, USER, None))
        == "M_INVALID_PARAM"
    )
    # An unsigned algorithm may be a bare key; a signed one may not.
    e2e_keys.check_one_time_key("curve25519:AAAF", encode_base64(os.urandom(32)), USER, None)
    assert (
        errcode(lambda: e2e_keys.check_one_time_key("signed_curve25519:AAAG", "abc", USER, None))
        == "M_INVALID_PARAM"
    )


def test_cross_signing_keys() -> None:
    master = key()
    obj = {
        "user_id": USER,
        "usage": ["master"],
        "keys": {f"ed25519:{public(master)}": public(master)},
    }
    checked = e2e_keys.check_cross_signing_key(obj, USER, "master")
    assert checked.public_key == public(master)
    assert checked.key_id == f"ed25519:{public(master)}"

    self_signing = key()
    ssk = sign_json(
        {
            "user_id": USER,
            "usage": ["self_signing"],
            "keys": {f"ed25519:{public(self_signing)}": public(self_signing)},
        },
        USER,
        master,
    )
    checked_ssk = e2e_keys.check_cross_signing_key(ssk, USER, "self_signing")
    # Key names with '+' and '/' (base64) are fine for cross-signing keys.
    assert e2e_keys.is_signed_by(checked_ssk.json, USER, checked.verify_key)
    assert not e2e_keys.is_signed_by(checked_ssk.json, USER, checked_ssk.verify_key)

    for bad in (
        {**obj, "usage": ["self_signing"]},
        {**obj, "usage": "master"},
        {**obj, "usage": ["master", "nonsense"]},
        {**obj, "user_id": "@bob:example.org"},
        {**obj, "keys": {}},
        {**obj, "keys": {"ed25519:abc": public(master)}},
        {**obj, "keys": {f"ed25519:{public(master)}": public(master), "ed25519:b": "b"}},
        {**obj, "signatures": "none"},
        [],
    ):
        assert errcode(lambda bad=bad: e2e_keys.check_cross_signing_key(bad, USER, "master")) == (
            "M_INVALID_PARAM"
        )
