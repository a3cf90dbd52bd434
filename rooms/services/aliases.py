"""Room aliases (Client-Server API, "Room aliases") and the m.room.canonical_alias checks.

Aliases are scoped to a server: this server maintains only ``#localpart:SERVER_NAME``.
Another server's alias is resolved by asking it (rooms.services.remote_directory, for
GET /directory/room/{roomAlias}); here it is unknown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from protocol import auth_rules
from protocol.errors import MatrixError, forbidden, invalid_param, not_found
from protocol.identifiers import Identifier, is_valid_room_id, parse_room_alias, parse_user_id
from rooms import event_cache, selectors
from rooms.models import Membership, Room, RoomAlias
from rooms.services.events import (
    SendContext,
    auth_state_for,
    do_send_event,
    room_version_of,
)
from rooms.state import StateKey, load_state

logger = logging.getLogger(__name__)

CANONICAL_ALIAS = "m.room.canonical_alias"
CANONICAL_ALIAS_KEY: StateKey = (CANONICAL_ALIAS, "")


def parse_alias(value: str) -> Identifier:
    """A syntactically valid room alias, or 400 M_INVALID_PARAM."""
    try:
        return parse_room_alias(value)
    except ValueError:
        raise invalid_param(f"Room alias {value!r} is invalid") from None


def parse_local_alias(value: str) -> Identifier:
    """A valid alias on this server's domain. directory.yaml lists 400 M_INVALID_PARAM as
    the one refusal of an alias this server will not maintain."""
    alias = parse_alias(value)
    if alias.domain != settings.SERVER_NAME:
        raise invalid_param(f"Room alias must be on this server ({settings.SERVER_NAME})")
    return alias


def has_state_power(room: Room, user_id: str, event_type: str) -> bool:
    """Is ``user_id`` joined to ``room`` with the power to send ``event_type`` state?"""
    room_version = room_version_of(room)
    state = load_state(room.current_state_group_id)
    auth_state = auth_state_for(
        room_version, state, {("m.room.power_levels", ""), ("m.room.member", user_id)}
    )
    if auth_rules.get_membership(auth_state, user_id) != "join":
        return False
    level = auth_rules.get_user_power_level(room_version, user_id, auth_state)
    required = auth_rules.get_required_power_level(room_version, event_type, True, auth_state)
    return level >= required


def can_edit_aliases(room: Room, user_id: str, *, is_admin: bool) -> bool:
    """Server admins, and members who may send m.room.canonical_alias (as Synapse's
    ``check_can_change_room_list`` does for the directory too)."""
    return is_admin or has_state_power(room, user_id, CANONICAL_ALIAS)


def _servers_in_room(room: Room) -> list[str]:
    """This server first, then the other servers with joined members."""
    servers = [settings.SERVER_NAME]
    user_ids = Membership.objects.filter(room=room, membership="join").values_list(
        "user_id", flat=True
    )
    for user_id in user_ids:
        try:
            domain = parse_user_id(user_id).domain
        except ValueError:
            continue
        if domain not in servers:
            servers.append(domain)
    return servers


def resolve_alias(value: str) -> tuple[str, list[str]]:
    """GET /directory/room/{roomAlias}: the room ID and the servers that know the alias."""
    alias = parse_alias(value)
    row = RoomAlias.objects.select_related("room").filter(alias=str(alias)).first()
    if row is None:
        # Another server's alias is not kept here (remote_directory.query_remote_alias
        # asks its server).
        raise not_found(f"Room alias {alias} not found")
    return row.room.room_id, _servers_in_room(row.room)


def do_create_alias(value: str, room_id: str, user_id: str, *, is_admin: bool) -> RoomAlias:
    """PUT /directory/room/{roomAlias}: map a new local alias to a room.

    Like Synapse (``require_membership_for_aliases``), only members of the room, or
    server admins, may point an alias at it.
    """
    alias = parse_local_alias(value)
    if not is_valid_room_id(room_id):
        raise invalid_param("Invalid room ID")
    room = selectors.get_room(room_id)
    if not is_admin:
        row = selectors.membership_row(room, user_id)
        if row is None or row.membership != "join":
            raise forbidden("You must be in the room to create an alias for it")
    try:
        with transaction.atomic():
            return RoomAlias.objects.create(alias=str(alias), room=room, creator=user_id)
    except IntegrityError:
        raise MatrixError("M_UNKNOWN", f"Room alias {alias} already exists", status=409) from None


def do_delete_alias(value: str, user_id: str, device_id: str | None, *, is_admin: bool) -> None:
    """DELETE /directory/room/{roomAlias}.

    Allowed for the alias's creator, a server admin, or a member who may send
    m.room.canonical_alias. The alias is then dropped from the room's canonical alias
    event if it is listed there; as directory.yaml recommends, the deletion stands even
    when the user may not update that event.
    """
    alias = parse_local_alias(value)
    row = RoomAlias.objects.select_related("room").filter(alias=str(alias)).first()
    if row is None:
        raise not_found(f"Room alias {alias} not found")
    room = row.room
    if not (row.creator == user_id or can_edit_aliases(room, user_id, is_admin=is_admin)):
        raise forbidden("You may not delete this alias")
    RoomAlias.objects.filter(pk=row.pk).delete()
    _drop_from_canonical_alias(room, str(alias), SendContext(sender=user_id, device_id=device_id))


def _drop_from_canonical_alias(room: Room, alias: str, ctx: SendContext) -> None:
    content = current_canonical_alias_content(room)
    alt_aliases = content.get("alt_aliases")
    alt = list(alt_aliases) if isinstance(alt_aliases, list) else []
    if content.get("alias") != alias and alias not in alt:
        return
    new_content = dict(content)
    if new_content.get("alias") == alias:
        del new_content["alias"]
    if alias in alt:
        new_content["alt_aliases"] = [a for a in alt if a != alias]
    try:
        do_send_event(room.room_id, ctx, CANONICAL_ALIAS, new_content, "")
    except MatrixError as exc:
        logger.info("Not updating the canonical alias of %s: %s", room.room_id, exc)


def local_aliases(room_id: str, user_id: str, *, is_admin: bool) -> list[str]:
    """GET /rooms/{roomId}/aliases: members (or anyone, if world readable) and admins.

    An unknown room answers 403 like a room the user is not in, as directory.yaml lists
    no 404 for this endpoint.
    """
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise forbidden("You are not a member of the room")
    if not is_admin:
        row = selectors.membership_row(room, user_id)
        joined = row is not None and row.membership == "join"
        if not joined and not selectors.is_world_readable(room):
            raise forbidden("You are not a member of the room")
    return list(
        RoomAlias.objects.filter(room=room).order_by("alias").values_list("alias", flat=True)
    )


def current_canonical_alias_content(room: Room) -> dict[str, Any]:
    event_id = load_state(room.current_state_group_id).get(CANONICAL_ALIAS_KEY)
    if event_id is None:
        return {}
    event = event_cache.get_events([event_id]).get(event_id)
    return dict(event.content) if event is not None else {}


def _aliases_in(content: dict[str, Any]) -> list[str]:
    """The aliases named by canonical alias content; 400 M_INVALID_PARAM for bad shapes
    and syntax (room_state.yaml, PUT /state: "invalid syntax")."""
    named: list[str] = []
    alias = content.get("alias")
    if alias is not None and alias != "":
        if not isinstance(alias, str):
            raise invalid_param("'alias' must be a string")
        named.append(alias)
    alt_aliases = content.get("alt_aliases")
    if alt_aliases is not None:
        if not isinstance(alt_aliases, list) or not all(isinstance(a, str) for a in alt_aliases):
            raise invalid_param("'alt_aliases' must be a list of strings")
        named.extend(alt_aliases)
    for value in named:
        parse_alias(value)
    return named


def _check_local_aliases_point_at(
    aliases: Iterable[str], allowed: set[str], room: Room | None
) -> None:
    local = [a for a in aliases if parse_alias(a).domain == settings.SERVER_NAME]
    pointing = set(
        RoomAlias.objects.filter(alias__in=local, room=room).values_list("alias", flat=True)
        if room is not None
        else ()
    )
    for alias in local:
        if alias not in pointing and alias not in allowed:
            raise MatrixError("M_BAD_ALIAS", f"The alias {alias} does not point to this room")


def check_canonical_alias_event(
    room_id: str, event_type: str, state_key: str, content: dict[str, Any]
) -> None:
    """Before m.room.canonical_alias is sent through PUT /state: every alias it names must
    be valid (else 400 M_INVALID_PARAM) and every newly named local alias must point at
    this room (else 400 M_BAD_ALIAS), per room_state.yaml.

    Only aliases not already in the current event are checked, as Synapse does, so a
    room whose alias was deleted can still edit its other aliases. Remote aliases would
    need a federation query and are taken as given.
    """
    if event_type != CANONICAL_ALIAS or state_key != "":
        return
    named = _aliases_in(content)
    if not named:
        return
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        return  # The send path answers for an unknown room.
    previous = current_canonical_alias_content(room)
    try:
        already = set(_aliases_in(previous))
    except MatrixError:
        already = set()
    _check_local_aliases_point_at([a for a in named if a not in already], set(), room)


def check_initial_canonical_alias(
    initial_state: Iterable[tuple[str, str, dict[str, Any]]], room_alias_name: str | None
) -> None:
    """createRoom: a canonical alias in ``initial_state`` may only name local aliases the
    request itself creates (``room_alias_name``): no other can point at a new room."""
    created = {f"#{room_alias_name}:{settings.SERVER_NAME}"} if room_alias_name else set()
    for event_type, state_key, content in initial_state:
        if event_type == CANONICAL_ALIAS and state_key == "":
            _check_local_aliases_point_at(_aliases_in(content), created, None)


def do_move_aliases(old_room: Room, new_room: Room) -> None:
    """Room upgrades: every local alias of the old room now names the new one."""
    RoomAlias.objects.filter(room=old_room).update(room=new_room)
