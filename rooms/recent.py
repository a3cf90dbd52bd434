"""The newest events, read once per process for every /sync that wakes for them.

When a message is sent to a room with fifty members waiting in /sync, fifty requests
wake with the same ``since`` and the same current position, and each asked the
database the same questions: which rooms changed, which events are new, did anyone
join or leave. :func:`events_between` answers them from one query per stream range,
shared by every request of the process.

Sharing is safe because a range (after, upto] of the events stream is final once
``upto`` has been read as the current position: positions are handed out under the
stream row's lock and made visible in order (streams/positions.py), so no event can
appear in the range later. (A redaction rewrites an earlier row, but it is an event
of its own, later in the stream: a request that sees it has a later ``upto``.)

Rows are shared between requests: callers must not change them, and take copies
(:func:`copies_in_room`) to attach their own objects.
"""

from __future__ import annotations

import threading

from config import process_caches
from config.lru import LRU
from config.model_loading import loaded_state
from rooms import storage
from rooms.models import Event, Room

# A range holding more events than this is not kept: the caller reads per room, as
# a sync after a long absence does.
MAX_EVENTS = 100
# Ranges kept; a long-poll's range is usually one or two events.
MAX_RANGES = 64

_ranges: LRU[tuple[int, int], tuple[Event, ...]] = LRU(MAX_RANGES)
# Ranges being read, so that requests waking together make one query, not one each.
_reading: dict[tuple[int, int], threading.Event] = {}
_reading_lock = threading.Lock()
_TOO_MANY: tuple[Event, ...] = ()


def events_between(after: int, upto: int) -> tuple[Event, ...] | None:
    """Every event with a stream ordering in (after, upto], oldest first, with
    ``has_children`` (storage.with_child_flag); None if there are more than
    MAX_EVENTS. ``upto`` must be a position read as current: the range is final."""
    if upto <= after:
        return ()
    key = (after, upto)
    while True:
        rows = _ranges.get(key)
        if rows is not None:
            return None if rows is _TOO_MANY else rows
        with _reading_lock:
            pending = _reading.get(key)
            if pending is None:
                pending = _reading[key] = threading.Event()
                reader = True
            else:
                reader = False
        if not reader:
            # Then the rows are kept; if the reader failed (its error went to its own
            # request), this request reads them itself.
            pending.wait()
            continue
        try:
            found = tuple(storage.events_in_stream_range(after, upto, MAX_EVENTS + 1))
            rows = _TOO_MANY if len(found) > MAX_EVENTS else found
            _ranges.put(key, rows)
            return None if rows is _TOO_MANY else rows
        finally:
            with _reading_lock:
                del _reading[key]
            pending.set()


def copies_in_room(rows: tuple[Event, ...], room: Room) -> list[Event]:
    """Copies of the rows of ``room`` among ``rows``, each holding ``room`` as its
    room (the caller's object, as a row read for this request would)."""
    copies = []
    for row in rows:
        if row.room_id != room.pk:
            continue
        copy = Event.__new__(Event)
        copy.__dict__.update(row.__dict__)
        copy.__dict__["_state"] = loaded_state(row._state.db)
        copies.append(copy)
    return storage.in_room(copies, room)


@process_caches.register
def forget() -> None:
    """For tests: each test rolls its database back, and positions are handed out again."""
    _ranges.clear()
