"""Room versions as frozen records of feature flags.

Every behavioural difference between room versions is a named flag on `RoomVersion`, so callers ask
`room_version.knock_join_rule` and never compare version strings.

Spec: content/rooms/_index.md (list, stability, default) and content/rooms/v1.md .. v12.md.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType


class RoomDisposition(enum.Enum):
    """Whether a room version is stable or unstable (content/rooms/_index.md)."""

    STABLE = "stable"
    UNSTABLE = "unstable"


class EventFormatVersion(enum.Enum):
    """The PDU format: how event IDs are formed and how event references are written."""

    # Room versions 1 and 2: event IDs are `$opaque:domain`, chosen by the sending server and
    # carried in the PDU as `event_id`; `prev_events` and `auth_events` are lists of `[event_id,
    # {"sha256": ...}]` pairs.
    V1 = 1
    # Room version 3: the event ID is `$` + the standard unpadded base64 reference hash and is not
    # part of the PDU; `prev_events`/`auth_events` are plain lists of event IDs.
    V2 = 2
    # Room versions 4 and later: as V2 but the reference hash uses URL-safe unpadded base64.
    V3 = 3

    @property
    def event_id_in_pdu(self) -> bool:
        """True when the event ID is an opaque string carried inside the PDU (v1/v2)."""
        return self is EventFormatVersion.V1

    @property
    def event_references_are_pairs(self) -> bool:
        """True when `prev_events`/`auth_events` hold `[event_id, hashes]` pairs (v1/v2)."""
        return self is EventFormatVersion.V1

    @property
    def event_id_url_safe_base64(self) -> bool:
        """True when the reference-hash event ID uses the URL-safe base64 alphabet (v4+)."""
        return self is EventFormatVersion.V3


class StateResolutionVersion(enum.Enum):
    """The state resolution algorithm."""

    # content/rooms/v1.md#state-resolution
    V1 = "v1"
    # content/rooms/fragments/v2-state-res.md (room versions 2..11)
    V2 = "v2"
    # content/rooms/v12.md#state-resolution: v2 with an empty starting map for step 2 and the
    # conflicted state subgraph in the full conflicted set.
    V2_1 = "v2.1"


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """The behaviour of one room version.

    Flags are named after the behaviour they switch on; each comment says which versions have it.
    """

    identifier: str
    disposition: RoomDisposition
    event_format: EventFormatVersion
    state_res: StateResolutionVersion

    # v1, v2: the auth rules contain rule 11 for `m.room.redaction` (redact level, or same event-ID
    # domain). v3+ move this out of auth into "handling redactions"
    # (content/rooms/fragments/v3-handling-redactions.md).
    redaction_auth_rule: bool

    # v5+: a signing key's `valid_until_ts` must cover the event's `origin_server_ts`
    # (content/rooms/fragments/v5-signing-requirements.md).
    enforce_key_validity: bool

    # v1..v5: auth rule 4 for `m.room.aliases` (state_key must be the sender's domain) and the
    # redaction algorithm keeps `aliases` in `m.room.aliases` content. Removed in v6.
    special_case_aliases_auth: bool

    # v6+: events must be strictly canonical JSON (integers in ±(2**53-1), no floats); v1..v5 must
    # not enforce it (content/rooms/fragments/v1-canonical-json.md, v6-canonical-json.md).
    strict_canonical_json: bool

    # v6+: power-level changes to `notifications` are checked like `events` (auth rule 10.4/10.5 in
    # v6).
    limit_notifications_power_levels: bool

    # v7+: the `knock` join rule and `membership: knock`.
    knock_join_rule: bool

    # v8+: the `restricted` join rule, `join_authorised_via_users_server`, and redaction keeps
    # `allow` in `m.room.join_rules` content.
    restricted_join_rule: bool

    # v9+: redaction keeps `join_authorised_via_users_server` in `m.room.member` content.
    restricted_join_rule_fix: bool

    # v10+: the `knock_restricted` join rule.
    knock_restricted_join_rule: bool

    # v10+: power levels must be JSON integers; v1..v9 accept numeric strings (and v1..v5 floats).
    enforce_int_power_levels: bool

    # v11+: `m.room.create` has no `creator`; the creator is the create event's `sender`.
    implicit_room_creator: bool

    # v11+: the v11 redaction algorithm (content/rooms/fragments/v11-redactions.md): `origin`,
    # `membership` and `prev_state` are no longer kept; create keeps all content; power_levels
    # keeps `invite`; member keeps `third_party_invite.signed`; redaction keeps `redacts`.
    updated_redaction_rules: bool

    # v11+: `m.room.redaction` carries `redacts` in `content` instead of at the top level.
    redacts_in_content: bool

    # v12+: the room ID is `!` + the create event's reference hash (URL-safe base64); the create
    # event has no `room_id`, must not be cited in `auth_events`, and the create-event domain check
    # is dropped.
    room_id_is_create_event_hash: bool

    # v12+: room creators (create `sender` + `content.additional_creators`) have infinite power
    # level and may not appear in `m.room.power_levels` `users`.
    creators_have_infinite_power: bool

    @property
    def is_stable(self) -> bool:
        return self.disposition is RoomDisposition.STABLE

    @property
    def create_event_in_auth_events(self) -> bool:
        """Whether events cite `m.room.create` in `auth_events` (v1..v11 must, v12 must not)."""
        return not self.room_id_is_create_event_hash

    @property
    def power_levels_accept_floats(self) -> bool:
        """v1..v5 accept (truncated) float power levels: fragments/v1-floaty-power-levels.md."""
        return not self.strict_canonical_json

    @property
    def power_levels_accept_strings(self) -> bool:
        """v1..v9 accept numeric-string power levels: fragments/v1-stringy-power-levels.md."""
        return not self.enforce_int_power_levels


_V1 = RoomVersion(
    identifier="1",
    disposition=RoomDisposition.STABLE,
    event_format=EventFormatVersion.V1,
    state_res=StateResolutionVersion.V1,
    redaction_auth_rule=True,
    enforce_key_validity=False,
    special_case_aliases_auth=True,
    strict_canonical_json=False,
    limit_notifications_power_levels=False,
    knock_join_rule=False,
    restricted_join_rule=False,
    restricted_join_rule_fix=False,
    knock_restricted_join_rule=False,
    enforce_int_power_levels=False,
    implicit_room_creator=False,
    updated_redaction_rules=False,
    redacts_in_content=False,
    room_id_is_create_event_hash=False,
    creators_have_infinite_power=False,
)
# v2: state resolution v2.
_V2 = replace(_V1, identifier="2", state_res=StateResolutionVersion.V2)
# v3: reference-hash event IDs; redaction leaves the auth rules.
_V3 = replace(_V2, identifier="3", event_format=EventFormatVersion.V2, redaction_auth_rule=False)
# v4: URL-safe event IDs.
_V4 = replace(_V3, identifier="4", event_format=EventFormatVersion.V3)
# v5: signing key validity periods.
_V5 = replace(_V4, identifier="5", enforce_key_validity=True)
# v6: no aliases special case, strict canonical JSON, notifications power levels.
_V6 = replace(
    _V5,
    identifier="6",
    special_case_aliases_auth=False,
    strict_canonical_json=True,
    limit_notifications_power_levels=True,
)
# v7: knocking.
_V7 = replace(_V6, identifier="7", knock_join_rule=True)
# v8: restricted join rule.
_V8 = replace(_V7, identifier="8", restricted_join_rule=True)
# v9: redaction keeps join_authorised_via_users_server.
_V9 = replace(_V8, identifier="9", restricted_join_rule_fix=True)
# v10: knock_restricted, integer-only power levels.
_V10 = replace(
    _V9, identifier="10", knock_restricted_join_rule=True, enforce_int_power_levels=True
)
# v11: implicit creator, new redaction rules, redacts in content.
_V11 = replace(
    _V10,
    identifier="11",
    implicit_room_creator=True,
    updated_redaction_rules=True,
    redacts_in_content=True,
)
# v12: room IDs are create-event hashes, infinite creator power, state resolution v2.1.
_V12 = replace(
    _V11,
    identifier="12",
    state_res=StateResolutionVersion.V2_1,
    room_id_is_create_event_hash=True,
    creators_have_infinite_power=True,
)


class RoomVersions:
    """Named access to the known room versions, e.g. `RoomVersions.V11`."""

    V1 = _V1
    V2 = _V2
    V3 = _V3
    V4 = _V4
    V5 = _V5
    V6 = _V6
    V7 = _V7
    V8 = _V8
    V9 = _V9
    V10 = _V10
    V11 = _V11
    V12 = _V12


KNOWN_ROOM_VERSIONS: Mapping[str, RoomVersion] = MappingProxyType(
    {v.identifier: v for v in (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9, _V10, _V11, _V12)}
)

# content/rooms/_index.md: "Servers SHOULD use room version 12 as the default room version when
# creating new rooms."
DEFAULT_ROOM_VERSION: RoomVersion = KNOWN_ROOM_VERSIONS["12"]


def get_room_version(identifier: str) -> RoomVersion | None:
    """The known room version for `identifier`, or None if this server does not support it."""
    return KNOWN_ROOM_VERSIONS.get(identifier)


# content/rooms/_index.md#room-version-grammar
_ROOM_VERSION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def is_valid_room_version_identifier(identifier: str) -> bool:
    """Whether `identifier` follows the room version grammar (1..32 of a-z, 0-9, ".", "-")."""
    return 0 < len(identifier) <= 32 and all(c in _ROOM_VERSION_CHARS for c in identifier)
