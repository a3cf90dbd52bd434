"""Reads of presence: who may see whose, and the state as clients see it now."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.clock import now_ms
from presence.models import OFFLINE, ONLINE, UNAVAILABLE, Presence
from rooms.models import Membership

# Client-Server API, Presence, "Idle timeout": online with no activity for this long
# reads as unavailable.
IDLE_AFTER_MS = 5 * 60 * 1000


def presence_content(row: Presence | None, now: int | None = None) -> dict[str, Any]:
    """An m.presence content (or GET /presence body) for ``row``, as of ``now``."""
    if row is None or not settings.PRESENCE_ENABLED:
        return {"presence": OFFLINE}
    now = now_ms() if now is None else now
    state = row.state
    last_active_ago = max(0, now - row.last_active_ts)
    if row.currently_active is not None:
        # A user of another server: their server judges idleness and says so.
        currently_active = row.currently_active
    else:
        if state == ONLINE and last_active_ago > IDLE_AFTER_MS:
            state = UNAVAILABLE
        # Online means active within the idle timeout; while it holds, last_active_ago
        # is not news (the spec's currently_active mechanism).
        currently_active = state == ONLINE
    content: dict[str, Any] = {
        "presence": state,
        "last_active_ago": last_active_ago,
        "currently_active": currently_active,
    }
    if row.status_msg is not None:
        content["status_msg"] = row.status_msg
    return content


def get_presence(user_id: str) -> dict[str, Any]:
    return presence_content(Presence.objects.filter(user_id=user_id).first())


def _rooms_of(user_id: str) -> QuerySet[Membership]:
    return Membership.objects.filter(user_id=user_id, membership="join").values("room_id")


def shares_a_room(observer: str, target: str) -> bool:
    if observer == target:
        return True
    return Membership.objects.filter(
        user_id=target, membership="join", room_id__in=_rooms_of(observer)
    ).exists()


def users_sharing_a_room(user_id: str) -> list[str]:
    """Everyone joined to a room ``user_id`` is joined to, ``user_id`` included."""
    others = (
        Membership.objects.filter(membership="join", room_id__in=_rooms_of(user_id))
        .values_list("user_id", flat=True)
        .distinct()
    )
    return sorted({user_id, *others})


def presence_changes(user_id: str, *, after: int, upto: int) -> list[Presence]:
    """Changes in (after, upto] of the users sharing a room with ``user_id`` (and
    their own), one indexed range query."""
    shared = Membership.objects.filter(membership="join", room_id__in=_rooms_of(user_id)).values(
        "user_id"
    )
    return list(
        Presence.objects.filter(stream_id__gt=after, stream_id__lte=upto)
        .filter(Q(user_id=user_id) | Q(user_id__in=shared))
        .order_by("stream_id")
    )


def presence_of(user_ids: list[str]) -> dict[str, Presence]:
    """The presence rows of ``user_ids`` that have one, by user ID: one query."""
    return {row.user_id: row for row in Presence.objects.filter(user_id__in=user_ids)}


def presence_changes_in_room(room_pk: int, *, after: int, upto: int) -> list[Presence]:
    """Changes in (after, upto] of the users joined to the room: what someone peeking
    into it hears (GET /events with ``room_id``). One indexed range query."""
    joined = Membership.objects.filter(room_id=room_pk, membership="join").values("user_id")
    return list(
        Presence.objects.filter(
            stream_id__gt=after, stream_id__lte=upto, user_id__in=joined
        ).order_by("stream_id")
    )
