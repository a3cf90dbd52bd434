"""Server key responses (server-server-api.md#retrieving-server-keys)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from protocol.server_keys import (
    MAX_VALIDITY_MS,
    OldVerifyKey,
    ServerKeysError,
    check_notary_signature,
    parse_server_keys,
    server_keys_json,
)
from protocol.signing import SigningKey, generate_signing_key, sign_json

NOW = 1_700_000_000_000
DAY = 24 * 3600 * 1000
# The spec's example (data/api/server-server/examples/server_key.json), as printed there.
SPEC_EXAMPLE = {
    "server_name": "example.org",
    "verify_keys": {
        "ed25519:abc123": {"key": "VGhpcyBzaG91bGQgYmUgYSByZWFsIGVkMjU1MTkgcGF5bG9hZA"}
    },
    "old_verify_keys": {
        "ed25519:0ldk3y": {
            "expired_ts": 1532645052628,
            "key": "VGhpcyBzaG91bGQgYmUgeW91ciBvbGQga2V5J3MgZWQyNTUxOSBwYXlsb2FkLg",
        }
    },
    "signatures": {
        "example.org": {"ed25519:auto2": "VGhpcyBzaG91bGQgYWN0dWFsbHkgYmUgYSBzaWduYXR1cmU"}
    },
    "valid_until_ts": 1652262000000,
}


@pytest.fixture
def key() -> SigningKey:
    return generate_signing_key("abc123")


def _response(key: SigningKey, **changes: Any) -> dict[str, Any]:
    obj = server_keys_json("example.org", [key], NOW + DAY)
    obj.update(changes)
    return obj


def test_our_own_response_has_the_spec_shape(key: SigningKey) -> None:
    old = generate_signing_key("0ldK3y")
    obj = server_keys_json(
        "example.org", [key], NOW + DAY, {"ed25519:0ldK3y": OldVerifyKey(old.verify_key, NOW)}
    )

    assert set(obj) == {
        "server_name",
        "verify_keys",
        "old_verify_keys",
        "signatures",
        "valid_until_ts",
    }
    assert list(obj["verify_keys"]) == ["ed25519:abc123"]
    assert obj["old_verify_keys"]["ed25519:0ldK3y"]["expired_ts"] == NOW
    keys = parse_server_keys(obj, "example.org", NOW)
    assert keys.verify_keys["ed25519:abc123"].encode() == key.verify_key.encode()
    assert keys.old_verify_keys["ed25519:0ldK3y"].expired_ts == NOW
    assert keys.valid_until_ts == NOW + DAY


def test_valid_until_is_capped_at_seven_days(key: SigningKey) -> None:
    obj = server_keys_json("example.org", [key], NOW + 365 * DAY)
    assert parse_server_keys(obj, "example.org", NOW).valid_until_ts == NOW + MAX_VALIDITY_MS


def test_every_verify_key_must_have_signed(key: SigningKey) -> None:
    second = generate_signing_key("second")
    obj = server_keys_json("example.org", [key, second], NOW + DAY)
    assert len(parse_server_keys(obj, "example.org", NOW).verify_keys) == 2

    only_one = copy.deepcopy(obj)
    del only_one["signatures"]["example.org"]["ed25519:second"]
    with pytest.raises(ServerKeysError):
        parse_server_keys(only_one, "example.org", NOW)


def test_the_spec_example_is_refused(key: SigningKey) -> None:
    # Its "signature" is placeholder text: a fetcher must not believe it.
    with pytest.raises(ServerKeysError):
        parse_server_keys(json.loads(json.dumps(SPEC_EXAMPLE)), "example.org", NOW)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda o: o.update(server_name="evil.example"), id="other server"),
        pytest.param(lambda o: o.update(valid_until_ts="soon"), id="valid_until not int"),
        pytest.param(lambda o: o.update(valid_until_ts=True), id="valid_until bool"),
        pytest.param(lambda o: o.pop("valid_until_ts"), id="no valid_until"),
        pytest.param(lambda o: o.update(verify_keys={}), id="no verify keys"),
        pytest.param(lambda o: o.update(verify_keys=[]), id="verify keys not object"),
        pytest.param(lambda o: o.pop("signatures"), id="unsigned"),
        pytest.param(lambda o: o.update(old_verify_keys=[]), id="old keys not object"),
        pytest.param(
            lambda o: o.update(old_verify_keys={"ed25519:x": {"key": "AAAA"}}),
            id="old key without expiry",
        ),
        pytest.param(
            lambda o: o["verify_keys"]["ed25519:abc123"].update(key="short"), id="bad key"
        ),
        pytest.param(lambda o: o.update(valid_until_ts=NOW + 2 * DAY), id="tampered"),
    ],
)
def test_bad_responses_are_refused(key: SigningKey, mutate: Any) -> None:
    obj = _response(key)
    mutate(obj)
    with pytest.raises(ServerKeysError):
        parse_server_keys(obj, "example.org", NOW)


@pytest.mark.parametrize("obj", [None, [], "x", 1])
def test_non_objects_are_refused(obj: object) -> None:
    with pytest.raises(ServerKeysError):
        parse_server_keys(obj, "example.org", NOW)


def test_a_signature_by_another_key_is_not_enough(key: SigningKey) -> None:
    impostor = generate_signing_key("abc123")
    obj = server_keys_json("example.org", [key], NOW + DAY)
    del obj["signatures"]
    forged = sign_json(obj, "example.org", impostor)
    with pytest.raises(ServerKeysError):
        parse_server_keys(forged, "example.org", NOW)


def test_notary_signatures(key: SigningKey) -> None:
    notary = generate_signing_key("n")
    obj = sign_json(_response(key), "notary.example", notary)

    check_notary_signature(obj, "notary.example", notary.verify_key)
    parse_server_keys(obj, "example.org", NOW)  # the origin's own signature still holds
    with pytest.raises(ServerKeysError):
        check_notary_signature(_response(key), "notary.example", notary.verify_key)


def test_keys_of_unknown_algorithms_are_left_out(key: SigningKey) -> None:
    obj = server_keys_json("example.org", [key], NOW + DAY)
    del obj["signatures"]
    obj["verify_keys"]["x25519:future"] = {"key": "whatever"}
    obj["old_verify_keys"] = {"rsa:old": {"key": "x", "expired_ts": NOW}}
    keys = parse_server_keys(sign_json(obj, "example.org", key), "example.org", NOW)
    assert list(keys.verify_keys) == ["ed25519:abc123"]
    assert keys.old_verify_keys == {}


def test_a_response_without_any_ed25519_key_is_refused(key: SigningKey) -> None:
    obj = {
        "server_name": "example.org",
        "verify_keys": {"x25519:future": {"key": "whatever"}},
        "valid_until_ts": NOW + DAY,
    }
    with pytest.raises(ServerKeysError):
        parse_server_keys(sign_json(obj, "example.org", key), "example.org", NOW)
