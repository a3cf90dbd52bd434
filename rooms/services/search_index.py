"""The full-text search index of events (Client-Server API, "Server Side Search").

Each searchable value of an event is a row of rooms.models.EventSearch, written in the
transaction that persists the event (rooms.services.events.persist_event: local sends,
events from other servers and backfilled history alike) and deleted in the one that
redacts it. The database's full-text index over those rows (migrations 0011, 0014, 0015) is kept by
the database itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import connection

from config.model_loading import table_name
from rooms.models import EventSearch

BODY = "content.body"
NAME = "content.name"
TOPIC = "content.topic"
KEYS = (BODY, NAME, TOPIC)


def _topic(content: dict[str, Any]) -> str | None:
    """``content.topic``, and the ``text/plain`` body of ``m.topic`` ("m.room.topic":
    both are searched as ``content.topic``), one after the other if they differ."""
    parts: list[str] = []
    topic = content.get("topic")
    if isinstance(topic, str) and topic:
        parts.append(topic)
    rich = content.get("m.topic")
    if isinstance(rich, dict) and isinstance(rich.get("m.text"), list):
        for item in rich["m.text"]:
            if (
                isinstance(item, dict)
                and item.get("mimetype", "text/plain") == "text/plain"
                and isinstance(item.get("body"), str)
                and item["body"]
                and item["body"] not in parts
            ):
                parts.append(item["body"])
                break
    return "\n".join(parts) or None


def searchable_values(event_type: str, content: dict[str, Any]) -> list[tuple[str, str]]:
    """The (key, value) pairs of an event that search looks at."""
    value: Any = None
    if event_type == "m.room.message":
        key, value = BODY, content.get("body")
    elif event_type == "m.room.name":
        key, value = NAME, content.get("name")
    elif event_type == "m.room.topic":
        key, value = TOPIC, _topic(content)
    else:
        return []
    if not isinstance(value, str) or not value:
        return []
    # PostgreSQL text cannot hold NUL.
    return [(key, value.replace("\x00", ""))]


def index_event(event_pk: int, room_pk: int, event_type: str, content: dict[str, Any]) -> None:
    """Index the event's searchable values (nothing for other events): one INSERT, the
    only cost a message send pays for search. Safe to run twice."""
    values = searchable_values(event_type, content)
    if not values:
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table_name(EventSearch)} "
            f"({quote('event_id')}, {quote('room_id')}, {quote('key')}, {quote('value')}) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [(event_pk, room_pk, key, value) for key, value in values],
        )


def unindex_events(event_ids: Iterable[str]) -> None:
    """Forget the searchable values of redacted events: a redacted event's content is
    gone, and search must not find it by what it said."""
    wanted = list(event_ids)
    if wanted:
        EventSearch.objects.filter(event__event_id__in=wanted).delete()
