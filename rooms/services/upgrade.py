"""Room upgrades (Client-Server API, "Room Upgrades", "Server behaviour").

The replacement room is made by ``creation.do_create_room`` with a ``predecessor`` in
its create event and the old room's transferable state as initial state; the old room
then gets its tombstone and restricted power levels through the ordinary send path.
Everything happens in one transaction holding the old room's lock, so two upgrades of
one room are serialised and a failure leaves no half-made replacement.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any

from django.conf import settings
from django.db import transaction

from protocol import auth_rules
from protocol.errors import MatrixError, forbidden, invalid_param
from protocol.hashing import generate_opaque_room_id
from protocol.identifiers import is_valid_user_id
from protocol.room_versions import RoomVersion
from rooms import event_cache
from rooms.models import Event, Membership, Room
from rooms.services import aliases, creation, directory, membership
from rooms.services.events import (
    PreparedEvent,
    SendContext,
    auth_state_for,
    lock_room,
    persist_event,
    prepare_in_locked_room,
    room_version_of,
    send_in_locked_room,
)
from rooms.state import StateKey, load_state

logger = logging.getLogger(__name__)

POWER_LEVELS = "m.room.power_levels"
TOMBSTONE = "m.room.tombstone"

# Step 3, the recommended transferable state, besides m.room.power_levels (handled apart).
TRANSFERABLE_STATE = (
    "m.room.server_acl",
    "m.room.encryption",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.join_rules",
)
_SCALAR_LEVELS = (
    "ban",
    "events_default",
    "invite",
    "kick",
    "redact",
    "state_default",
    "users_default",
)


def _level(value: Any) -> int | None:
    """A power level as an integer: older room versions also allowed integer strings and
    floats, which a newer version would reject (like Synapse's
    ``copy_and_fixup_power_levels_contents``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def _fixed_power_levels(content: dict[str, Any]) -> dict[str, Any]:
    """A copy of power levels content with integer levels, and the keys whose createRoom
    default differs from the spec's default for an absent key set explicitly."""
    fixed: dict[str, Any] = {}
    for key, value in content.items():
        if key in ("users", "events", "notifications"):
            if isinstance(value, dict):
                levels = {k: _level(v) for k, v in value.items()}
                fixed[key] = {k: v for k, v in levels.items() if v is not None}
        elif key in _SCALAR_LEVELS:
            level = _level(value)
            if level is not None:
                fixed[key] = level
        else:
            fixed[key] = value
    for key in ("users", "events"):
        fixed.setdefault(key, {})
    # An absent invite level is 0 by the spec, 50 in createRoom's public_chat defaults.
    fixed.setdefault("invite", 0)
    return fixed


def _parse_additional_creators(value: Any, room_version: RoomVersion) -> list[str]:
    if value is None or not room_version.creators_have_infinite_power:
        # room_upgrades.yaml: ignored for room versions without additional creators.
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MatrixError("M_BAD_JSON", "'additional_creators' must be a list of user IDs")
    for user_id in value:
        if not is_valid_user_id(user_id):
            raise invalid_param(f"Invalid user ID {user_id!r}")
    return list(dict.fromkeys(value))


def _state_events(state: Any, keys: list[StateKey]) -> dict[StateKey, Any]:
    wanted = {key: state[key] for key in keys if key in state}
    events = event_cache.get_events(wanted.values())
    return {key: events[eid] for key, eid in wanted.items() if eid in events}


def _check_can_upgrade(room: Room, user_id: str, state: Any) -> None:
    """Step 1: the user must be able to send m.room.tombstone in the old room."""
    room_version = room_version_of(room)
    auth_state = auth_state_for(
        room_version, state, {("m.room.power_levels", ""), ("m.room.member", user_id)}
    )
    level = auth_rules.get_user_power_level(room_version, user_id, auth_state)
    required = auth_rules.get_required_power_level(room_version, TOMBSTONE, True, auth_state)
    if auth_rules.get_membership(auth_state, user_id) != "join" or level < required:
        raise forbidden("You cannot upgrade this room")


def _new_power_levels(
    old_content: dict[str, Any],
    old_creators: set[str],
    new_creators: set[str],
    new_version: RoomVersion,
) -> dict[str, Any]:
    content = _fixed_power_levels(old_content)
    users: dict[str, int] = content["users"]
    if new_version.creators_have_infinite_power:
        # Room v12+: the creators have infinite power and may not be listed (auth rule 10.4).
        for creator in new_creators:
            users.pop(creator, None)
    else:
        # From a version with infinite creator power: the old creators keep the top level.
        top = max([100, *users.values(), *content["events"].values()])
        top = max([top, *(content[k] for k in _SCALAR_LEVELS if k in content)])
        for creator in old_creators:
            users.setdefault(creator, top)
    return content


def do_upgrade_room(
    room_id: str,
    ctx: SendContext,
    new_version: RoomVersion,
    additional_creators: Any = None,
) -> Room:
    """POST /rooms/{roomId}/upgrade: create the replacement room and retire the old one.

    Takes the old room's lock for the whole upgrade.
    """
    user_id = ctx.sender
    extra_creators = [
        u for u in _parse_additional_creators(additional_creators, new_version) if u != user_id
    ]
    with transaction.atomic():
        old_room = lock_room(room_id)
        old_version = room_version_of(old_room)
        state = load_state(old_room.current_state_group_id)
        _check_can_upgrade(old_room, user_id, state)

        keys: list[StateKey] = [
            ("m.room.create", ""),
            (POWER_LEVELS, ""),
            (aliases.CANONICAL_ALIAS, ""),
            *((t, "") for t in TRANSFERABLE_STATE),
        ]
        old_state = _state_events(state, keys)
        create = old_state[("m.room.create", "")]
        old_creators = (
            auth_rules.get_creators(old_version, create)
            if old_version.creators_have_infinite_power
            else set()
        )
        new_creators = (
            {user_id, *extra_creators} if new_version.creators_have_infinite_power else set()
        )

        # Step 2: the create event names its predecessor and keeps the room type. Its
        # event_id (deprecated since v1.16, optional for v12+, still SHOULD be set) is
        # the old room's last event: the tombstone, as Synapse does. Before v12 the new
        # room's ID is opaque, so the tombstone naming it is built first; from v12 the
        # ID is the create event's hash, which cannot cite the tombstone that names it,
        # so the last event before the upgrade stands in.
        tombstone: PreparedEvent | None = None
        new_room_id: str | None = None
        predecessor: dict[str, Any] = {"room_id": old_room.room_id}
        if not new_version.room_id_is_create_event_hash:
            new_room_id = generate_opaque_room_id(settings.SERVER_NAME)
            tombstone = prepare_in_locked_room(
                old_room, ctx, TOMBSTONE, _tombstone_content(new_room_id), ""
            )
            predecessor["event_id"] = tombstone.event.event_id
        else:
            last_event_id = (
                Event.objects.filter(room=old_room, stream_ordering__isnull=False)
                .order_by("-stream_ordering")
                .values_list("event_id", flat=True)
                .first()
            )
            if last_event_id is not None:
                predecessor["event_id"] = last_event_id
        creation_content: dict[str, Any] = {"predecessor": predecessor}
        if isinstance(create.content.get("type"), str):
            creation_content["type"] = create.content["type"]
        if "m.federate" in create.content:
            # A room closed to other servers stays closed (as Synapse copies it).
            creation_content["m.federate"] = create.content["m.federate"]
        if extra_creators:
            creation_content["additional_creators"] = extra_creators

        # Step 3: transferable state. The upgrader may need more power than they have to
        # copy it all: they get it for the copy and are set back afterwards (as Synapse).
        old_pl = old_state.get((POWER_LEVELS, ""))
        power_levels = _new_power_levels(
            old_pl.content if old_pl is not None else {}, old_creators, new_creators, new_version
        )
        users = power_levels["users"]
        restore_level: int | None = None
        if not new_version.creators_have_infinite_power:
            state_default = power_levels.get("state_default", 50)
            needed = max(
                [state_default, power_levels.get("ban", 50), *power_levels["events"].values()]
            )
            current = users.get(user_id, power_levels.get("users_default", 0))
            if current < needed:
                restore_level = current
                users[user_id] = needed

        join_rules = old_state.get(("m.room.join_rules", ""))
        public_join = join_rules is not None and join_rules.content.get("join_rule") == "public"
        preset = "public_chat" if public_join else "private_chat"
        # What initial_state carries replaces the preset's event of its type.
        initial_state = [
            (event_type, "", dict(old_state[(event_type, "")].content))
            for event_type in TRANSFERABLE_STATE
            if (event_type, "") in old_state
        ]
        spec = creation.RoomSpec(
            creator=user_id,
            room_version=new_version,
            visibility="private",
            preset=preset,
            creation_content=creation_content,
            initial_state=initial_state,
            # A copy: the sent event must not share dicts with what is changed below.
            power_level_content_override=copy.deepcopy(power_levels),
            room_id=new_room_id,
        )
        new_room = creation.do_create_room(spec)
        new_room.refresh_from_db()
        membership.carry_account_data_from_predecessor(new_room, user_id)

        # Step 5 (here, as Synapse, so that nothing is sent to the old room between
        # building the tombstone and persisting it): the tombstone.
        if tombstone is not None:
            persist_event(
                old_room,
                tombstone.event,
                state_before=tombstone.state_before,
                ctx=ctx,
                extremities_before=tombstone.extremity_ids,
            )
        else:
            send_in_locked_room(old_room, ctx, TOMBSTONE, _tombstone_content(new_room.room_id), "")

        _copy_bans(old_room, new_room, ctx, new_creators)

        # Step 4: local aliases and the canonical alias move to the new room.
        canonical = old_state.get((aliases.CANONICAL_ALIAS, ""))
        aliases.do_move_aliases(old_room, new_room)
        if canonical is not None and canonical.content:
            _try_send(old_room, ctx, aliases.CANONICAL_ALIAS, {})
            _try_send(new_room, ctx, aliases.CANONICAL_ALIAS, dict(canonical.content))
        directory.do_move_listing(old_room, new_room)

        if restore_level is not None:
            users[user_id] = restore_level
            send_in_locked_room(new_room, ctx, POWER_LEVELS, power_levels, "")

        # Step 6: nobody but moderators may speak or invite in the old room any more.
        _restrict_old_room(old_room, ctx)
    return new_room


def _tombstone_content(replacement_room: str) -> dict[str, Any]:
    return {"body": "This room has been replaced", "replacement_room": replacement_room}


def _copy_bans(old_room: Room, new_room: Room, ctx: SendContext, creators: set[str]) -> None:
    banned = Membership.objects.filter(room=old_room, membership=membership.BAN).values_list(
        "user_id", "event_id"
    )
    events = event_cache.get_events(event_id for _, event_id in banned)
    for target, event_id in banned:
        if target in creators:
            continue  # A creator's infinite power cannot be banned.
        event = events.get(event_id)
        reason = event.content.get("reason") if event is not None else None
        content: dict[str, Any] = {"membership": membership.BAN}
        if isinstance(reason, str):
            content["reason"] = reason
        try:
            with transaction.atomic():
                send_in_locked_room(new_room, ctx, "m.room.member", content, target)
        except MatrixError as exc:
            logger.warning("Not copying the ban of %s to %s: %s", target, new_room, exc)


def _try_send(room: Room, ctx: SendContext, event_type: str, content: dict[str, Any]) -> None:
    """Send what the upgrade would like to but does not need to (spec: "if possible")."""
    try:
        with transaction.atomic():
            send_in_locked_room(room, ctx, event_type, content, "")
    except MatrixError as exc:
        logger.warning("Upgrade of %s: could not send %s: %s", room, event_type, exc)


def _restrict_old_room(room: Room, ctx: SendContext) -> None:
    """Step 6: events_default and invite become max(50, users_default + 1), if lower."""
    room.refresh_from_db()
    event_id = load_state(room.current_state_group_id).get((POWER_LEVELS, ""))
    if event_id is None:
        return
    content = _fixed_power_levels(dict(event_cache.get_events([event_id])[event_id].content))
    restricted = max(50, content.get("users_default", 0) + 1)
    changed = False
    for key in ("events_default", "invite"):
        if content.get(key, 0) < restricted:
            content[key] = restricted
            changed = True
    if changed:
        _try_send(room, ctx, POWER_LEVELS, content)
