"""Room history for /messages and /context, paginated by stream ordering.

A pagination token ``s<N>`` names the position just after the event with stream
ordering N. Backwards from ``s<N>`` yields events with ordering <= N, newest first;
forwards yields ordering > N, oldest first. /sync tokens begin with the same ``s<N>``
part (anything after ``_`` is ignored here), so a sync's ``prev_batch`` works as
``from``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Q

from accounts.models import AccountData, User
from accounts.services.account_data import IGNORED_USER_LIST
from config.model_loading import load_rows, select_columns
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
    query, for /messages, where these lookups through the ORM had cost more than the
    page itself (building the query with its two subqueries took longer than running it).
    """
    quote = connection.ops.quote_name
    rooms = quote(Room._meta.db_table)
    sql = (
        f"SELECT {select_columns(Room)}, "
        f"EXISTS (SELECT 1 FROM {quote(Membership._meta.db_table)} m "
        f"WHERE m.room_id = {rooms}.id AND m.user_id = %s AND NOT m.forgotten), "
        f"(SELECT a.content FROM {quote(AccountData._meta.db_table)} a "
        "WHERE a.user_id = %s AND a.room_id = '' AND a.type = %s) "
        f"FROM {rooms} WHERE {rooms}.room_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.user_id, user.pk, IGNORED_USER_LIST, room_id])
        found = load_rows(Room, cursor.fetchall(), extra=("member", "ignore_list"))
    if not found:
        raise MatrixError("M_NOT_FOUND", "Unknown room")
    room = found[0]
    content = room.ignore_list  # type: ignore[attr-defined]
    if isinstance(content, str):
        content = json.loads(content)
    member = bool(room.member)  # type: ignore[attr-defined]
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

    conditions = selectors.event_filter_q(room_filter)
    chunk: list[Event] = []
    cursor = position
    exhausted = False
    for _attempt in range(MAX_SCAN_BATCHES):
        # Backwards: (bound, cursor], newest first; forwards: (cursor, bound], oldest first.
        lower, upper = (bound, cursor) if backwards else (cursor, bound)
        count = limit - len(chunk)
        rows = timeline_batch(room, conditions, ignored, lower, upper, backwards, count)
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


def timeline_batch(
    room: Room,
    conditions: Q,
    ignored: frozenset[str],
    lower: int | None,
    upper: int | None,
    backwards: bool,
    count: int,
) -> list[Event]:
    """Up to ``count`` timeline events of the room with a stream ordering in
    (lower, upper] that pass a filter's ``conditions`` (selectors.event_filter_q), newest
    or oldest first, each with ``has_children`` and the room object at hand; ignored
    users' events left out, but not their state events. For /messages and /sync."""
    if conditions:
        return _filtered_batch(room, conditions, ignored, lower, upper, backwards, count)
    return _batch(room, ignored, lower, upper, backwards, count)


def _batch(
    room: Room,
    ignored: frozenset[str],
    lower: int | None,
    upper: int | None,
    backwards: bool,
    count: int,
) -> list[Event]:
    """timeline_batch without a filter, written as SQL: the ORM spent longer building
    this query than the database spent running it. Same rows as _filtered_batch with
    no conditions (tests/rooms/test_messages.py runs both)."""
    quote = connection.ops.quote_name
    events = quote(Event._meta.db_table)
    flag, params = relations.child_flag_sql()
    where = [
        f"{events}.room_id = %s",
        f"{events}.stream_ordering IS NOT NULL",
        f"{events}.rejected_reason IS NULL",
        f"NOT {events}.soft_failed",
    ]
    params.append(room.pk)
    if lower is not None:
        where.append(f"{events}.stream_ordering > %s")
        params.append(lower)
    if upper is not None:
        where.append(f"{events}.stream_ordering <= %s")
        params.append(upper)
    if ignored:
        marks = ", ".join(["%s"] * len(ignored))
        where.append(f"({events}.sender NOT IN ({marks}) OR {events}.state_key IS NOT NULL)")
        params.extend(sorted(ignored))
    order = "DESC" if backwards else "ASC"
    sql = (
        f"SELECT {select_columns(Event)}, {flag} FROM {events} WHERE {' AND '.join(where)} "
        f"ORDER BY {events}.stream_ordering {order} LIMIT %s"
    )
    params.append(count)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = load_rows(Event, cursor.fetchall(), extra=("has_children",))
    for row in rows:
        row.has_children = bool(row.has_children)  # type: ignore[attr-defined]
    return in_room(rows, room)


def _filtered_batch(
    room: Room,
    conditions: Q,
    ignored: frozenset[str],
    lower: int | None,
    upper: int | None,
    backwards: bool,
    count: int,
) -> list[Event]:
    """_batch with a filter's conditions, through the ORM."""
    query = relations.with_child_flag(
        Event.objects.filter(
            conditions,
            room=room,
            stream_ordering__isnull=False,
            rejected_reason__isnull=True,
            soft_failed=False,
        )
    )
    if ignored:
        # Ignoring Users: no events from them, except state events.
        query = query.exclude(sender__in=ignored, state_key__isnull=True)
    if lower is not None:
        query = query.filter(stream_ordering__gt=lower)
    if upper is not None:
        query = query.filter(stream_ordering__lte=upper)
    order = "-stream_ordering" if backwards else "stream_ordering"
    return in_room(query.order_by(order)[:count], room)


def in_room(query: Iterable[Event], room: Room) -> list[Event]:
    """The rows, each given the room object already at hand (no join, no Room per row).

    Cached as the ``room`` descriptor would cache it, without its checks per row: each
    row's room_id is the room's key already.
    """
    rows = list(query)
    for row in rows:
        row._state.fields_cache["room"] = room
    return rows
