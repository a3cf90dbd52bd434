"""The redaction algorithm per room version: content/rooms/fragments/v1-redactions.md,
v6-redactions.md, the list in content/rooms/v8.md, v9-redactions.md and v11-redactions.md."""

from __future__ import annotations

from typing import Any

import pytest

from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, RoomVersions

ALL = [KNOWN_ROOM_VERSIONS[str(n)] for n in range(1, 13)]
PRE_V11 = ALL[:10]
V11_PLUS = ALL[10:]


def ids(versions: list[RoomVersion]) -> list[str]:
    return [f"v{v.identifier}" for v in versions]


def pdu(event_type: str, content: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An event carrying every top-level key any version protects, plus some that none does."""
    event: dict[str, Any] = {
        "event_id": "$ev:example.org",
        "type": event_type,
        "room_id": "!room:example.org",
        "sender": "@alice:example.org",
        "state_key": "",
        "content": content,
        "hashes": {"sha256": "aGFzaA"},
        "signatures": {"example.org": {"ed25519:1": "c2ln"}},
        "depth": 5,
        "prev_events": ["$prev"],
        "prev_state": [],
        "auth_events": ["$auth"],
        "origin": "example.org",
        "origin_server_ts": 1234,
        "membership": "join",
        "unsigned": {"age": 10},
        "redacts": "$target",
        "custom": "dropped everywhere",
    }
    event.update(extra)
    return event


ALWAYS_KEPT = {
    "event_id",
    "type",
    "room_id",
    "sender",
    "state_key",
    "content",
    "hashes",
    "signatures",
    "depth",
    "prev_events",
    "auth_events",
    "origin_server_ts",
}


@pytest.mark.parametrize("room_version", PRE_V11, ids=ids(PRE_V11))
def test_top_level_keys_pre_v11(room_version: RoomVersion) -> None:
    redacted = redact_event(pdu("m.room.message", {"body": "hi"}), room_version)
    assert set(redacted) == ALWAYS_KEPT | {"prev_state", "origin", "membership"}


@pytest.mark.parametrize("room_version", V11_PLUS, ids=ids(V11_PLUS))
def test_top_level_keys_v11_plus(room_version: RoomVersion) -> None:
    # v11: origin, membership and prev_state are no longer protected.
    redacted = redact_event(pdu("m.room.message", {"body": "hi"}), room_version)
    assert set(redacted) == ALWAYS_KEPT


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_unsigned_and_unknown_keys_are_dropped_and_values_kept(room_version: RoomVersion) -> None:
    original = pdu("m.room.message", {"body": "hi"})
    redacted = redact_event(original, room_version)
    assert "unsigned" not in redacted
    assert "custom" not in redacted
    assert "redacts" not in redacted  # top-level redacts is not protected in any version
    assert redacted["content"] == {}
    for key in ALWAYS_KEPT - {"content"}:
        assert redacted[key] == original[key]


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_redaction_does_not_modify_or_alias_the_input(room_version: RoomVersion) -> None:
    original = pdu("m.room.power_levels", {"users": {"@a:x": 100}, "ban": 50})
    redacted = redact_event(original, room_version)
    redacted["content"]["users"]["@b:x"] = 1
    redacted["signatures"]["other"] = {}
    assert original["content"]["users"] == {"@a:x": 100}
    assert "other" not in original["signatures"]
    assert "unsigned" in original


MEMBER_CONTENT = {
    "membership": "join",
    "displayname": "Alice",
    "avatar_url": "mxc://x/y",
    "join_authorised_via_users_server": "@bob:example.org",
    "third_party_invite": {"display_name": "a...", "signed": {"mxid": "@a:x", "token": "t"}},
}


@pytest.mark.parametrize(
    ("room_version", "expected"),
    [
        *((v, {"membership": "join"}) for v in ALL[:8]),
        *(
            (v, {"membership": "join", "join_authorised_via_users_server": "@bob:example.org"})
            for v in ALL[8:10]
        ),
        *(
            (
                v,
                {
                    "membership": "join",
                    "join_authorised_via_users_server": "@bob:example.org",
                    "third_party_invite": {"signed": {"mxid": "@a:x", "token": "t"}},
                },
            )
            for v in V11_PLUS
        ),
    ],
    ids=ids(ALL),
)
def test_member_content(room_version: RoomVersion, expected: dict[str, Any]) -> None:
    assert redact_event(pdu("m.room.member", MEMBER_CONTENT), room_version)["content"] == expected


def test_v11_member_third_party_invite_without_signed_keeps_an_empty_object() -> None:
    content = {"membership": "invite", "third_party_invite": {"display_name": "x"}}
    redacted = redact_event(pdu("m.room.member", content), RoomVersions.V11)
    assert redacted["content"] == {"membership": "invite", "third_party_invite": {}}


def test_v11_member_non_object_third_party_invite_is_dropped() -> None:
    content = {"membership": "invite", "third_party_invite": "nonsense"}
    redacted = redact_event(pdu("m.room.member", content), RoomVersions.V11)
    assert redacted["content"] == {"membership": "invite"}


CREATE_CONTENT = {
    "creator": "@alice:example.org",
    "room_version": "10",
    "m.federate": False,
    "predecessor": {"room_id": "!old:example.org", "event_id": "$e"},
    "additional_creators": ["@bob:example.org"],
}


@pytest.mark.parametrize("room_version", PRE_V11, ids=ids(PRE_V11))
def test_create_keeps_only_creator_pre_v11(room_version: RoomVersion) -> None:
    redacted = redact_event(pdu("m.room.create", CREATE_CONTENT), room_version)
    assert redacted["content"] == {"creator": "@alice:example.org"}


@pytest.mark.parametrize("room_version", V11_PLUS, ids=ids(V11_PLUS))
def test_create_keeps_all_content_v11_plus(room_version: RoomVersion) -> None:
    redacted = redact_event(pdu("m.room.create", CREATE_CONTENT), room_version)
    assert redacted["content"] == CREATE_CONTENT


JOIN_RULES_CONTENT = {
    "join_rule": "restricted",
    "allow": [{"type": "m.room_membership", "room_id": "!space:x"}],
    "other": 1,
}


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_join_rules_keep_allow_from_v8(room_version: RoomVersion) -> None:
    redacted = redact_event(pdu("m.room.join_rules", JOIN_RULES_CONTENT), room_version)
    if room_version in ALL[7:]:  # v8+
        assert redacted["content"] == {
            "join_rule": "restricted",
            "allow": JOIN_RULES_CONTENT["allow"],
        }
    else:
        assert redacted["content"] == {"join_rule": "restricted"}


POWER_LEVELS_CONTENT = {
    "ban": 50,
    "events": {"m.room.name": 100},
    "events_default": 0,
    "invite": 0,
    "kick": 50,
    "notifications": {"room": 50},
    "redact": 50,
    "state_default": 50,
    "users": {"@alice:example.org": 100},
    "users_default": 0,
}


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_power_levels_keep_invite_from_v11(room_version: RoomVersion) -> None:
    redacted = redact_event(pdu("m.room.power_levels", POWER_LEVELS_CONTENT), room_version)
    expected = dict(POWER_LEVELS_CONTENT)
    del expected["notifications"]  # never protected
    if room_version not in V11_PLUS:
        del expected["invite"]
    assert redacted["content"] == expected


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_history_visibility(room_version: RoomVersion) -> None:
    content = {"history_visibility": "shared", "x": 1}
    redacted = redact_event(pdu("m.room.history_visibility", content), room_version)
    assert redacted["content"] == {"history_visibility": "shared"}


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_aliases_keep_aliases_only_before_v6(room_version: RoomVersion) -> None:
    content = {"aliases": ["#a:example.org"]}
    redacted = redact_event(pdu("m.room.aliases", content, state_key="example.org"), room_version)
    if room_version in ALL[:5]:  # v1..v5
        assert redacted["content"] == content
    else:
        assert redacted["content"] == {}


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_redaction_event_keeps_content_redacts_from_v11(room_version: RoomVersion) -> None:
    event = pdu("m.room.redaction", {"redacts": "$target", "reason": "spam"})
    del event["state_key"]
    redacted = redact_event(event, room_version)
    if room_version in V11_PLUS:
        assert redacted["content"] == {"redacts": "$target"}
    else:
        assert redacted["content"] == {}
    assert "redacts" not in redacted


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
@pytest.mark.parametrize(
    "event_type", ["m.room.message", "m.room.topic", "m.room.name", "m.room.encrypted"]
)
def test_other_event_types_lose_all_content(room_version: RoomVersion, event_type: str) -> None:
    content = {"body": "x", "topic": "t", "name": "n", "membership": "join"}
    assert redact_event(pdu(event_type, content), room_version)["content"] == {}


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_missing_or_malformed_content_becomes_empty_object(room_version: RoomVersion) -> None:
    event = pdu("m.room.member", {})
    del event["content"]
    assert redact_event(event, room_version)["content"] == {}
    assert redact_event(pdu("m.room.member", ["x"]), room_version)["content"] == {}  # type: ignore[arg-type]


@pytest.mark.parametrize("room_version", ALL, ids=ids(ALL))
def test_redaction_is_idempotent(room_version: RoomVersion) -> None:
    once = redact_event(pdu("m.room.member", MEMBER_CONTENT), room_version)
    assert redact_event(once, room_version) == once
