"""Room history for /messages and /context, paginated by stream ordering.

A pagination token ``s<N>`` names the position just after the event with stream
ordering N. Backwards from ``s<N>`` yields events with ordering <= N, newest first;
forwards yields ordering > N, oldest first. /sync tokens begin with the same ``s<N>``
part (anything after ``_`` is ignored here), so a sync's ``prev_batch`` works as
``from``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, JSONField, OuterRef, Subquery

from accounts.models import AccountData, User
from accounts.services.account_data import IGNORED_USER_LIST
from protocol.errors import MatrixError
from rooms import relations, selectors
from rooms.models import Event, Membership, Room
from streams import positions as streams

# A request scans at most this many batches for visible events before answering.
MAX_SCAN_BATCHES = 5

_TOKEN_HEAD = re.compile(r"s-?[0-9]{1,19}")


def parse_token(token: str) -> int:
    head = token.split("_", 1)[0]
    # ASCII digits only (str.isdigit also accepts "²", which int() refuses), one optional
    # minus sign, and at most 19 digits: a stream ordering is a 64-bit integer.
    if not _TOKEN_HEAD.fullmatch(head):
        raise MatrixError("M_INVALID_PARAM", f"Invalid pagination token {token!r}")
    return int(head[1:])


def make_token(position: int) -> str:
    return f"s{position}"


@dataclass(frozen=True)
class Reader:
    """A room, and what reading its history needs to know of the user reading it."""

    room: Room
    user_id: str
    # Has a membership of the room (any, even leave) not forgotten.
    member: bool
    ignored: frozenset[str]


def reader(room_id: str, user: User) -> Reader:
    """The room (M_NOT_FOUND if unknown), the user's membership and ignore list: one
    query, for /messages, where these lookups had cost more than the page itself."""
    ignore_list = AccountData.objects.filter(
        user_id=user.pk, room_id="", type=IGNORED_USER_LIST
    ).values("content")[:1]
    room = (
        Room.objects.filter(room_id=room_id)
        .annotate(
            member=Exists(
                Membership.objects.filter(
                    room_id=OuterRef("pk"), user_id=user.user_id, forgotten=False
                )
            ),
            ignore_list=Subquery(ignore_list, output_field=JSONField()),
        )
        .first()
    )
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Unknown room")
    member: bool = room.member  # type: ignore[attr-defined]
    content = room.ignore_list  # type: ignore[attr-defined]
    return Reader(room, user.user_id, member, relations.ignored_in(content))


def reader_of(room: Room, user_id: str) -> Reader:
    """A Reader for a room at hand (two queries)."""
    membership = selectors.membership_row(room, user_id)
    member = membership is not None and not membership.forgotten
    return Reader(room, user_id, member, relations.ignored_users(user_id))


@dataclass
class Page:
    chunk: list[Event]
    start: str
    end: str | None
    state: list[Event]
    # The viewer's ignored users, read once per request (bundled aggregations use them).
    ignored: frozenset[str]


def paginate(
    reader: Reader,
    *,
    from_token: str | None,
    to_token: str | None,
    direction: str,
    limit: int,
    room_filter: dict[str, Any] | None,
) -> Page:
    """GET /rooms/{roomId}/messages."""
    backwards = direction == "b"
    if from_token is None:
        position = streams.current_position(streams.EVENTS) if backwards else 0
    else:
        position = parse_token(from_token)
    bound = parse_token(to_token) if to_token else None
    start = make_token(position)
    room, user_id, ignored = reader.room, reader.user_id, reader.ignored
    if not reader.member and not selectors.is_world_readable(room):
        raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room's history")

    base = relations.with_child_flag(
        Event.objects.filter(
            room=room,
            stream_ordering__isnull=False,
            rejected_reason__isnull=True,
            soft_failed=False,
        ).filter(selectors.event_filter_q(room_filter))
    )
    if ignored:
        # Ignoring Users: no events from them, except state events.
        base = base.exclude(sender__in=ignored, state_key__isnull=True)
    chunk: list[Event] = []
    cursor = position
    exhausted = False
    for _batch in range(MAX_SCAN_BATCHES):
        if backwards:
            query = base.filter(stream_ordering__lte=cursor)
            if bound is not None:
                query = query.filter(stream_ordering__gt=bound)
            rows = in_room(query.order_by("-stream_ordering")[: limit - len(chunk)], room)
        else:
            query = base.filter(stream_ordering__gt=cursor)
            if bound is not None:
                query = query.filter(stream_ordering__lte=bound)
            rows = in_room(query.order_by("stream_ordering")[: limit - len(chunk)], room)
        if not rows:
            exhausted = True
            break
        last = rows[-1].stream_ordering
        assert last is not None
        cursor = last - 1 if backwards else last
        chunk.extend(selectors.filter_visible(rows, user_id))
        if len(chunk) >= limit:
            break
    end = None if exhausted and not chunk else make_token(cursor)
    if exhausted and chunk:
        # Everything up to the edge was returned; a further request would be empty.
        end = None
    state: list[Event] = []
    if room_filter and room_filter.get("lazy_load_members") and chunk:
        senders = {row.sender for row in chunk}
        oldest = min(chunk, key=lambda r: r.stream_ordering or 0)
        state = selectors.state_events(
            oldest.state_group_id, [("m.room.member", s) for s in senders]
        )
    return Page(chunk, start, end, state, ignored)


def in_room(query: Iterable[Event], room: Room) -> list[Event]:
    """The rows, each given the room object already at hand (no join, no Room per row).

    Cached as the ``room`` descriptor would cache it, without its checks per row: each
    row's room_id is the room's key already.
    """
    rows = list(query)
    for row in rows:
        row._state.fields_cache["room"] = room
    return rows
