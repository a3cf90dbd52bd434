"""Content hashes, reference hashes, event IDs and v12 room IDs.

content/server-server-api.md#calculating-the-content-hash-for-an-event,
#calculating-the-reference-hash-for-an-event; content/rooms/v3.md, fragments/v4-event-ids.md;
content/appendices.md#room-ids. Expected values are computed from hand-written canonical JSON.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from protocol.hashing import (
    add_content_hash,
    check_content_hash,
    compute_content_hash,
    compute_event_id,
    compute_reference_hash,
    compute_room_id_from_create_event,
    generate_opaque_event_id,
    generate_opaque_room_id,
)
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersions


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def message_event() -> dict[str, Any]:
    return {
        "auth_events": ["$a"],
        "content": {"body": "hello", "msgtype": "m.text"},
        "depth": 7,
        "hashes": {"sha256": "ignored"},
        "origin": "example.org",
        "origin_server_ts": 1000,
        "prev_events": ["$p"],
        "room_id": "!r:example.org",
        "sender": "@u:example.org",
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "type": "m.room.message",
        "unsigned": {"age_ts": 1},
    }


# Canonical JSON of message_event() without hashes, signatures and unsigned.
CONTENT_HASHED_JSON = (
    b'{"auth_events":["$a"],"content":{"body":"hello","msgtype":"m.text"},"depth":7,'
    b'"origin":"example.org","origin_server_ts":1000,"prev_events":["$p"],'
    b'"room_id":"!r:example.org","sender":"@u:example.org","type":"m.room.message"}'
)


class TestContentHash:
    def test_spec_vector(self) -> None:
        # appendices.md#event-signing: the minimal event's content hash.
        event = {
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
        assert b64(compute_content_hash(event)) == "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"

    def test_excludes_hashes_signatures_and_unsigned(self) -> None:
        assert compute_content_hash(message_event()) == sha256(CONTENT_HASHED_JSON)

    def test_covers_content(self) -> None:
        changed = message_event()
        changed["content"] = {"body": "bye", "msgtype": "m.text"}
        assert compute_content_hash(changed) != compute_content_hash(message_event())

    def test_add_and_check(self) -> None:
        original = message_event()
        hashed = add_content_hash(original)
        assert hashed["hashes"] == {"sha256": b64(sha256(CONTENT_HASHED_JSON))}
        assert original["hashes"] == {"sha256": "ignored"}  # input untouched
        assert check_content_hash(hashed)

    def test_check_accepts_padded_hash(self) -> None:
        hashed = add_content_hash(message_event())
        hashed["hashes"] = {"sha256": hashed["hashes"]["sha256"] + "="}
        assert check_content_hash(hashed)

    def test_check_fails_on_tampering(self) -> None:
        hashed = add_content_hash(message_event())
        hashed["content"] = {"body": "tampered"}
        assert not check_content_hash(hashed)

    @pytest.mark.parametrize("hashes", [None, {}, {"sha256": 5}, {"sha256": "!!"}, "x"])
    def test_check_fails_on_missing_or_malformed_hash(self, hashes: object) -> None:
        event = message_event()
        event["hashes"] = hashes
        assert not check_content_hash(event)

    def test_lenient_for_old_room_version_floats(self) -> None:
        event = message_event()
        event["content"] = {"n": 1.5}
        assert len(compute_content_hash(event)) == 32


# Canonical JSON of message_event() after v1..v10 redaction, without signatures.
REDACTED_PRE_V11_JSON = (
    b'{"auth_events":["$a"],"content":{},"depth":7,"hashes":{"sha256":"ignored"},'
    b'"origin":"example.org","origin_server_ts":1000,"prev_events":["$p"],'
    b'"room_id":"!r:example.org","sender":"@u:example.org","type":"m.room.message"}'
)
# ... and after v11 redaction (origin is no longer kept).
REDACTED_V11_JSON = (
    b'{"auth_events":["$a"],"content":{},"depth":7,"hashes":{"sha256":"ignored"},'
    b'"origin_server_ts":1000,"prev_events":["$p"],'
    b'"room_id":"!r:example.org","sender":"@u:example.org","type":"m.room.message"}'
)


class TestReferenceHashAndEventIds:
    def test_reference_hash_covers_the_redacted_event_without_signatures(self) -> None:
        assert compute_reference_hash(message_event(), RoomVersions.V4) == sha256(
            REDACTED_PRE_V11_JSON
        )
        assert compute_reference_hash(message_event(), RoomVersions.V11) == sha256(
            REDACTED_V11_JSON
        )

    def test_reference_hash_ignores_redactable_content_and_signatures(self) -> None:
        changed = message_event()
        changed["content"] = {"body": "other"}
        changed["signatures"] = {}
        changed["unsigned"] = {"x": 1}
        for version in (RoomVersions.V3, RoomVersions.V11):
            assert compute_reference_hash(changed, version) == compute_reference_hash(
                message_event(), version
            )

    def test_v3_event_id_uses_standard_base64(self) -> None:
        expected = "$" + b64(sha256(REDACTED_PRE_V11_JSON))
        assert compute_event_id(message_event(), RoomVersions.V3) == expected

    @pytest.mark.parametrize("identifier", ["4", "5", "6", "7", "8", "9", "10"])
    def test_v4_to_v10_event_ids_use_url_safe_base64(self, identifier: str) -> None:
        expected = "$" + b64url(sha256(REDACTED_PRE_V11_JSON))
        assert compute_event_id(message_event(), KNOWN_ROOM_VERSIONS[identifier]) == expected

    @pytest.mark.parametrize("identifier", ["11", "12"])
    def test_v11_plus_event_ids(self, identifier: str) -> None:
        expected = "$" + b64url(sha256(REDACTED_V11_JSON))
        assert compute_event_id(message_event(), KNOWN_ROOM_VERSIONS[identifier]) == expected

    def test_v3_and_v4_ids_differ_only_in_alphabet(self) -> None:
        # Find an event whose hash contains + or / so the alphabets visibly differ.
        event = message_event()
        for depth in range(100):
            event["depth"] = depth
            v3 = compute_event_id(event, RoomVersions.V3)
            if "+" in v3 or "/" in v3:
                break
        v4 = compute_event_id(event, RoomVersions.V4)
        assert v3 != v4
        assert v4 == v3.replace("+", "-").replace("/", "_")
        assert re.fullmatch(r"\$[A-Za-z0-9_-]{43}", v4)

    @pytest.mark.parametrize("identifier", ["1", "2"])
    def test_v1_v2_event_id_comes_from_the_pdu(self, identifier: str) -> None:
        event = message_event()
        event["event_id"] = "$abc:example.org"
        assert compute_event_id(event, KNOWN_ROOM_VERSIONS[identifier]) == "$abc:example.org"
        with pytest.raises(ValueError, match="event_id"):
            compute_event_id(message_event(), KNOWN_ROOM_VERSIONS[identifier])

    def test_v1_reference_hash_includes_the_event_id(self) -> None:
        event = message_event()
        event["event_id"] = "$abc:example.org"
        assert compute_reference_hash(event, RoomVersions.V1) != compute_reference_hash(
            message_event(), RoomVersions.V1
        )

    def test_opaque_ids(self) -> None:
        event_id = generate_opaque_event_id("example.org")
        room_id = generate_opaque_room_id("example.org")
        assert re.fullmatch(r"\$[A-Za-z0-9]{18}:example\.org", event_id)
        assert re.fullmatch(r"![A-Za-z0-9]{18}:example\.org", room_id)
        assert generate_opaque_event_id("example.org") != event_id


def v12_create_event() -> dict[str, Any]:
    return {
        "auth_events": [],
        "content": {"room_version": "12", "additional_creators": ["@b:example.org"]},
        "depth": 1,
        "hashes": {"sha256": "aGFzaA"},
        "origin_server_ts": 5,
        "prev_events": [],
        "sender": "@a:example.org",
        "signatures": {"example.org": {"ed25519:1": "sig"}},
        "state_key": "",
        "type": "m.room.create",
        "unsigned": {"age": 1},
    }


V12_CREATE_REDACTED_JSON = (
    b'{"auth_events":[],"content":{"additional_creators":["@b:example.org"],"room_version":"12"},'
    b'"depth":1,"hashes":{"sha256":"aGFzaA"},"origin_server_ts":5,"prev_events":[],'
    b'"sender":"@a:example.org","state_key":"","type":"m.room.create"}'
)


class TestV12RoomIds:
    def test_room_id_is_bang_plus_url_safe_reference_hash(self) -> None:
        expected = "!" + b64url(sha256(V12_CREATE_REDACTED_JSON))
        assert compute_room_id_from_create_event(v12_create_event(), RoomVersions.V12) == expected

    def test_room_id_matches_create_event_id(self) -> None:
        create = v12_create_event()
        room_id = compute_room_id_from_create_event(create, RoomVersions.V12)
        assert room_id[1:] == compute_event_id(create, RoomVersions.V12)[1:]
        assert compute_event_id(create, RoomVersions.V12)[0] == "$"

    def test_only_for_versions_with_hashed_room_ids(self) -> None:
        with pytest.raises(ValueError, match="room ID"):
            compute_room_id_from_create_event(v12_create_event(), RoomVersions.V11)

    def test_only_for_create_events(self) -> None:
        event = v12_create_event()
        event["type"] = "m.room.member"
        with pytest.raises(ValueError, match=r"m\.room\.create"):
            compute_room_id_from_create_event(event, RoomVersions.V12)
