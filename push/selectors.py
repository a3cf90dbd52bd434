"""Reads of the push rules' verdicts: unread notification counts (/sync, and the push
gateway's ``counts.unread``) and the list of notifications (GET /notifications); and a
user's pushers (GET /pushers).

Where a user has read up to, per room and thread (Push Notifications, "Marking
notifications as read"): the later of their m.read and m.read.private receipts; an
unthreaded receipt covers every thread up to its event, a threaded one its thread; and
the user's own latest event in the room (models.ImplicitReceipt) counts as an
unthreaded receipt. A PushAction row after that point is unread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q

from config.model_loading import table_name
from push.models import ImplicitReceipt, PushAction, Pusher
from rooms.models import Event, Receipt, Room
from rooms.relations import MAIN_THREAD
from rooms.serialize import client_events
from rooms.services.receipts import READ, READ_PRIVATE

UNTHREADED = ""


def _unread_sql(room_count: int) -> str:
    """Per room and thread, the unread notifications and highlights of one user in the
    rooms given (by primary key).

    ``bounds`` first finds, per room, the unthreaded read-up-to position (receipts and
    the implicit one); the rows after it are then read by range on the
    (user, room, stream_ordering) index, and a row covered by the receipt of its own
    thread is left out.
    """
    actions, receipts, implicit, rooms = (
        table_name(PushAction),
        table_name(Receipt),
        table_name(ImplicitReceipt),
        table_name(Room),
    )
    placeholders = ", ".join(["%s"] * room_count)
    return f"""
WITH bounds AS MATERIALIZED (
    SELECT rm.id AS room_pk, rm.room_id AS room_id,
        COALESCE((
            SELECT MAX(r.event_stream_ordering) FROM {receipts} r
            WHERE r.room_id = rm.id AND r.user_id = %s AND r.thread_id = %s
                AND r.receipt_type IN (%s, %s)
        ), 0) AS read_to,
        COALESCE((
            SELECT i.stream_ordering FROM {implicit} i
            WHERE i.room_id = rm.id AND i.user_id = %s
        ), 0) AS sent_to
    FROM {rooms} rm WHERE rm.id IN ({placeholders})
)
SELECT b.room_id, pa.thread_id, COUNT(*),
    SUM(CASE WHEN pa.highlight THEN 1 ELSE 0 END)
FROM bounds b
JOIN {actions} pa ON pa.user_id = %s AND pa.room_id = b.room_pk
    AND pa.stream_ordering > b.read_to AND pa.stream_ordering > b.sent_to
WHERE pa.notify AND NOT EXISTS (
    SELECT 1 FROM {receipts} t
    WHERE t.room_id = pa.room_id AND t.user_id = %s AND t.thread_id = pa.thread_id
        AND t.receipt_type IN (%s, %s) AND t.event_stream_ordering >= pa.stream_ordering
)
GROUP BY b.room_id, pa.thread_id
"""


def unread_counts(
    user_id: str, rooms: Sequence[Room], *, by_thread: bool
) -> dict[str, dict[str, Any]]:
    """The counts /sync gives each joined room, by room ID: ``unread_notifications``
    (every room given, zeros included) and, ``by_thread``, ``unread_thread_notifications``
    (only rooms and threads with something unread). With ``by_thread`` the room's own
    counts are its main timeline's (sync.yaml, "unread_notifications"). One query."""
    if not rooms:
        return {}
    counts: dict[str, dict[str, Any]] = {
        room.room_id: {"unread_notifications": {"notification_count": 0, "highlight_count": 0}}
        for room in rooms
    }
    params: list[Any] = [user_id, UNTHREADED, READ, READ_PRIVATE, user_id]
    params += [room.pk for room in rooms]
    params += [user_id, user_id, READ, READ_PRIVATE]
    with connection.cursor() as cursor:
        cursor.execute(_unread_sql(len(rooms)), params)
        found = cursor.fetchall()
    for room_id, thread_id, notifications, highlights in found:
        entry = counts[room_id]
        if by_thread and thread_id != MAIN_THREAD:
            threads = entry.setdefault("unread_thread_notifications", {})
            threads[thread_id] = {
                "notification_count": int(notifications),
                "highlight_count": int(highlights or 0),
            }
            continue
        total = entry["unread_notifications"]
        total["notification_count"] += int(notifications)
        total["highlight_count"] += int(highlights or 0)
    return counts


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[dict[str, Any]]
    next_token: str | None


def _read_to(user_id: str, room_pks: set[int]) -> dict[tuple[int, str], int]:
    """The user's read-up-to positions in the rooms: (room pk, thread_id) -> position,
    with thread_id "" for the unthreaded one. Two queries."""
    positions: dict[tuple[int, str], int] = defaultdict(int)
    for room_pk, thread_id, position in Receipt.objects.filter(
        room_id__in=room_pks, user_id=user_id, receipt_type__in=(READ, READ_PRIVATE)
    ).values_list("room_id", "thread_id", "event_stream_ordering"):
        key = (room_pk, thread_id)
        positions[key] = max(positions[key], position)
    for room_pk, position in ImplicitReceipt.objects.filter(
        room_id__in=room_pks, user_id=user_id
    ).values_list("room_id", "stream_ordering"):
        key = (room_pk, UNTHREADED)
        positions[key] = max(positions[key], position)
    return positions


def notifications(
    user_id: str, *, before: int | None, limit: int, only_highlight: bool
) -> NotificationPage:
    """GET /notifications: the user's notifications, newest first, ``limit`` of them
    from stream position ``before`` (exclusive) down."""
    query = PushAction.objects.filter(user_id=user_id, notify=True)
    if only_highlight:
        query = query.filter(highlight=True)
    if before is not None:
        query = query.filter(stream_ordering__lt=before)
    actions = list(
        query.order_by("-stream_ordering").values_list(
            "room_id", "event_id", "stream_ordering", "thread_id", "actions", "ts"
        )[: limit + 1]
    )
    more = len(actions) > limit
    actions = actions[:limit]
    if not actions:
        return NotificationPage([], None)
    events = {
        row.event_id: row
        for row in Event.objects.select_related("room").filter(
            event_id__in=[event_id for _, event_id, *_ in actions]
        )
    }
    formatted = dict(
        zip(
            events,
            client_events(list(events.values()), viewer_device=(user_id, None)),
            strict=True,
        )
    )
    read_to = _read_to(user_id, {room_pk for room_pk, *_ in actions})
    page = []
    for room_pk, event_id, position, thread_id, rule_actions, ts in actions:
        row = events.get(event_id)
        if row is None:
            continue
        event = dict(formatted[event_id])
        event.pop("room_id", None)
        read = position <= max(read_to[(room_pk, UNTHREADED)], read_to[(room_pk, thread_id)])
        page.append(
            {
                "actions": rule_actions,
                "event": event,
                "read": read,
                "room_id": row.room.room_id,
                "ts": ts,
            }
        )
    next_token = str(actions[-1][2]) if more else None
    return NotificationPage(page, next_token)


# --- Pushers ----------------------------------------------------------------------------


def pushers_of(user_id: str) -> list[dict[str, Any]]:
    """GET /pushers: the user's pushers as the spec shows them."""
    out = []
    for pusher in Pusher.objects.filter(user_id=user_id).order_by("pk"):
        shown: dict[str, Any] = {
            "pushkey": pusher.pushkey,
            "kind": pusher.kind,
            "app_id": pusher.app_id,
            "app_display_name": pusher.app_display_name,
            "device_display_name": pusher.device_display_name,
            "lang": pusher.lang,
            "data": pusher.data,
        }
        if pusher.profile_tag is not None:
            shown["profile_tag"] = pusher.profile_tag
        out.append(shown)
    return out


def read_already() -> ExpressionWrapper:
    """For a PushAction row (the outer query): has the user read up to it? The same
    read-up-to point as the counts: an m.read or m.read.private receipt of the row's
    thread or an unthreaded one, or the user's own later event in the room."""
    receipt = Receipt.objects.filter(
        room_id=OuterRef("room_id"),
        user_id=OuterRef("user_id"),
        receipt_type__in=(READ, READ_PRIVATE),
        event_stream_ordering__gte=OuterRef("stream_ordering"),
    ).filter(Q(thread_id=UNTHREADED) | Q(thread_id=OuterRef("thread_id")))
    sent_later = ImplicitReceipt.objects.filter(
        room_id=OuterRef("room_id"),
        user_id=OuterRef("user_id"),
        stream_ordering__gte=OuterRef("stream_ordering"),
    )
    return ExpressionWrapper(Q(Exists(receipt)) | Q(Exists(sent_later)), BooleanField())


def unread_notification_count(user_id: str) -> int:
    """The push gateway's ``counts.unread``: "the number of unread messages a user has
    across all of the rooms they are a member of", the sum of /sync's
    ``notification_count`` over the user's joined rooms (two queries)."""
    rooms = list(Room.objects.filter(memberships__user_id=user_id, memberships__membership="join"))
    counts = unread_counts(user_id, rooms, by_thread=False)
    return sum(entry["unread_notifications"]["notification_count"] for entry in counts.values())
