"""State maps stored as shared snapshots and deltas (see rooms.models).

State groups are immutable once written, so the resolved map of each group is cached
in process memory; a new group built on a cached one costs one dict copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from django.db import connection, transaction

from config.lru import LRU
from rooms.models import (
    MAX_STATE_DELTA_CHAIN,
    Room,
    RoomStateChange,
    StateGroup,
    StateGroupEntry,
)

StateKey = tuple[str, str]
StateMap = dict[StateKey, str]

_CACHE_SIZE = 2000
# ... holding at most this many state entries in all (a few tens of bytes each): in a
# room with thousands of members every group is a map of thousands, and 2,000 of those
# (createRoom with 2,000 invitees makes one per invite) took ~90 MB.
_CACHE_ENTRIES = 250_000


_state_cache: LRU[int, Mapping[StateKey, str]] = LRU(
    _CACHE_SIZE, weigh=len, max_weight=_CACHE_ENTRIES
)
# (room pk, stream position) -> the state group after the room's last event at or
# before that position. Positions up to the current token never gain events, so such
# entries never go stale; long-polls woken by one event all ask for the same ones.
_group_at_cache: LRU[tuple[int, int], int] = LRU(20000)

# State groups created by this thread's open transaction. They enter the shared cache
# only when that transaction commits: on SQLite a rolled-back group's ID is handed out
# again, and a cached map under a reused ID would be another room's state. An entry is
# live while its on-commit callback is still queued on the connection (a rollback
# discards the queue).
_pending = threading.local()


def _remember_on_commit(group_id: int, state: Mapping[StateKey, str]) -> None:
    def publish() -> None:
        _state_cache.put(group_id, state)
        _pending_map().pop(group_id, None)

    _pending_map()[group_id] = (state, publish)
    transaction.on_commit(publish)


def _pending_map() -> dict[int, tuple[Mapping[StateKey, str], object]]:
    if not hasattr(_pending, "groups"):
        _pending.groups = {}
    groups: dict[int, tuple[Mapping[StateKey, str], object]] = _pending.groups
    return groups


def _pending_state(group_id: int) -> Mapping[StateKey, str] | None:
    entry = _pending_map().get(group_id)
    if entry is None:
        return None
    state, publish = entry
    if any(callback is publish for _sids, callback, _robust in connection.run_on_commit):
        return state
    _pending_map().pop(group_id, None)
    return None


def is_pending(group_id: int) -> bool:
    """Was the group created by this thread's open transaction (and so may yet be rolled
    back, and its ID handed out again)? What is derived from such a group is not to be
    kept beyond the transaction."""
    return _pending_state(group_id) is not None


_CHAIN_SQL = """
WITH RECURSIVE chain(id, prev_group_id, step) AS (
    SELECT id, prev_group_id, 0 FROM rooms_stategroup WHERE id = %s
    UNION ALL
    SELECT g.id, g.prev_group_id, chain.step + 1
    FROM rooms_stategroup g JOIN chain ON g.id = chain.prev_group_id
)
SELECT id FROM chain ORDER BY step
"""


def state_group_at_position(room: Room, position: int, *, settled: bool = False) -> int | None:
    """The room's current state group as of stream ``position``.
    ``settled``: the position is at or below the current events token, so the answer
    cannot change and is kept."""
    key = (room.pk, position)
    group = _group_at_cache.get(key)
    if group is None:
        # As SQL: /sync asks this for every room of an initial sync, and building the
        # ORM query took longer than running it.
        with connection.cursor() as cursor:
            cursor.execute(_group_at_sql(), [room.pk, position])
            found = cursor.fetchone()
        group = found[0] if found else None
        if settled and group is not None:
            _group_at_cache.put(key, group)
    return group


def _group_at_sql() -> str:
    # The current state at a position: the last change of it at or before the position
    # (rooms.models.RoomStateChange), which a fork's resolution sets as well as an event.
    changes = connection.ops.quote_name(RoomStateChange._meta.db_table)
    return (
        f"SELECT state_group_id FROM {changes} WHERE room_id = %s AND stream_ordering <= %s "
        "ORDER BY stream_ordering DESC LIMIT 1"
    )


_resolved_cache: LRU[tuple[int, int], frozenset[int]] = LRU(256)


def rooms_resolved_between(after: int, upto: int, *, settled: bool) -> frozenset[int]:
    """The rooms (pks) whose current state changed in (after, upto] by resolution rather
    than by the events of their timeline alone (RoomStateChange.resolved): /sync sends
    them the difference of the state. ``settled``: ``upto`` was read as current."""
    key = (after, upto)
    found = _resolved_cache.get(key)
    if found is None:
        with connection.cursor() as cursor:
            cursor.execute(_RESOLVED_SQL, [True, after, upto])
            found = frozenset(row[0] for row in cursor.fetchall())
        if settled:
            _resolved_cache.put(key, found)
    return found


_RESOLVED_SQL = (
    f"SELECT DISTINCT room_id FROM {RoomStateChange._meta.db_table} "
    "WHERE resolved = %s AND stream_ordering > %s AND stream_ordering <= %s"
)


def forget_cached_positions() -> None:
    """For tests, whose rolled-back transactions hand stream positions out again."""
    _group_at_cache.clear()
    _resolved_cache.clear()


def load_state(group_id: int | None) -> Mapping[StateKey, str]:
    """The full state map of a state group (read-only; copy before changing it)."""
    if group_id is None:
        return {}
    pending = _pending_state(group_id)
    if pending is not None:
        return pending
    cached = _state_cache.get(group_id)
    if cached is not None:
        return cached
    with connection.cursor() as cursor:
        cursor.execute(_CHAIN_SQL, [group_id])
        chain = [row[0] for row in cursor.fetchall()]
    # Start from the deepest cached ancestor, if any, else from the snapshot.
    base: dict[StateKey, str] = {}
    todo = chain
    for index, ancestor in enumerate(chain):
        hit = _pending_state(ancestor) or _state_cache.get(ancestor)
        if hit is not None:
            base = dict(hit)
            todo = chain[:index]
            break
    if todo:
        rows = entries_of(todo)
        by_group: dict[int, list[tuple[str, str, str]]] = {}
        for gid, etype, skey, event_id in rows:
            by_group.setdefault(gid, []).append((etype, skey, event_id))
        for gid in reversed(todo):
            for etype, skey, event_id in by_group.get(gid, ()):
                base[(etype, skey)] = event_id
    if not any(_pending_state(g) is not None for g in chain):
        # Only maps built purely from committed groups are shared.
        _state_cache.put(group_id, base)
    return base


def entries_of(group_ids: list[int]) -> list[tuple[int, str, str, str]]:
    """(group, type, state_key, event_id) of every entry of these groups. As SQL: a
    snapshot of a big room is thousands of rows, and building them through the ORM took
    longer than the query (a cold state resolution reads two)."""
    table = connection.ops.quote_name(StateGroupEntry._meta.db_table)
    marks = ", ".join(["%s"] * len(group_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT state_group_id, type, state_key, event_id FROM {table} "
            f"WHERE state_group_id IN ({marks})",
            group_ids,
        )
        return [tuple(row) for row in cursor.fetchall()]


def entries_of_orm(group_ids: list[int]) -> list[tuple[int, str, str, str]]:
    """entries_of's ORM twin (tests/rooms/test_state.py checks they agree)."""
    return list(
        StateGroupEntry.objects.filter(state_group_id__in=group_ids).values_list(
            "state_group_id", "type", "state_key", "event_id"
        )
    )


def create_state_group(
    room: Room, prev_group_id: int | None, delta: Mapping[StateKey, str]
) -> StateGroup:
    """A new state group: the state of group ``prev_group_id`` with ``delta`` applied."""
    prev_state = load_state(prev_group_id)
    new_state = dict(prev_state)
    new_state.update(delta)
    prev_group = (
        StateGroup.objects.only("id", "chain_length").get(pk=prev_group_id)
        if prev_group_id is not None
        else None
    )
    if prev_group is None or prev_group.chain_length + 1 >= MAX_STATE_DELTA_CHAIN:
        group = StateGroup.objects.create(room=room, prev_group=None, chain_length=0)
        entries: Iterable[tuple[StateKey, str]] = new_state.items()
    else:
        group = StateGroup.objects.create(
            room=room, prev_group=prev_group, chain_length=prev_group.chain_length + 1
        )
        entries = delta.items()
    _insert_entries(group.pk, entries)
    _remember_on_commit(group.pk, new_state)
    return group


def create_state_group_from_map(room: Room, state: Mapping[StateKey, str]) -> StateGroup:
    """A snapshot group holding exactly ``state`` (e.g. after state resolution)."""
    group = StateGroup.objects.create(room=room, prev_group=None, chain_length=0)
    _insert_entries(group.pk, state.items())
    _remember_on_commit(group.pk, dict(state))
    return group


def _insert_entries(group_id: int, entries: Iterable[tuple[StateKey, str]]) -> None:
    """A group's entries, as one executemany of plain tuples: a snapshot of a big room
    holds thousands, and building a model instance for each took most of the time of an
    invite that cut a snapshot (the transaction every other writer on SQLite waits for)."""
    rows = [(group_id, etype, skey, event_id) for (etype, skey), event_id in entries]
    if not rows:
        return
    table = connection.ops.quote_name(StateGroupEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (state_group_id, type, state_key, event_id) "
            "VALUES (%s, %s, %s, %s)",
            rows,
        )
