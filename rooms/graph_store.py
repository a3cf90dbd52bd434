"""The room's event graph as state resolution reads it: `protocol.state_res`'s store over the
ORM, and the resolution of state groups the event pipeline asks for.

Auth chains are walked by the database, one recursive query each (SQLite and PostgreSQL
run the same SQL, but for how the starting rows are read from their JSON parameter). Each
statement has an ORM twin below it that walks the same graph a level at a time;
tests/rooms/test_graph_store.py checks the two agree, and agree with the in-memory store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from django.db import connection, transaction

from protocol.auth_rules import CREATE, StateKey
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.state_res import resolve_state
from rooms import event_cache
from rooms.models import Event, EventAuthEdge, Room
from rooms.state import load_state


class OrmStateResStore:
    """`protocol.state_res.StateResStore` (and `BatchedStateResStore`) over one room's
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
        chains = self._walk([(0, event_id) for event_id in set(event_ids)])
        return {event_id for _, event_id in chains}

    def get_auth_chains(self, event_ids: Iterable[str]) -> dict[str, set[str]]:
        starts = sorted(set(event_ids))
        chains: dict[str, set[str]] = {event_id: set() for event_id in starts}
        for index, event_id in self._walk(list(enumerate(starts))):
            chains[starts[index]].add(event_id)
        return chains

    def get_auth_chain_difference(self, state_sets: Sequence[Set[str]]) -> set[str]:
        if not state_sets:
            return set()
        # The events of every state set, and so their auth chains, are in every full auth
        # chain: walked once, under their own tag, rather than once per set.
        common = set(state_sets[0]).intersection(*state_sets[1:])
        seeds = [(_EVERY_SET, event_id) for event_id in common]
        seeds += [(index, e) for index, ids in enumerate(state_sets) for e in ids - common]
        if not seeds:
            return set()
        sql, params = _auth_chain_difference_sql(
            self.room.pk, seeds, len(state_sets), self._implied_create_event_id()
        )
        return {row[0] for row in _fetch(sql, params)}

    def _walk(self, starts: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
        """(tag, event ID) for everything in the auth chain of each tagged start."""
        if not starts:
            return []
        sql, params = _auth_chains_sql(self.room.pk, starts, self._implied_create_event_id())
        return [(row[0], row[1]) for row in _fetch(sql, params)]

    def _implied_create_event_id(self) -> str | None:
        """Room version 12: the create event every other event is authorised by without
        citing it (content/rooms/v12.md; `protocol.state_res.auth_edges`)."""
        room_id = self.room.room_id
        if self.room_version.room_id_is_create_event_hash and len(room_id) > 1:
            return "$" + room_id[1:]
        return None


# The tag of the events in every state set.
_EVERY_SET = -1


def _fetch(sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
    if connection.vendor != "postgresql":
        # (No transaction of our own: on SQLite one takes the write lock.)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    with transaction.atomic(), connection.cursor() as cursor:
        # A recursive query's row estimate is wild, and past jit_above_cost PostgreSQL
        # spends a second compiling a plan that runs in milliseconds. SET LOCAL ends with
        # the transaction (the caller's, when there is one).
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.fetchall()


def _tables() -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(Event._meta.db_table), quote(EventAuthEdge._meta.db_table)


def _tagged_rows(rows: Sequence[tuple[int, str]]) -> tuple[str, list[object]]:
    """A SELECT of (tag, event ID) rows from one JSON parameter, and the parameter.

    The only spelling that differs between the databases: thousands of placeholders (a
    state of a big room) cost more to bind than the query takes to run. A CTE of these
    rows is declared MATERIALIZED: otherwise SQLite may scan the room's events and read
    the JSON again for each (a walk from a big state took half a second, not 5 ms).
    """
    if connection.vendor == "postgresql":
        sql = "SELECT (r.value->>0)::bigint, r.value->>1 FROM json_array_elements(%s::json) r"
    else:
        sql = (
            "SELECT json_extract(r.value, '$[0]'), json_extract(r.value, '$[1]') "
            "FROM json_each(%s) r"
        )
    return sql, [json.dumps(rows)]


def _auth_chains_sql(
    room_pk: int, starts: Sequence[tuple[int, str]], create_event_id: str | None
) -> tuple[str, list[object]]:
    """(tag, event ID) for everything reachable from each tagged start through auth edges
    (a start itself only when reached). UNION, not UNION ALL: each event is expanded once
    per tag, and a cycle ends."""
    events, edges = _tables()
    values, params = _tagged_rows(starts)
    params.append(room_pk)
    implied = ""
    if create_event_id is not None:
        # v12: a known start that is not the create event has it in its auth chain.
        implied = (
            f"UNION SELECT start.tag, %s FROM start JOIN {events} e "
            "ON e.event_id = start.event_id AND e.room_id = %s WHERE e.type <> %s "
        )
        params += [create_event_id, room_pk, CREATE]
    params.append(room_pk)
    sql = (
        f"WITH RECURSIVE start(tag, event_id) AS MATERIALIZED ({values}), "
        "chain(tag, event_id) AS ("
        f"SELECT start.tag, a.auth_event_id FROM start JOIN {events} e "
        "ON e.event_id = start.event_id AND e.room_id = %s "
        f"JOIN {edges} a ON a.event_id = e.id "
        f"{implied}"
        "UNION "
        f"SELECT chain.tag, a.auth_event_id FROM chain JOIN {events} e "
        "ON e.event_id = chain.event_id AND e.room_id = %s "
        f"JOIN {edges} a ON a.event_id = e.id"
        ") SELECT tag, event_id FROM chain"
    )
    return sql, params


def _auth_chain_difference_sql(
    room_pk: int, seeds: Sequence[tuple[int, str]], set_count: int, create_event_id: str | None
) -> tuple[str, list[object]]:
    """The full auth chains of tagged seeds (a state set's index, or `_EVERY_SET`), walked
    at once; the events neither reached from `_EVERY_SET` nor from every set are the
    difference."""
    events, edges = _tables()
    values, params = _tagged_rows(seeds)
    implied = ""
    if create_event_id is not None:
        implied = (
            f"UNION SELECT seed.tag, %s FROM seed JOIN {events} e "
            "ON e.event_id = seed.event_id AND e.room_id = %s WHERE e.type <> %s "
        )
        params += [create_event_id, room_pk, CREATE]
    sql = (
        f"WITH RECURSIVE seed(tag, event_id) AS MATERIALIZED ({values}), "
        "chain(tag, event_id) AS ("
        "SELECT tag, event_id FROM seed "
        f"{implied}"
        "UNION "
        f"SELECT chain.tag, a.auth_event_id FROM chain JOIN {events} e "
        "ON e.event_id = chain.event_id AND e.room_id = %s "
        f"JOIN {edges} a ON a.event_id = e.id"
        ") SELECT event_id FROM chain GROUP BY event_id "
        "HAVING MIN(tag) >= 0 AND COUNT(DISTINCT tag) < %s"
    )
    params += [room_pk, set_count]
    return sql, params


# --- The ORM twins of the SQL above (what it must equal) ----------------------------------


def auth_chain_by_orm(room: Room, event_ids: Iterable[str]) -> set[str]:
    """`OrmStateResStore.get_auth_chain`, a level of the graph per query."""
    starts = set(event_ids)
    chain: set[str] = set()
    frontier = starts
    while frontier:
        found = set(
            EventAuthEdge.objects.filter(
                event__room=room, event__event_id__in=frontier
            ).values_list("auth_event_id", flat=True)
        )
        frontier = found - chain
        chain |= found
    create_event_id = OrmStateResStore(room)._implied_create_event_id()
    if (
        create_event_id is not None
        and Event.objects.filter(room=room, event_id__in=starts).exclude(type=CREATE).exists()
    ):
        # The create event cites nothing, so adding it reaches nothing further.
        chain.add(create_event_id)
    return chain


def auth_chains_by_orm(room: Room, event_ids: Iterable[str]) -> dict[str, set[str]]:
    """`OrmStateResStore.get_auth_chains`."""
    return {event_id: auth_chain_by_orm(room, [event_id]) for event_id in event_ids}


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


def resolve_maps(room: Room, states: Sequence[Mapping[StateKey, str]]) -> Mapping[StateKey, str]:
    """The resolution of state maps (e.g. the states after an event's prev events, some
    of them reported by another server)."""
    distinct: list[Mapping[StateKey, str]] = []
    for state in states:
        if not any(state is seen or state == seen for seen in distinct):
            distinct.append(state)
    if len(distinct) <= 1:
        return distinct[0] if distinct else {}
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    return resolve_state(room_version, distinct, OrmStateResStore(room))
