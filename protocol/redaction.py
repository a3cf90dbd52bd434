"""The redaction algorithm, per room version.

Spec: content/rooms/fragments/v1-redactions.md (v1..v5), v6-redactions.md (v6, v7), the inline list
in content/rooms/v8.md (v8), v9-redactions.md (v9, v10) and v11-redactions.md (v11, v12).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from protocol.room_versions import RoomVersion

# Top-level keys every room version keeps.
_KEPT_KEYS = frozenset(
    {
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
)
# v1..v10 additionally keep these; v11 stops protecting them.
_KEPT_KEYS_PRE_V11 = _KEPT_KEYS | {"prev_state", "origin", "membership"}

_POWER_LEVELS_KEPT = (
    "ban",
    "events",
    "events_default",
    "kick",
    "redact",
    "state_default",
    "users",
    "users_default",
)


def _kept_content_keys(event_type: object, room_version: RoomVersion) -> tuple[str, ...]:
    if event_type == "m.room.member":
        if room_version.restricted_join_rule_fix:
            return ("membership", "join_authorised_via_users_server")
        return ("membership",)
    if event_type == "m.room.create":
        # v11+ keeps all of the create content; handled by the caller.
        return ("creator",)
    if event_type == "m.room.join_rules":
        if room_version.restricted_join_rule:
            return ("join_rule", "allow")
        return ("join_rule",)
    if event_type == "m.room.power_levels":
        if room_version.updated_redaction_rules:
            return (*_POWER_LEVELS_KEPT, "invite")
        return _POWER_LEVELS_KEPT
    if event_type == "m.room.history_visibility":
        return ("history_visibility",)
    if event_type == "m.room.aliases" and room_version.special_case_aliases_auth:
        return ("aliases",)
    if event_type == "m.room.redaction" and room_version.updated_redaction_rules:
        return ("redacts",)
    return ()


def _redacted_content(
    event_type: object, content: object, room_version: RoomVersion
) -> dict[str, Any]:
    if not isinstance(content, Mapping):
        return {}
    if event_type == "m.room.create" and room_version.updated_redaction_rules:
        return dict(content)
    new_content = {
        k: content[k] for k in _kept_content_keys(event_type, room_version) if k in content
    }
    if event_type == "m.room.member" and room_version.updated_redaction_rules:
        # v11: "it allows the `signed` key of the `third_party_invite` key". Like Synapse, an
        # object-valued `third_party_invite` survives with only `signed` inside it (so it may
        # become empty).
        third_party_invite = content.get("third_party_invite")
        if isinstance(third_party_invite, Mapping):
            kept: dict[str, Any] = {}
            if "signed" in third_party_invite:
                kept["signed"] = third_party_invite["signed"]
            new_content["third_party_invite"] = kept
    return new_content


def redacted_view(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """The redacted form of `pdu` sharing nested values with it (no deep copy).

    For hashing and signing, where the result is only encoded. Do not mutate the result.
    """
    kept_keys = _KEPT_KEYS if room_version.updated_redaction_rules else _KEPT_KEYS_PRE_V11
    redacted = {k: v for k, v in pdu.items() if k in kept_keys}
    # `content` is always present after redaction, even if it was missing or not an object.
    redacted["content"] = _redacted_content(pdu.get("type"), pdu.get("content"), room_version)
    return redacted


def redact_event(pdu: Mapping[str, Any], room_version: RoomVersion) -> dict[str, Any]:
    """Return a new, independent dict: `pdu` redacted per `room_version`'s redaction rules.

    `unsigned` is dropped like every other unlisted key; servers re-add `unsigned.redacted_because`
    when serving the event to clients.
    """
    return copy.deepcopy(redacted_view(pdu, room_version))
