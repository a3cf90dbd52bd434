"""Reads of presence: who may see whose, and the state as clients see it now."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts.clock import now_ms
from presence.models import OFFLINE, ONLINE, UNAVAILABLE, Presence
from rooms import recent
from rooms.models import Event, Membership

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


def newly_sharing(user_id: str, *, after: int, upto: int) -> set[str]:
    """Users who began to share a room with ``user_id`` between positions (after, upto]
    of the events stream: who joined one of the user's rooms, and, for a room the user
    joined, its members. A profile change (a join replacing a join) is no news.

    The joins come from the events of the range every /sync of the process shares
    (rooms.recent), or one indexed range query when it is too long to keep; the rest is
    asked only when there are joins."""
    news = recent.events_between(after, upto)
    if news is not None:
        joins = [
            (row.room_id, row.state_key, row.replaces_state)
            for row in news
            if row.type == "m.room.member"
            and row.membership == "join"
            and row.state_key is not None
            and not row.rejected_reason
        ]
    else:
        joins = list(
            Event.objects.filter(
                stream_ordering__gt=after,
                stream_ordering__lte=upto,
                type="m.room.member",
                membership="join",
                rejected_reason__isnull=True,
            ).values_list("room_id", "state_key", "replaces_state")
        )
    if not joins:
        return set()
    my_rooms = set(_rooms_of(user_id).values_list("room_id", flat=True))
    joins = [join for join in joins if join[0] in my_rooms]
    replaced = [r for _, _, r in joins if r]
    rejoins = set(
        Event.objects.filter(event_id__in=replaced, membership="join").values_list(
            "event_id", flat=True
        )
        if replaced
        else ()
    )
    users: set[str] = set()
    rooms_joined: set[int] = set()
    for room_pk, joiner, replaces in joins:
        if replaces in rejoins or joiner is None:
            continue
        users.add(joiner)
        if joiner == user_id:
            rooms_joined.add(room_pk)
    if rooms_joined:
        users.update(
            Membership.objects.filter(room_id__in=rooms_joined, membership="join").values_list(
                "user_id", flat=True
            )
        )
    return users


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
