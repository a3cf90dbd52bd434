"""Reads of rooms, state and history, with history visibility applied here, once.

History visibility (Client-Server API, "History visibility"), for each event, using
the state at that event:
1. ``world_readable``: visible to anyone.
2. The user's membership at the event was ``join``: visible.
3. ``shared``, and the user joined the room at any point after the event: visible.
4. ``invited``, and the user's membership at the event was ``invite``: visible.
5. Otherwise not visible.

Erasure (Client-Server API, "Account deactivation"): "any users (or servers) which join
the room after the erasure request are served redacted copies of the events sent by
this account". As Synapse does (``synapse/visibility.py``), an event of an erased sender
is served redacted to every viewer who was not joined at that event, whether they joined
before or after the erasure; those joined at the event see it whole. Wherever an event is
served to a user: in a timeline (``filter_visible``), in the room's state, and as the
``unsigned.prev_content`` of the event that replaced it (``as_served``): these are
copies of the same "events sent by this account" (Synapse applies the rule to timelines
only, and serves room state and ``prev_content`` as stored).
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterable, Sequence
from functools import reduce
from typing import Any

from django.db import connection
from django.db.models import Max, Q

from accounts.selectors import erased_user_ids
from config.model_loading import load_rows, select_columns
from protocol.errors import MatrixError, forbidden
from protocol.event_filters import wildcard_regex
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from rooms import event_cache, storage
from rooms.models import CurrentState, Event, Membership, Room
from rooms.state import StateKey, load_state, state_group_at_position

HISTORY_VISIBILITY_KEY: StateKey = ("m.room.history_visibility", "")


def get_room(room_id: str) -> Room:
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Unknown room")
    return room


def membership_row(room: Room, user_id: str) -> Membership | None:
    return Membership.objects.filter(room=room, user_id=user_id).first()


def memberships_of(user_id: str) -> list[Membership]:
    """Every membership row of ``user_id``, each with its room: what every /sync reads
    first. One join, written as SQL (the ORM's select_related cost more to build and
    to load than the query took)."""
    quote = connection.ops.quote_name
    members = quote(Membership._meta.db_table)
    rooms = quote(Room._meta.db_table)
    sql = (
        f"SELECT {select_columns(Membership)}, {select_columns(Room)} FROM {members} "
        f"JOIN {rooms} ON {rooms}.id = {members}.room_id WHERE {members}.user_id = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        rows = cursor.fetchall()
    split = len(Membership._meta.concrete_fields)
    memberships = load_rows(Membership, [row[:split] for row in rows])
    for membership, room in zip(
        memberships, load_rows(Room, [row[split:] for row in rows]), strict=True
    ):
        membership._state.fields_cache["room"] = room
    return memberships


def joined_room_ids(user_id: str) -> list[str]:
    return list(
        Membership.objects.filter(user_id=user_id, membership="join").values_list(
            "room__room_id", flat=True
        )
    )


def invite_events(user_id: str, room_ids: Sequence[str]) -> list[Event]:
    """The member events inviting ``user_id`` to those of the rooms they are invited to
    now (received over federation too, out of band), each with its room: two queries."""
    event_ids = Membership.objects.filter(
        user_id=user_id, membership="invite", room__room_id__in=list(room_ids)
    ).values_list("event_id", flat=True)
    return sorted(
        storage.events_by_id(event_ids, with_room=True).values(),
        key=lambda row: row.stream_ordering or 0,
    )


def mutual_room_ids(user_id: str, other_user_id: str) -> list[str]:
    """Rooms both users have joined, in room ID order."""
    theirs = Membership.objects.filter(user_id=other_user_id, membership="join").values("room")
    return list(
        Membership.objects.filter(user_id=user_id, membership="join", room__in=theirs)
        .order_by("room__room_id")
        .values_list("room__room_id", flat=True)
    )


def _visibility_and_membership(state: dict[StateKey, str] | Any, user_id: str) -> tuple[str, str]:
    ids = [state.get(HISTORY_VISIBILITY_KEY), state.get(("m.room.member", user_id))]
    events = event_cache.get_events([i for i in ids if i])
    visibility = "shared"
    if ids[0] and ids[0] in events:
        value = events[ids[0]].content.get("history_visibility")
        if isinstance(value, str):
            visibility = value
    membership = "leave"
    if ids[1] and ids[1] in events:
        membership = events[ids[1]].membership or "leave"
    return visibility, membership


def is_world_readable(room: Room) -> bool:
    visibility, _ = _visibility_and_membership(load_state(room.current_state_group_id), "")
    return visibility == "world_readable"


def filter_visible(rows: Sequence[Event], user_id: str) -> list[Event]:
    """The events among ``rows`` (all of one room) that ``user_id`` may see, an erased
    sender's event as a redacted copy where the user was not joined at it."""
    if not rows:
        return []
    room_pk = rows[0].room_id
    last_join: int | None = None
    last_join_read = False
    visible: list[Event] = []
    # Positions in ``visible`` of the events seen without being joined at them.
    unjoined: list[int] = []
    # Consecutive events mostly share a state group: each group is looked at once.
    by_group: dict[int | None, tuple[str, str]] = {}
    for row in rows:
        group = row.state_group_id
        if group not in by_group:
            by_group[group] = _visibility_and_membership(load_state(group), user_id)
        visibility, membership = by_group[group]
        if membership == "join":
            # The common case on every read path: no further question to ask.
            visible.append(row)
            continue
        if not last_join_read:
            last_join = Event.objects.filter(
                room_id=room_pk, type="m.room.member", state_key=user_id, membership="join"
            ).aggregate(m=Max("stream_ordering"))["m"]
            last_join_read = True
        joined_after = (
            last_join is not None
            and row.stream_ordering is not None
            and last_join > row.stream_ordering
        )
        candidates = [visibility]
        if row.type == HISTORY_VISIBILITY_KEY[0] and row.state_key == "" and row.replaces_state:
            # An m.room.history_visibility event is visible if the visibility before
            # *or* after it allows it.
            before = event_cache.get_events([row.replaces_state]).get(row.replaces_state)
            if before is not None and isinstance(before.content.get("history_visibility"), str):
                candidates.append(before.content["history_visibility"])
        if any(
            v == "world_readable"
            or (v == "shared" and joined_after)
            or (v == "invited" and membership == "invite")
            for v in candidates
        ) or (row.type == "m.room.member" and row.state_key == user_id):
            # A user always sees their own membership events (e.g. the invite itself).
            unjoined.append(len(visible))
            visible.append(row)
    if unjoined:
        # Found not joined at these already: no membership to look up again.
        _serve_erased(visible, unjoined, joined_at=lambda row: False)
    return visible


def as_served(rows: Sequence[Event], user_id: str) -> list[Event]:
    """``rows`` (events of any rooms that ``user_id`` may see: a room's state, the
    events later ones replaced) as served to ``user_id``: an erased sender's event as a
    redacted copy where the user was not joined at it, the rule ``filter_visible``
    applies to timelines (see the module's docstring). One query, for the erased among
    the rows' local senders; the user's membership is looked up only at their events."""
    served = list(rows)
    memberships: dict[int | None, str] = {}

    def joined_at(row: Event) -> bool:
        group = row.state_group_id
        if group not in memberships:
            memberships[group] = _visibility_and_membership(load_state(group), user_id)[1]
        return memberships[group] == "join"

    _serve_erased(served, range(len(served)), joined_at=joined_at)
    return served


def _serve_erased(
    rows: list[Event], positions: Iterable[int], *, joined_at: Callable[[Event], bool]
) -> None:
    """Erasure, once for every read: replace each event at ``positions`` whose sender
    is erased, and at which the viewer was not joined, by a redacted copy (the stored
    rows, which caches may share, are left alone). One query, for the senders of these
    events only; ``joined_at`` is asked about erased senders' events only."""
    positions = list(positions)
    erased = erased_user_ids({rows[i].sender for i in positions})
    if not erased:
        return
    versions: dict[int, RoomVersion] = {}
    for i in positions:
        row = rows[i]
        if row.sender not in erased or joined_at(row):
            continue
        if row.room_id not in versions:
            versions[row.room_id] = KNOWN_ROOM_VERSIONS[row.room.room_version]
        pruned = copy.copy(row)
        pruned.pdu = redact_event(row.pdu, versions[row.room_id])
        rows[i] = pruned


def check_can_read_state(room: Room, user_id: str) -> int | None:
    """May the user read the room's state? Returns the state group to read: the
    current state if joined (or world readable), the state when they last left (or were
    banned) after being joined otherwise. A user who never joined (a rejected invite)
    may not, as while invited."""
    row = membership_row(room, user_id)
    if row is not None and row.membership == "join":
        return room.current_state_group_id
    if is_world_readable(room):
        return room.current_state_group_id
    if row is not None and row.membership in ("leave", "ban") and not row.forgotten:
        history = Event.objects.filter(
            room=room, type="m.room.member", state_key=user_id, stream_ordering__isnull=False
        ).order_by("stream_ordering")
        left: int | None = None
        was_joined = False
        for membership, group in history.values_list("membership", "state_group_id"):
            if was_joined and membership in ("leave", "ban"):
                left = group
            was_joined = membership == "join"
        if left is not None:
            return left
    raise forbidden("You are not allowed to see the state of this room")


def state_group_at(room: Room, user_id: str, position: int) -> int | None:
    """The state group after the room's last event at or before stream ``position``, for
    ``GET /members?at=``. A user no longer joined cannot look past their membership
    change (they see the room as it was when they left)."""
    row = membership_row(room, user_id)
    if row is not None and row.membership != "join" and not is_world_readable(room):
        position = min(position, row.stream_ordering)
    return state_group_at_position(room, position)


def state_events(
    state_group_id: int | None, keys: Iterable[StateKey] | None = None
) -> list[Event]:
    state = load_state(state_group_id)
    wanted = state.values() if keys is None else [state[k] for k in keys if k in state]
    return list(Event.objects.filter(event_id__in=list(wanted)).select_related("room"))


def current_state_event(room: Room, event_type: str, state_key: str) -> Event | None:
    row = CurrentState.objects.filter(room=room, type=event_type, state_key=state_key).first()
    if row is None:
        return None
    return Event.objects.select_related("room").filter(event_id=row.event_id).first()


def members(
    room: Room,
    state_group_id: int | None,
    *,
    membership: str | None = None,
    not_membership: str | None = None,
) -> list[Event]:
    state = load_state(state_group_id)
    ids = [event_id for (etype, _), event_id in state.items() if etype == "m.room.member"]
    query = Event.objects.filter(event_id__in=ids).select_related("room")
    # GET /members: given both, membership *is* ``membership`` *or* is not ``not_membership``.
    conditions = []
    if membership:
        conditions.append(Q(membership=membership))
    if not_membership:
        conditions.append(~Q(membership=not_membership))
    if conditions:
        query = query.filter(reduce(operator.or_, conditions))
    return list(query.order_by("state_key"))


def joined_members(room: Room) -> dict[str, dict[str, Any]]:
    ids = Membership.objects.filter(room=room, membership="join").values_list(
        "event_id", flat=True
    )
    out: dict[str, dict[str, Any]] = {}
    for event in event_cache.get_events(list(ids)).values():
        content = event.content
        member: dict[str, Any] = {}
        if isinstance(content.get("displayname"), str):
            member["display_name"] = content["displayname"]
        if isinstance(content.get("avatar_url"), str):
            member["avatar_url"] = content["avatar_url"]
        out[event.state_key or ""] = member
    return out


def get_event_for_user(room: Room | None, event_id: str, user_id: str) -> Event:
    """GET /rooms/{roomId}/event/{eventId} (and, without a room, the legacy GET
    /events/{eventId}): 404 if unknown (in that room), not in the timeline (an outlier,
    a rejected or soft-failed event) or not visible to the user."""
    row = storage.timeline_events(room).filter(event_id=event_id).first()
    visible = filter_visible([row], user_id) if row is not None else []
    if not visible:
        raise MatrixError("M_NOT_FOUND", "Event not found")
    return visible[0]


def event_filter_q(room_filter: dict[str, Any] | None) -> Q:
    """A RoomEventFilter's types/senders/rooms as a query (Client-Server API, "Filtering")."""
    q = Q()
    if not room_filter:
        return q
    types = room_filter.get("types")
    if isinstance(types, list):
        q &= _wildcard_q("type", types)
    not_types = room_filter.get("not_types")
    if isinstance(not_types, list) and not_types:
        q &= ~_wildcard_q("type", not_types)
    senders = room_filter.get("senders")
    if isinstance(senders, list):
        q &= Q(sender__in=senders)
    not_senders = room_filter.get("not_senders")
    if isinstance(not_senders, list) and not_senders:
        q &= ~Q(sender__in=not_senders)
    return q


def _wildcard_q(field: str, patterns: list[Any]) -> Q:
    """protocol.event_filters' matching of type patterns, as a query: a prefix when the
    only ``*`` ends the pattern (an index range), the same regular expression otherwise."""
    q = Q(pk__in=[])
    for pattern in patterns:
        if not isinstance(pattern, str):
            continue
        if pattern.endswith("*") and "*" not in pattern[:-1]:
            q |= Q(**{f"{field}__startswith": pattern[:-1]})
        elif "*" in pattern:
            q |= Q(**{f"{field}__regex": wildcard_regex(pattern)})
        else:
            q |= Q(**{field: pattern})
    return q


def access_joined_room(room_id: str, user_id: str) -> Room:
    """The room, if ``user_id`` is joined to it; M_FORBIDDEN otherwise (also for an
    unknown room, so that non-members learn nothing)."""
    row = (
        Membership.objects.select_related("room")
        .filter(room__room_id=room_id, user_id=user_id, membership="join")
        .first()
    )
    if row is None:
        raise forbidden("You are not joined to this room")
    return row.room
