"""Room summaries for users who may not be in the room: GET /room_summary/{roomIdOrAlias}
(Matrix 1.15) and the rooms of the space hierarchy (rooms/hierarchy.py).

Who may preview a room (space_hierarchy.yaml, ``rooms``; room_summary.yaml): a member
(joined or invited; knocked too, for the summary), anyone if the room is public,
knockable or world-readable, and the members of a restricted room's allow-list rooms.
Without an access token only the public, knockable and world-readable ones.
"""

from __future__ import annotations

from typing import Any

from rooms import event_cache
from rooms.models import CurrentState, Membership, Room
from rooms.services.directory import room_chunks

# Join rules under which anyone may see a room: it may be joined or knocked on.
_OPEN_JOIN_RULES = ("public", "knock", "knock_restricted")


def _state_content(room: Room, event_type: str) -> dict[str, Any]:
    row = CurrentState.objects.filter(room=room, type=event_type, state_key="").first()
    if row is None:
        return {}
    event = event_cache.get_events([row.event_id]).get(row.event_id)
    return event.content if event is not None else {}


def _allowed_room_ids(join_rules: dict[str, Any]) -> list[str]:
    return [
        rule["room_id"]
        for rule in join_rules.get("allow", [])
        if isinstance(rule, dict)
        and rule.get("type") == "m.room_membership"
        and isinstance(rule.get("room_id"), str)
    ]


def summarise(room: Room) -> dict[str, Any]:
    """The room's summary (definitions/room_summary.yaml): its directory entry, with its
    room version, its encryption algorithm and a restricted room's allowed rooms."""
    joined = Membership.objects.filter(room=room, membership="join").count()
    summary = room_chunks([(room.pk, room.room_id, joined)])[0]
    summary["room_version"] = room.room_version
    algorithm = _state_content(room, "m.room.encryption").get("algorithm")
    if isinstance(algorithm, str):
        summary["encryption"] = algorithm
    if summary.get("join_rule") in ("restricted", "knock_restricted"):
        summary["allowed_room_ids"] = _allowed_room_ids(_state_content(room, "m.room.join_rules"))
    return summary


def membership_of(room: Room, user_id: str) -> str | None:
    membership: str | None = (
        Membership.objects.filter(room=room, user_id=user_id)
        .values_list("membership", flat=True)
        .first()
    )
    return membership


def may_preview(room: Room, summary: dict[str, Any], user_id: str | None) -> bool:
    """Whether ``user_id`` (None: a client without an access token) may be shown the
    room's summary."""
    open_room = summary["world_readable"] or summary.get("join_rule", "public") in (
        _OPEN_JOIN_RULES
    )
    if user_id is None:
        return bool(open_room)
    membership = membership_of(room, user_id)
    if membership in ("join", "invite", "knock"):
        return True
    if membership == "ban":
        return False
    if open_room:
        return True
    if summary.get("join_rule") != "restricted":
        return False
    return Membership.objects.filter(
        room__room_id__in=summary.get("allowed_room_ids", []),
        user_id=user_id,
        membership="join",
    ).exists()


def _is_open(summary: dict[str, Any]) -> bool:
    return bool(summary["world_readable"]) or summary.get("join_rule", "public") in (
        _OPEN_JOIN_RULES
    )


def may_preview_remote(room_id: str, summary: dict[str, Any], user_id: str) -> bool:
    """Whether ``user_id`` may be shown a summary another server gave of a room (as
    Synapse's ``_is_remote_room_accessible``): an open room, a restricted room whose
    allow-list names a room the user is in, or a room the user is in, invited to or
    knocking on as far as this server knows."""
    if _is_open(summary):
        return True
    allowed = summary.get("allowed_room_ids") or []
    if (
        summary.get("join_rule") in ("restricted", "knock_restricted")
        and Membership.objects.filter(
            room__room_id__in=allowed, user_id=user_id, membership="join"
        ).exists()
    ):
        return True
    return Membership.objects.filter(
        room__room_id=room_id, user_id=user_id, membership__in=("join", "invite", "knock")
    ).exists()


def server_may_preview(room: Room, summary: dict[str, Any], server_name: str) -> bool:
    """Whether another server may be given the room's summary (GET
    /_matrix/federation/v1/hierarchy): an open room, one where a user of the server is
    joined or invited, or a restricted room whose allow-list names a room a user of the
    server is joined to (what the server could peek or join)."""
    if _is_open(summary):
        return True
    suffix = ":" + server_name
    if Membership.objects.filter(
        room=room, membership__in=("join", "invite"), user_id__endswith=suffix
    ).exists():
        return True
    if summary.get("join_rule") not in ("restricted", "knock_restricted"):
        return False
    return Membership.objects.filter(
        room__room_id__in=summary.get("allowed_room_ids", []),
        membership="join",
        user_id__endswith=suffix,
    ).exists()
