"""The legacy sync endpoints, deprecated since r0 and still in the spec (Client-Server
API, old_sync.yaml, room_initial_sync.yaml, peeking_events.yaml):

- ``GET /initialSync``: a snapshot of every room of the user (current state, latest
  messages), their presence, account data and read receipts;
- ``GET /rooms/{roomId}/initialSync``: the same for one room, also for a room the user
  left (as it was when they left) and for a world-readable room they are not in ("Room
  Previews");
- ``GET /events``: the room events since a token, flattened into one ``chunk`` of
  events that carry their ``room_id`` (ClientEvents, as the spec's schema has it: no
  typing, receipts, account data or presence, which Synapse also streams there); with
  ``room_id``, the stream of that one room, also for a user peeking into a
  world-readable room.

Events are given in the event format of these endpoints' time (rooms.serialize:
``legacy_client_event``), presence events with ``content.user_id``, and both initial
syncs add the rooms' ``m.receipt`` events in ``receipts`` (as Synapse does; extra keys
to the spec's responses).

Reads are batched: an initial sync costs one timeline query per room and a fixed
number of queries besides (state, account data, receipts, presence), never one per
event or per member.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import Q

from accounts.clock import now_ms
from accounts.models import User
from accounts.selectors import all_account_data
from presence import selectors as presence_selectors
from presence.models import Presence
from protocol.errors import MatrixError, forbidden
from rooms import relations, selectors, storage
from rooms.models import Event, Membership, Room
from rooms.serialize import legacy_client_event, legacy_client_events
from rooms.state import load_state
from rooms.sync_providers import receipt_events
from sync.builder import MAX_TIMELINE_LIMIT, SyncRequest, SyncResult, build_sync
from sync.tokens import SyncToken

# Messages per room when the request names no ``limit`` (Synapse's default too).
DEFAULT_MESSAGES_LIMIT = 10
# GET /events gives at most this many timeline events a room (the /sync it is built
# from reads no more); ``limit`` cuts the whole chunk shorter.
STREAM_ROOM_LIMIT = 1000
PRESENCE = "m.presence"


def parse_limit(raw: str | None) -> int | None:
    """A ``limit`` query parameter: a non-negative integer (M_INVALID_PARAM otherwise),
    None when absent."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise MatrixError("M_INVALID_PARAM", "'limit' must be a non-negative integer")
    return int(raw)


def parse_bool(raw: str | None, name: str) -> bool:
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise MatrixError("M_INVALID_PARAM", f"'{name}' must be true or false")
    return raw == "true"


def presence_event(user_id: str, row: Presence | None, read_at: int) -> dict[str, Any]:
    """An m.presence event as the legacy endpoints give it: the user also in
    ``content.user_id``."""
    content = presence_selectors.presence_content(row, read_at)
    content["user_id"] = user_id
    return {"type": PRESENCE, "sender": user_id, "content": content}


def _presence_of(user_ids: Iterable[str]) -> list[dict[str, Any]]:
    """The presence of each user (offline for one never seen): one query."""
    wanted = sorted(set(user_ids))
    rows = presence_selectors.presence_of(wanted)
    read_at = now_ms()
    return [presence_event(user_id, rows.get(user_id), read_at) for user_id in wanted]


# --- initial syncs -------------------------------------------------------------------


@dataclass
class RoomView:
    """What the user sees of one room: up to which stream position, with which state."""

    room: Room
    # join, invite, leave or ban; None for someone peeking into a world-readable room.
    membership: str | None
    # The user's member event (the invite, the leave), if any.
    member_event_id: str | None
    # The last stream position the user sees; None: the room as it is now.
    upto: int | None
    state_group: int | None
    # Only state the user may see (a user who left without ever having joined).
    filter_state: bool = False


def _left_views(rows: Sequence[Membership]) -> list[RoomView]:
    """The rooms as they were when the user left them or was banned (history
    visibility: "After a user has left a room, they may see any events which they were
    allowed to see before they left the room, but no events received after they
    left"): two queries for all of them."""
    leaves = storage.events_by_id([row.event_id for row in rows])
    joins = storage.events_with_membership(
        [leave.replaces_state for leave in leaves.values() if leave.replaces_state], "join"
    )
    views = []
    for row in rows:
        leave = leaves.get(row.event_id)
        was_joined = leave is not None and leave.replaces_state in joins
        views.append(
            RoomView(
                row.room,
                row.membership,
                row.event_id,
                upto=row.stream_ordering,
                state_group=leave.state_group_id if leave is not None else None,
                filter_state=not was_joined,
            )
        )
    return views


def _messages(
    views: Sequence[RoomView], user_id: str, limit: int, now: SyncToken
) -> dict[str, tuple[list[Event], str]]:
    """Each room's last ``limit`` events the user may see, oldest first, and the
    ``start`` token before them: one query a room."""
    ignored = relations.ignored_users(user_id)
    found: dict[str, tuple[list[Event], str]] = {}
    for view in views:
        upto = view.upto if view.upto is not None else now.events
        rows = storage.timeline_batch(
            view.room,
            order=storage.STREAM,
            conditions=Q(),
            ignored=ignored,
            # Never below 0: history fetched from the past (backfill) is for /messages.
            after=(0,),
            upto=(upto,),
            newest_first=True,
            count=limit,
        )
        rows.reverse()
        start = f"s{(rows[0].stream_ordering or 1) - 1}" if rows else f"s{upto}"
        found[view.room.room_id] = (selectors.filter_visible(rows, user_id), start)
    return found


def _states(views: Sequence[RoomView], user_id: str) -> dict[str, list[Event]]:
    """Each room's state events as the user sees it (erased senders' as served to the
    user, ``selectors.as_served``): two queries for all rooms."""
    wanted = {view.room.room_id: list(load_state(view.state_group).values()) for view in views}
    rows = storage.events_by_id(
        [event_id for ids in wanted.values() for event_id in ids], with_room=True
    )
    served = dict(zip(rows, selectors.as_served(list(rows.values()), user_id), strict=True))
    states: dict[str, list[Event]] = {}
    for view in views:
        ids = [event_id for event_id in wanted[view.room.room_id] if event_id in rows]
        if view.filter_state:
            # filter_visible serves erased senders' events by the same rule.
            states[view.room.room_id] = selectors.filter_visible([rows[i] for i in ids], user_id)
        else:
            states[view.room.room_id] = [served[i] for i in ids]
    return states


def _receipts(
    user: User, device_id: str, room_ids: Sequence[str], now: SyncToken
) -> list[dict[str, Any]]:
    """The rooms' m.receipt events, each with its ``room_id``: one query."""
    request = SyncRequest(user=user, device_id=device_id, since=None)
    by_room = receipt_events(request, None, now, room_ids) if room_ids else {}
    return [{**event, "room_id": room_id} for room_id, evs in by_room.items() for event in evs]


def _room_entries(
    user: User, views: Sequence[RoomView], limit: int, now: SyncToken
) -> list[dict[str, Any]]:
    """The RoomInfo of each room: room ID, membership, messages, state, visibility and
    the user's account data for it (an invite: the invite event instead of messages
    and state)."""
    user_id = user.user_id
    invited = [v for v in views if v.membership == "invite"]
    seen = [v for v in views if v.membership != "invite"]
    invites = storage.events_by_id(
        [v.member_event_id for v in invited if v.member_event_id], with_room=True
    )
    messages = _messages(seen, user_id, limit, now)
    states = _states(seen, user_id)
    _, room_data = all_account_data(user, [v.room.room_id for v in views])
    entries = []
    for view in views:
        room_id = view.room.room_id
        entry: dict[str, Any] = {"room_id": room_id}
        if view.membership is not None:
            entry["membership"] = view.membership
        entry["visibility"] = "public" if view.room.is_public else "private"
        entry["account_data"] = [
            {"type": data_type, "content": content}
            for data_type, content in room_data.get(room_id, [])
        ]
        if view.membership == "invite":
            invite = invites.get(view.member_event_id or "")
            if invite is not None:
                entry["invite"] = legacy_client_events([invite], viewer=user_id)[0]
            entries.append(entry)
            continue
        chunk, start = messages[room_id]
        end = str(now) if view.upto is None else f"s{view.upto}"
        entry["messages"] = {
            "chunk": legacy_client_events(chunk, viewer_device=(user_id, None)),
            "start": start,
            "end": end,
        }
        entry["state"] = legacy_client_events(states[room_id], viewer=user_id)
        entries.append(entry)
    return entries


def initial_sync(
    user: User, device_id: str, *, limit: int | None, archived: bool
) -> dict[str, Any]:
    """GET /initialSync: the user's rooms (joined and invited; with ``archived``, left
    and banned from too), their presence and that of everyone sharing a room with them,
    their account data, the joined rooms' read receipts, and the token to stream from."""
    request = SyncRequest(user=user, device_id=device_id, since=None)
    now = SyncToken.current_for(request)
    limit = min(DEFAULT_MESSAGES_LIMIT if limit is None else limit, MAX_TIMELINE_LIMIT)
    rows = [row for row in selectors.memberships_of(user.user_id) if not row.forgotten]
    views: list[RoomView] = []
    for row in rows:
        if row.membership == "join":
            views.append(
                RoomView(row.room, "join", row.event_id, None, row.room.current_state_group_id)
            )
        elif row.membership == "invite":
            views.append(RoomView(row.room, "invite", row.event_id, row.stream_ordering, None))
    if archived:
        views.extend(_left_views([row for row in rows if row.membership in ("leave", "ban")]))
    joined_ids = [v.room.room_id for v in views if v.membership == "join"]
    global_data, _ = all_account_data(user, [])
    return {
        "end": str(now),
        "rooms": _room_entries(user, views, limit, now),
        "presence": _presence_of(presence_selectors.users_sharing_a_room(user.user_id)),
        "account_data": [{"type": t, "content": c} for t, c in global_data],
        "receipts": _receipts(user, device_id, joined_ids, now),
    }


def room_initial_sync(
    user: User, device_id: str, room_id: str, *, limit: int | None
) -> dict[str, Any]:
    """GET /rooms/{roomId}/initialSync: the room as the user sees it: now if joined (or
    peeking into a world-readable room), as it was when they left otherwise; 403 for
    anyone else ("You aren't a member of the room and weren't previously a member of
    the room"), an unknown room included."""
    request = SyncRequest(user=user, device_id=device_id, since=None)
    now = SyncToken.current_for(request)
    limit = min(DEFAULT_MESSAGES_LIMIT if limit is None else limit, MAX_TIMELINE_LIMIT)
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise forbidden("You are not a member of this room")
    row = selectors.membership_row(room, user.user_id)
    if row is not None and row.membership == "join":
        view = RoomView(room, "join", row.event_id, None, room.current_state_group_id)
    elif selectors.is_world_readable(room):
        view = RoomView(room, None, None, None, room.current_state_group_id)
    elif row is not None and row.membership in ("leave", "ban") and not row.forgotten:
        view = _left_views([row])[0]
    else:
        raise forbidden("You are not a member of this room")
    body = _room_entries(user, [view], limit, now)[0]
    if view.upto is None:
        # Joined or peeking: who is there now, and their receipts.
        members = Membership.objects.filter(room=room, membership="join").values_list(
            "user_id", flat=True
        )
        body["presence"] = _presence_of(members)
        body["receipts"] = _receipts(user, device_id, [room_id], now)
    else:
        # Left: nothing of what happened since.
        body["presence"] = []
        body["receipts"] = []
    return body


# --- the event stream ---------------------------------------------------------------


def stream_filter(room_id: str | None = None) -> dict[str, Any]:
    """The /sync filter the event stream builds from: every new timeline event of a
    room (up to STREAM_ROOM_LIMIT), of every room or of ``room_id``."""
    room_filter: dict[str, Any] = {"timeline": {"limit": STREAM_ROOM_LIMIT}}
    if room_id is not None:
        room_filter["rooms"] = [room_id]
    return {"room": room_filter}


def _cut(
    timeline: list[dict[str, Any]], since: SyncToken, now: SyncToken, limit: int | None
) -> tuple[list[dict[str, Any]], int]:
    """The timeline events after ``since`` in stream order, at most ``limit``, and the
    events stream position the chunk reaches (``now``'s unless cut)."""
    positions = storage.stream_orderings(e["event_id"] for e in timeline)
    # A room joined since the token comes with history from before the join: the stream
    # gives what happened since the token.
    newer = [e for e in timeline if positions.get(e["event_id"], 0) > since.events]
    newer.sort(key=lambda e: positions[e["event_id"]])
    if limit is not None and len(newer) > limit:
        newer = newer[:limit]
        return newer, positions[newer[-1]["event_id"]] if newer else since.events
    return newer, now.events


def event_stream(
    request: SyncRequest, now: SyncToken | None = None, *, limit: int | None = None
) -> SyncResult:
    """GET /events: what /sync since the token gives, flattened into one chunk of room
    events: new timeline events of the user's joined rooms and of the rooms they left (up
    to the leave), and their invites. Only room events: the spec's ``chunk`` is an array
    of ClientEvents (old_sync.yaml), which typing, receipts, account data and presence are
    not (Synapse streams those too); /sync and the initial syncs carry them.
    ``next_batch`` is the ``end`` of the chunk."""
    result = build_sync(request, now)
    assert request.since is not None
    since = request.since
    end = SyncToken.parse(result.body["next_batch"])
    rooms = result.body.get("rooms", {})
    timeline: list[dict[str, Any]] = []
    invites: list[dict[str, Any]] = []
    for section in ("join", "leave"):
        for room_id, room in rooms.get(section, {}).items():
            for event in room.get("timeline", {}).get("events", []):
                timeline.append(legacy_client_event({**event, "room_id": room_id}))
    invited = list(rooms.get("invite", {}))
    if invited:
        # The invites themselves: the user's member events.
        invites.extend(
            legacy_client_events(
                selectors.invite_events(request.user_id, invited), viewer=request.user_id
            )
        )
    chunk, reached = _cut(timeline, since, end, limit)
    body = {"chunk": chunk + invites, "next_batch": str(replace(end, events=reached))}
    return SyncResult(body, bool(body["chunk"]), result.joined_room_ids)


def check_may_stream_room(user_id: str, room_id: str) -> Room:
    """GET /events with ``room_id``: the room, if the user is joined to it or it is world
    readable ("Room Previews"); M_FORBIDDEN otherwise, for an unknown room too."""
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise forbidden("You may not see this room's events")
    row = selectors.membership_row(room, user_id)
    if (row is None or row.membership != "join") and not selectors.is_world_readable(room):
        raise forbidden("You may not see this room's events")
    return room


def room_event_stream(
    request: SyncRequest,
    now: SyncToken | None = None,
    *,
    room_id: str,
    limit: int | None = None,
) -> SyncResult:
    """GET /events with ``room_id``: the room's events since the token that the user
    may see (someone not joined: those sent while the room was world readable, "Room
    Previews", "Server behaviour")."""
    assert request.since is not None
    since = request.since
    now = now if now is not None else SyncToken.current_for(request)
    room = check_may_stream_room(request.user_id, room_id)
    count = min(limit if limit is not None else STREAM_ROOM_LIMIT, STREAM_ROOM_LIMIT)
    rows = storage.timeline_batch(
        room,
        order=storage.STREAM,
        conditions=Q(),
        ignored=relations.ignored_users(request.user_id),
        after=(since.events,),
        upto=(now.events,),
        newest_first=False,
        count=count,
    )
    reached = now.events
    if len(rows) == count and rows:
        reached = rows[-1].stream_ordering or now.events
    visible = selectors.filter_visible(rows, request.user_id)
    # Room events only: the chunk is an array of ClientEvents (peeking_events.yaml).
    chunk = legacy_client_events(visible, viewer_device=(request.user_id, request.device_id))
    body = {"chunk": chunk, "next_batch": str(replace(now, events=reached))}
    return SyncResult(body, bool(chunk), [room_id])
