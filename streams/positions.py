"""Stream positions: a global, gap-free order in which writes become visible.

A writer takes the next position inside its transaction, holding the stream row's lock
until commit, so readers that see position N have seen everything before it.
"""

from __future__ import annotations

from django.db import connection

from rooms.models import StreamPosition

EVENTS = "events"


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


_ADVANCE_SQL = (
    "UPDATE rooms_streamposition SET position = position + 1 WHERE name = %s RETURNING position"
)


def current_position(name: str) -> int:
    value = StreamPosition.objects.filter(name=name).values_list("position", flat=True).first()
    return value or 0
