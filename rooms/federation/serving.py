"""The reads behind what this server serves other servers about rooms: state at an
event, auth chains, backfill, missing events and the event nearest a timestamp. The
callers have checked the room's ACL and that the server is in the room; these apply
history visibility for the server (rooms.federation.access)."""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from protocol.errors import MatrixError, not_found
from rooms import event_cache, storage
from rooms.federation.access import ServerVisibility, state_before
from rooms.graph_store import OrmStateResStore
from rooms.models import Event, Room

# Bounds on what one request may ask for (Synapse's are alike).
MAX_BACKFILL = 100
MAX_MISSING_EVENTS = 100
DEFAULT_MISSING_EVENTS = 10
# At most this many events near a timestamp are looked at for one the server may see.
TIMESTAMP_SCAN = 100


def _dag_events(room: Room, event_ids: Iterable[str]) -> list[Event]:
    """The room's events among ``event_ids`` that are in its graph here: not outliers
    (known only with their auth chain) and not rejected."""
    wanted = list(set(event_ids))
    if not wanted:
        return []
    rows = Event.objects.filter(
        room=room, event_id__in=wanted, outlier=False, rejected_reason__isnull=True
    )
    return storage.in_room(rows, room)


def _prev_ids(row: Event) -> list[str]:
    event = event_cache.get_events([row.event_id]).get(row.event_id)
    return list(event.prev_event_ids) if event is not None else []


def state_ids_at(room: Room, event_id: str, server_name: str) -> tuple[list[str], list[str]]:
    """GET /state_ids: the state before the event and the auth chain of that state (IDs).

    404 M_NOT_FOUND when the event, or the state at it, is unknown here: an outlier, or
    a rejected event (not in the room's graph, which is all this server serves of it:
    see ``_dag_events``); 403 M_FORBIDDEN when the server may not see the event."""
    row = Event.objects.filter(room=room, event_id=event_id).first()
    if row is None or row.outlier or row.rejected_reason is not None or row.state_group_id is None:
        raise not_found(f"Could not find event {event_id}")
    row._state.fields_cache["room"] = room
    if not ServerVisibility(server_name).can_see(row):
        raise MatrixError(
            "M_FORBIDDEN", "You do not have permission to access the state at the requested event"
        )
    state_ids = sorted(state_before(row).values())
    chain_ids = sorted(OrmStateResStore(room).get_auth_chain(state_ids) - set(state_ids))
    return state_ids, chain_ids


def auth_chain_ids(room: Room, event_id: str) -> list[str]:
    """The auth chain of one event (the event itself not included)."""
    return sorted(OrmStateResStore(room).get_auth_chain([event_id]) - {event_id})


def pdus_of(event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The stored PDUs of the events, in the order given (unknown ones left out)."""
    wanted = list(event_ids)
    rows = dict(Event.objects.filter(event_id__in=wanted).values_list("event_id", "pdu"))
    return [rows[event_id] for event_id in wanted if event_id in rows]


def pdus_in_auth_order(event_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The stored PDUs of the events (unknown ones left out), shallowest first, then by
    ID: an auth chain as it was authorised, each event after the auth events it cites
    (they are in the state before it, so its ancestors, and shallower).

    Receivers may read an answer's events in that order. sytest's federation server, for
    one, takes a send_join answer's ``auth_chain`` then ``state`` (each event once, where
    it first appears) and keeps the last event of each type and state key as the room's
    state: the auth chain holds the events the join cites, the current power levels
    among them, and the power levels they replaced, so sorted by ID it kept the replaced
    ones about as often as not (sytest 50federation/36state, "Outbound federation
    requests missing prev_events and then asks for /state_ids and resolves the state",
    whose first event then cited the replaced power levels and was rejected here)."""
    wanted = list(set(event_ids))
    rows = Event.objects.filter(event_id__in=wanted).order_by("depth", "event_id")
    return list(rows.values_list("pdu", flat=True))


def backfill(room: Room, start_ids: Iterable[str], limit: int) -> list[Event]:
    """GET /backfill: the events ``start_ids`` and those before them, newest (deepest)
    first, up to ``limit`` (at most MAX_BACKFILL) in all."""
    limit = max(0, min(limit, MAX_BACKFILL))
    seen = set(start_ids)
    queue: list[tuple[int, str, Event]] = []

    def push(rows: Iterable[Event]) -> None:
        for row in rows:
            heapq.heappush(queue, (-row.depth, row.event_id, row))

    push(_dag_events(room, seen))
    found: list[Event] = []
    while queue and len(found) < limit:
        _, _, row = heapq.heappop(queue)
        found.append(row)
        prevs = [prev for prev in _prev_ids(row) if prev not in seen]
        seen.update(prevs)
        push(_dag_events(room, prevs))
    return found


def missing_events(
    room: Room,
    earliest_ids: Iterable[str],
    latest_ids: Iterable[str],
    limit: int,
    min_depth: int,
) -> list[Event]:
    """POST /get_missing_events: a breadth-first walk of the prev events of
    ``latest_ids`` (not themselves), deepest first, skipping ``earliest_ids`` and
    stopping at ``limit`` (at most MAX_MISSING_EVENTS); those below ``min_depth`` left
    out. Oldest first."""
    limit = max(0, min(limit, MAX_MISSING_EVENTS))
    latest = set(latest_ids)
    seen = set(earliest_ids) | latest
    queue: list[tuple[int, str, Event]] = [
        (-row.depth, row.event_id, row) for row in _dag_events(room, latest)
    ]
    heapq.heapify(queue)
    found: list[Event] = []
    while queue and len(found) < limit:
        _, _, row = heapq.heappop(queue)
        prevs = [prev for prev in _prev_ids(row) if prev not in seen]
        seen.update(prevs)
        for prev in _dag_events(room, prevs):
            if len(found) >= limit:
                break
            found.append(prev)
            heapq.heappush(queue, (-prev.depth, prev.event_id, prev))
    return sorted(
        (row for row in found if row.depth >= min_depth), key=lambda r: (r.depth, r.event_id)
    )


def event_at_timestamp(room: Room, server_name: str, ts: int, direction: str) -> Event:
    """GET /timestamp_to_event: the event the server may see closest to ``ts``, the
    first at or after it (``f``) or the last at or before it (``b``)."""
    query = Event.objects.filter(storage.in_timeline_q(), room=room)
    if direction == "f":
        query = query.filter(origin_server_ts__gte=ts).order_by(
            "origin_server_ts", "stream_ordering"
        )
    else:
        query = query.filter(origin_server_ts__lte=ts).order_by(
            "-origin_server_ts", "-stream_ordering"
        )
    visibility = ServerVisibility(server_name)
    for row in storage.in_room(query[:TIMESTAMP_SCAN], room):
        if visibility.can_see(row):
            return row
    where = "forward" if direction == "f" else "backward"
    raise not_found(f"Unable to find event from {ts} in {where} direction")
