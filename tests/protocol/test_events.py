"""The Event wrapper: field access per room version's PDU format."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.events import (
    Event,
    EventFormatError,
    check_event_json_values,
    oversized_key,
    oversized_relation_field,
)
from protocol.hashing import compute_event_id, compute_room_id_from_create_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, RoomVersions

HASHED_ID_VERSIONS = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(3, 13)]


def member_pdu(**extra: Any) -> dict[str, Any]:
    pdu: dict[str, Any] = {
        "auth_events": ["$create", "$pl"],
        "content": {"membership": "join", "displayname": "Alice"},
        "depth": 4,
        "hashes": {"sha256": "aGFzaA"},
        "origin_server_ts": 1700000000000,
        "prev_events": ["$prev"],
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "signatures": {"example.org": {"ed25519:1": "c2ln"}},
        "state_key": "@alice:example.org",
        "type": "m.room.member",
        "unsigned": {"age": 3},
    }
    pdu.update(extra)
    return pdu


class TestFields:
    def test_plain_fields(self) -> None:
        event = Event(member_pdu(), RoomVersions.V10)
        assert event.type == "m.room.member"
        assert event.sender == "@alice:example.org"
        assert event.room_id == "!room:example.org"
        assert event.state_key == "@alice:example.org"
        assert event.content == {"membership": "join", "displayname": "Alice"}
        assert event.origin_server_ts == 1700000000000
        assert event.depth == 4
        assert event.prev_event_ids == ["$prev"]
        assert event.auth_event_ids == ["$create", "$pl"]
        assert event.membership == "join"
        assert event.hashes == {"sha256": "aGFzaA"}
        assert event.signatures == {"example.org": {"ed25519:1": "c2ln"}}
        assert event.unsigned == {"age": 3}
        assert event.room_version is RoomVersions.V10
        assert event.pdu == member_pdu()

    def test_state_events(self) -> None:
        event = Event(member_pdu(), RoomVersions.V10)
        assert event.is_state()
        assert event.state_key_tuple() == ("m.room.member", "@alice:example.org")

    def test_empty_state_key_is_still_state(self) -> None:
        event = Event(member_pdu(type="m.room.topic", state_key=""), RoomVersions.V10)
        assert event.is_state()
        assert event.state_key == ""
        assert event.state_key_tuple() == ("m.room.topic", "")

    def test_non_state_event(self) -> None:
        pdu = member_pdu(type="m.room.message", content={"body": "hi"})
        del pdu["state_key"]
        event = Event(pdu, RoomVersions.V10)
        assert not event.is_state()
        assert event.state_key is None
        assert event.membership is None
        with pytest.raises(EventFormatError):
            event.state_key_tuple()

    def test_missing_lists_are_empty(self) -> None:
        pdu = member_pdu()
        del pdu["prev_events"], pdu["auth_events"], pdu["unsigned"]
        event = Event(pdu, RoomVersions.V10)
        assert event.prev_event_ids == []
        assert event.auth_event_ids == []
        assert event.unsigned == {}

    @pytest.mark.parametrize(
        ("key", "value", "attribute"),
        [
            ("type", None, "type"),
            ("sender", 5, "sender"),
            ("room_id", ["!r"], "room_id"),
            ("state_key", 1, "state_key"),
            ("content", [], "content"),
            ("depth", "4", "depth"),
            ("depth", True, "depth"),
            ("origin_server_ts", 1.5, "origin_server_ts"),
            ("prev_events", "$p", "prev_event_ids"),
            ("auth_events", [["$a", {}]], "auth_event_ids"),
        ],
    )
    def test_malformed_fields_raise(self, key: str, value: object, attribute: str) -> None:
        event = Event(member_pdu(**{key: value}), RoomVersions.V10)
        with pytest.raises(EventFormatError):
            getattr(event, attribute)

    def test_event_format_error_is_a_value_error(self) -> None:
        assert issubclass(EventFormatError, ValueError)

    def test_wrapper_keeps_its_own_top_level_copy(self) -> None:
        pdu = member_pdu()
        event = Event(pdu, RoomVersions.V10)
        pdu["sender"] = "@mallory:example.org"
        assert event.sender == "@alice:example.org"


class TestV1V2Format:
    @pytest.mark.parametrize("room_version", [RoomVersions.V1, RoomVersions.V2], ids=["v1", "v2"])
    def test_pairs_and_event_id(self, room_version: RoomVersion) -> None:
        pdu = member_pdu(
            event_id="$abc:example.org",
            prev_events=[["$prev:example.org", {"sha256": "x"}]],
            auth_events=[["$c:example.org", {"sha256": "y"}], ["$p:example.org", {}]],
        )
        event = Event(pdu, room_version)
        assert event.event_id == "$abc:example.org"
        assert event.prev_event_ids == ["$prev:example.org"]
        assert event.auth_event_ids == ["$c:example.org", "$p:example.org"]

    def test_plain_ids_are_malformed_in_v1(self) -> None:
        event = Event(member_pdu(event_id="$e:x"), RoomVersions.V1)
        with pytest.raises(EventFormatError):
            _ = event.prev_event_ids

    def test_missing_event_id(self) -> None:
        with pytest.raises(EventFormatError):
            _ = Event(member_pdu(), RoomVersions.V1).event_id

    def test_explicit_event_id(self) -> None:
        assert Event(member_pdu(), RoomVersions.V1, event_id="$given:x").event_id == "$given:x"


class TestEventIds:
    @pytest.mark.parametrize(
        "room_version", HASHED_ID_VERSIONS, ids=[v.identifier for v in HASHED_ID_VERSIONS]
    )
    def test_event_id_is_the_reference_hash(self, room_version: RoomVersion) -> None:
        event = Event(member_pdu(), room_version)
        assert event.event_id == compute_event_id(member_pdu(), room_version)
        assert event.event_id.startswith("$")
        assert ":" not in event.event_id

    def test_event_id_ignores_a_claimed_event_id_field(self) -> None:
        honest = Event(member_pdu(), RoomVersions.V4)
        claiming = Event(member_pdu(event_id="$lie"), RoomVersions.V4)
        # v3+ PDUs carry no event_id; a stray one is hashed like any kept key but never trusted.
        assert claiming.event_id != "$lie"
        assert honest.event_id != "$lie"

    def test_explicit_event_id_is_trusted(self) -> None:
        assert Event(member_pdu(), RoomVersions.V11, event_id="$known").event_id == "$known"

    def test_unsigned_does_not_change_the_event_id(self) -> None:
        a = Event(member_pdu(unsigned={"age": 1}), RoomVersions.V11)
        b = Event(member_pdu(unsigned={"age": 999}), RoomVersions.V11)
        assert a.event_id == b.event_id
        assert a == b
        assert hash(a) == hash(b)
        assert len({a, b}) == 1

    def test_equality_uses_event_ids(self) -> None:
        a = Event(member_pdu(), RoomVersions.V11)
        b = Event(member_pdu(depth=5), RoomVersions.V11)
        assert a != b
        assert a != "not an event"


class TestRedacts:
    def redaction_pdu(self) -> dict[str, Any]:
        pdu = member_pdu(type="m.room.redaction", redacts="$top", content={"redacts": "$inner"})
        del pdu["state_key"]
        return pdu

    @pytest.mark.parametrize(
        "room_version",
        [KNOWN_ROOM_VERSIONS[str(n)] for n in range(3, 11)],
        ids=lambda v: f"v{v.identifier}",
    )
    def test_top_level_before_v11(self, room_version: RoomVersion) -> None:
        assert Event(self.redaction_pdu(), room_version).redacts == "$top"

    @pytest.mark.parametrize(
        "room_version", [RoomVersions.V11, RoomVersions.V12], ids=lambda v: f"v{v.identifier}"
    )
    def test_content_from_v11(self, room_version: RoomVersion) -> None:
        assert Event(self.redaction_pdu(), room_version).redacts == "$inner"

    def test_other_types_redact_nothing(self) -> None:
        assert Event(member_pdu(redacts="$x"), RoomVersions.V10).redacts is None

    def test_missing_redacts(self) -> None:
        pdu = self.redaction_pdu()
        pdu["content"] = {}
        assert Event(pdu, RoomVersions.V11).redacts is None


def v12_create_pdu() -> dict[str, Any]:
    return {
        "auth_events": [],
        "content": {"room_version": "12"},
        "depth": 1,
        "hashes": {"sha256": "aGFzaA"},
        "origin_server_ts": 1,
        "prev_events": [],
        "sender": "@alice:example.org",
        "signatures": {},
        "state_key": "",
        "type": "m.room.create",
    }


class TestV12RoomIds:
    def test_create_event_room_id_is_derived_from_its_hash(self) -> None:
        create = Event(v12_create_pdu(), RoomVersions.V12)
        assert create.room_id == compute_room_id_from_create_event(
            v12_create_pdu(), RoomVersions.V12
        )
        assert create.room_id == "!" + create.event_id[1:]

    def test_create_event_room_id_with_known_event_id(self) -> None:
        create = Event(v12_create_pdu(), RoomVersions.V12, event_id="$known")
        assert create.room_id == "!known"

    def test_other_v12_events_carry_the_room_id(self) -> None:
        create = Event(v12_create_pdu(), RoomVersions.V12)
        member = Event(member_pdu(room_id=create.room_id, auth_events=[]), RoomVersions.V12)
        assert member.room_id == create.room_id

    def test_v11_create_event_reads_room_id_from_the_pdu(self) -> None:
        pdu = v12_create_pdu()
        pdu["room_id"] = "!r:example.org"
        assert Event(pdu, RoomVersions.V11).room_id == "!r:example.org"
        del pdu["room_id"]
        with pytest.raises(EventFormatError):
            _ = Event(pdu, RoomVersions.V11).room_id


def test_repr_does_not_hash() -> None:
    event = Event(member_pdu(), RoomVersions.V11)
    assert "m.room.member" in repr(event)
    assert "@alice:example.org" in repr(event)


class TestCheckEventJsonValues:
    @pytest.mark.parametrize("value", [1.5, 2**53], ids=["float", "too-big-int"])
    def test_strict_from_v6(self, value: object) -> None:
        pdu = member_pdu(content={"membership": "join", "n": value})
        for identifier in ("6", "10", "12"):
            with pytest.raises(EventFormatError):
                check_event_json_values(pdu, KNOWN_ROOM_VERSIONS[identifier])
        for identifier in ("1", "5"):
            check_event_json_values(pdu, KNOWN_ROOM_VERSIONS[identifier])

    def test_non_finite_rejected_everywhere(self) -> None:
        pdu = member_pdu(content={"n": float("nan")})
        with pytest.raises(EventFormatError):
            check_event_json_values(pdu, RoomVersions.V1)

    def test_valid_event_passes(self) -> None:
        check_event_json_values(member_pdu(), RoomVersions.V12)


@pytest.mark.parametrize("key", ["type", "state_key", "sender", "room_id", "event_id"])
def test_the_size_limited_keys_are_at_most_255_bytes(key: str) -> None:
    """Client-Server API, "Size limits"."""
    assert oversized_key({key: "a" * 255, "content": {"body": "b" * 1000}}) is None
    assert oversized_key({key: "é" * 128}) == key


@pytest.mark.parametrize(
    ("relates_to", "field"),
    [
        ({"rel_type": "m.thread", "event_id": "$" + "a" * 255}, "m.relates_to.event_id"),
        ({"rel_type": "r" * 256, "event_id": "$e"}, "m.relates_to.rel_type"),
        ({"m.in_reply_to": {"event_id": "$" + "a" * 255}}, "m.relates_to.m.in_reply_to.event_id"),
        ({"rel_type": "m.thread", "event_id": "$" + "a" * 254}, None),
        ({"event_id": 5, "m.in_reply_to": "not an object"}, None),
    ],
)
def test_relation_fields_over_255_bytes_are_found(
    relates_to: dict[str, Any], field: str | None
) -> None:
    assert oversized_relation_field({"m.relates_to": relates_to}) == field
    assert oversized_relation_field({"m.relates_to": "not an object"}) is None
