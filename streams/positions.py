"""Stream positions: for each stream, a gap-free order in which writes become visible.

A writer takes the next position inside its transaction, holding the stream row's lock
until commit, so a reader that sees position N can read everything up to N: every
earlier position belongs to a transaction that committed before N was handed out.

Streams: ``events`` (room events, rooms app), ``account_data``, ``receipts``,
``typing``, ``to_device``, ``presence``, ``device_lists``. A /sync token is one
position per stream.
"""

from __future__ import annotations

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


_ADVANCE_SQL = (
    "UPDATE streams_streamposition SET position = position + 1 WHERE name = %s RETURNING position"
)


def current_position(name: str) -> int:
    value = StreamPosition.objects.filter(name=name).values_list("position", flat=True).first()
    return value or 0


def current_positions() -> dict[str, int]:
    """Every stream's current position, in one query."""
    return dict(StreamPosition.objects.values_list("name", "position"))
