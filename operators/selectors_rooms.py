"""What the admin API reads about rooms: Synapse's room summaries, reports, jobs.

Reads only; the room's current state is read through the rooms app's tables
(``CurrentState``, ``Membership``) and its event cache, a handful of queries for any
number of rooms.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from accounts.models import Device
from operators.models import AdminJob
from protocol.errors import MatrixError
from rooms import event_cache
from rooms.models import CurrentState, Event, EventReport, Membership, Room
from rooms.services import blocking

# The state a room summary reads, by (type, state_key).
_SUMMARY_STATE = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.join_rules",
    "m.room.guest_access",
    "m.room.history_visibility",
    "m.room.tombstone",
)

# order_by values of GET /_synapse/admin/v1/rooms and the summary field each sorts on;
# the counts and versions sort largest first (Synapse's order), the rest alphabetically.
ROOM_ORDERS = {
    "name": "name",
    "alphabetical": "name",
    "canonical_alias": "canonical_alias",
    "joined_members": "joined_members",
    "size": "joined_members",
    "joined_local_members": "joined_local_members",
    "version": "version",
    "creator": "creator",
    "encryption": "encryption",
    "federatable": "federatable",
    "public": "public",
    "join_rules": "join_rules",
    "guest_access": "guest_access",
    "history_visibility": "history_visibility",
    "state_events": "state_events",
}
_LARGEST_FIRST = {"joined_members", "joined_local_members", "version", "state_events"}


def _text(content: dict[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) else None


def summaries(rooms: list[Room]) -> list[dict[str, Any]]:
    """Synapse's room objects (the list's fields) for ``rooms``, in their order."""
    if not rooms:
        return []
    state_rows = CurrentState.objects.filter(
        room__in=rooms, type__in=_SUMMARY_STATE, state_key=""
    ).values_list("room_id", "type", "event_id")
    events = event_cache.get_events([event_id for _, _, event_id in state_rows])
    contents: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for room_pk, event_type, event_id in state_rows:
        event = events.get(event_id)
        if event is not None:
            contents[room_pk][event_type] = event.content
    counts = dict(
        CurrentState.objects.filter(room__in=rooms)
        .values_list("room_id")
        .annotate(n=Count("id"))
        .values_list("room_id", "n")
    )
    suffix = f":{settings.SERVER_NAME}"
    joined = (
        Membership.objects.filter(room__in=rooms, membership="join")
        .values("room_id")
        .annotate(total=Count("id"), local=Count("id", filter=Q(user_id__endswith=suffix)))
    )
    members = {row["room_id"]: (row["total"], row["local"]) for row in joined}
    out = []
    for room in rooms:
        state = contents.get(room.pk, {})
        create = state.get("m.room.create", {})
        total, local = members.get(room.pk, (0, 0))
        out.append(
            {
                "room_id": room.room_id,
                "name": _text(state.get("m.room.name", {}), "name"),
                "canonical_alias": _text(state.get("m.room.canonical_alias", {}), "alias"),
                "joined_members": total,
                "joined_local_members": local,
                "version": room.room_version,
                "creator": room.creator,
                "encryption": _text(state.get("m.room.encryption", {}), "algorithm"),
                "federatable": create.get("m.federate", True) is not False,
                "public": room.is_public,
                "join_rules": _text(state.get("m.room.join_rules", {}), "join_rule"),
                "guest_access": _text(state.get("m.room.guest_access", {}), "guest_access"),
                "history_visibility": _text(
                    state.get("m.room.history_visibility", {}), "history_visibility"
                ),
                "state_events": counts.get(room.pk, 0),
                "room_type": _text(create, "type"),
            }
        )
    return out


def _sort_key(field: str) -> Any:
    def key(summary: dict[str, Any]) -> Any:
        value = summary[field]
        if field == "version":
            return (0, int(value)) if str(value).isdigit() else (1, str(value))
        if field in _LARGEST_FIRST or isinstance(value, bool):
            return (value is None, value or 0)
        # Rooms without the value sort last, as Synapse's NULLS LAST.
        return (value is None, value or "")

    return key


def list_rooms(
    *,
    start: int,
    limit: int,
    order_by: str,
    backwards: bool,
    search_term: str | None,
    public_rooms: bool | None,
    empty_rooms: bool | None,
) -> tuple[list[dict[str, Any]], int]:
    """GET /_synapse/admin/v1/rooms: one page of summaries and the total matching."""
    rooms = Room.objects.all()
    if public_rooms is not None:
        rooms = rooms.filter(is_public=public_rooms)
    items = summaries(list(rooms.order_by("room_id")))
    if search_term:
        needle = search_term.casefold()

        def matches(summary: dict[str, Any]) -> bool:
            alias = summary["canonical_alias"] or ""
            return (
                needle in (summary["name"] or "").casefold()
                or needle in alias[1:].split(":", 1)[0].casefold()
                or search_term in summary["room_id"]
            )

        items = [s for s in items if matches(s)]
    if empty_rooms is not None:
        items = [s for s in items if (s["joined_members"] == 0) == empty_rooms]
    field = ROOM_ORDERS[order_by]
    reverse = (field in _LARGEST_FIRST) != backwards
    items.sort(key=lambda s: s["room_id"])
    items.sort(key=_sort_key(field), reverse=reverse)
    return items[start : start + limit], len(items)


def access_room(room_id: str) -> Room:
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Room not found")
    return room


def room_details(room: Room) -> dict[str, Any]:
    """GET /_synapse/admin/v1/rooms/{roomId}: the summary and the detail fields."""
    (summary,) = summaries([room])
    state_rows = CurrentState.objects.filter(
        room=room, type__in=("m.room.topic", "m.room.avatar", "m.room.tombstone"), state_key=""
    ).values_list("type", "event_id")
    events = event_cache.get_events([event_id for _, event_id in state_rows])
    content = {t: events[e].content for t, e in state_rows if e in events}
    tombstone = content.get("m.room.tombstone")
    local_rows = Membership.objects.filter(room=room, user_id__endswith=f":{settings.SERVER_NAME}")
    joined_local = list(local_rows.filter(membership="join").values_list("user_id", flat=True))
    devices = Device.objects.filter(
        user__localpart__in=[u[1:].split(":", 1)[0] for u in joined_local]
    ).count()
    ever = local_rows.count()
    return {
        **summary,
        "topic": _text(content.get("m.room.topic", {}), "topic"),
        "avatar": _text(content.get("m.room.avatar", {}), "url"),
        "joined_local_devices": devices,
        "forgotten": ever > 0 and not local_rows.filter(forgotten=False).exists(),
        "tombstoned": tombstone is not None,
        "replacement_room": _text(tombstone or {}, "replacement_room"),
    }


def block_status(room_id: str) -> dict[str, Any]:
    by = blocking.blocked_by(room_id)
    return {"block": True, "user_id": by} if by is not None else {"block": False}


# --- event reports ------------------------------------------------------------------------


def _report_rooms(room_ids: set[str]) -> dict[str, dict[str, Any]]:
    rooms = list(Room.objects.filter(room_id__in=room_ids))
    return {s["room_id"]: s for s in summaries(rooms)}


def report_json(
    report: EventReport, room: dict[str, Any] | None, sender: str | None
) -> dict[str, Any]:
    return {
        "id": report.pk,
        "received_ts": int(report.created_at.timestamp() * 1000),
        "room_id": report.room_id,
        "name": room["name"] if room else None,
        "event_id": report.event_id,
        "user_id": report.reporter,
        "reason": report.reason or None,
        "score": report.score,
        "sender": sender,
        "canonical_alias": room["canonical_alias"] if room else None,
    }


def event_reports(
    *,
    start: int,
    limit: int,
    backwards: bool,
    room_id: str | None,
    user_id: str | None,
    event_sender_user_id: str | None,
) -> tuple[list[dict[str, Any]], int]:
    """GET /_synapse/admin/v1/event_reports: reports of events (not of rooms or users)."""
    reports = EventReport.objects.exclude(event_id="")
    if room_id:
        reports = reports.filter(room_id=room_id)
    if user_id:
        reports = reports.filter(reporter=user_id)
    if event_sender_user_id:
        sent = Event.objects.filter(sender=event_sender_user_id).values("event_id")
        reports = reports.filter(event_id__in=sent)
    total = reports.count()
    ordering = ("-created_at", "-id") if backwards else ("created_at", "id")
    page = list(reports.order_by(*ordering)[start : start + limit])
    rooms = _report_rooms({r.room_id for r in page})
    senders = dict(
        Event.objects.filter(event_id__in=[r.event_id for r in page]).values_list(
            "event_id", "sender"
        )
    )
    return [report_json(r, rooms.get(r.room_id), senders.get(r.event_id)) for r in page], total


def access_report(report_id: str) -> EventReport:
    report = (
        EventReport.objects.exclude(event_id="").filter(pk=int(report_id)).first()
        if report_id.isdigit() and len(report_id) < 19
        else None
    )
    if report is None:
        raise MatrixError("M_NOT_FOUND", "Event report not found")
    return report


def event_report(report: EventReport) -> dict[str, Any]:
    """GET /_synapse/admin/v1/event_reports/{reportId}: the report and the event."""
    event = Event.objects.filter(event_id=report.event_id).first()
    rooms = _report_rooms({report.room_id})
    out = report_json(report, rooms.get(report.room_id), event.sender if event else None)
    out["event_json"] = event.pdu if event is not None else None
    return out


# --- room deletion jobs -------------------------------------------------------------------


def deletion_status(job: AdminJob) -> dict[str, Any]:
    progress = job.progress
    out: dict[str, Any] = {
        "delete_id": job.job_id,
        "room_id": job.target,
        "status": job.status,
        "shutdown_room": {
            "kicked_users": progress.get("kicked_users", []),
            "failed_to_kick_users": progress.get("failed_to_kick_users", []),
            "local_aliases": progress.get("local_aliases", []),
            "new_room_id": progress.get("new_room_id"),
        },
    }
    if job.status == AdminJob.FAILED:
        out["error"] = job.error
    return out


def deletions_of_room(room_id: str) -> list[AdminJob]:
    return list(AdminJob.objects.filter(kind="room.delete", target=room_id).order_by("id"))


def deletion(delete_id: str) -> AdminJob:
    job = AdminJob.objects.filter(kind="room.delete", job_id=delete_id).first()
    if job is None:
        raise MatrixError("M_NOT_FOUND", f"delete id '{delete_id}' not found")
    return job
