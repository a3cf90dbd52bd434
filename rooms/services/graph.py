"""The tips of a room's graph and the current state they resolve to.

A room's forward extremities are the events nothing builds on yet: shown events (not
outliers, not rejected, not soft-failed) that no shown event cites as a prev event.
Citing passes through events that are not shown: an event cited only by a soft-failed
event that a shown event cites is no tip either (so a soft-failed event in the middle
of a chain does not leave its ancestors dangling, as in Synapse). The current state is
the resolution of the extremities' states (server-server-api.md, "Room State
Resolution"); with one extremity it is simply the state after it.

``move_room_tips`` runs inside ``persist_event``'s transaction, under the room lock:
before the event takes its stream position it moves the extremities, resolves, and
writes the current state; the rows that carry the position (memberships, the
``RoomStateChange``) are written by ``StateChange.write`` after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Model, Q

from protocol.events import Event as PDUEvent
from rooms import event_cache
from rooms.graph_store import resolve_groups, resolve_maps
from rooms.models import (
    BackwardExtremity,
    CurrentState,
    Event,
    EventEdge,
    ForwardExtremity,
    Membership,
    Room,
    RoomStateChange,
)
from rooms.services import user_directory
from rooms.state import StateKey, create_state_group, create_state_group_from_map, load_state

MEMBER = "m.room.member"
# How far a walk through events that are not shown goes (a chain of soft-failed events).
MAX_WALK = 1000


@dataclass
class StateChange:
    """A change of the room's current state, written before the stream position is taken;
    ``write`` adds the rows that carry the position."""

    room: Room
    state_group: int
    # The change is not just the event's own: /sync must send the difference.
    resolved: bool
    # Member state keys whose event changed, to the new member event (None: gone).
    members: dict[str, str | None] = field(default_factory=dict)
    directory: user_directory.DirectoryChange | None = None

    def write(self, position: int) -> list[str]:
        """Memberships and the state change at ``position``; the users whose membership
        changed (to wake their /sync)."""
        RoomStateChange.objects.create(
            room=self.room,
            stream_ordering=position,
            state_group_id=self.state_group,
            resolved=self.resolved,
        )
        present = {user: event_id for user, event_id in self.members.items() if event_id}
        events = event_cache.get_events(present.values())
        if present:
            _upsert(
                Membership,
                ["room_id", "user_id", "membership", "event_id", "stream_ordering", "forgotten"],
                ["room_id", "user_id"],
                [
                    (
                        self.room.pk,
                        user_id,
                        events[event_id].membership or "leave",
                        event_id,
                        position,
                        False,
                    )
                    for user_id, event_id in present.items()
                ],
            )
        gone = [user for user, event_id in self.members.items() if not event_id]
        if gone:
            Membership.objects.filter(room=self.room, user_id__in=gone).delete()
        if self.directory is not None:
            user_directory.do_apply_state_change(self.room, self.directory)
        return list(self.members)


@dataclass(frozen=True)
class Presolved:
    """The current state the room's tips would resolve to after an event, worked out
    before the room lock was taken (``presolve``); used if the tips are still those."""

    tips: frozenset[str]
    state: Mapping[StateKey, str]


def move_room_tips(
    room: Room,
    event_id: str,
    prev_ids: list[str],
    *,
    shown: bool,
    group_after: int | None,
    state_before: int | None,
    extremities_before: list[str] | None,
    presolved: Presolved | None = None,
) -> StateChange | None:
    """Move the room's forward extremities for a new event and set the current state
    they resolve to; None when the current state stays as it was.

    ``extremities_before``: the extremities as the caller read them under the lock and
    built the event on (a new local event, which nothing can cite yet).
    """
    if shown and extremities_before is not None and set(prev_ids) == set(extremities_before):
        # The local send path: the event follows all the room's tips.
        _replace_extremities(room, prev_ids, event_id)
        return set_current_state(
            room,
            group_after,
            resolved=state_before != room.current_state_group_id,
        )
    current, tips = tips_after(
        room, event_id, prev_ids, shown=shown, fresh=extremities_before is not None
    )
    if tips == current:
        return None
    ForwardExtremity.objects.filter(room=room, event_id__in=current - tips).delete()
    ForwardExtremity.objects.bulk_create(
        ForwardExtremity(room=room, event_id=tip) for tip in tips - current
    )
    groups = _groups_of(room, tips - {event_id})
    if event_id in tips:
        groups[event_id] = group_after
    known = [g for g in groups.values() if g is not None]
    if presolved is not None and presolved.tips == tips and len(set(known)) > 1:
        group = _group_holding(room, known, presolved.state)
    else:
        group = state_group_of_tips(room, known)
    if group is None:
        return None
    only_this = tips == {event_id} and state_before == room.current_state_group_id
    return set_current_state(room, group, resolved=not only_this)


def tips_after(
    room: Room, event_id: str, prev_ids: list[str], *, shown: bool, fresh: bool
) -> tuple[set[str], set[str]]:
    """The room's forward extremities now, and once the event is stored. ``fresh``: the
    event was just made here, so nothing cites it yet."""
    current = set(ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True))
    tips = set(current)
    covered = not fresh and _is_cited(room, event_id)
    if shown or covered:
        tips -= _cited_through_hidden(room, prev_ids)
    if shown and not covered:
        tips.add(event_id)
    return current, tips


def presolve(
    room: Room, event_id: str, prev_ids: list[str], state_after: Mapping[StateKey, str]
) -> Presolved | None:
    """Resolve, without the room lock, the state of the tips the room would have after
    a shown event whose state after it is ``state_after``: the resolution is the slow
    part, and done here it holds no lock (on SQLite, no write transaction) while it
    runs. None when there is nothing to resolve."""
    _current, tips = tips_after(room, event_id, prev_ids, shown=True, fresh=False)
    if len(tips) < 2:
        return None
    states = [load_state(group) for group in set(_groups_of(room, tips - {event_id}).values())]
    if event_id in tips:
        states.append(state_after)
    if len({frozenset(state.items()) for state in states}) < 2:
        return None
    return Presolved(frozenset(tips), resolve_maps(room, states))


def _groups_of(room: Room, event_ids: set[str]) -> dict[str, int | None]:
    return dict(
        Event.objects.filter(room=room, event_id__in=event_ids).values_list(
            "event_id", "state_group_id"
        )
    )


def state_group_of_tips(room: Room, groups: Iterable[int]) -> int | None:
    """A state group holding the resolution of these groups' states (one of them when
    they agree; else a new group, stored as a delta on the room's current state)."""
    distinct = sorted(set(groups))
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return _group_holding(room, distinct, resolve_groups(room, distinct))


def _group_holding(room: Room, groups: Iterable[int], state: Mapping[StateKey, str]) -> int:
    """One of ``groups`` if it holds exactly ``state``, else a new group."""
    for group in sorted(set(groups)):
        if load_state(group) == state:
            return group
    return group_for_map(room, state, base=room.current_state_group_id)


def group_for_map(room: Room, state: Mapping[StateKey, str], *, base: int | None) -> int:
    """A new state group holding ``state``: a delta on ``base`` when ``state`` only adds
    to or changes it (state storage grows with changes), else a snapshot."""
    base_state = load_state(base)
    if base is not None and base_state.keys() <= state.keys():
        delta = {key: value for key, value in state.items() if base_state.get(key) != value}
        return create_state_group(room, base, delta).pk
    return create_state_group_from_map(room, state).pk


def set_current_state(room: Room, group: int | None, *, resolved: bool) -> StateChange | None:
    """Make ``group`` the room's current state: CurrentState rows for what changed (the
    caller holds the room lock and writes the change at a stream position)."""
    old = room.current_state_group_id
    if group is None or group == old:
        return None
    old_state = load_state(old)
    new_state = load_state(group)
    changed = {key: value for key, value in new_state.items() if old_state.get(key) != value}
    removed = [key for key in old_state if key not in new_state]
    if changed:
        # One statement (an upsert), not update_or_create's read-then-write.
        _upsert(
            CurrentState,
            ["room_id", "type", "state_key", "event_id"],
            ["room_id", "type", "state_key"],
            [(room.pk, etype, skey, event_id) for (etype, skey), event_id in changed.items()],
        )
    if removed:
        condition = Q()
        for etype, skey in removed:
            condition |= Q(type=etype, state_key=skey)
        CurrentState.objects.filter(condition, room=room).delete()
    room.current_state_group_id = group
    Room.objects.filter(pk=room.pk).update(current_state_group_id=group)
    members: dict[str, str | None] = {
        skey: event_id for (etype, skey), event_id in changed.items() if etype == MEMBER
    }
    members.update({skey: None for etype, skey in removed if etype == MEMBER})
    directory = user_directory.directory_change(old_state, new_state, [*changed, *removed])
    return StateChange(room, group, resolved, members, directory)


def _upsert(
    model: type[Model], columns: list[str], unique: list[str], rows: list[tuple[object, ...]]
) -> None:
    """Insert ``rows`` (values of ``columns``), updating the other columns of a row that
    has the same ``unique`` ones: bulk_create's ``update_conflicts`` as one executemany of
    plain tuples (a join's first state has thousands of rows, and building and compiling
    a model instance for each took longer than storing them)."""
    quote = connection.ops.quote_name
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in unique)
    sql = (
        f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(map(quote, unique))}) DO UPDATE SET {updates}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _replace_extremities(room: Room, prev_ids: list[str], event_id: str) -> None:
    """The event replaces the extremities it cites as prev_events."""
    # A linear room, the usual case: its one extremity moves on to the new event.
    if (
        len(prev_ids) == 1
        and ForwardExtremity.objects.filter(room=room, event_id=prev_ids[0]).update(
            event_id=event_id
        )
        == 1
    ):
        return
    ForwardExtremity.objects.filter(room=room, event_id__in=prev_ids).delete()
    ForwardExtremity.objects.create(room=room, event_id=event_id)


def record_backward_extremities(room: Room, event: PDUEvent, *, rejected: bool) -> None:
    """The event is in the graph here now (persisted, not an outlier): it is no gap any
    more, and the prev events it cites that the graph does not hold are, each at the
    depth of its deepest citing event (rooms.models.BackwardExtremity). A rejected event
    is no history anyone needs: its prev events are not looked for. Caller holds the room
    lock."""
    BackwardExtremity.objects.filter(room=room, event_id=event.event_id).delete()
    prev_ids = set(event.prev_event_ids)
    if rejected or not prev_ids:
        return
    held = Event.objects.filter(room=room, event_id__in=prev_ids, outlier=False)
    missing = prev_ids - set(held.values_list("event_id", flat=True))
    if not missing:
        return
    known = dict(
        BackwardExtremity.objects.filter(room=room, event_id__in=missing).values_list(
            "event_id", "depth"
        )
    )
    BackwardExtremity.objects.bulk_create(
        [
            BackwardExtremity(room=room, event_id=event_id, depth=event.depth)
            for event_id in sorted(missing - known.keys())
        ]
    )
    shallower = [event_id for event_id, depth in known.items() if depth < event.depth]
    if shallower:
        BackwardExtremity.objects.filter(room=room, event_id__in=shallower).update(
            depth=event.depth
        )


def _hidden_timeline_events(room: Room, event_ids: Iterable[str]) -> Q:
    return Q(room=room, event_id__in=list(event_ids), outlier=False) & (
        Q(soft_failed=True) | Q(rejected_reason__isnull=False)
    )


def _cited_through_hidden(room: Room, prev_ids: list[str]) -> set[str]:
    """The prev events of a shown event, and through those that are not shown
    (soft-failed, rejected), theirs: none of them is a tip any more."""
    cited = set(prev_ids)
    frontier = set(prev_ids)
    for _ in range(MAX_WALK):
        hidden = list(
            Event.objects.filter(_hidden_timeline_events(room, frontier)).values_list(
                "pk", flat=True
            )
        )
        if not hidden:
            break
        frontier = (
            set(
                EventEdge.objects.filter(event_id__in=hidden).values_list(
                    "prev_event_id", flat=True
                )
            )
            - cited
        )
        cited |= frontier
    return cited


def _is_cited(room: Room, event_id: str) -> bool:
    """Does a shown event already cite this one (it arrived late), directly or through
    events that are not shown?"""
    frontier = {event_id}
    seen = set(frontier)
    for _ in range(MAX_WALK):
        children = list(
            Event.objects.filter(
                room=room, outlier=False, prev_edges__prev_event_id__in=frontier
            ).values_list("event_id", "rejected_reason", "soft_failed")
        )
        if not children:
            return False
        if any(reason is None and not soft for _eid, reason, soft in children):
            return True
        frontier = {eid for eid, _reason, _soft in children} - seen
        if not frontier:
            return False
        seen |= frontier
    return False
