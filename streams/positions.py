"""Stream positions: for each stream, a gap-free order in which writes become visible.

The invariant every reader relies on: a reader that sees position N of a stream can read
everything up to N, because nothing commits later with a lower position. A writer
therefore takes its position under the stream row's lock and keeps that lock until its
transaction commits: positions are handed out in commit order.

Holding that lock is what serialises writers, so a writer takes it as late as it can:
it does its slow part first (for a room event: building and authorising it, its state
group, the extremities and current state, rooms.services.events.persist_event), then
takes the position and inserts the few rows that carry it, and commits. The lock covers
those statements and the commit, not the whole write: writes in other rooms go on
meanwhile, and only the ends of the writes are ordered. (Inserting the event first and
writing its position into it afterwards would lock for even less, but on PostgreSQL
rewrites the row and every one of its index entries on every send.)

Events from other servers keep to the same rule, with more before the lock
(rooms.services.incoming): fetching what is missing happens outside any transaction,
state resolution and the auth checks before the room lock is taken (they read immutable
state only), and the tips' resolution is worked out beforehand too; under the room lock
only the soft-fail check and the writes remain, and the events stream is locked only
for the last of those. So a slow remote or a big resolution in one room holds neither
the events stream nor any other room: on PostgreSQL other rooms' sends never wait for
it, and on SQLite (one writer at a time) the write transaction it needs is short.

Considered and not chosen: a sequence plus "persisted up to" tracking (Synapse's
MultiWriterIdGenerator), where positions are taken without a lock and readers are held
back to the highest position below which every allocation has finished. It lets commits
overlap, but "finished" must be known across processes and survive a process dying with
positions allocated (Synapse keeps per-writer positions in a table and needs every
writer to report), which is more machinery than a short critical section at commit
needs. On SQLite there is one writer at a time anyway (config/sqlite): there only the
length of each transaction matters, and long operations are split into short
transactions (createRoom's invites, rooms.services.creation).

The other streams (receipts, typing, account data, to-device, presence, device lists)
are written by short transactions of their own.

Streams: ``events`` (room events, rooms app), ``account_data``, ``receipts``,
``typing``, ``to_device``, ``presence``, ``device_lists``. A /sync token is one
position per stream.

Backfilled events (history fetched from another server, older than what the room
already holds) take their stream ordering from a counter of their own, ``backfill``,
which counts down from -1 (:func:`next_backfill_position`): they are never above a
/sync token, so no /sync shows them or waits for them, and /messages places them by
their depth (topological order). It is not a stream: no /sync token carries it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection

from streams.models import StreamPosition

EVENTS = "events"
ACCOUNT_DATA = "account_data"
RECEIPTS = "receipts"
TYPING = "typing"
TO_DEVICE = "to_device"
PRESENCE = "presence"
DEVICE_LISTS = "device_lists"
# Not a stream: the counter of backfilled events' negative stream orderings.
BACKFILL = "backfill"


def next_position(name: str) -> int:
    """Allocate the next position of stream ``name``; call inside a transaction. The
    stream is locked from here to the commit."""
    # UPDATE ... RETURNING (PostgreSQL, SQLite >= 3.35): one statement, row lock held.
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE_SQL, [name])
        row = cursor.fetchone()
    if row is None:
        _create_stream(name)
        return next_position(name)
    return int(row[0])


def next_backfill_position() -> int:
    """Allocate the stream ordering of a backfilled event: -1, then -2, -3, ..., each
    lower than any before it (history is fetched backwards, the oldest last). Call inside
    a transaction; the counter's row is locked from here to the commit, as a stream's is
    (backfilled events persisted together come out in the order they were given
    positions), but no reader waits on it: positions below zero are never "new"."""
    with connection.cursor() as cursor:
        cursor.execute(_BACKFILL_SQL, [BACKFILL])
        row = cursor.fetchone()
    if row is None:
        _create_stream(BACKFILL)
        return next_backfill_position()
    return int(row[0])


def _create_stream(name: str) -> None:
    """Create the stream's row if it is missing."""
    StreamPosition.objects.get_or_create(name=name, defaults={"position": 0})


def current_positions_with(
    queries: Sequence[tuple[str, Sequence[Any]]],
) -> tuple[dict[str, int], list[list[tuple[Any, Any]]]]:
    """Every stream's current position and the rows of each query, in one statement (one
    round trip, one snapshot). Each query selects two columns, a text and an integer."""
    if not queries:
        return current_positions(), []
    parts = [f"SELECT 0, name, position FROM {_TABLE}"]
    params: list[Any] = []
    for index, (sql, query_params) in enumerate(queries, start=1):
        parts.append(f"SELECT {index}, * FROM ({sql}) AS q{index}")
        params.extend(query_params)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    now: dict[str, int] = {}
    results: list[list[tuple[Any, Any]]] = [[] for _ in queries]
    for index, first, second in rows:
        if index == 0:
            now[first] = second
        else:
            results[index - 1].append((first, second))
    return now, results


_TABLE = StreamPosition._meta.db_table
_ADVANCE_SQL = f"UPDATE {_TABLE} SET position = position + 1 WHERE name = %s RETURNING position"
_BACKFILL_SQL = f"UPDATE {_TABLE} SET position = position - 1 WHERE name = %s RETURNING position"


def current_position(name: str) -> int:
    value = StreamPosition.objects.filter(name=name).values_list("position", flat=True).first()
    return value or 0


def current_positions() -> dict[str, int]:
    """Every stream's current position, in one query. Every /sync reads it, often as its
    only query besides the key counts; written as SQL, since compiling the ORM's query
    cost more than running it."""
    with connection.cursor() as cursor:
        cursor.execute(_CURRENT_SQL)
        return dict(cursor.fetchall())


_CURRENT_SQL = f"SELECT name, position FROM {_TABLE}"
