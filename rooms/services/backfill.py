"""History from other servers for /messages: backfill.

Server-Server API, "Backfilling and retrieving missing events": a server that has only
part of a room's history asks another server in the room for the events before the
earliest ones it holds (GET /backfill with ``v`` = those events' missing prev events).

Where the graph here has gaps is kept as events are persisted
(rooms.models.BackwardExtremity, rooms.services.graph.record_backward_extremities): the
prev events the graph cites and does not hold, each at the depth of its deepest citing
event. A backwards page of /messages that passes one of them (it read events below that
depth, or it reached the start of what is stored here) is a page with history missing:

1. the gaps (at most MAX_POINTS, deepest first) are asked of the servers with joined
   members at them (the state after the events citing them), most members first, as
   Synapse picks them, one server after another until one fills some;
2. the events that server returns that are the asked ones or before them are run
   through the pipeline (rooms.services.incoming.receive_pdu, ``backfilled``: negative
   stream positions, never in /sync, the extremities and current state untouched),
   oldest first, so each follows its prev events and only the oldest need the state
   before them from the server;
3. the page is read again from storage, history visibility applied as ever.

It is bounded: at most MAX_ROUNDS rounds, BACKFILL_TIMEOUT_S in all for the requests
(federation.event_source's deadline), MAX_SERVERS servers a round. A server that is
down, slow or answers nonsense costs the client that time at most, never an error: the
page is what is stored. A gap that could not be filled is not asked for again until its
backoff is over (RETRY_AFTER_MS, doubling), so paging over it stays fast.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.db.models import Q

from accounts.clock import now_ms
from federation.client import FederationError
from federation.event_source import FederationEventSource
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.identifiers import parse_user_id
from rooms import history
from rooms.models import BackwardExtremity, Event, EventEdge, Membership, PartialStateRoom, Room
from rooms.services.events import room_version_of
from rooms.services.incoming import receive_pdu
from rooms.state import load_state

logger = logging.getLogger(__name__)

# A /messages request backfills at most this many rounds, for at most this long.
MAX_ROUNDS = 2
BACKFILL_TIMEOUT_S = 10.0
# Gaps asked for at once (``v``), and servers asked in a round.
MAX_POINTS = 5
MAX_SERVERS = 3
# Events asked for: the page's limit and more (state events, events the user may not
# see), within GET /backfill's bound (rooms.federation.serving.MAX_BACKFILL).
MIN_EVENTS = 20
MAX_EVENTS = 100
# A gap no server filled is asked for again after this, doubling up to a day.
RETRY_AFTER_MS = 60 * 1000
MAX_RETRY_AFTER_MS = 24 * 3600 * 1000
# Member events read at a time when counting the servers at a gap.
_MEMBER_BATCH = 500


def paginate(
    reader: history.Reader,
    *,
    from_token: str | None,
    to_token: str | None,
    direction: str,
    limit: int,
    room_filter: dict[str, Any] | None,
) -> history.Page:
    """GET /rooms/{roomId}/messages: rooms.history.paginate, and backwards, when the page
    passes a gap in the history stored here, that history fetched from another server
    and the page read again (see the module's docstring)."""

    def read() -> history.Page:
        return history.paginate(
            reader,
            from_token=from_token,
            to_token=to_token,
            direction=direction,
            limit=limit,
            room_filter=room_filter,
        )

    page = read()
    if direction != "b":
        return page
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    for _round in range(MAX_ROUNDS):
        points = gaps_above(reader.room, page.reached)
        if not points or time.monotonic() >= deadline:
            break
        if not do_backfill(reader.room, points, limit=limit, deadline=deadline):
            break
        page = read()
    return page


def gaps_above(room: Room, reached: history.Position | None) -> list[str]:
    """The room's gaps a backwards page that stopped at ``reached`` (None: at the start
    of what is stored) has passed, deepest first, at most MAX_POINTS, leaving out those
    in their backoff. One indexed query."""
    query = BackwardExtremity.objects.filter(room=room).filter(
        Q(retry_at_ts__isnull=True) | Q(retry_at_ts__lte=now_ms())
    )
    if reached is not None:
        # The events missing at a gap are older than its citing events: a page whose
        # last event is at that depth has not passed it yet.
        query = query.filter(depth__gt=reached[0])
    return list(
        query.order_by("-depth", "event_id").values_list("event_id", flat=True)[:MAX_POINTS]
    )


def do_backfill(room: Room, points: list[str], *, limit: int, deadline: float) -> bool:
    """Ask servers in the room for the history before the gaps ``points`` and persist
    what they give as backfilled (see the module's docstring); True when some gap was
    filled. The gaps still open back off. Takes the room lock per event (receive_pdu)."""
    wanted = min(MAX_EVENTS, max(MIN_EVENTS, 2 * limit))
    filled = False
    for server in servers_at(room, points)[:MAX_SERVERS]:
        if time.monotonic() >= deadline:
            break
        source = FederationEventSource(server, deadline=deadline)
        try:
            pdus = source.backfill(room.room_id, points, wanted)
        except FederationError as exc:
            logger.info("backfill of %s from %s: %s", room.room_id, server, exc)
            continue
        for pdu in history_before(room, points, pdus):
            try:
                receive_pdu(pdu, origin=server, source=source, backfilled=True)
            except MatrixError as exc:
                logger.info("backfilled event from %s dropped: %s", server, exc.error)
        still_open = set(
            BackwardExtremity.objects.filter(room=room, event_id__in=points).values_list(
                "event_id", flat=True
            )
        )
        if still_open != set(points):
            filled = True
            break
    _back_off(room, points)
    return filled


def history_before(
    room: Room, points: Iterable[str], pdus: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Of a /backfill answer, the PDUs of the room that are ``points`` or, through
    prev_events within the answer, before them, oldest first (depth, then event ID).
    Anything else a server puts in (other rooms, unrelated events) is left out unread."""
    room_version = room_version_of(room)
    by_id: dict[str, tuple[int, dict[str, Any], list[str]]] = {}
    for pdu in pdus:
        try:
            event = PDUEvent(pdu, room_version)
            # From room version 12 the create event has no room_id: its ID is the room's.
            in_room = event.room_id == room.room_id
            event_id, prev_ids = event.event_id, list(event.prev_event_ids)
            depth = pdu.get("depth")
        except (EventFormatError, ValueError, TypeError, KeyError) as exc:
            logger.info("backfilled PDU of %s dropped: %s", room.room_id, exc)
            continue
        if not in_room:
            continue
        if isinstance(depth, int) and not isinstance(depth, bool):
            by_id[event_id] = (depth, dict(pdu), prev_ids)
    kept: set[str] = set()
    todo = [event_id for event_id in points if event_id in by_id]
    while todo:
        event_id = todo.pop()
        if event_id in kept:
            continue
        kept.add(event_id)
        todo.extend(prev for prev in by_id[event_id][2] if prev in by_id and prev not in kept)
    ordered = sorted(kept, key=lambda event_id: (by_id[event_id][0], event_id))
    return [by_id[event_id][1] for event_id in ordered]


def servers_at(room: Room, points: Iterable[str]) -> list[str]:
    """The other servers with joined members in the state after the events citing the
    gaps ``points`` (those who were there then have that history), most members first
    (then by name); the servers of the room's joined members now if that finds none;
    and, while the room's state is partial, the servers its join's answer named."""
    groups = set(
        EventEdge.objects.filter(
            event__room=room, event__outlier=False, prev_event_id__in=list(points)
        ).values_list("event__state_group_id", flat=True)
    )
    joined: set[str] = set()
    for group in sorted(g for g in groups if g is not None):
        member_ids = [
            event_id
            for (etype, _state_key), event_id in load_state(group).items()
            if etype == "m.room.member"
        ]
        for start in range(0, len(member_ids), _MEMBER_BATCH):
            batch = member_ids[start : start + _MEMBER_BATCH]
            joined.update(
                Event.objects.filter(room=room, event_id__in=batch, membership="join").values_list(
                    "state_key", flat=True
                )
            )
    servers = _count_servers(joined)
    if not servers:
        now = Membership.objects.filter(room=room, membership="join")
        servers = _count_servers(now.values_list("user_id", flat=True))
    ranked = [server for server, _count in sorted(servers.items(), key=lambda s: (-s[1], s[0]))]
    if room.partial_state:
        # Joined moments ago with the member events left out: the servers the join's
        # answer named are in the room (rooms.services.partial_state).
        named = PartialStateRoom.objects.filter(room=room).values_list("servers", flat=True)
        ranked += [server for servers in named for server in servers if server not in ranked]
    return ranked


def _count_servers(user_ids: Iterable[str | None]) -> Counter[str]:
    servers: Counter[str] = Counter()
    for user_id in user_ids:
        try:
            server = parse_user_id(user_id or "").domain
        except ValueError:
            continue
        if server != settings.SERVER_NAME:
            servers[server] += 1
    return servers


def _back_off(room: Room, points: list[str]) -> None:
    """The gaps among ``points`` still open are asked for again only after their
    backoff: RETRY_AFTER_MS, doubling with each failed attempt up to a day."""
    now = now_ms()
    for gap in BackwardExtremity.objects.filter(room=room, event_id__in=points):
        delay = min(RETRY_AFTER_MS * 2 ** min(gap.failed_attempts, 20), MAX_RETRY_AFTER_MS)
        BackwardExtremity.objects.filter(pk=gap.pk).update(
            failed_attempts=gap.failed_attempts + 1, retry_at_ts=now + delay
        )
