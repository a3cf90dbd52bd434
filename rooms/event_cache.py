"""Parsed events by ID, cached in process memory: PDUs never change once stored."""

from __future__ import annotations

from collections.abc import Iterable

from config import process_caches
from config.lru import LRU
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.models import Event

_CACHE_SIZE = 20000
_cache: LRU[str, PDUEvent] = LRU(_CACHE_SIZE)


def remember(event: PDUEvent) -> None:
    _cache.put(event.event_id, event)


def get_events(event_ids: Iterable[str]) -> dict[str, PDUEvent]:
    """The known events among ``event_ids`` (unknown IDs are left out)."""
    wanted = set(event_ids)
    found: dict[str, PDUEvent] = {}
    for event_id in wanted:
        hit = _cache.get(event_id)
        if hit is not None:
            found[event_id] = hit
    missing = wanted - found.keys()
    if missing:
        rows = Event.objects.filter(event_id__in=missing).values_list(
            "event_id", "pdu", "room__room_version"
        )
        for event_id, pdu, version in rows:
            event = PDUEvent(pdu, KNOWN_ROOM_VERSIONS[version], event_id=event_id)
            found[event_id] = event
            remember(event)
    return found


@process_caches.register
def forget_all() -> None:
    """For tests, whose rolled-back transactions let another event take a used ID (the
    hand-written scenarios name their events)."""
    _cache.clear()
