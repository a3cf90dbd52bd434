"""Stream positions: a global, gap-free order in which writes become visible.

A writer takes the next position inside its transaction, holding the stream row's lock
until commit, so readers that see position N have seen everything before it.
"""

from __future__ import annotations

from django.db.models import F

from rooms.models import StreamPosition

EVENTS = "events"


def next_position(name: str) -> int:
    """Allocate the next position of stream ``name``; call inside a transaction."""
    updated = StreamPosition.objects.filter(name=name).update(position=F("position") + 1)
    if not updated:
        StreamPosition.objects.get_or_create(name=name, defaults={"position": 0})
        StreamPosition.objects.filter(name=name).update(position=F("position") + 1)
    return StreamPosition.objects.values_list("position", flat=True).get(name=name)


def current_position(name: str) -> int:
    value = StreamPosition.objects.filter(name=name).values_list("position", flat=True).first()
    return value or 0
