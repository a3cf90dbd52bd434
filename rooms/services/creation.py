"""POST /createRoom: the create event and the initial state, in the spec's order.

The room and its initial state are written in one transaction; the invites follow, one
transaction each (as Synapse sends them, one membership change at a time), so a room
created with thousands of invitees never holds the database (SQLite's one writer) or
the events stream for more than one short write, and other users' writes interleave.

The first invite is sent in the room's own transaction: every invite is checked against
the same state by the same sender, so if the auth rules refuse one (a power level
override above the creator's), they refuse it there and no room is left behind, as
before. If the process dies while the rest are sent, the room exists with its creator
joined and the invites sent so far, each a whole event; the client got no answer and
sees the room in its /sync. createRoom has no transaction ID, so a retry creates another
room, as on every server.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from protocol.errors import MatrixError
from protocol.hashing import generate_opaque_room_id
from protocol.identifiers import is_valid_user_id
from protocol.room_versions import DEFAULT_ROOM_VERSION, KNOWN_ROOM_VERSIONS, RoomVersion
from rooms.models import Room, RoomAlias
from rooms.services import remote_invites
from rooms.services.events import (
    SendContext,
    build_event,
    lock_room,
    persist_event,
    send_in_locked_room,
)
from rooms.services.membership import INVITE, JOIN, is_local_user, profile_content

logger = logging.getLogger(__name__)

PRESETS: dict[str, dict[str, str]] = {
    # preset: join_rule, history_visibility, guest_access (createRoom's preset table)
    "private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history": "shared", "guest": "can_join"},
    "public_chat": {"join_rule": "public", "history": "shared", "guest": "forbidden"},
}


@dataclass
class RoomSpec:
    """A validated createRoom request."""

    creator: str
    room_version: RoomVersion = DEFAULT_ROOM_VERSION
    visibility: str = "private"
    preset: str | None = None
    room_alias_name: str | None = None
    name: str | None = None
    topic: str | None = None
    invite: list[str] = field(default_factory=list)
    is_direct: bool = False
    creation_content: dict[str, Any] = field(default_factory=dict)
    initial_state: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    power_level_content_override: dict[str, Any] | None = None
    # A room ID chosen beforehand (room versions before 12 only, whose IDs are opaque):
    # an upgrade names the new room in the old room's tombstone before creating it.
    room_id: str | None = None


def default_power_levels(spec: RoomSpec, preset: str) -> dict[str, Any]:
    room_version = spec.room_version
    users: dict[str, int] = {}
    if not room_version.creators_have_infinite_power:
        users[spec.creator] = 100
        if preset == "trusted_private_chat":
            users.update({invitee: 100 for invitee in spec.invite})
    content: dict[str, Any] = {
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            # Room v12+: tombstones must need more than state_default (createRoom, step 3).
            "m.room.tombstone": 150 if room_version.creators_have_infinite_power else 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0 if preset in ("private_chat", "trusted_private_chat") else 50,
        "notifications": {"room": 50},
    }
    if spec.power_level_content_override:
        content.update(spec.power_level_content_override)
    return content


def check_creation_content(content: dict[str, Any]) -> None:
    """The m.room.create keys a client may set must have their schema's types."""
    if "type" in content and not isinstance(content["type"], str):
        raise MatrixError("M_BAD_JSON", "'creation_content.type' must be a string")
    if "m.federate" in content and not isinstance(content["m.federate"], bool):
        raise MatrixError("M_BAD_JSON", "'creation_content.m.federate' must be a boolean")
    if "predecessor" in content:
        predecessor = content["predecessor"]
        if not isinstance(predecessor, dict) or not isinstance(predecessor.get("room_id"), str):
            raise MatrixError("M_BAD_JSON", "'creation_content.predecessor' needs a room_id")
    if "additional_creators" in content:
        creators = content["additional_creators"]
        if not isinstance(creators, list) or not all(
            isinstance(c, str) and is_valid_user_id(c) for c in creators
        ):
            raise MatrixError(
                "M_BAD_JSON", "'creation_content.additional_creators' must be a list of user IDs"
            )


def _create_content(spec: RoomSpec, preset: str) -> dict[str, Any]:
    check_creation_content(spec.creation_content)
    content = dict(spec.creation_content)
    content["room_version"] = spec.room_version.identifier
    if spec.room_version.implicit_room_creator:
        content.pop("creator", None)
    else:
        content["creator"] = spec.creator
    if spec.room_version.creators_have_infinite_power and preset == "trusted_private_chat":
        extra = content.get("additional_creators", [])
        if not isinstance(extra, list):
            raise MatrixError("M_BAD_JSON", "'additional_creators' must be a list")
        content["additional_creators"] = list(dict.fromkeys([*extra, *spec.invite]))
    return content


# Tries at a free room ID before giving up (see do_create_room).
MAX_ROOM_ID_ATTEMPTS = 20

# Invitees one createRoom may name: far above real use (a 2,000-person organisation),
# far below what a 1 MiB body holds (~35,000 user IDs).
MAX_INVITES = 10_000


def check_invites(invite: list[str]) -> None:
    """createRoom's ``invite`` list is capped (400 M_INVALID_PARAM, a documented answer of
    createRoom; M_LIMIT_EXCEEDED would tell the client to retry later, which never helps)."""
    if len(invite) > MAX_INVITES:
        raise MatrixError(
            "M_INVALID_PARAM",
            f"Cannot invite more than {MAX_INVITES} users when creating a room; "
            "invite the others once it exists",
        )


def do_create_room(spec: RoomSpec) -> Room:
    """Create a room hosted here: its initial state and first invite in one transaction,
    then each further invite in its own (see the module docstring)."""
    check_invites(spec.invite)
    invitees = list(dict.fromkeys(spec.invite))
    local = [invitee for invitee in invitees if is_local_user(invitee)]
    room = _create_with_initial_state(spec, local[:1])
    for invitee in local[1:]:
        _send_invite(room.room_id, spec, invitee)
    for invitee in invitees:
        if not is_local_user(invitee):
            _send_remote_invite(room.room_id, spec, invitee)
    return room


def _send_remote_invite(room_id: str, spec: RoomSpec, invitee: str) -> None:
    """An invite of a user of another server, countersigned by it (no transaction of
    ours is held while it is asked). The room exists by now: a refusal or an unreachable
    server is logged, not the client's error; the client may invite again."""
    _, content, _ = _invite(spec, invitee)
    try:
        remote_invites.do_invite_remote_user(
            room_id, SendContext(sender=spec.creator), invitee, content
        )
    except MatrixError as exc:
        logger.warning("createRoom %s: invite of %s failed: %s", room_id, invitee, exc)


def _send_invite(room_id: str, spec: RoomSpec, invitee: str) -> None:
    """One invite, in a transaction of its own. Takes the room lock."""
    with transaction.atomic():
        room = lock_room(room_id)
        send_in_locked_room(room, SendContext(sender=spec.creator), *_invite(spec, invitee))


def _invite(spec: RoomSpec, invitee: str) -> tuple[str, dict[str, Any], str]:
    """The m.room.member invite event for ``invitee``: type, content, state key."""
    content: dict[str, Any] = {"membership": INVITE, **profile_content(invitee)}
    if spec.is_direct:
        content["is_direct"] = True
    return "m.room.member", content, invitee


def _create_with_initial_state(spec: RoomSpec, invitees: list[str]) -> Room:
    """The room, its initial state and the invites of ``invitees``, in one transaction."""
    preset = spec.preset or ("public_chat" if spec.visibility == "public" else "private_chat")
    settings_for = PRESETS[preset]
    alias = f"#{spec.room_alias_name}:{settings.SERVER_NAME}" if spec.room_alias_name else None
    ctx = SendContext(sender=spec.creator)
    with transaction.atomic():
        if alias and RoomAlias.objects.filter(alias=alias).exists():
            raise MatrixError("M_ROOM_IN_USE", "Room alias already taken")
        room_version = spec.room_version
        room_id = (
            None
            if room_version.room_id_is_create_event_hash
            else spec.room_id or generate_opaque_room_id(settings.SERVER_NAME)
        )
        content = _create_content(spec, preset)
        extra: dict[str, Any] = {}
        for attempt in range(MAX_ROOM_ID_ATTEMPTS):
            # From v12 the room ID is the create event's hash: two rooms created by one
            # user with the same content in the same millisecond would share it. The
            # later one moves its timestamp on by a millisecond and tries again.
            create = build_event(
                room_version,
                room_id=room_id,
                sender=spec.creator,
                event_type="m.room.create",
                content=content,
                state_key="",
                prev_events=[],
                auth_events=[],
                depth=1,
                extra=extra,
            )
            extra = {"origin_server_ts": create.origin_server_ts + 1}
            try:
                with transaction.atomic():
                    room = Room.objects.create(
                        room_id=create.room_id,
                        room_version=room_version.identifier,
                        creator=spec.creator,
                        is_public=spec.visibility == "public",
                    )
                break
            except IntegrityError:
                if attempt == MAX_ROOM_ID_ATTEMPTS - 1:
                    raise
        persist_event(room, create, state_before=None, extremities_before=[])

        def send(event_type: str, content: dict[str, Any], state_key: str = "") -> None:
            try:
                send_in_locked_room(room, ctx, event_type, content, state_key)
            except MatrixError as exc:
                # createRoom, 400: initial state the auth rules refuse (e.g. a power level
                # override below what the name needs) is M_INVALID_ROOM_STATE.
                if exc.errcode != "M_FORBIDDEN":
                    raise
                raise MatrixError("M_INVALID_ROOM_STATE", exc.error) from None

        send("m.room.member", {"membership": JOIN, **profile_content(spec.creator)}, spec.creator)
        send("m.room.power_levels", default_power_levels(spec, preset))
        if alias:
            RoomAlias.objects.create(alias=alias, room=room, creator=spec.creator)
            send("m.room.canonical_alias", {"alias": alias})
        # initial_state "takes precedence over events set by preset": a preset event
        # it replaces is not sent at all (as Synapse), so the room's history does not
        # begin with a setting nobody asked for.
        overridden = {event_type for event_type, key, _ in spec.initial_state if key == ""}
        preset_state = (
            ("m.room.join_rules", {"join_rule": settings_for["join_rule"]}),
            ("m.room.history_visibility", {"history_visibility": settings_for["history"]}),
            ("m.room.guest_access", {"guest_access": settings_for["guest"]}),
        )
        for event_type, preset_content in preset_state:
            if event_type not in overridden:
                send(event_type, preset_content)
        for event_type, state_key, content in spec.initial_state:
            send(event_type, content, state_key)
        if spec.name is not None:
            send("m.room.name", {"name": spec.name})
        if spec.topic is not None:
            send(
                "m.room.topic",
                {
                    "topic": spec.topic,
                    "m.topic": {"m.text": [{"mimetype": "text/plain", "body": spec.topic}]},
                },
            )
        for invitee in invitees:
            send(*_invite(spec, invitee))
    return room


def parse_room_version(identifier: Any) -> RoomVersion:
    if identifier is None:
        return DEFAULT_ROOM_VERSION
    if not isinstance(identifier, str):
        raise MatrixError("M_BAD_JSON", "'room_version' must be a string")
    room_version = KNOWN_ROOM_VERSIONS.get(identifier)
    if room_version is None:
        raise MatrixError("M_UNSUPPORTED_ROOM_VERSION", f"Unsupported room version {identifier!r}")
    return room_version
