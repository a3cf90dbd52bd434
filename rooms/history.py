"""Room history for /messages and /context, paged in topological order.

History is read in the order of the room's DAG, ``(depth, stream_ordering)``
(rooms.storage.TOPOLOGICAL), so that events persisted late, such as history fetched
from another server (backfill, at negative stream positions), stand where they belong.

A pagination token ``t<depth>-<stream>`` names the position just after the event at
(depth, stream). Backwards from it yields the events at or before it, newest first;
forwards those after it, oldest first.

``s<N>`` tokens name a position in stream order: /sync hands them out (``prev_batch``,
and ``next_batch``, whose ``s<N>`` part is the events stream; anything after ``_`` is
ignored here), and /messages did before it paged topologically. As ``from`` or ``to``
they stand for the topological position just after the deepest event persisted at or
before N (rooms.storage.topological_position), as Synapse converts them: everything a
client saw up to N is at or before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from accounts.models import User
from protocol.errors import MatrixError
from rooms import relations, selectors, storage
from rooms.models import Event, Room
from rooms.storage import TOPOLOGICAL, Position
from streams import positions as streams

# A request scans at most this many batches for visible events before answering.
MAX_SCAN_BATCHES = 5

# ASCII digits only (str.isdigit also accepts "²", which int() refuses), one optional
# minus sign, and at most 19 digits.
_STREAM_TOKEN = re.compile(r"s(-?[0-9]{1,19})")
_TOPOLOGICAL_TOKEN = re.compile(r"t(-?[0-9]{1,19})-(-?[0-9]{1,19})")
# Depths and stream orderings are 64-bit integers.
_INT64 = range(-(2**63), 2**63)


def _invalid(token: str) -> MatrixError:
    return MatrixError("M_INVALID_PARAM", f"Invalid pagination token {token!r}")


def _int64(token: str, digits: str) -> int:
    value = int(digits)
    if value not in _INT64:
        raise _invalid(token)
    return value


def parse_token(token: str, room: Room) -> Position:
    """The topological position a ``t<depth>-<stream>`` or ``s<N>`` token names in
    ``room`` (M_INVALID_PARAM for anything else)."""
    head = token.split("_", 1)[0]
    topological = _TOPOLOGICAL_TOKEN.fullmatch(head)
    if topological:
        return (_int64(token, topological[1]), _int64(token, topological[2]))
    stream = _STREAM_TOKEN.fullmatch(head)
    if stream:
        return storage.topological_position(room, _int64(token, stream[1]))
    raise _invalid(token)


def stream_position(token: str) -> int:
    """The stream position a token names: N of ``s<N>``, the stream part of
    ``t<depth>-<stream>`` (for ``GET /members?at=``, which takes either)."""
    head = token.split("_", 1)[0]
    topological = _TOPOLOGICAL_TOKEN.fullmatch(head)
    if topological:
        return _int64(token, topological[2])
    stream = _STREAM_TOKEN.fullmatch(head)
    if stream:
        return _int64(token, stream[1])
    raise _invalid(token)


def make_token(position: Position) -> str:
    """The token of the topological position (depth, stream)."""
    depth, stream = position
    return f"t{depth}-{stream}"


def make_stream_token(position: int) -> str:
    return f"s{position}"


def just_before(row: Event) -> Position:
    """The position just before ``row`` in topological order: backwards from it starts
    with the event before ``row``, forwards from it with ``row``."""
    depth, stream = storage.position_of(row, TOPOLOGICAL)
    return (depth, stream - 1)


@dataclass(frozen=True)
class Reader:
    """A room, and what reading its history needs to know of the user reading it."""

    room: Room
    user_id: str
    # Has a membership of the room (any, even leave) not forgotten.
    member: bool
    ignored: frozenset[str]
    # A server admin reading through the admin API: every timeline event, whatever the
    # history visibility (Synapse's ``use_admin_priviledge``).
    admin: bool = False


def reader(room_id: str, user: User) -> Reader:
    """The room (M_NOT_FOUND if unknown), the user's membership and ignore list: one
    query (rooms.storage.room_for_reader), for /messages."""
    found = storage.room_for_reader(room_id, user.user_id, user.pk)
    if found is None:
        raise MatrixError("M_NOT_FOUND", "Unknown room")
    return Reader(found.room, user.user_id, found.member, relations.ignored_in(found.ignore_list))


def reader_of(room: Room, user_id: str) -> Reader:
    """A Reader for a room at hand (two queries)."""
    membership = selectors.membership_row(room, user_id)
    member = membership is not None and not membership.forgotten
    return Reader(room, user_id, member, relations.ignored_users(user_id))


def check_may_read(reader: Reader) -> None:
    """M_FORBIDDEN unless the reader has a membership of the room (even a past one) or
    the room is world readable: then which events they see is history visibility's
    business (an event they may not see is "not found")."""
    if not reader.member and not selectors.is_world_readable(reader.room):
        raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room's history")


@dataclass
class Page:
    chunk: list[Event]
    start: str
    end: str | None
    state: list[Event]
    # The viewer's ignored users, read once per request (bundled aggregations use them).
    ignored: frozenset[str]
    # Where the scan stopped: the position just before the last event it read, or the
    # ``to`` bound it reached; None when it reached the start (``b``) or end (``f``) of
    # the history stored here. Backfill (rooms.services.backfill) looks for gaps above it.
    reached: Position | None = None


def paginate(
    reader: Reader,
    *,
    from_token: str | None,
    to_token: str | None,
    direction: str,
    limit: int,
    room_filter: dict[str, Any] | None,
) -> Page:
    """GET /rooms/{roomId}/messages, in topological order.

    Without ``from``, from the end of the room's history (``b``) or its start (``f``);
    then ``start`` is the position just after the newest event (``b``) or just before
    the oldest (``f``), read from the first batch at no extra cost (where /messages had
    read the events stream's position for it).
    """
    backwards = direction == "b"
    room, user_id, ignored = reader.room, reader.user_id, reader.ignored
    position = parse_token(from_token, room) if from_token is not None else None
    bound = parse_token(to_token, room) if to_token else None
    check_may_read(reader)

    conditions = selectors.event_filter_q(room_filter)
    chunk: list[Event] = []
    cursor = position
    # "start": "the same as the value given in from".
    start = from_token
    exhausted = False
    for _attempt in range(MAX_SCAN_BATCHES):
        # Backwards: (bound, cursor], newest first; forwards: (cursor, bound], oldest first.
        after, upto = (bound, cursor) if backwards else (cursor, bound)
        rows = storage.timeline_batch(
            room,
            order=TOPOLOGICAL,
            conditions=conditions,
            ignored=ignored,
            after=after,
            upto=upto,
            newest_first=backwards,
            count=limit - len(chunk),
        )
        if not rows:
            exhausted = True
            break
        if start is None:
            first = rows[0]
            start = make_token(
                storage.position_of(first, TOPOLOGICAL) if backwards else just_before(first)
            )
        last = rows[-1]
        cursor = just_before(last) if backwards else storage.position_of(last, TOPOLOGICAL)
        chunk.extend(rows if reader.admin else selectors.filter_visible(rows, user_id))
        if len(chunk) >= limit:
            break
    if start is None:
        # Nothing in that direction at all: the room has no history this user may page
        # through yet. Its current stream position stands for the end, and for the start
        # ("t0-0" is before every event: depths are positive).
        start = (
            make_stream_token(streams.current_position(streams.EVENTS))
            if backwards
            else make_token((0, 0))
        )
    # Everything up to the edge was returned (or nothing was there): a further request
    # would be empty.
    end = None if exhausted or cursor is None else make_token(cursor)
    reached = bound if exhausted else cursor
    state: list[Event] = []
    if room_filter and room_filter.get("lazy_load_members") and chunk:
        senders = {row.sender for row in chunk}
        oldest = min(chunk, key=lambda r: storage.position_of(r, TOPOLOGICAL))
        state = selectors.state_events(
            oldest.state_group_id, [("m.room.member", s) for s in senders]
        )
        if not reader.admin:
            state = selectors.as_served(state, user_id)
    return Page(chunk, start, end, state, ignored, reached)
