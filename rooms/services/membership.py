"""Membership changes: join, invite, leave, kick, ban, unban, knock, forget."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from accounts.selectors import local_user
from accounts.services.room_upgrades import do_carry_room_account_data
from protocol import auth_rules
from protocol.errors import MatrixError
from protocol.identifiers import is_valid_user_id, parse_user_id
from rooms import event_cache
from rooms.models import Event, Membership, Room
from rooms.partial import retrying
from rooms.services import blocking, guests, out_of_band, remote_invites
from rooms.services.events import (
    SendContext,
    auth_state_for,
    lock_room,
    room_version_of,
    send_in_locked_room,
    unchanged_state,
)
from rooms.state import StateKey, load_state

logger = logging.getLogger(__name__)

JOIN, INVITE, LEAVE, BAN, KNOCK = "join", "invite", "leave", "ban", "knock"
MEMBERSHIPS = (JOIN, INVITE, LEAVE, BAN, KNOCK)


def check_member_event(event_type: str, state_key: str, content: dict[str, Any]) -> None:
    """An m.room.member event sent as state is about a user: its state_key must be a
    user ID (m.room.member: ``format: mx-user-id``; 400 M_INVALID_PARAM, as Synapse
    answers), and it needs a string ``membership``; otherwise the request is malformed,
    not refused by the auth rules."""
    if event_type != "m.room.member":
        return
    if not is_valid_user_id(state_key):
        raise MatrixError("M_INVALID_PARAM", "The state_key of m.room.member must be a user ID")
    if not isinstance(content.get("membership"), str):
        raise MatrixError("M_BAD_JSON", "m.room.member content needs a string 'membership'")


def is_local_user(user_id: str) -> bool:
    try:
        return parse_user_id(user_id).domain == settings.SERVER_NAME
    except ValueError:
        return False


def server_notices_user_id() -> str:
    """The system user that sends server notices and makes their rooms."""
    return f"@{settings.SERVER_NOTICES_LOCALPART}:{settings.SERVER_NAME}"


def _check_may_leave(room: Room, user_id: str) -> None:
    """Client-Server API, "Server Notices": rejecting the invite to one's server notices
    room (a room the notices user made) "must result in a
    M_CANNOT_LEAVE_SERVER_NOTICE_ROOM error" (403, as Synapse answers); leaving it once
    joined is allowed."""
    if room.creator != server_notices_user_id():
        return
    current = Membership.objects.filter(room=room, user_id=user_id).values_list(
        "membership", flat=True
    )
    if current.first() == INVITE:
        raise MatrixError(
            "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM", "You cannot reject this invite", status=403
        )


def profile_content(user_id: str) -> dict[str, Any]:
    """displayname and avatar_url for a member event, from a local user's profile."""
    user = local_user(user_id)
    if user is None:
        return {}
    content: dict[str, Any] = {}
    if user.displayname is not None:
        content["displayname"] = user.displayname
    if user.avatar_url:
        content["avatar_url"] = user.avatar_url
    return content


def restricted_join_authoriser(
    room: Room, state: Mapping[StateKey, str], user_id: str
) -> str | None:
    """For a join to a room whose join rule is restricted or knock_restricted (room v8+)
    of a user neither invited nor joined: the local member who authorises it (one who
    may invite, for ``join_authorised_via_users_server``); None when the join rule is
    another. Server-Server API, "Restricted rooms":

    - 403 M_FORBIDDEN: the user is in none of the rooms the join rules allow;
    - 400 M_UNABLE_TO_AUTHORISE_JOIN: a user of another server is in none of them as far
      as this server knows, and this server is not in all of them (it cannot tell);
    - 400 M_UNABLE_TO_GRANT_JOIN: no local member may invite (another server may).
    """
    room_version = room_version_of(room)
    if not room_version.restricted_join_rule:
        return None
    join_rules_id = state.get(("m.room.join_rules", ""))
    if join_rules_id is None:
        return None
    join_rules = event_cache.get_events([join_rules_id])[join_rules_id].content
    restricted = ("restricted", "knock_restricted")
    if join_rules.get("join_rule") not in restricted:
        return None
    allow = join_rules.get("allow")
    allowed_rooms = {
        rule["room_id"]
        for rule in (allow if isinstance(allow, list) else [])
        if isinstance(rule, dict)
        and rule.get("type") == "m.room_membership"
        and isinstance(rule.get("room_id"), str)
    }
    if not Membership.objects.filter(
        room__room_id__in=allowed_rooms, user_id=user_id, membership=JOIN
    ).exists():
        if not is_local_user(user_id) and _rooms_joined_here(allowed_rooms) != allowed_rooms:
            raise MatrixError(
                "M_UNABLE_TO_AUTHORISE_JOIN",
                f"Unable to check whether {user_id} is in the rooms the join rules allow",
                status=400,
            )
        raise MatrixError(
            "M_FORBIDDEN", "You are not in any of the rooms the room's join rules allow"
        )
    auth_state = auth_state_for(
        room_version, dict(state), {("m.room.power_levels", ""), ("m.room.create", "")}
    )
    invite_level = auth_rules.get_named_level(room_version, auth_state, "invite")
    members = Membership.objects.filter(room=room, membership=JOIN).values_list(
        "user_id", flat=True
    )
    for candidate in members:
        if not is_local_user(candidate):
            continue
        if auth_rules.get_user_power_level(room_version, candidate, auth_state) >= invite_level:
            return candidate
    raise MatrixError(
        "M_UNABLE_TO_GRANT_JOIN", "No user of this server may invite you to the room", status=400
    )


def _rooms_joined_here(room_ids: set[str]) -> set[str]:
    """Those of the rooms a local user is joined to."""
    suffix = ":" + settings.SERVER_NAME
    return set(
        Membership.objects.filter(
            room__room_id__in=room_ids, membership=JOIN, user_id__endswith=suffix
        ).values_list("room__room_id", flat=True)
    )


def _authorising_user(room: Room, user_id: str) -> str | None:
    """For a local restricted join (room v8+): a local member who may invite, if the user
    is joined to one of the rooms the join rules allow; otherwise None, and the auth
    rules refuse the join."""
    try:
        return restricted_join_authoriser(room, load_state(room.current_state_group_id), user_id)
    except MatrixError:
        return None


@retrying
def do_update_membership(
    room_id: str,
    ctx: SendContext,
    target: str,
    membership: str,
    *,
    reason: str | None = None,
    extra_content: dict[str, Any] | None = None,
) -> Event:
    """Send the m.room.member event for ``target`` in a room hosted here.

    The auth rules decide whether the change is allowed (M_FORBIDDEN otherwise). An
    invite of a user of another server is countersigned by their server first
    (rooms.services.remote_invites); a user leaving a room whose membership is out of
    band (a remote invite, a knock through another server) leaves through a server in
    the room (rooms.services.out_of_band).
    """
    if membership in (JOIN, INVITE, KNOCK) and is_local_user(target):
        blocking.check_not_blocked(room_id)
    out_of_band_leave = membership == LEAVE and target == ctx.sender
    if out_of_band_leave and out_of_band.current_out_of_band(room_id, target) is not None:
        return out_of_band.do_remote_leave(room_id, target, reason=reason)
    content: dict[str, Any] = {"membership": membership}
    if membership in (JOIN, INVITE) and is_local_user(target):
        content.update(profile_content(target))
    if extra_content:
        content.update(extra_content)
    if reason is not None:
        content["reason"] = reason
    if membership == INVITE and not is_local_user(target):
        return remote_invites.do_invite_remote_user(room_id, ctx, target, content)
    with transaction.atomic():
        room = lock_room(room_id)
        if membership == LEAVE and target == ctx.sender:
            _check_may_leave(room, target)
        if membership == JOIN and ctx.guest and target == ctx.sender:
            guests.check_guest_may_join(room)
        if membership == JOIN and room_version_of(room).restricted_join_rule:
            current = Membership.objects.filter(room=room, user_id=target).first()
            if current is None or current.membership not in (JOIN, INVITE):
                authoriser = _authorising_user(room, target)
                if authoriser is not None:
                    content["join_authorised_via_users_server"] = authoriser
        if membership == JOIN:
            # Joining again with the same profile and content changes nothing.
            unchanged = unchanged_state(room, ctx.sender, "m.room.member", target, content)
            if unchanged is not None:
                return unchanged
        event = send_in_locked_room(room, ctx, "m.room.member", content, state_key=target)
        if membership == JOIN and is_local_user(target):
            carry_account_data_from_predecessor(room, target)
        return event


def carry_account_data_from_predecessor(room: Room, user_id: str) -> None:
    """A local user joining a room that replaced another (its create event names a
    ``predecessor``) takes their tags and m.direct entries of the old room along
    (accounts.services.room_upgrades)."""
    create_id = load_state(room.current_state_group_id).get(("m.room.create", ""))
    create = event_cache.get_events([create_id]).get(create_id) if create_id else None
    predecessor = create.content.get("predecessor") if create is not None else None
    old_room_id = predecessor.get("room_id") if isinstance(predecessor, dict) else None
    if isinstance(old_room_id, str):
        do_carry_room_account_data(user_id, old_room_id, room.room_id)


def do_forget_room(room_id: str, user_id: str) -> None:
    """POST /rooms/{roomId}/forget: the user no longer sees the room's history."""
    row = Membership.objects.filter(room__room_id=room_id, user_id=user_id).first()
    if row is None:
        raise MatrixError("M_NOT_FOUND", "You have never been in this room")
    if row.membership in (JOIN, INVITE, KNOCK):
        raise MatrixError("M_UNKNOWN", "You must leave the room before forgetting it", status=400)
    Membership.objects.filter(pk=row.pk).update(forgotten=True)


def do_leave_all_rooms(user_id: str) -> int:
    """Leave (or reject invites to, or withdraw knocks on) every room; returns how many."""
    room_ids = list(
        Membership.objects.filter(
            user_id=user_id, membership__in=(JOIN, INVITE, KNOCK)
        ).values_list("room__room_id", flat=True)
    )
    ctx = SendContext(sender=user_id)
    for room_id in room_ids:
        do_update_membership(room_id, ctx, user_id, LEAVE)
    return len(room_ids)


def do_remove_guests(room_id: str) -> int:
    """Client-Server API, "Guest access": once the room's m.room.guest_access no longer
    says can_join, "the server MUST set those users' m.room.member state to leave".
    Each local guest joined to (or invited into) the room leaves it; none does if the
    current state lets guests join again. How many left.

    The guests leave themselves, as Synapse has them do: no power level is needed, and
    who is a guest stays this server's business.
    """
    room = Room.objects.filter(room_id=room_id).first()
    if room is None or room.current_state_group_id is None:
        return 0
    if guests.guest_can_join(load_state(room.current_state_group_id)):
        return 0
    suffix = ":" + settings.SERVER_NAME
    members = Membership.objects.filter(
        room=room, membership__in=(JOIN, INVITE), user_id__endswith=suffix
    ).values_list("user_id", flat=True)
    localparts = [user_id[1 : -len(suffix)] for user_id in members]
    guest_ids = [
        f"@{localpart}{suffix}"
        for localpart in User.objects.filter(localpart__in=localparts, is_guest=True).values_list(
            "localpart", flat=True
        )
    ]
    left = 0
    for user_id in guest_ids:
        try:
            do_update_membership(room_id, SendContext(sender=user_id), user_id, LEAVE)
        except MatrixError as exc:
            # One guest failing to leave (a remote invite's server unreachable) does not
            # keep the others in.
            logger.warning("guest %s did not leave %s: %s", user_id, room_id, exc.error)
            continue
        left += 1
    return left


@dataclass(frozen=True)
class ProfileRefresh:
    """What one run of :func:`do_refresh_member_profiles` did: member events sent, and
    the room (its primary key) to go on after, None when every room is done."""

    changed: int
    resume_after: int | None


def do_refresh_member_profiles(
    user_id: str, *, after_room: int = 0, limit: int | None = None
) -> ProfileRefresh:
    """Re-send the user's join event with their current profile in up to ``limit`` of
    their joined rooms (all with None), in room order after the room ``after_room``.

    Client-Server API, "Events on change of profile information": the server SHOULD
    send updated m.room.member events to every room the user is a member of. Each room
    is its own transaction under its room lock, and a room whose member event already
    carries the profile (looked at under the lock) gets nothing, so two runs for the
    same user never send the same change twice.
    """
    profile = profile_content(user_id)
    ctx = SendContext(sender=user_id)
    rooms = (
        Membership.objects.filter(user_id=user_id, membership=JOIN, room_id__gt=after_room)
        .order_by("room_id")
        .values_list("room_id", "room__room_id")
    )
    if limit is not None:
        rooms = rooms[: limit + 1]
    wanted = list(rooms)
    resume_after = None
    if limit is not None and len(wanted) > limit:
        wanted = wanted[:limit]
        resume_after = wanted[-1][0]
    changed = 0
    for _room_pk, room_id in wanted:
        try:
            with transaction.atomic():
                room = lock_room(room_id)
                row = Membership.objects.filter(room=room, user_id=user_id).first()
                if row is None or row.membership != JOIN:
                    continue
                current = event_cache.get_events([row.event_id]).get(row.event_id)
                if current is not None and all(
                    current.content.get(k) == profile.get(k) for k in ("displayname", "avatar_url")
                ):
                    continue
                # Keep what else the member event said (join_authorised_via_users_server
                # is not needed again; reason is not carried over).
                extra = {
                    k: v
                    for k, v in (current.content.items() if current is not None else ())
                    if k not in _NOT_CARRIED_OVER
                }
                send_in_locked_room(
                    room, ctx, "m.room.member", {"membership": JOIN, **extra, **profile}, user_id
                )
        except MatrixError as exc:
            # One room refusing (an event grown too large, say) leaves the others
            # updated, as Synapse's _update_join_states does.
            logger.warning("profile of %s not sent to %s: %s", user_id, room_id, exc.error)
            continue
        changed += 1
    return ProfileRefresh(changed, resume_after)


_NOT_CARRIED_OVER = (
    "membership",
    "displayname",
    "avatar_url",
    "reason",
    "join_authorised_via_users_server",
)


def is_own_leave(user_id: str, event_type: str, state_key: str, content: dict[str, Any]) -> bool:
    """A member event by which ``user_id`` leaves (or rejects an invite)."""
    return (
        event_type == "m.room.member"
        and state_key == user_id
        and content.get("membership") == LEAVE
    )


def is_remote_invite(event_type: str, state_key: str | None, content: dict[str, Any]) -> bool:
    """An m.room.member state event inviting a user of another server (PUT /state), which
    takes that server's countersignature (rooms.services.remote_invites)."""
    return (
        event_type == "m.room.member"
        and state_key is not None
        and content.get("membership") == INVITE
        and is_valid_user_id(state_key)
        and not is_local_user(state_key)
    )


def do_knock(
    room_id: str, ctx: SendContext, *, servers: list[str], reason: str | None = None
) -> Event:
    """Knock on a room: sent here if this server is in the room, else through one of
    ``servers`` (or the room ID's server) that is (rooms.services.out_of_band)."""
    blocking.check_not_blocked(room_id)
    room = Room.objects.filter(room_id=room_id).first()
    if out_of_band.is_resident(room):
        return do_update_membership(room_id, ctx, ctx.sender, KNOCK, reason=reason)
    return out_of_band.do_remote_knock(room_id, ctx.sender, servers, reason=reason)
