"""The room's event graph as state resolution reads it: `protocol.state_res`'s store over the
ORM, and the resolution of state groups the event pipeline asks for.

Auth chains are walked by the database, one recursive query each (SQLite and PostgreSQL
run the same SQL). Each statement has an ORM twin below it that walks the same graph a
level at a time; tests/rooms/test_graph_store.py checks the two agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set

from django.db import connection

from protocol.auth_rules import CREATE, StateKey
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.state_res import resolve_state
from rooms import event_cache
from rooms.models import Event, EventAuthEdge, Room
from rooms.state import load_state


class OrmStateResStore:
    """`protocol.state_res.StateResStore` (and `AuthChainDifferenceStore`) over one room's
    Event rows and auth edges."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.room_version: RoomVersion = KNOWN_ROOM_VERSIONS[room.room_version]

    def get_events(self, event_ids: Iterable[str]) -> dict[str, PDUEvent]:
        # Rejected events included: the cache reads every stored row.
        return event_cache.get_events(event_ids)

    def get_rejected_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        wanted = list(set(event_ids))
        if not wanted:
            return set()
        return set(
            Event.objects.filter(event_id__in=wanted, rejected_reason__isnull=False).values_list(
                "event_id", flat=True
            )
        )

    def get_auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        starts = sorted(set(event_ids))
        if not starts:
            return set()
        sql, params = _auth_chain_sql(starts, self._implied_create_event_id())
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def get_auth_chain_difference(self, state_sets: Sequence[Set[str]]) -> set[str]:
        if not state_sets:
            return set()
        seeds = [(index, event_id) for index, ids in enumerate(state_sets) for event_id in ids]
        if not seeds:
            return set()
        sql, params = _auth_chain_difference_sql(
            seeds, len(state_sets), self._implied_create_event_id()
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}

    def _implied_create_event_id(self) -> str | None:
        """Room version 12: the create event every other event is authorised by without
        citing it (content/rooms/v12.md; `protocol.state_res.auth_edges`)."""
        room_id = self.room.room_id
        if self.room_version.room_id_is_create_event_hash and len(room_id) > 1:
            return "$" + room_id[1:]
        return None


def _tables() -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(Event._meta.db_table), quote(EventAuthEdge._meta.db_table)


def _auth_chain_sql(
    starts: Sequence[str], create_event_id: str | None
) -> tuple[str, list[object]]:
    """Everything reachable from `starts` through auth edges (starts themselves only when
    reached). UNION, not UNION ALL: each event is expanded once, and a cycle ends."""
    events, edges = _tables()
    marks = ", ".join(["%s"] * len(starts))
    params: list[object] = [*starts]
    implied = ""
    if create_event_id is not None:
        # v12: a known start that is not the create event has it in its auth chain.
        implied = (
            f"UNION SELECT %s FROM {events} e WHERE e.event_id IN ({marks}) AND e.type <> %s "
        )
        params += [create_event_id, *starts, CREATE]
    sql = (
        "WITH RECURSIVE chain(event_id) AS ("
        f"SELECT a.auth_event_id FROM {events} e JOIN {edges} a ON a.event_id = e.id "
        f"WHERE e.event_id IN ({marks}) "
        f"{implied}"
        "UNION "
        f"SELECT a.auth_event_id FROM chain JOIN {events} e ON e.event_id = chain.event_id "
        f"JOIN {edges} a ON a.event_id = e.id"
        ") SELECT event_id FROM chain"
    )
    return sql, params


def _auth_chain_difference_sql(
    seeds: Sequence[tuple[int, str]], set_count: int, create_event_id: str | None
) -> tuple[str, list[object]]:
    """Each state set's full auth chain, tagged with the set's index, walked at once; the
    events not tagged by every set are the difference."""
    events, edges = _tables()
    values = ", ".join(["(%s, %s)"] * len(seeds))
    params: list[object] = [value for seed in seeds for value in seed]
    implied = ""
    if create_event_id is not None:
        implied = (
            f"UNION SELECT seed.set_index, %s FROM seed JOIN {events} e "
            "ON e.event_id = seed.event_id WHERE e.type <> %s "
        )
        params += [create_event_id, CREATE]
    sql = (
        f"WITH RECURSIVE seed(set_index, event_id) AS (VALUES {values}), "
        "chain(set_index, event_id) AS ("
        "SELECT set_index, event_id FROM seed "
        f"{implied}"
        "UNION "
        f"SELECT chain.set_index, a.auth_event_id FROM chain JOIN {events} e "
        f"ON e.event_id = chain.event_id JOIN {edges} a ON a.event_id = e.id"
        ") SELECT event_id FROM chain GROUP BY event_id HAVING COUNT(DISTINCT set_index) < %s"
    )
    params.append(set_count)
    return sql, params


# --- The ORM twins of the SQL above (what it must equal) ----------------------------------


def auth_chain_by_orm(room: Room, event_ids: Iterable[str]) -> set[str]:
    """`OrmStateResStore.get_auth_chain`, a level of the graph per query."""
    starts = set(event_ids)
    chain: set[str] = set()
    frontier = starts
    while frontier:
        found = set(
            EventAuthEdge.objects.filter(event__event_id__in=frontier).values_list(
                "auth_event_id", flat=True
            )
        )
        frontier = found - chain
        chain |= found
    create_event_id = OrmStateResStore(room)._implied_create_event_id()
    if (
        create_event_id is not None
        and Event.objects.filter(event_id__in=starts).exclude(type=CREATE).exists()
    ):
        chain.add(create_event_id)
        # The create event cites nothing, so adding it reaches nothing further.
    return chain


def auth_chain_difference_by_orm(room: Room, state_sets: Sequence[Set[str]]) -> set[str]:
    """`OrmStateResStore.get_auth_chain_difference`, from `auth_chain_by_orm`."""
    if not state_sets:
        return set()
    chains = [set(ids) | auth_chain_by_orm(room, ids) for ids in state_sets]
    return set().union(*chains) - set(chains[0]).intersection(*chains[1:])


def resolve_groups(room: Room, group_ids: Iterable[int]) -> Mapping[StateKey, str]:
    """The resolution of the states of state groups `group_ids` (e.g. the states after the
    forward extremities). One distinct state needs no resolution and is returned as loaded
    (read-only; copy before changing it)."""
    states: list[Mapping[StateKey, str]] = []
    for group_id in dict.fromkeys(group_ids):
        state = load_state(group_id)
        if not any(state is seen or state == seen for seen in states):
            states.append(state)
    if not states:
        return {}
    if len(states) == 1:
        return states[0]
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    return resolve_state(room_version, states, OrmStateResStore(room))
