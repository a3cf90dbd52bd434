"""Server-side search of room events (Client-Server API, "Server Side Search",
``POST /search`` category ``room_events``).

Searched: the rooms the user is joined to or was joined to and has not forgotten
("all rooms the user has been in, including those that they have left"); in them, the
timeline events whose searchable value (rooms.services.search_index) matches every word
of the search term, as a word or the start of one, never a redacted event. Each match is
then shown only if history visibility lets the user see it, by the rule /messages uses
(rooms.selectors.filter_visible): "it won't include events in rooms that happened after
you left".

Pagination is by position, not offset: a ``next_batch`` token names the last match
returned (its rank and stream ordering, or its stream ordering in ``recent`` order), and
the next page starts after it. In rank order on SQLite the ranks (bm25) depend on every
row indexed, so a page read after new events arrived may repeat or skip a match near its
edge; PostgreSQL's ts_rank depends on the event alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from accounts.models import User
from protocol.errors import MatrixError
from rooms import history, relations, selectors, storage
from rooms.models import Event, Room
from rooms.services.search_index import KEYS
from rooms.storage import TOPOLOGICAL, SearchPosition, SearchQuery

RANK = "rank"
RECENT = "recent"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
CONTEXT_DEFAULT = 5
CONTEXT_MAX = 100
# A request reads at most this many batches of matches looking for visible ones.
MAX_SCAN_BATCHES = 5
# Letters and digits: what both databases' tokenisers keep of a search term, and all
# that reaches their query syntax.
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Criteria:
    """The ``room_events`` criteria of a request, checked by the view."""

    search_term: str
    keys: tuple[str, ...] = KEYS
    room_filter: dict[str, Any] | None = None
    order_by: str = RANK
    # None: no event_context asked for.
    before_limit: int | None = None
    after_limit: int | None = None
    include_profile: bool = False
    include_state: bool = False
    group_by: tuple[str, ...] = ()
    next_batch: str | None = None


@dataclass
class Context:
    events_before: list[Event]
    events_after: list[Event]
    start: str
    end: str
    # user ID -> {displayname, avatar_url}, with include_profile.
    profile_info: dict[str, dict[str, Any]] | None


@dataclass
class Result:
    event: Event
    rank: float
    context: Context | None = None


@dataclass
class Outcome:
    results: list[Result]
    count: int
    highlights: list[str]
    next_batch: str | None
    # group key ("room_id", "sender") -> group ID -> {results, order, next_batch}
    groups: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # room ID -> the room's state as the user may see it, with include_state.
    state: dict[str, list[Event]] = field(default_factory=dict)


# --- Tokens -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Where a page starts: after ``position`` in ``order``, in ``room_id`` only when
    the token came from a room's group."""

    order: str
    position: SearchPosition
    room_id: str | None = None


def make_batch_token(batch: Batch) -> str:
    data: dict[str, Any] = {"o": batch.order, "p": list(batch.position)}
    if batch.room_id is not None:
        data["r"] = batch.room_id
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_batch_token(token: str, order: str) -> Batch:
    """The batch a ``next_batch`` token names; M_INVALID_PARAM for anything not made by
    :func:`make_batch_token`, or made for the other order."""
    invalid = MatrixError("M_INVALID_PARAM", f"Invalid next_batch token {token!r}")
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(data, dict) or data.get("o") != order:
        raise invalid
    position = data.get("p")
    room_id = data.get("r")
    if not isinstance(position, list) or (room_id is not None and not isinstance(room_id, str)):
        raise invalid
    if order == RANK:
        if (
            len(position) != 2
            or not isinstance(position[0], int | float)
            or isinstance(position[0], bool)
            or not _is_int64(position[1])
        ):
            raise invalid
        return Batch(order, (float(position[0]), position[1]), room_id)
    if len(position) != 1 or not _is_int64(position[0]):
        raise invalid
    return Batch(order, (position[0],), room_id)


def _is_int64(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _position(row: Event, rank: float, order: str) -> SearchPosition:
    assert row.stream_ordering is not None  # a timeline event
    return (rank, row.stream_ordering) if order == RANK else (row.stream_ordering,)


# --- Which rooms --------------------------------------------------------------------------


def searchable_rooms(user_id: str) -> dict[int, Room]:
    """The rooms the user is joined to, and those they left (or were banned from) after
    having been joined and have not forgotten, by primary key."""
    rooms: dict[int, Room] = {}
    departed: dict[int, Room] = {}
    for membership in selectors.memberships_of(user_id):
        if membership.membership == "join":
            rooms[membership.room_id] = membership.room
        elif membership.membership in ("leave", "ban") and not membership.forgotten:
            departed[membership.room_id] = membership.room
    if departed:
        was_joined = (
            Event.objects.filter(
                room_id__in=list(departed),
                type="m.room.member",
                state_key=user_id,
                membership="join",
            )
            .values_list("room_id", flat=True)
            .distinct()
        )
        for room_pk in was_joined:
            rooms[room_pk] = departed[room_pk]
    return rooms


def _rooms_wanted(
    rooms: dict[int, Room], room_filter: dict[str, Any] | None, only: str | None
) -> dict[int, Room]:
    """The rooms among ``rooms`` that the filter's ``rooms`` and ``not_rooms`` (and a
    room's ``next_batch``, ``only``) leave in."""
    room_filter = room_filter or {}
    wanted = room_filter.get("rooms")
    unwanted = set(room_filter.get("not_rooms") or ())
    return {
        pk: room
        for pk, room in rooms.items()
        if (wanted is None or room.room_id in wanted)
        and room.room_id not in unwanted
        and (only is None or room.room_id == only)
    }


# --- The search ---------------------------------------------------------------------------


def search_room_events(user: User, criteria: Criteria) -> Outcome:
    """POST /_matrix/client/v3/search, ``room_events``."""
    order = criteria.order_by
    batch = parse_batch_token(criteria.next_batch, order) if criteria.next_batch else None
    room_filter = criteria.room_filter
    limit = DEFAULT_LIMIT
    if room_filter and isinstance(room_filter.get("limit"), int):
        limit = min(room_filter["limit"], MAX_LIMIT)
    words = tuple(_WORD.findall(criteria.search_term))
    rooms = _rooms_wanted(
        searchable_rooms(user.user_id), room_filter, batch.room_id if batch else None
    )
    if not words or not rooms or not criteria.keys or limit == 0:
        return Outcome([], 0, [], None)
    query = SearchQuery(
        words=words,
        room_pks=tuple(sorted(rooms)),
        keys=criteria.keys,
        conditions=selectors.event_filter_q(room_filter),
        ignored=relations.ignored_users(user.user_id),
    )
    found: list[tuple[Event, float, str]] = []
    cursor = batch.position if batch else None
    exhausted = False
    # The spec's count, given by the first batch's statement.
    total: int | None = None
    for _attempt in range(MAX_SCAN_BATCHES):
        wanted = limit - len(found)
        page = storage.search_page(
            query, by_rank=order == RANK, after=cursor, count=wanted, with_total=total is None
        )
        if total is None:
            total = page.total
        rows = page.rows
        for row, _rank, _value in rows:
            row._state.fields_cache["room"] = rooms[row.room_id]
        found.extend(_visible(rows, user.user_id))
        if len(rows) < wanted:
            exhausted = True
            break
        last, rank, _value = rows[-1]
        cursor = _position(last, rank, order)
        if len(found) >= limit:
            break
    next_batch = None
    if not exhausted and cursor is not None:
        next_batch = make_batch_token(Batch(order, cursor, batch.room_id if batch else None))
    results = [Result(row, rank) for row, rank, _value in found]
    if criteria.before_limit is not None or criteria.after_limit is not None:
        _add_context(results, user.user_id, criteria)
    outcome = Outcome(
        results,
        total or 0,
        highlights(words, [value for _row, _rank, value in found]),
        next_batch,
    )
    outcome.groups = _groups(results, criteria.group_by, order, cursor if next_batch else None)
    if criteria.include_state:
        outcome.state = _state(results, user.user_id)
    return outcome


def _visible(rows: list[tuple[Event, float, str]], user_id: str) -> list[tuple[Event, float, str]]:
    """The rows the user may see (history visibility, per room), in their order."""
    by_room: dict[int, list[Event]] = {}
    for row, _rank, _value in rows:
        by_room.setdefault(row.room_id, []).append(row)
    # By primary key, the row as it is served (an erased sender's may be a redacted copy).
    visible = {
        row.pk: row
        for room_rows in by_room.values()
        for row in selectors.filter_visible(room_rows, user_id)
    }
    return [(visible[row.pk], rank, value) for row, rank, value in rows if row.pk in visible]


def highlights(words: tuple[str, ...], values: list[str]) -> list[str]:
    """The words of the results that matched: each searched word, and each word of a
    result that starts with one (a prefix match, or a longer form of a stemmed word).
    None without results."""
    if not values:
        return []
    wanted = [word.casefold() for word in words]
    found = set(wanted)
    for value in values:
        for word in _WORD.findall(value):
            if word.casefold().startswith(tuple(wanted)):
                found.add(word)
    return sorted(found)


# --- Context, groups, state ---------------------------------------------------------------


def _add_context(results: list[Result], user_id: str, criteria: Criteria) -> None:
    """The events around each result, as /context gives them (topological order, the
    same history visibility), filtered by the request's filter, and with
    include_profile the senders' profiles as the room's state had them after the last
    event returned."""
    before_limit = min(
        CONTEXT_DEFAULT if criteria.before_limit is None else criteria.before_limit,
        CONTEXT_MAX,
    )
    after_limit = min(
        CONTEXT_DEFAULT if criteria.after_limit is None else criteria.after_limit, CONTEXT_MAX
    )
    timeline_filter = dict(criteria.room_filter or {})
    timeline_filter.pop("lazy_load_members", None)
    readers: dict[int, history.Reader] = {}
    for result in results:
        event = result.event
        reader = readers.get(event.room_id)
        if reader is None:
            reader = readers[event.room_id] = history.reader_of(event.room, user_id)
        before = _page(reader, history.just_before(event), "b", before_limit, timeline_filter)
        after = _page(
            reader, storage.position_of(event, TOPOLOGICAL), "f", after_limit, timeline_filter
        )
        oldest = before.chunk[-1] if before.chunk else event
        last = after.chunk[-1] if after.chunk else event
        profile_info = None
        if criteria.include_profile:
            senders = {row.sender for row in (*before.chunk, event, *after.chunk)}
            profile_info = _profiles(last, senders, user_id)
        result.context = Context(
            events_before=before.chunk,
            events_after=after.chunk,
            start=before.end or history.make_token(history.just_before(oldest)),
            end=after.end or history.make_token(storage.position_of(last, TOPOLOGICAL)),
            profile_info=profile_info,
        )


def _page(
    reader: history.Reader,
    position: storage.Position,
    direction: str,
    limit: int,
    room_filter: dict[str, Any],
) -> history.Page:
    if limit == 0:
        return history.Page([], "", None, [], reader.ignored)
    return history.paginate(
        reader,
        from_token=history.make_token(position),
        to_token=None,
        direction=direction,
        limit=limit,
        room_filter=room_filter,
    )


def _profiles(event: Event, senders: set[str], user_id: str) -> dict[str, dict[str, Any]]:
    """The senders' display names and avatars in the state after ``event``, as served to
    ``user_id`` (an erased sender's redacted member event has neither)."""
    members = selectors.state_events(
        event.state_group_id, [("m.room.member", sender) for sender in sorted(senders)]
    )
    members = selectors.as_served(members, user_id)
    profiles: dict[str, dict[str, Any]] = {}
    for member in members:
        content = member.pdu.get("content") or {}
        profile: dict[str, Any] = {}
        for key in ("displayname", "avatar_url"):
            if isinstance(content.get(key), str):
                profile[key] = content[key]
        profiles[member.state_key or ""] = profile
    return profiles


def _groups(
    results: list[Result], group_by: tuple[str, ...], order: str, cursor: SearchPosition | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """The results grouped by room or sender, each group with its event IDs and its order
    (of first appearance); a room's group with a ``next_batch`` for more of the room's
    results when there are more results at all."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for key in group_by:
        by_id: dict[str, dict[str, Any]] = {}
        for result in results:
            group_id = result.event.room.room_id if key == "room_id" else result.event.sender
            group = by_id.get(group_id)
            if group is None:
                group = by_id[group_id] = {"results": [], "order": len(by_id) + 1}
                if key == "room_id" and cursor is not None:
                    group["next_batch"] = make_batch_token(Batch(order, cursor, group_id))
            group["results"].append(result.event.event_id)
        groups[key] = by_id
    return groups


def _state(results: list[Result], user_id: str) -> dict[str, list[Event]]:
    """For each room of the results, its state as the user may read it: the current
    state, or the state when they left (selectors.check_can_read_state)."""
    state: dict[str, list[Event]] = {}
    for room in {result.event.room_id: result.event.room for result in results}.values():
        try:
            group = selectors.check_can_read_state(room, user_id)
        except MatrixError:
            continue
        state[room.room_id] = selectors.as_served(selectors.state_events(group), user_id)
    return state
