"""Signing keys, JSON signatures and event signatures.

Vectors from content/appendices.md#cryptographic-test-vectors.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from protocol.hashing import check_content_hash
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, RoomVersions
from protocol.signing import (
    SignatureVerifyError,
    SigningKey,
    compute_signature,
    decode_verify_key_bytes,
    encode_signing_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    hash_and_sign_event,
    is_valid_key_version,
    read_signing_keys,
    servers_required_to_sign_event,
    sign_event,
    sign_json,
    signature_key_ids,
    signing_key_from_seed,
    verify_event_signature,
    verify_signed_json,
    write_signing_keys,
)
from protocol.unpadded_base64 import decode_base64

SEED = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1"
# The spec's seed has non-zero trailing bits in its last character; re-encoding the 32 bytes gives
# the canonical spelling, which differs only there.
SEED_CANONICAL = "YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0"
SERVER_NAME = "domain"
KEY_ID = "ed25519:1"

# Room versions whose redaction rules keep `origin`, which the spec's event vectors rely on.
PRE_V11 = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 11)]


@pytest.fixture
def key() -> SigningKey:
    return signing_key_from_seed(decode_base64(SEED), "1")


class TestJsonSigningVectors:
    def test_empty_object(self, key: SigningKey) -> None:
        assert sign_json({}, SERVER_NAME, key) == {
            "signatures": {
                "domain": {
                    "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5"
                    "QV/7Xg4ahLwYGYZzuHGZKM5ZAQ"
                }
            }
        }

    def test_object_with_data(self, key: SigningKey) -> None:
        assert sign_json({"one": 1, "two": "Two"}, SERVER_NAME, key) == {
            "one": 1,
            "signatures": {
                "domain": {
                    "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP"
                    "7vBZhG6kYdD13EIMJpvhJI+6Bw"
                }
            },
            "two": "Two",
        }


MINIMAL_EVENT: dict[str, Any] = {
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "signatures": {},
    "hashes": {},
    "type": "X",
    "content": {},
    "prev_events": [],
    "auth_events": [],
    "depth": 3,
    "unsigned": {"age_ts": 1000000},
}
MINIMAL_EVENT_SIGNED: dict[str, Any] = {
    "auth_events": [],
    "content": {},
    "depth": 3,
    "hashes": {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "prev_events": [],
    "room_id": "!x:domain",
    "sender": "@a:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5KLjA"
            "WbOoMszkwsQma+lYAg"
        }
    },
    "type": "X",
    "unsigned": {"age_ts": 1000000},
}
REDACTABLE_EVENT: dict[str, Any] = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {},
    "unsigned": {"age_ts": 1000000},
}
REDACTABLE_EVENT_SIGNED: dict[str, Any] = {
    "content": {"body": "Here is the message content"},
    "event_id": "$0:domain",
    "hashes": {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"},
    "origin": "domain",
    "origin_server_ts": 1000000,
    "type": "m.room.message",
    "room_id": "!r:domain",
    "sender": "@u:domain",
    "signatures": {
        "domain": {
            "ed25519:1": "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eY"
            "HYMGCA5McEiVPdhzBA"
        }
    },
    "unsigned": {"age_ts": 1000000},
}


def ids(versions: list[RoomVersion]) -> list[str]:
    return [f"v{v.identifier}" for v in versions]


class TestEventSigningVectors:
    @pytest.mark.parametrize("room_version", PRE_V11, ids=ids(PRE_V11))
    def test_minimal_event(self, key: SigningKey, room_version: RoomVersion) -> None:
        original = copy.deepcopy(MINIMAL_EVENT)
        assert hash_and_sign_event(original, SERVER_NAME, key, room_version) == (
            MINIMAL_EVENT_SIGNED
        )
        assert original == MINIMAL_EVENT  # not mutated

    @pytest.mark.parametrize("room_version", PRE_V11, ids=ids(PRE_V11))
    def test_redactable_event(self, key: SigningKey, room_version: RoomVersion) -> None:
        signed = hash_and_sign_event(REDACTABLE_EVENT, SERVER_NAME, key, room_version)
        assert signed == REDACTABLE_EVENT_SIGNED

    def test_v11_signs_without_origin(self, key: SigningKey) -> None:
        # origin is no longer protected in v11, so the signature differs from the vector...
        signed = hash_and_sign_event(MINIMAL_EVENT, SERVER_NAME, key, RoomVersions.V11)
        assert signed["hashes"] == MINIMAL_EVENT_SIGNED["hashes"]
        assert signed["signatures"] != MINIMAL_EVENT_SIGNED["signatures"]
        # ... and the signature survives a change of origin.
        signed["origin"] = "elsewhere"
        verify_event_signature(signed, SERVER_NAME, key.verify_key, RoomVersions.V11)

    @pytest.mark.parametrize("room_version", PRE_V11, ids=ids(PRE_V11))
    def test_spec_vectors_verify(self, key: SigningKey, room_version: RoomVersion) -> None:
        for signed in (MINIMAL_EVENT_SIGNED, REDACTABLE_EVENT_SIGNED):
            verify_event_signature(signed, SERVER_NAME, key.verify_key, room_version)
            assert check_content_hash(signed)


class TestEventVerification:
    def test_redacted_copy_still_verifies_but_fails_content_hash(self, key: SigningKey) -> None:
        signed = dict(REDACTABLE_EVENT_SIGNED)
        signed["content"] = {}
        verify_event_signature(signed, SERVER_NAME, key.verify_key, RoomVersions.V1)
        assert not check_content_hash(signed)

    def test_changing_a_protected_key_breaks_the_signature(self, key: SigningKey) -> None:
        signed = dict(REDACTABLE_EVENT_SIGNED)
        signed["sender"] = "@mallory:domain"
        with pytest.raises(SignatureVerifyError):
            verify_event_signature(signed, SERVER_NAME, key.verify_key, RoomVersions.V1)

    def test_wrong_server_or_key(self, key: SigningKey) -> None:
        with pytest.raises(SignatureVerifyError):
            verify_event_signature(
                REDACTABLE_EVENT_SIGNED, "other", key.verify_key, RoomVersions.V1
            )
        other = generate_signing_key("1")
        with pytest.raises(SignatureVerifyError):
            verify_event_signature(
                REDACTABLE_EVENT_SIGNED, SERVER_NAME, other.verify_key, RoomVersions.V1
            )

    def test_sign_event_keeps_other_servers_signatures(self, key: SigningKey) -> None:
        other = generate_signing_key("abc")
        signed = hash_and_sign_event(MINIMAL_EVENT, "other.example", other, RoomVersions.V10)
        both = sign_event(signed, SERVER_NAME, key, RoomVersions.V10)
        assert set(both["signatures"]) == {"other.example", "domain"}
        verify_event_signature(both, "other.example", other.verify_key, RoomVersions.V10)
        verify_event_signature(both, SERVER_NAME, key.verify_key, RoomVersions.V10)
        assert "domain" not in signed["signatures"]  # input untouched


class TestJsonSignatures:
    def test_sign_and_verify_round_trip(self, key: SigningKey) -> None:
        signed = sign_json({"a": [1, 2]}, SERVER_NAME, key)
        verify_signed_json(signed, SERVER_NAME, key.verify_key)

    def test_unsigned_is_preserved_and_not_covered(self, key: SigningKey) -> None:
        signed = sign_json({"a": 1, "unsigned": {"age": 5}}, SERVER_NAME, key)
        assert signed["unsigned"] == {"age": 5}
        assert signed["signatures"] == sign_json({"a": 1}, SERVER_NAME, key)["signatures"]
        signed["unsigned"] = {"age": 6}
        verify_signed_json(signed, SERVER_NAME, key.verify_key)

    def test_existing_signatures_are_merged_without_mutating_input(self, key: SigningKey) -> None:
        original = {"a": 1, "signatures": {"domain": {"ed25519:old": "x"}, "b.org": {"k": "y"}}}
        signed = sign_json(original, SERVER_NAME, key)
        assert signed["signatures"]["domain"]["ed25519:old"] == "x"
        assert signed["signatures"]["b.org"] == {"k": "y"}
        assert signed["signatures"]["domain"][KEY_ID] == compute_signature({"a": 1}, key)
        assert original["signatures"] == {"domain": {"ed25519:old": "x"}, "b.org": {"k": "y"}}
        verify_signed_json(signed, SERVER_NAME, key.verify_key)

    def test_tampered_object_fails(self, key: SigningKey) -> None:
        signed = sign_json({"a": 1}, SERVER_NAME, key)
        signed["a"] = 2
        with pytest.raises(SignatureVerifyError):
            verify_signed_json(signed, SERVER_NAME, key.verify_key)

    @pytest.mark.parametrize(
        "signatures",
        [
            None,
            {},
            {"domain": "x"},
            {"domain": {"ed25519:2": "abc"}},
            {"domain": {KEY_ID: "not base64!"}},
            {"domain": {KEY_ID: "AAAA"}},
        ],
    )
    def test_missing_or_malformed_signature_fails(
        self, key: SigningKey, signatures: object
    ) -> None:
        with pytest.raises(SignatureVerifyError):
            verify_signed_json({"a": 1, "signatures": signatures}, SERVER_NAME, key.verify_key)

    def test_signature_verify_error_is_a_value_error(self) -> None:
        assert issubclass(SignatureVerifyError, ValueError)

    def test_signature_key_ids_ignores_unknown_algorithms(self, key: SigningKey) -> None:
        signed = sign_json({"signatures": {"domain": {"curve25519:x": "y"}}}, SERVER_NAME, key)
        assert signature_key_ids(signed, SERVER_NAME) == [KEY_ID]
        assert signature_key_ids(signed, "nobody") == []


class TestKeys:
    def test_seed_round_trip_and_key_id(self, key: SigningKey) -> None:
        assert key.key_id == KEY_ID
        assert encode_signing_key_base64(key) == SEED_CANONICAL
        assert decode_base64(SEED) == decode_base64(SEED_CANONICAL)
        assert key.verify_key.key_id == KEY_ID

    def test_generated_keys_differ(self) -> None:
        a = generate_signing_key("a_1")
        b = generate_signing_key("a_1")
        assert a.seed != b.seed
        assert a.key_id == "ed25519:a_1"

    @pytest.mark.parametrize("version", ["", "a:b", "a-b", "é", "a b"])
    def test_invalid_versions_rejected(self, version: str) -> None:
        assert not is_valid_key_version(version)
        with pytest.raises(ValueError, match="version"):
            generate_signing_key(version)

    def test_seed_must_be_32_bytes(self) -> None:
        with pytest.raises(ValueError, match="32"):
            signing_key_from_seed(b"short", "1")

    def test_key_file_round_trip(self, key: SigningKey) -> None:
        other = generate_signing_key("a_2")
        text = write_signing_keys([key, other])
        assert text.splitlines()[0] == f"ed25519 1 {SEED_CANONICAL}"
        parsed = read_signing_keys(text)
        assert [(k.version, k.seed) for k in parsed] == [("1", key.seed), ("a_2", other.seed)]

    def test_key_file_parsing_tolerates_blank_lines_and_padding(self) -> None:
        parsed = read_signing_keys(f"\ned25519 1 {SEED}=\n\n")
        assert encode_signing_key_base64(parsed[0]) == SEED_CANONICAL

    @pytest.mark.parametrize(
        "text",
        [
            "ed25519 1",
            f"curve25519 1 {SEED}",
            "ed25519 1 !!!",
            "ed25519 1 AAAA",
            f"ed25519 bad:version {SEED}",
            f"ed25519 1 {SEED} extra",
        ],
    )
    def test_key_file_garbage(self, text: str) -> None:
        with pytest.raises(ValueError):
            read_signing_keys(text)

    def test_verify_key_base64_round_trip(self, key: SigningKey) -> None:
        encoded = encode_verify_key_base64(key.verify_key)
        assert len(decode_base64(encoded)) == 32
        from_b64 = decode_verify_key_bytes(KEY_ID, encoded)
        from_raw = decode_verify_key_bytes(KEY_ID, key.verify_key.encode())
        assert from_b64.encode() == from_raw.encode() == key.verify_key.encode()
        assert from_b64.key_id == KEY_ID
        verify_signed_json(sign_json({}, SERVER_NAME, key), SERVER_NAME, from_b64)

    @pytest.mark.parametrize(
        ("key_id", "value"),
        [
            ("curve25519:1", "AAAA"),
            ("ed25519", "AAAA"),
            ("ed25519:bad-version", "A" * 43),
            ("ed25519:1", "AAAA"),
            ("ed25519:1", "not base64"),
        ],
    )
    def test_decode_verify_key_rejects_garbage(self, key_id: str, value: str) -> None:
        with pytest.raises(ValueError):
            decode_verify_key_bytes(key_id, value)


class TestServersRequiredToSign:
    def test_sender_server(self) -> None:
        event = {"type": "m.room.message", "sender": "@a:one.org", "content": {}}
        assert servers_required_to_sign_event(event, RoomVersions.V11) == {"one.org"}

    def test_v1_also_requires_the_event_id_server(self) -> None:
        event = {"type": "X", "sender": "@a:one.org", "event_id": "$e:two.org", "content": {}}
        assert servers_required_to_sign_event(event, RoomVersions.V1) == {"one.org", "two.org"}
        assert servers_required_to_sign_event(event, RoomVersions.V3) == {"one.org"}

    def test_sender_port_is_part_of_server_name(self) -> None:
        event = {"type": "X", "sender": "@a:one.org:8448", "content": {}}
        assert servers_required_to_sign_event(event, RoomVersions.V11) == {"one.org:8448"}

    def test_third_party_invite_exempts_the_sender(self) -> None:
        event = {
            "type": "m.room.member",
            "sender": "@a:one.org",
            "state_key": "@b:two.org",
            "content": {"membership": "invite", "third_party_invite": {"signed": {}}},
        }
        assert servers_required_to_sign_event(event, RoomVersions.V11) == set()

    def test_restricted_join_requires_the_authorising_server_from_v8(self) -> None:
        event = {
            "type": "m.room.member",
            "sender": "@a:one.org",
            "state_key": "@a:one.org",
            "content": {
                "membership": "join",
                "join_authorised_via_users_server": "@admin:three.org",
            },
        }
        assert servers_required_to_sign_event(event, RoomVersions.V8) == {"one.org", "three.org"}
        assert servers_required_to_sign_event(event, RoomVersions.V7) == {"one.org"}

    def test_malformed_sender(self) -> None:
        with pytest.raises(ValueError, match="server name"):
            servers_required_to_sign_event({"sender": "nobody"}, RoomVersions.V11)
