"""The event reads of the room aggregate, in one place.

Every statement that reads events for a hot path lives here. Where a read is written as
SQL (building and compiling the ORM's query cost more than running it, see
config/model_loading.py), its ORM twin stands next to it, and
tests/rooms/test_storage.py runs both on the same rows: the SQL is an optimisation of
the ORM query, never a second definition.

"Visible in a timeline" is defined once, below, three ways (a query condition, an SQL
fragment, a predicate on a row); every read of history, /sync, relations and context
uses one of them.

Two orders (rooms.models.Event):
- stream order, ``stream_ordering``: the order this server persisted events in; /sync
  reads ranges of it. Backfilled history has negative positions, so a /sync (which
  reads positions above its token, all positive) never sees it.
- topological order, ``(depth, stream_ordering)``: the order of the room's DAG, which
  /messages, /context and /relations page through, so that history fetched late
  stands in its place.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import EmptyResultSet, FullResultSet
from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    FloatField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.expressions import RawSQL

from accounts.models import AccountData
from accounts.services.account_data import IGNORED_USER_LIST
from config.model_loading import load_rows, select_columns, table_name
from rooms.models import Event, EventSearch, Membership, OutOfBandMembership, Room

# Relationship types whose children are bundled with their parent (rooms.relations).
BUNDLED_REL_TYPES = ("m.replace", "m.reference", "m.thread")

# --- "Visible in a timeline" --------------------------------------------------------
#
# An event is in a room's timeline when it has a stream position (an outlier has none:
# it is known, e.g. as an auth event, but was never part of the room's history here),
# and was neither rejected (it failed the auth rules) nor soft-failed (it passed them
# against its own state but not against the current state: Server-Server API,
# "Soft failure": "the event should not be sent to clients").


def in_timeline_q() -> Q:
    """The condition, for a query on Event."""
    return Q(
        stream_ordering__isnull=False,
        outlier=False,
        rejected_reason__isnull=True,
        soft_failed=False,
    )


def in_timeline_sql(alias: str) -> str:
    """The condition, as SQL on the events table under ``alias`` (a quoted table name or
    an alias given in the FROM clause). No parameters."""
    return (
        f"{alias}.stream_ordering IS NOT NULL AND NOT {alias}.outlier "
        f"AND {alias}.rejected_reason IS NULL AND NOT {alias}.soft_failed"
    )


def in_timeline(row: Event) -> bool:
    """The condition, on a row at hand."""
    return (
        row.stream_ordering is not None
        and not row.outlier
        and row.rejected_reason is None
        and not row.soft_failed
    )


# --- Out-of-band memberships --------------------------------------------------------
#
# A local user's membership in a room this server is not in (an invite received over
# federation, its rejection, a knock sent through another server, its rescinding;
# rooms.services.out_of_band): an outlier, known without the room's state and never in
# its timeline, that has a stream position all the same, so /sync sees it. No other
# outlier has one.


def out_of_band_q() -> Q:
    """The condition, for a query on Event."""
    return Q(outlier=True, stream_ordering__isnull=False)


def is_out_of_band(row: Event) -> bool:
    """The condition, on a row at hand."""
    return row.outlier and row.stream_ordering is not None


def timeline_events(room: Room | None = None) -> QuerySet[Event]:
    """The timeline events (of ``room``, or of every room), each with its room."""
    query = Event.objects.select_related("room").filter(in_timeline_q())
    return query.filter(room=room) if room is not None else query


def live_children() -> QuerySet[Event]:
    """Timeline events that are the child of a relationship: a relationship needs a
    rel_type and an unredacted child (a redaction strips ``m.relates_to``)."""
    return timeline_events().filter(rel_type__isnull=False, redacted_by__isnull=True)


# --- Orders and positions -------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    """An order of a room's events: the columns compared, most significant first. A
    position in it is a tuple of as many integers, standing just after the event at
    that position: paging backwards from it yields the events at or before it, paging
    forwards those after it."""

    columns: tuple[str, ...]


STREAM = Order(("stream_ordering",))
TOPOLOGICAL = Order(("depth", "stream_ordering"))
Position = tuple[int, ...]


def position_of(row: Event, order: Order) -> Position:
    return tuple(getattr(row, column) for column in order.columns)


def _bound_sql(alias: str, order: Order, bound: Position, above: bool) -> tuple[str, list[int]]:
    """``(columns) > bound`` (``above``) or ``(columns) <= bound``, compared as tuples.

    Written out (``a > x OR (a = x AND b > y)``) rather than as a row value comparison,
    with the first column's range repeated in front (``a >= x AND ...``): that range is
    what an index on (room, a, b) seeks to on both databases; the rest only filters."""
    if len(bound) != len(order.columns):
        raise ValueError(f"A position in {order.columns} has {len(order.columns)} parts")
    cols = [f"{alias}.{connection.ops.quote_name(c)}" for c in order.columns]
    strict, last = (">", ">") if above else ("<", "<=")
    clauses: list[str] = []
    params: list[int] = []
    for index, column in enumerate(cols):
        equal = [f"{cols[i]} = %s" for i in range(index)]
        op = last if index == len(cols) - 1 else strict
        clauses.append("(" + " AND ".join([*equal, f"{column} {op} %s"]) + ")")
        params.extend([*bound[:index], bound[index]])
    first = f"{cols[0]} {'>=' if above else '<='} %s"
    return f"({first} AND ({' OR '.join(clauses)}))", [bound[0], *params]


def _bound_q(order: Order, bound: Position, above: bool) -> Q:
    """:func:`_bound_sql` as a query condition."""
    if len(bound) != len(order.columns):
        raise ValueError(f"A position in {order.columns} has {len(order.columns)} parts")
    strict, last = ("gt", "gt") if above else ("lt", "lte")
    q = Q(pk__in=[])
    for index, column in enumerate(order.columns):
        op = last if index == len(order.columns) - 1 else strict
        equal = {order.columns[i]: bound[i] for i in range(index)}
        q |= Q(**equal, **{f"{column}__{op}": bound[index]})
    return q


def after_q(order: Order, position: Position) -> Q:
    """Events after ``position`` in ``order``."""
    return _bound_q(order, position, above=True)


def upto_q(order: Order, position: Position) -> Q:
    """Events at or before ``position`` in ``order``."""
    return _bound_q(order, position, above=False)


def order_by(order: Order, *, newest_first: bool) -> list[str]:
    """``order`` for QuerySet.order_by."""
    return [f"-{c}" if newest_first else c for c in order.columns]


def topological_position(room: Room, stream_ordering: int) -> Position:
    """The topological position that stream position ``stream_ordering`` stands for in
    ``room``: just after the deepest of the room's events persisted at or before it (the
    latest of them in stream order among equals). Every event a client saw up to that
    stream position is at or before it; (0, stream_ordering) when the room had none."""
    found = (
        Event.objects.filter(room=room, stream_ordering__lte=stream_ordering)
        .order_by("-depth", "-stream_ordering")
        .values_list("depth", flat=True)
        .first()
    )
    return (found if found is not None else 0, stream_ordering)


# --- Children flag ----------------------------------------------------------------------


def child_flag_sql() -> tuple[str, list[str]]:
    """An SQL boolean for a query on the events table (unaliased): does any event name
    the row as the parent of a relationship that is bundled (m.replace, m.reference,
    m.thread)? With its parameters.

    A page of history or a /sync timeline read with it needs no separate probe for
    children: an index lookup per row inside the same query, where the probe was a
    second round trip (1.7 ms on PostgreSQL for 100 events, most of it planning the list
    of event IDs). The flag only says "look": the children's rules are applied later.
    """
    events = table_name(Event)
    sql = (
        f"EXISTS (SELECT 1 FROM {events} child WHERE child.relates_to = {events}.event_id "
        "AND child.rel_type IN (%s, %s, %s))"
    )
    return sql, list(BUNDLED_REL_TYPES)


def with_child_flag(query: QuerySet[Event]) -> QuerySet[Event]:
    """``query`` (on the events table, without joins) with ``has_children`` on each row:
    see :func:`child_flag_sql`."""
    sql, params = child_flag_sql()
    return query.annotate(has_children=RawSQL(sql, params, output_field=BooleanField()))


# --- A batch of a room's timeline -------------------------------------------------------


def timeline_batch(
    room: Room,
    *,
    order: Order,
    conditions: Q,
    ignored: frozenset[str],
    after: Position | None,
    upto: Position | None,
    newest_first: bool,
    count: int,
) -> list[Event]:
    """Up to ``count`` timeline events of the room positioned in (after, upto] of
    ``order`` that pass a filter's ``conditions`` (selectors.event_filter_q), newest or
    oldest first, each with ``has_children`` and the room object at hand; ignored users'
    events left out, but not their state events ("Ignoring Users"). For /messages,
    /context and /sync.

    Without conditions the statement is SQL (:func:`timeline_batch_sql`), with them the
    ORM builds it (:func:`timeline_batch_orm`); both give the same rows."""
    read = timeline_batch_orm if conditions else timeline_batch_sql
    return read(room, order, conditions, ignored, after, upto, newest_first, count)


def timeline_batch_sql(
    room: Room,
    order: Order,
    conditions: Q,
    ignored: frozenset[str],
    after: Position | None,
    upto: Position | None,
    newest_first: bool,
    count: int,
) -> list[Event]:
    """timeline_batch without a filter (``conditions`` must be empty), written as SQL:
    the ORM spent longer building this query than the database spent running it."""
    if conditions:
        raise ValueError("timeline_batch_sql takes no filter conditions")
    events = table_name(Event)
    flag, params = child_flag_sql()
    where = [f"{events}.room_id = %s", in_timeline_sql(events)]
    params.append(room.pk)
    for bound, above in ((after, True), (upto, False)):
        if bound is not None:
            sql, bound_params = _bound_sql(events, order, bound, above)
            where.append(sql)
            params.extend(bound_params)
    if ignored:
        marks = ", ".join(["%s"] * len(ignored))
        where.append(f"({events}.sender NOT IN ({marks}) OR {events}.state_key IS NOT NULL)")
        params.extend(sorted(ignored))
    direction = "DESC" if newest_first else "ASC"
    ordering = ", ".join(f"{events}.{c} {direction}" for c in order.columns)
    sql = (
        f"SELECT {select_columns(Event)}, {flag} FROM {events} WHERE {' AND '.join(where)} "
        f"ORDER BY {ordering} LIMIT %s"
    )
    params.append(count)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = load_rows(Event, cursor.fetchall(), extra=("has_children",))
    for row in rows:
        row.has_children = bool(row.has_children)  # type: ignore[attr-defined]
    return in_room(rows, room)


def timeline_batch_orm(
    room: Room,
    order: Order,
    conditions: Q,
    ignored: frozenset[str],
    after: Position | None,
    upto: Position | None,
    newest_first: bool,
    count: int,
) -> list[Event]:
    """timeline_batch through the ORM, with a filter's conditions or without."""
    query = with_child_flag(Event.objects.filter(conditions, in_timeline_q(), room=room))
    if ignored:
        query = query.exclude(sender__in=ignored, state_key__isnull=True)
    if after is not None:
        query = query.filter(after_q(order, after))
    if upto is not None:
        query = query.filter(upto_q(order, upto))
    return in_room(query.order_by(*order_by(order, newest_first=newest_first))[:count], room)


def in_room(query: Iterable[Event], room: Room) -> list[Event]:
    """The rows, each given the room object already at hand (no join, no Room per row).

    Cached as the ``room`` descriptor would cache it, without its checks per row: each
    row's room_id is the room's key already.
    """
    rows = list(query)
    for row in rows:
        row._state.fields_cache["room"] = room
    return rows


# --- The newest events of every room ----------------------------------------------------


def events_in_stream_range(after: int, upto: int, limit: int) -> list[Event]:
    """Up to ``limit`` events of any room with a stream ordering in (after, upto],
    oldest first, with ``has_children``; every event there, in the timeline or not (the
    caller applies :func:`in_timeline`). For rooms.recent."""
    query = Event.objects.filter(stream_ordering__gt=after, stream_ordering__lte=upto)
    return list(with_child_flag(query).order_by("stream_ordering")[:limit])


# --- Relationship groups ----------------------------------------------------------------

# (parent event ID, rel_type, room pk, count, latest child's stream ordering, how many
# of the children the viewer sent)
ChildGroup = tuple[str, str, int, int, int, int]


def child_groups(
    parent_ids: Sequence[str], kinds: Sequence[str], ignored: frozenset[str], user_id: str
) -> list[ChildGroup]:
    """Per parent among ``parent_ids`` and rel_type among ``kinds``: the live children's
    (:func:`live_children`) count, the latest one's stream ordering and how many
    ``user_id`` sent; children by ``ignored`` users left out. Grouped by room as well:
    the caller drops children in another room than their parent's.

    Written as SQL: this runs for every page of history and every /sync timeline, and
    building it through the ORM cost more than running it. The room is not in the
    WHERE clause: with it, PostgreSQL may walk the room's every event (it did, 3 ms for
    a page of a 3,000-event room, whenever its statistics were older than the room),
    where the relation index finds the few children at once.
    """
    events = table_name(Event)
    room_column = connection.ops.quote_name(Event._meta.get_field("room").column)

    def marks(values: Sequence[object]) -> str:
        return ", ".join(["%s"] * len(values))

    sql = (
        f"SELECT {events}.relates_to, {events}.rel_type, {events}.{room_column}, COUNT(*), "
        f"MAX({events}.stream_ordering), "
        f"SUM(CASE WHEN {events}.sender = %s THEN 1 ELSE 0 END) FROM {events} "
        f"WHERE {events}.relates_to IN ({marks(parent_ids)}) "
        f"AND {events}.rel_type IN ({marks(kinds)}) AND {events}.redacted_by IS NULL "
        f"AND {in_timeline_sql(events)}"
    )
    params: list[object] = [user_id, *parent_ids, *kinds]
    if ignored:
        sql += f" AND {events}.sender NOT IN ({marks(sorted(ignored))})"
        params.extend(sorted(ignored))
    sql += f" GROUP BY {events}.relates_to, {events}.rel_type, {events}.{room_column}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]  # type: ignore[misc]


def child_groups_orm(
    parent_ids: Sequence[str], kinds: Sequence[str], ignored: frozenset[str], user_id: str
) -> list[ChildGroup]:
    """:func:`child_groups` through the ORM."""
    rows = (
        Event.objects.filter(
            in_timeline_q(),
            relates_to__in=list(parent_ids),
            rel_type__in=list(kinds),
            redacted_by__isnull=True,
        )
        .exclude(sender__in=ignored)
        .values("relates_to", "rel_type", "room_id")
        .annotate(
            count=Count("pk"),
            latest=Max("stream_ordering"),
            mine=Count("pk", filter=Q(sender=user_id)),
        )
        .order_by()
        .values_list("relates_to", "rel_type", "room_id", "count", "latest", "mine")
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]


# --- A reader of a room's history -------------------------------------------------------


@dataclass(frozen=True)
class RoomForReader:
    room: Room
    # Has a membership of the room (any, even leave) not forgotten.
    member: bool
    # The content of the reader's m.ignored_user_list, if any.
    ignore_list: Any


def room_for_reader(room_id: str, user_id: str, user_pk: int) -> RoomForReader | None:
    """The room, whether ``user_id`` has a membership of it not forgotten, and the
    content of the user's ignored users list: one query, for /messages, where these
    lookups through the ORM had cost more than the page itself (building the query with
    its two subqueries took longer than running it). None for an unknown room."""
    rooms = table_name(Room)
    sql = (
        f"SELECT {select_columns(Room)}, "
        f"EXISTS (SELECT 1 FROM {table_name(Membership)} m "
        f"WHERE m.room_id = {rooms}.id AND m.user_id = %s AND NOT m.forgotten), "
        f"(SELECT a.content FROM {table_name(AccountData)} a "
        "WHERE a.user_id = %s AND a.room_id = '' AND a.type = %s) "
        f"FROM {rooms} WHERE {rooms}.room_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, user_pk, IGNORED_USER_LIST, room_id])
        found = load_rows(Room, cursor.fetchall(), extra=("member", "ignore_list"))
    if not found:
        return None
    room = found[0]
    content = room.ignore_list  # type: ignore[attr-defined]
    if isinstance(content, str):
        content = json.loads(content)
    return RoomForReader(room, bool(room.member), content)  # type: ignore[attr-defined]


def room_for_reader_orm(room_id: str, user_id: str, user_pk: int) -> RoomForReader | None:
    """:func:`room_for_reader` through the ORM."""
    room = (
        Room.objects.filter(room_id=room_id)
        .annotate(
            member=Exists(
                Membership.objects.filter(room=OuterRef("pk"), user_id=user_id, forgotten=False)
            ),
            ignore_list=Subquery(
                AccountData.objects.filter(
                    user_id=user_pk, room_id="", type=IGNORED_USER_LIST
                ).values("content")[:1]
            ),
        )
        .first()
    )
    if room is None:
        return None
    content = room.ignore_list  # type: ignore[attr-defined]
    if isinstance(content, str):
        content = json.loads(content)
    return RoomForReader(room, bool(room.member), content)  # type: ignore[attr-defined]


# --- What /sync reads of events besides timelines ------------------------------------


def events_by_id(event_ids: Iterable[str], *, with_room: bool = False) -> dict[str, Event]:
    """The known events among ``event_ids``, by ID (state sections, stripped state)."""
    wanted = list(event_ids)
    if not wanted:
        return {}
    query = Event.objects.filter(event_id__in=wanted)
    if with_room:
        query = query.select_related("room")
    return {row.event_id: row for row in query}


def stream_orderings(event_ids: Iterable[str]) -> dict[str, int]:
    """The stream position of each known event among ``event_ids`` that has one (GET
    /events orders and cuts the timeline events /sync gave it by them)."""
    wanted = list(event_ids)
    if not wanted:
        return {}
    return dict(
        Event.objects.filter(event_id__in=wanted, stream_ordering__isnull=False).values_list(
            "event_id", "stream_ordering"
        )
    )


def events_with_membership(event_ids: Iterable[str], membership: str) -> set[str]:
    """Which of the member events ``event_ids`` set ``membership`` (was the user joined
    just before this leave?)."""
    wanted = list(event_ids)
    if not wanted:
        return set()
    return set(
        Event.objects.filter(event_id__in=wanted, membership=membership).values_list(
            "event_id", flat=True
        )
    )


def out_of_band_stripped_state(event_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The stripped state kept with each out-of-band membership among ``event_ids`` (what
    the inviting server or the knocked-on one sent), by event ID."""
    wanted = list(event_ids)
    if not wanted:
        return {}
    return dict(
        OutOfBandMembership.objects.filter(event_id__in=wanted).values_list(
            "event_id", "stripped_state"
        )
    )


def rooms_with_events_between(room_pks: Sequence[int], after: int, upto: int) -> set[int]:
    """Which of the rooms have an event with a stream ordering in (after, upto]."""
    return set(
        Event.objects.filter(
            room_id__in=list(room_pks), stream_ordering__gt=after, stream_ordering__lte=upto
        )
        .values_list("room_id", flat=True)
        .distinct()
    )


# (room pk, membership, event ID, stream ordering, the event it replaced in the state)
MemberEvent = tuple[int, str | None, str, int, str | None]


def member_events_of(
    user_id: str,
    room_pks: Sequence[int],
    *,
    after: int | None,
    upto: int,
    newest_first: bool,
) -> list[MemberEvent]:
    """``user_id``'s own m.room.member events in the rooms with a stream ordering in
    (after, upto], by room, then in stream order."""
    query = Event.objects.filter(
        room_id__in=list(room_pks),
        type="m.room.member",
        state_key=user_id,
        stream_ordering__lte=upto,
    )
    if after is not None:
        query = query.filter(stream_ordering__gt=after)
    stream = "-stream_ordering" if newest_first else "stream_ordering"
    return list(
        query.order_by("room_id", stream).values_list(
            "room_id", "membership", "event_id", "stream_ordering", "replaces_state"
        )
    )


# --- Full-text search -------------------------------------------------------------------
#
# Over rooms.models.EventSearch (rooms.services.search_index), with the database's own
# full-text index (migrations 0011, 0014, 0015): on PostgreSQL ``to_tsvector('english', value)``
# stored in the ``vector`` column, which its GIN index holds, ranked by ts_rank; on
# SQLite the FTS5 table, ranked by bm25 (negated: FTS5 scores better matches lower).
# The higher the rank, the better.

# A search position in rank order: (rank, stream ordering) of the last event returned;
# in recent order: (stream ordering,).
SearchPosition = tuple[float, int] | tuple[int]


@dataclass(frozen=True)
class SearchQuery:
    """The words searched for and where: ``room_pks`` (never empty), the ``keys`` of
    EventSearch, a filter's ``conditions`` (selectors.event_filter_q) and the senders
    whose events are left out (ignored users)."""

    words: tuple[str, ...]
    room_pks: tuple[int, ...]
    keys: tuple[str, ...]
    conditions: Q
    ignored: frozenset[str]


def _on_event(condition: Q) -> Q:
    """A condition on Event as a condition on EventSearch (through its ``event``)."""
    prefixed = Q()
    prefixed.connector, prefixed.negated = condition.connector, condition.negated
    for child in condition.children:
        if isinstance(child, Q):
            prefixed.children.append(_on_event(child))
        else:
            lookup, value = child
            prefixed.children.append((f"event__{lookup}", value))
    return prefixed


def _match_and_rank(words: Sequence[str]) -> tuple[RawSQL, RawSQL]:
    """The full-text condition and the rank, on the EventSearch table. ``words`` are
    letters and digits only (rooms.search), each matched as a word or a word's start."""
    table = table_name(EventSearch)
    if connection.vendor == "postgresql":
        query = " & ".join(f"{word}:*" for word in words)
        # The row's stored to_tsvector('english', value) (migration 0014), GIN-indexed.
        vector = f"{table}.vector"
        tsquery = "to_tsquery('english', %s)"
        return (
            RawSQL(f"{vector} @@ {tsquery}", [query], output_field=BooleanField()),
            # As double precision: a real is read back rounded to its shortest decimal
            # form, which compares unequal to it (the next page would repeat it).
            RawSQL(
                f"ts_rank({vector}, {tsquery})::double precision",
                [query],
                output_field=FloatField(),
            ),
        )
    query = " AND ".join(f'"{word}"*' for word in words)
    fts = "rooms_eventsearch_fts"
    return (
        RawSQL(
            f"{table}.id IN (SELECT rowid FROM {fts} WHERE {fts} MATCH %s)",
            [query],
            output_field=BooleanField(),
        ),
        # The ranks of all the matches, worked out once (a materialised CTE: computed on
        # first use, then looked up by row ID) rather than by a MATCH per row, which
        # read the term's whole posting list again for each of thousands of matches.
        RawSQL(
            f"(WITH ranked AS MATERIALIZED (SELECT rowid AS id, -bm25({fts}) AS rank "
            f"FROM {fts} WHERE {fts} MATCH %s) "
            f"SELECT rank FROM ranked WHERE ranked.id = {table}.id)",
            [query],
            output_field=FloatField(),
        ),
    )


@dataclass
class SearchPage:
    """A page of matches, best first or newest first: each match's event (its room not
    loaded: the caller has it), rank and matched value; and, when asked for, ``total``,
    how many events match at all wherever the page starts (the spec's ``count``, "an
    approximation of the total number of results": before history visibility)."""

    rows: list[tuple[Event, float, str]]
    total: int | None = None


def search_page(
    search: SearchQuery,
    *,
    by_rank: bool,
    after: SearchPosition | None,
    count: int,
    with_total: bool = False,
) -> SearchPage:
    """Up to ``count`` matching timeline events after ``after``, best first (``by_rank``)
    or newest first (in stream order), never a redacted event; with ``with_total``, the
    number of all matches too.

    Written as SQL, one statement for the page and the total (``COUNT(*) OVER ()`` over
    every match, the page's start applied outside it), where the ORM twin
    (:func:`search_page_orm`) takes two and joins every match to its event in each. On
    SQLite the FTS5 table is read once, the matches' row IDs and bm25 ranks together, in a
    materialised CTE that the other tables are joined to (joined directly, SQLite may put
    the FTS5 table inside the loop, one MATCH per row). On PostgreSQL each match's event
    is checked by a lookup of its key (see below), and the GIN index has no pending list
    to read through (migration 0015)."""
    search_table, events = table_name(EventSearch), table_name(Event)
    match = _search_match_sql(search.words)
    where = [*match.where]
    where_params = [*match.where_params]
    where.append(f"{search_table}.room_id IN ({_marks(search.room_pks)})")
    where_params.extend(search.room_pks)
    where.append(f"{search_table}.{connection.ops.quote_name('key')} IN ({_marks(search.keys)})")
    where_params.extend(search.keys)
    checks = [in_timeline_sql(events), f"{events}.redacted_by IS NULL"]
    check_params: list[Any] = []
    conditions = search.conditions
    if search.ignored:
        # As in timelines: ignored users' messages, not their state events.
        conditions &= ~Q(sender__in=search.ignored, state_key__isnull=True)
    compiled = _event_condition_sql(conditions)
    if compiled is None:
        return SearchPage([], 0 if with_total else None)
    if compiled[0]:
        checks.append(f"({compiled[0]})")
        check_params.extend(compiled[1])
    if connection.vendor == "postgresql":
        # Each match's event looked up by its key, in a subquery per row (behind an
        # OFFSET 0 fence, so that it is not inlined into the outer query and worked out
        # twice): joined, the planner's costs (random_page_cost 4) often chose to hash
        # the whole events table, ten times slower with the rows at hand in memory.
        checked = (
            f"SELECT id, rank, stream FROM (SELECT {search_table}.id AS id, "
            f"{match.rank} AS rank, (SELECT {events}.stream_ordering FROM {events} "
            f"WHERE {events}.id = {search_table}.event_id AND {' AND '.join(checks)}) AS stream "
            f"FROM {match.source} WHERE {' AND '.join(where)} OFFSET 0) AS found "
            "WHERE stream IS NOT NULL"
        )
        checked_params = [*match.rank_params, *check_params, *where_params]
    else:
        checked = (
            f"SELECT {search_table}.id AS id, {match.rank} AS rank, "
            f"{events}.stream_ordering AS stream FROM {match.source} "
            f"JOIN {events} ON {events}.id = {search_table}.event_id "
            f"WHERE {' AND '.join([*where, *checks])}"
        )
        checked_params = [*match.rank_params, *where_params, *check_params]
    inner = checked
    if with_total:
        inner = f"SELECT id, rank, stream, COUNT(*) OVER () AS total FROM ({checked}) AS checked"
    inner_params = [*match.prefix_params, *checked_params]
    start = ""
    start_params: list[Any] = []
    if after is not None and by_rank:
        start = "WHERE rank < %s OR (rank = %s AND stream < %s) "
        start_params = [after[0], after[0], after[1]]
    elif after is not None:
        start = "WHERE stream < %s "
        start_params = [after[0]]
    ordering = "rank DESC, stream DESC" if by_rank else "stream DESC"
    with connection.cursor() as cursor:
        cursor.execute(
            f"{match.prefix}SELECT * FROM ({inner}) AS matches {start}"
            f"ORDER BY {ordering} LIMIT %s",
            [*inner_params, *start_params, count],
        )
        page = cursor.fetchall()
        total = None
        if with_total and page:
            total = page[0][3]
        elif with_total:
            # Nothing after ``after``: the total takes a statement of its own.
            cursor.execute(
                f"{match.prefix}SELECT COUNT(*) FROM ({inner}) AS matches", inner_params
            )
            total = cursor.fetchone()[0]
    rows = EventSearch.objects.select_related("event").in_bulk([row[0] for row in page])
    # One row per event: an event type has one searchable key (search_index).
    return SearchPage(
        [(rows[row[0]].event, float(row[1]), rows[row[0]].value) for row in page], total
    )


@dataclass(frozen=True)
class _MatchSQL:
    """The full-text part of :func:`search_page`'s statement, in the order its pieces
    (and their parameters) appear: a ``prefix`` before the SELECT, the ``rank``
    expression, the ``source`` (FROM, ending with the EventSearch table) and ``where``
    conditions."""

    prefix: str
    prefix_params: list[Any]
    rank: str
    rank_params: list[Any]
    source: str
    where: list[str]
    where_params: list[Any]


def _search_match_sql(words: Sequence[str]) -> _MatchSQL:
    table = table_name(EventSearch)
    if connection.vendor == "postgresql":
        query = " & ".join(f"{word}:*" for word in words)
        tsquery = "to_tsquery('english', %s)"
        return _MatchSQL(
            prefix="",
            prefix_params=[],
            # As double precision, as in _match_and_rank.
            rank=f"ts_rank({table}.vector, {tsquery})::double precision",
            rank_params=[query],
            source=table,
            where=[f"{table}.vector @@ {tsquery}"],
            where_params=[query],
        )
    fts = "rooms_eventsearch_fts"
    return _MatchSQL(
        prefix=(
            f"WITH matched AS MATERIALIZED (SELECT rowid AS id, -bm25({fts}) AS rank "
            f"FROM {fts} WHERE {fts} MATCH %s) "
        ),
        prefix_params=[" AND ".join(f'"{word}"*' for word in words)],
        rank="matched.rank",
        rank_params=[],
        source=f"matched JOIN {table} ON {table}.id = matched.id",
        where=[],
        where_params=[],
    )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _event_condition_sql(condition: Q) -> tuple[str, list[Any]] | None:
    """A condition on Event (selectors.event_filter_q's: fields of the row itself) as
    SQL on the events table under its own name, compiled by the ORM: ``("", [])`` for
    no condition, None for one that nothing meets (a filter's empty ``types``)."""
    query = Event.objects.filter(condition).query
    try:
        sql, params = query.where.as_sql(query.get_compiler(connection=connection), connection)
    except EmptyResultSet:
        return None
    except FullResultSet:
        return "", []
    return sql, list(params)


def _search_rows(search: SearchQuery) -> QuerySet[EventSearch]:
    match, rank = _match_and_rank(search.words)
    query = (
        EventSearch.objects.filter(match, room_id__in=search.room_pks, key__in=search.keys)
        .filter(_on_event(in_timeline_q()), event__redacted_by__isnull=True)
        .filter(_on_event(search.conditions))
    )
    if search.ignored:
        # As in timelines: ignored users' messages, not their state events.
        query = query.exclude(event__sender__in=search.ignored, event__state_key__isnull=True)
    return query.annotate(rank=rank)


def search_page_orm(
    search: SearchQuery,
    *,
    by_rank: bool,
    after: SearchPosition | None,
    count: int,
    with_total: bool = False,
) -> SearchPage:
    """:func:`search_page` through the ORM: the page, then the total by a second query."""
    query = _search_rows(search)
    if after is not None:
        if by_rank:
            rank, stream = after
            query = query.filter(
                Q(rank__lt=rank) | Q(rank=rank, event__stream_ordering__lt=stream)
            )
        else:
            query = query.filter(event__stream_ordering__lt=after[0])
    ordering = ["-rank", "-event__stream_ordering"] if by_rank else ["-event__stream_ordering"]
    # The page's row IDs and ranks first, then those rows with their events: sorting
    # thousands of matches carries two numbers each, not every event's JSON.
    page = list(query.order_by(*ordering).values_list("pk", "rank")[:count])
    rows = EventSearch.objects.select_related("event").in_bulk([pk for pk, _rank in page])
    return SearchPage(
        # One row per event: an event type has one searchable key (search_index).
        [(rows[pk].event, float(rank), rows[pk].value) for pk, rank in page],
        _search_rows(search).count() if with_total else None,
    )
