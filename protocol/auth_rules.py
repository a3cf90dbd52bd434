"""Authorisation rules: may this event be accepted, given a set of room state?

Pure functions over an event, a state map and a room version; nothing here reads a store.

Spec: the "Authorisation rules" section of each room version (content/rooms-resolved/v1.md ..
v12.md, built from content/rooms/fragments/v1-auth-rules.md, v3-auth-rules.md and
v8-auth-rules.md plus the inline v12 text), the definitions and "Auth events selection" in
content/server-server-api.md, and the power level defaults in
data/event-schemas/schema/m.room.power_levels.yaml. Rule numbers in comments are those of room
version 11 unless a comment says otherwise; v12 inserts a rule 2 and shifts the rest by one.

Two entry points:

* `check_auth_rules(room_version, event, auth_state)`: the rules evaluated against a state map
  (the event's own auth events, the state before it, the current state, or a partial state
  during state resolution).
* `check_event_auth_events(room_version, event, auth_event_map)`: check 4 of "Checks performed on
  receipt of a PDU": the sanity rules on the event's `auth_events` themselves (v11 rule 2, v12
  rules 2 and 3), then `check_auth_rules` against exactly those events.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Set
from typing import Any, Final, TypeAlias

from protocol.events import Event
from protocol.identifiers import is_valid_user_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.third_party_invites import keys_that_signed

StateKey: TypeAlias = tuple[str, str]
# A user's power level. An int, except `math.inf` for the room creators of room version 12+
# ("The power level of room creators is infinitely high").
PowerLevel: TypeAlias = int | float

CREATE: Final = "m.room.create"
MEMBER: Final = "m.room.member"
POWER_LEVELS: Final = "m.room.power_levels"
JOIN_RULES: Final = "m.room.join_rules"
THIRD_PARTY_INVITE: Final = "m.room.third_party_invite"
ALIASES: Final = "m.room.aliases"
REDACTION: Final = "m.room.redaction"

CREATE_KEY: Final[StateKey] = (CREATE, "")
POWER_LEVELS_KEY: Final[StateKey] = (POWER_LEVELS, "")
JOIN_RULES_KEY: Final[StateKey] = (JOIN_RULES, "")

JOIN: Final = "join"
INVITE: Final = "invite"
LEAVE: Final = "leave"
BAN: Final = "ban"
KNOCK: Final = "knock"

PUBLIC: Final = "public"
KNOCK_RESTRICTED: Final = "knock_restricted"
RESTRICTED: Final = "restricted"

AUTHORISING_USER: Final = "join_authorised_via_users_server"

CREATOR_POWER_LEVEL: Final[float] = math.inf
# m.room.power_levels schema: the room creator has 100 when there is no power levels event.
DEFAULT_CREATOR_POWER_LEVEL: Final = 100

# The seven scalar levels compared by the power levels rule (v11 rule 9.5).
POWER_LEVEL_SCALARS: Final = (
    "users_default",
    "events_default",
    "state_default",
    "ban",
    "redact",
    "kick",
    "invite",
)
# Defaults from content/server-server-api.md#definitions and the m.room.power_levels schema.
NAMED_LEVEL_DEFAULTS: Final[Mapping[str, int]] = {
    "users_default": 0,
    "events_default": 0,
    "state_default": 50,
    "ban": 50,
    "kick": 50,
    "redact": 50,
    "invite": 0,
}

# content/rooms/fragments/v1-stringy-power-levels.md: optional whitespace, optional sign, base-10
# digits with any number of leading zeroes. ASCII digits only: Python's int() would also take
# other scripts' digits and underscores.
_STRINGY_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


class AuthError(Exception):
    """The event is not authorised; `reason` says which rule refused it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Auth events selection (content/server-server-api.md#auth-events-selection)
# ---------------------------------------------------------------------------------------------


def auth_types_for_event(
    room_version: RoomVersion,
    event_type: str,
    sender: str,
    state_key: str | None,
    content: Mapping[str, Any],
) -> set[StateKey]:
    """The state keys an event's `auth_events` are selected from.

    The `auth_events` of an event are the current state events for these keys, where present.
    The create event cites nothing. Room version 12 must not cite the create event: its room ID
    names it instead.
    """
    if event_type == CREATE:
        return set()

    auth_types: set[StateKey] = {POWER_LEVELS_KEY, (MEMBER, sender)}
    if room_version.create_event_in_auth_events:
        auth_types.add(CREATE_KEY)

    if event_type == MEMBER and state_key is not None:
        membership = content.get("membership")
        auth_types.add((MEMBER, state_key))
        if membership in (JOIN, INVITE, KNOCK):
            auth_types.add(JOIN_RULES_KEY)
        if membership == INVITE:
            token = _third_party_invite_token(content)
            if token is not None:
                auth_types.add((THIRD_PARTY_INVITE, token))
        if membership == JOIN and room_version.restricted_join_rule:
            authorising_user = content.get(AUTHORISING_USER)
            if isinstance(authorising_user, str):
                auth_types.add((MEMBER, authorising_user))

    return auth_types


def auth_types_for(room_version: RoomVersion, event: Event) -> set[StateKey]:
    """`auth_types_for_event` for an already-built event."""
    return auth_types_for_event(
        room_version, event.type, event.sender, event.state_key, event.content
    )


def _third_party_invite_token(content: Mapping[str, Any]) -> str | None:
    third_party_invite = content.get("third_party_invite")
    if not isinstance(third_party_invite, Mapping):
        return None
    signed = third_party_invite.get("signed")
    if not isinstance(signed, Mapping):
        return None
    token = signed.get("token")
    return token if isinstance(token, str) else None


# ---------------------------------------------------------------------------------------------
# Check 4 on receipt of a PDU: the event against its own auth events
# ---------------------------------------------------------------------------------------------


def check_event_auth_events(
    room_version: RoomVersion,
    event: Event,
    auth_event_map: Mapping[str, Event],
    *,
    rejected_event_ids: Set[str] = frozenset(),
) -> None:
    """Check that `event` is authorised by exactly the events it cites in `auth_events`.

    `auth_event_map` maps event IDs to events and must hold every event in
    `event.auth_event_ids`; in room version 12 it must also hold the room's create event (whose
    ID is the room ID with `$` for `!`), which events imply rather than cite.
    `rejected_event_ids` names those of them that were themselves rejected.

    Raises AuthError if the auth events are malformed (v11 rule 2; v12 rules 2 and 3) or the
    event fails the auth rules against them.
    """
    if event.type == CREATE:
        # v11 rule 1: the create event is checked on its own (its auth_events are empty).
        check_auth_rules(room_version, event, {})
        return

    expected_types = auth_types_for(room_version, event)
    auth_state: dict[StateKey, Event] = {}
    for auth_event_id in event.auth_event_ids:
        auth_event = auth_event_map.get(auth_event_id)
        if auth_event is None:
            raise AuthError(f"auth event {auth_event_id} is not known")
        if auth_event.state_key is None:
            raise AuthError(f"auth event {auth_event_id} is not a state event")
        key = (auth_event.type, auth_event.state_key)
        # Rule 2.1: duplicate entries for a (type, state_key) pair.
        if key in auth_state:
            raise AuthError(f"auth events have more than one entry for {key}")
        # Rule 2.2: entries the auth events selection would not pick (v12: including create).
        if key not in expected_types:
            raise AuthError(f"auth event {auth_event_id} for {key} is not an expected auth event")
        # Rule 2.3: entries that were themselves rejected.
        if auth_event_id in rejected_event_ids:
            raise AuthError(f"auth event {auth_event_id} was rejected")
        # Rule 2.5: entries from another room.
        if auth_event.room_id != event.room_id:
            raise AuthError(f"auth event {auth_event_id} belongs to room {auth_event.room_id}")
        auth_state[key] = auth_event

    if room_version.room_id_is_create_event_hash:
        # v12 rule 2: the room ID must be the ID of an accepted create event, with `!` for `$`.
        create_event_id = _create_event_id_from_room_id(event.room_id)
        create_event = auth_event_map.get(create_event_id) if create_event_id else None
        if create_event is None or create_event.type != CREATE:
            raise AuthError(f"room ID {event.room_id} does not name a known create event")
        if create_event_id in rejected_event_ids:
            raise AuthError(f"the create event {create_event_id} was rejected")
        auth_state[CREATE_KEY] = create_event
    elif CREATE_KEY not in auth_state:
        # Rule 2.4: there must be a create event among the auth events.
        raise AuthError("auth events do not include the m.room.create event")

    check_auth_rules(room_version, event, auth_state)


def _create_event_id_from_room_id(room_id: str) -> str | None:
    """v12: the create event's ID is the room ID with the `!` sigil replaced by `$`."""
    if not room_id.startswith("!") or len(room_id) < 2:
        return None
    return "$" + room_id[1:]


# ---------------------------------------------------------------------------------------------
# The rules against a state map
# ---------------------------------------------------------------------------------------------


def check_auth_rules(
    room_version: RoomVersion,
    event: Event,
    auth_state: Mapping[StateKey, Event],
) -> None:
    """Run the authorisation rules for `event` against `auth_state`.

    `auth_state` maps `(type, state_key)` to state events; only create, member, join rules,
    power levels and third party invite entries are read. In room version 12 it must include the
    create event (implied by the room ID) under `("m.room.create", "")` like any other version.

    Raises AuthError if the event is not allowed.
    """
    # Rule 1: m.room.create.
    if event.type == CREATE:
        _check_create(room_version, event)
        return

    create = auth_state.get(CREATE_KEY)
    if create is None:
        raise AuthError("no m.room.create event in the state")
    # v12 rule 2: the room ID names the create event.
    if (
        room_version.room_id_is_create_event_hash
        and _create_event_id_from_room_id(event.room_id) != create.event_id
    ):
        raise AuthError(f"room ID {event.room_id} does not name create event {create.event_id}")

    # Rule 3: a room created with m.federate false is closed to other servers.
    if create.content.get("m.federate") is False and _domain(event.sender) != _domain(
        create.sender
    ):
        raise AuthError("the room does not federate and the sender is on another server")

    # v1..v5 rule 4: m.room.aliases is only checked against the sender's domain.
    if room_version.special_case_aliases_auth and event.type == ALIASES:
        if event.state_key is None:
            raise AuthError("m.room.aliases must have a state_key")
        if event.state_key != _domain(event.sender):
            raise AuthError("m.room.aliases state_key must be the sender's server name")
        return

    # Rule 4: m.room.member.
    if event.type == MEMBER:
        _check_membership(room_version, event, auth_state, create)
        return

    # Rule 5: everyone else must be in the room.
    if _membership(auth_state, event.sender) != JOIN:
        raise AuthError(f"{event.sender} is not joined to the room")

    sender_level = get_user_power_level(room_version, event.sender, auth_state)

    # Rule 6: m.room.third_party_invite needs the invite level, and nothing else.
    if event.type == THIRD_PARTY_INVITE:
        if sender_level >= get_named_level(room_version, auth_state, "invite"):
            return
        raise AuthError(f"{event.sender} may not invite users")

    # Rule 7: the required power level for the event type.
    required = get_required_power_level(
        room_version, event.type, event.state_key is not None, auth_state
    )
    if sender_level < required:
        raise AuthError(
            f"{event.sender} has power level {sender_level}, {event.type} requires {required}"
        )

    # Rule 8: a state_key that looks like a user ID belongs to that user.
    if (
        event.state_key is not None
        and event.state_key.startswith("@")
        and event.state_key != event.sender
    ):
        raise AuthError(f"{event.sender} may not set state keyed by {event.state_key}")

    # Rule 9: m.room.power_levels.
    if event.type == POWER_LEVELS:
        _check_power_levels(room_version, event, auth_state, sender_level)

    # v1/v2 rule 11: m.room.redaction needs the redact level or the redacted event's domain.
    if room_version.redaction_auth_rule and event.type == REDACTION:
        _check_redaction_v1(room_version, event, auth_state, sender_level)

    # Rule 10: otherwise, allow.


def _check_create(room_version: RoomVersion, event: Event) -> None:
    # Rule 1.1: no prev_events.
    if event.prev_event_ids:
        raise AuthError("m.room.create must not have prev_events")
    if room_version.room_id_is_create_event_hash:
        # v12 rule 1.2: the room ID is derived from the create event, so it carries none.
        if "room_id" in event.pdu:
            raise AuthError("m.room.create must not have a room_id in this room version")
    elif _domain(event.room_id) != _domain(event.sender):
        # Rule 1.2: the room ID's server is the creator's.
        raise AuthError("m.room.create room_id and sender are on different servers")
    # Rule 1.3: a room_version, if present, must be known.
    if "room_version" in event.content:
        claimed_version = event.content["room_version"]
        if not isinstance(claimed_version, str) or claimed_version not in KNOWN_ROOM_VERSIONS:
            raise AuthError(f"unknown room version {claimed_version!r}")
    # v1..v10 rule 1.4: content.creator is required.
    if not room_version.implicit_room_creator and "creator" not in event.content:
        raise AuthError("m.room.create must have content.creator in this room version")
    # v12 rule 1.4: additional_creators, if present, is an array of valid user IDs.
    if room_version.creators_have_infinite_power and "additional_creators" in event.content:
        additional = event.content["additional_creators"]
        if not isinstance(additional, list) or not all(
            isinstance(user_id, str) and is_valid_user_id(user_id) for user_id in additional
        ):
            raise AuthError("additional_creators must be an array of user IDs")


def _check_membership(
    room_version: RoomVersion,
    event: Event,
    auth_state: Mapping[StateKey, Event],
    create: Event,
) -> None:
    # Rule 4.1: state_key and content.membership are required.
    target = event.state_key
    if target is None:
        raise AuthError("m.room.member must have a state_key")
    if "membership" not in event.content:
        raise AuthError("m.room.member must have content.membership")
    membership = event.content["membership"]
    sender = event.sender

    # v8+ rule 4.2: a join_authorised_via_users_server claim must be signed by that user's
    # server. Verifying the signature itself is the signature check (check 2 on receipt of a
    # PDU); here we require that the signature is there.
    if room_version.restricted_join_rule and AUTHORISING_USER in event.content:
        authorising_user = event.content[AUTHORISING_USER]
        if not isinstance(authorising_user, str) or not is_valid_user_id(authorising_user):
            raise AuthError(f"{AUTHORISING_USER} is not a user ID")
        if not event.signatures.get(_domain(authorising_user)):
            raise AuthError(f"the event is not signed by the server of {authorising_user}")

    sender_membership = _membership(auth_state, sender)
    target_membership = _membership(auth_state, target)
    join_rule = _join_rule(auth_state)

    if membership == JOIN:
        _check_join(room_version, event, auth_state, create, target, join_rule, sender_membership)
        return

    if membership == INVITE:
        third_party_invite = event.content.get("third_party_invite")
        if third_party_invite is not None:
            _check_third_party_invite(event, auth_state, target, target_membership)
            return
        # Rule 4.4.2 .. 4.4.5.
        if sender_membership != JOIN:
            raise AuthError(f"{sender} is not joined to the room")
        if target_membership in (JOIN, BAN):
            raise AuthError(f"{target} is {target_membership}, and cannot be invited")
        sender_level = get_user_power_level(room_version, sender, auth_state)
        if sender_level >= get_named_level(room_version, auth_state, "invite"):
            return
        raise AuthError(f"{sender} may not invite users")

    if membership == LEAVE:
        # Rule 4.5.1: leaving yourself (or rejecting an invite, or rescinding a knock).
        if sender == target:
            may_leave_from = (
                (INVITE, JOIN, KNOCK) if room_version.knock_join_rule else (INVITE, JOIN)
            )
            if sender_membership in may_leave_from:
                return
            raise AuthError(f"{sender} cannot leave from membership {sender_membership}")
        # Rule 4.5.2 .. 4.5.5: kicks and unbans.
        if sender_membership != JOIN:
            raise AuthError(f"{sender} is not joined to the room")
        sender_level = get_user_power_level(room_version, sender, auth_state)
        target_level = get_user_power_level(room_version, target, auth_state)
        if target_membership == BAN and sender_level < get_named_level(
            room_version, auth_state, "ban"
        ):
            raise AuthError(f"{sender} may not unban users")
        if sender_level >= get_named_level(room_version, auth_state, "kick") and (
            target_level < sender_level
        ):
            return
        raise AuthError(f"{sender} may not kick {target}")

    if membership == BAN:
        # Rule 4.6.
        if sender_membership != JOIN:
            raise AuthError(f"{sender} is not joined to the room")
        sender_level = get_user_power_level(room_version, sender, auth_state)
        target_level = get_user_power_level(room_version, target, auth_state)
        if sender_level >= get_named_level(room_version, auth_state, "ban") and (
            target_level < sender_level
        ):
            return
        raise AuthError(f"{sender} may not ban {target}")

    if membership == KNOCK and room_version.knock_join_rule:
        # v7+ rule 4.7.
        knock_rules = (
            (KNOCK, KNOCK_RESTRICTED) if room_version.knock_restricted_join_rule else (KNOCK,)
        )
        if join_rule not in knock_rules:
            raise AuthError(f"cannot knock on a room whose join rule is {join_rule!r}")
        if sender != target:
            raise AuthError("cannot knock on behalf of another user")
        if sender_membership not in (BAN, INVITE, JOIN):
            return
        raise AuthError(f"{sender} cannot knock from membership {sender_membership}")

    # Rule 4.8.
    raise AuthError(f"unknown membership {membership!r}")


def _check_join(
    room_version: RoomVersion,
    event: Event,
    auth_state: Mapping[StateKey, Event],
    create: Event,
    target: str,
    join_rule: str | None,
    sender_membership: str | None,
) -> None:
    sender = event.sender
    # Rule 4.3.1: the creator's own first join, straight after the create event.
    if event.prev_event_ids == [create.event_id] and target == _creator(room_version, create):
        return
    # Rule 4.3.2.
    if sender != target:
        raise AuthError(f"{sender} cannot join on behalf of {target}")
    # Rule 4.3.3.
    if sender_membership == BAN:
        raise AuthError(f"{sender} is banned from the room")
    # Rule 4.3.4: invite (and, v7+, knock) rooms take invited or already joined users.
    invite_like = (INVITE, KNOCK) if room_version.knock_join_rule else (INVITE,)
    if join_rule in invite_like:
        if sender_membership in (INVITE, JOIN):
            return
        raise AuthError(f"{sender} is not invited to the room")
    # Rule 4.3.5 (v8+): restricted (and, v10+, knock_restricted) rooms.
    restricted_like: tuple[str, ...] = ()
    if room_version.restricted_join_rule:
        restricted_like = (RESTRICTED,)
    if room_version.knock_restricted_join_rule:
        restricted_like = (RESTRICTED, KNOCK_RESTRICTED)
    if join_rule in restricted_like:
        if sender_membership in (INVITE, JOIN):
            return
        authorising_user = event.content.get(AUTHORISING_USER)
        if not isinstance(authorising_user, str):
            raise AuthError(f"a restricted join needs {AUTHORISING_USER}")
        if _membership(auth_state, authorising_user) != JOIN:
            raise AuthError(f"authorising user {authorising_user} is not joined to the room")
        authorising_level = get_user_power_level(room_version, authorising_user, auth_state)
        if authorising_level < get_named_level(room_version, auth_state, "invite"):
            raise AuthError(f"authorising user {authorising_user} may not invite users")
        return
    # Rule 4.3.6.
    if join_rule == PUBLIC:
        return
    # Rule 4.3.7.
    raise AuthError(f"cannot join a room whose join rule is {join_rule!r}")


def _check_third_party_invite(
    event: Event,
    auth_state: Mapping[StateKey, Event],
    target: str,
    target_membership: str | None,
) -> None:
    """Rule 4.4.1: an invite that redeems an `m.room.third_party_invite`."""
    if target_membership == BAN:
        raise AuthError(f"{target} is banned from the room")
    third_party_invite = event.content.get("third_party_invite")
    signed = third_party_invite.get("signed") if isinstance(third_party_invite, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("third_party_invite has no signed object")
    mxid = signed.get("mxid")
    token = signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("third_party_invite.signed needs mxid and token")
    if mxid != target:
        raise AuthError("third_party_invite.signed.mxid does not match the state_key")
    invite_event = auth_state.get((THIRD_PARTY_INVITE, token))
    if invite_event is None:
        raise AuthError("no m.room.third_party_invite for the token")
    if invite_event.sender != event.sender:
        raise AuthError("the third party invite was sent by someone else")
    if _signed_by_any_public_key(signed, invite_event.content):
        return
    raise AuthError("no signature on third_party_invite.signed matches the invite's public keys")


def _signed_by_any_public_key(
    signed: Mapping[str, Any], invite_content: Mapping[str, Any]
) -> bool:
    """Whether any signature in `signed` verifies with any key of the third party invite
    (`public_key`, or any `public_keys[].public_key`)."""
    return bool(keys_that_signed(signed, invite_content))


def _check_power_levels(
    room_version: RoomVersion,
    event: Event,
    auth_state: Mapping[StateKey, Event],
    sender_level: PowerLevel,
) -> None:
    content = event.content

    if room_version.enforce_int_power_levels:
        # v10+ rule 9.1: the scalar levels are integers.
        for name in POWER_LEVEL_SCALARS:
            if name in content and not _is_json_int(content[name]):
                raise AuthError(f"power level {name} must be an integer")
        # v10+ rule 9.2: events and notifications map to integers.
        for name in ("events", "notifications"):
            if name in content:
                levels = content[name]
                if not isinstance(levels, Mapping) or not all(
                    _is_json_int(v) for v in levels.values()
                ):
                    raise AuthError(f"power levels {name} must map to integers")

    # Rule 9.3: users maps valid user IDs to integers (v1..v9: or integer strings).
    users = content.get("users", {})
    if not isinstance(users, Mapping):
        raise AuthError("power levels users must be an object")
    for user_id, level in users.items():
        if not isinstance(user_id, str) or not is_valid_user_id(user_id):
            raise AuthError(f"power levels users has an invalid user ID {user_id!r}")
        if _power_value(room_version, level) is None:
            raise AuthError(f"power level of {user_id} is not an integer")

    # v12 rule 10.4: the creators cannot be given a power level.
    if room_version.creators_have_infinite_power:
        create = auth_state.get(CREATE_KEY)
        if create is not None:
            listed = get_creators(room_version, create) & set(users)
            if listed:
                raise AuthError(
                    f"room creators cannot be listed in power levels: {sorted(listed)}"
                )

    # Rule 9.4: the first power levels event is allowed.
    previous = auth_state.get(POWER_LEVELS_KEY)
    if previous is None:
        return
    old_content = previous.content

    # Rule 9.5: the scalar levels; both the old and the new value must be within reach.
    for name in POWER_LEVEL_SCALARS:
        _check_level_change(room_version, name, name, old_content, content, sender_level)

    # Rules 9.6, 9.7: events, and (v6+) notifications.
    level_maps = ["events"]
    if room_version.limit_notifications_power_levels:
        level_maps.append("notifications")
    for name in level_maps:
        old_levels = _as_mapping(old_content.get(name))
        new_levels = _as_mapping(content.get(name))
        for key in set(old_levels) | set(new_levels):
            _check_level_change(
                room_version, f"{name}.{key}", key, old_levels, new_levels, sender_level
            )

    # Rules 9.8, 9.9: users. Changing someone else's level needs a strictly higher level.
    old_users = _as_mapping(old_content.get("users"))
    for user_id in set(old_users) | set(users):
        _check_level_change(
            room_version,
            f"users.{user_id}",
            user_id,
            old_users,
            users,
            sender_level,
            old_must_be_below=user_id != event.sender,
        )


def _check_level_change(
    room_version: RoomVersion,
    label: str,
    key: str,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    sender_level: PowerLevel,
    *,
    old_must_be_below: bool = False,
) -> None:
    """Refuse a change from `old[key]` to `new[key]` that the sender cannot reach.

    An added entry is checked on its new value, a removed one on its old value, a changed one on
    both. With `old_must_be_below` (another user's entry in `users`) the old value must be
    strictly below the sender's level; otherwise at most equal. Values are compared as levels,
    so `"50"` and `50` (v1..v9) are the same value.
    """
    in_old, in_new = key in old, key in new
    if not in_old and not in_new:
        return
    old_value = _power_value(room_version, old[key]) if in_old else None
    new_value = _power_value(room_version, new[key]) if in_new else None
    if in_old and in_new and old_value == new_value:
        return
    if old_value is not None:
        if old_must_be_below and old_value >= sender_level:
            raise AuthError(f"cannot change {label}: {old_value} is not below the sender's level")
        if old_value > sender_level:
            raise AuthError(f"cannot change {label}: {old_value} is above the sender's level")
    if new_value is not None and new_value > sender_level:
        raise AuthError(f"cannot set {label} to {new_value}: above the sender's level")


def _check_redaction_v1(
    room_version: RoomVersion,
    event: Event,
    auth_state: Mapping[StateKey, Event],
    sender_level: PowerLevel,
) -> None:
    """v1/v2 rule 11: the redact level, or the same event ID domain as the redacted event."""
    if sender_level >= get_named_level(room_version, auth_state, "redact"):
        return
    redacts = event.redacts
    if redacts is not None and _domain(redacts) == _domain(event.event_id):
        return
    raise AuthError(f"{event.sender} may not redact {redacts}")


# ---------------------------------------------------------------------------------------------
# Power levels and membership helpers
# ---------------------------------------------------------------------------------------------


def get_creators(room_version: RoomVersion, create: Event) -> set[str]:
    """The room creators: the create event's creator, and in v12+ its `additional_creators`."""
    creators: set[str] = set()
    creator = _creator(room_version, create)
    if creator is not None:
        creators.add(creator)
    if room_version.creators_have_infinite_power:
        additional = create.content.get("additional_creators")
        if isinstance(additional, list):
            creators.update(user_id for user_id in additional if isinstance(user_id, str))
    return creators


def _creator(room_version: RoomVersion, create: Event) -> str | None:
    """v1..v10: `content.creator`; v11+: the create event's sender."""
    if room_version.implicit_room_creator:
        return create.sender
    creator = create.content.get("creator")
    return creator if isinstance(creator, str) else None


def get_user_power_level(
    room_version: RoomVersion, user_id: str, auth_state: Mapping[StateKey, Event]
) -> PowerLevel:
    """A user's power level in `auth_state`.

    v12+: the creators' level is infinite. Otherwise `users[user_id]`, else `users_default`,
    else 0; with no power levels event the creator has 100 and everyone else 0.
    """
    create = auth_state.get(CREATE_KEY)
    if (
        room_version.creators_have_infinite_power
        and create is not None
        and user_id in get_creators(room_version, create)
    ):
        return CREATOR_POWER_LEVEL

    power_levels = auth_state.get(POWER_LEVELS_KEY)
    if power_levels is None:
        if create is not None and user_id == _creator(room_version, create):
            return DEFAULT_CREATOR_POWER_LEVEL
        return 0

    content = power_levels.content
    users = _as_mapping(content.get("users"))
    if user_id in users:
        level = _power_value(room_version, users[user_id])
        if level is not None:
            return level
    return get_power_level(room_version, content, "users_default")


def get_power_level(
    room_version: RoomVersion, power_levels_content: Mapping[str, Any], name: str
) -> int:
    """A named scalar level from power levels content, or its default if absent or invalid."""
    default = NAMED_LEVEL_DEFAULTS[name]
    if name not in power_levels_content:
        return default
    level = _power_value(room_version, power_levels_content[name])
    return default if level is None else level


def get_named_level(
    room_version: RoomVersion, auth_state: Mapping[StateKey, Event], name: str
) -> int:
    """The *invite*, *kick*, *ban* or *redact* level (or another scalar) in `auth_state`."""
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    content = power_levels.content if power_levels is not None else {}
    return get_power_level(room_version, content, name)


def get_required_power_level(
    room_version: RoomVersion,
    event_type: str,
    is_state: bool,
    auth_state: Mapping[StateKey, Event],
) -> int:
    """The *required power level* for an event type: `events[type]`, else the state or events
    default."""
    power_levels = auth_state.get(POWER_LEVELS_KEY)
    content = power_levels.content if power_levels is not None else {}
    events = _as_mapping(content.get("events"))
    if event_type in events:
        level = _power_value(room_version, events[event_type])
        if level is not None:
            return level
    return get_power_level(
        room_version, content, "state_default" if is_state else "events_default"
    )


def _power_value(room_version: RoomVersion, value: object) -> int | None:
    """Read a power level value the way the room version allows, or None if it is not one.

    v10+: JSON integers only. v1..v9 also integer strings; v1..v5 also floats, truncated
    (content/rooms/fragments/v1-stringy-power-levels.md, v1-floaty-power-levels.md).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if room_version.enforce_int_power_levels:
        return None
    if isinstance(value, str) and room_version.power_levels_accept_strings:
        return int(value.strip()) if _STRINGY_INT.fullmatch(value) else None
    if isinstance(value, float) and room_version.power_levels_accept_floats:
        return int(value) if math.isfinite(value) else None
    return None


def _is_json_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _membership(auth_state: Mapping[StateKey, Event], user_id: str) -> str | None:
    """The user's membership in `auth_state`; None when they have no member event."""
    member = auth_state.get((MEMBER, user_id))
    if member is None:
        return None
    membership = member.content.get("membership")
    return membership if isinstance(membership, str) else None


def get_membership(auth_state: Mapping[StateKey, Event], user_id: str) -> str:
    """The user's membership in `auth_state`, `leave` when there is none."""
    return _membership(auth_state, user_id) or LEAVE


def _join_rule(auth_state: Mapping[StateKey, Event]) -> str | None:
    """The room's join rule.

    The spec gives no default for a room without `m.room.join_rules` (or one without
    `join_rule`); like Synapse we read it as `invite`, so invited users may still join.
    """
    join_rules = auth_state.get(JOIN_RULES_KEY)
    if join_rules is None or "join_rule" not in join_rules.content:
        return INVITE
    join_rule = join_rules.content["join_rule"]
    return join_rule if isinstance(join_rule, str) else None


def _domain(identifier: str) -> str:
    """The server name of a user, room or (v1/v2) event ID: everything after the first ':'."""
    return identifier.partition(":")[2]
