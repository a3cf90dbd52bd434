"""Stream positions: for each stream, a gap-free order in which writes become visible.

A writer takes the next position inside its transaction, holding the stream row's lock
until commit, so a reader that sees position N can read everything up to N: every
earlier position belongs to a transaction that committed before N was handed out.

Streams: ``events`` (room events, rooms app), ``account_data``, ``receipts``,
``typing``, ``to_device``, ``presence``, ``device_lists``. A /sync token is one
position per stream.
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


def next_position(name: str) -> int:
    """Allocate the next position of stream ``name``; call inside a transaction."""
    # UPDATE ... RETURNING (PostgreSQL, SQLite >= 3.35): one statement, row lock held.
    with connection.cursor() as cursor:
        cursor.execute(_ADVANCE_SQL, [name])
        row = cursor.fetchone()
    if row is None:
        StreamPosition.objects.get_or_create(name=name, defaults={"position": 0})
        return next_position(name)
    return int(row[0])


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
