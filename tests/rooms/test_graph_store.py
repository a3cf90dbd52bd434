"""State resolution through the ORM store: the hand-built DAG scenarios of
tests/protocol/test_state_res.py run again with every event stored as an Event row (with
its auth and prev edges), and every resolution they make is made a second time from the
database and must come out the same. The SQL auth chain queries are checked against their
ORM twins and the in-memory store on the way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import pytest

import tests.protocol.dag as dag_module
import tests.protocol.test_state_res as scenarios
from protocol.auth_rules import StateKey
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.state_res import InMemoryStateResStore, StateResStore, resolve_state
from rooms import event_cache
from rooms.graph_store import (
    OrmStateResStore,
    auth_chain_by_orm,
    auth_chain_difference_by_orm,
    auth_chains_by_orm,
    resolve_groups,
)
from rooms.models import Event, EventAuthEdge, EventEdge, Room
from rooms.state import create_state_group_from_map
from tests.protocol.dag import ALICE, BOB, initial_room, make_event, member

# Its rooms are hand-built scenario graphs with no extremities or current state.
pytestmark = [pytest.mark.django_db, pytest.mark.graph_unchecked]


@pytest.fixture(autouse=True)
def _fresh_event_cache() -> Iterable[None]:
    # The scenarios name their events ($CREATE, $START...) in every test.
    event_cache.forget_all()
    yield
    event_cache.forget_all()


def store_event(event: PDUEvent, *, rejected: bool = False) -> Event:
    """One event as an outlier row with its edges, its room made on first use."""
    room, _ = Room.objects.get_or_create(
        room_id=event.room_id,
        defaults={"room_version": event.room_version.identifier, "creator": event.sender},
    )
    row = Event.objects.create(
        room=room,
        event_id=event.event_id,
        stream_ordering=None,
        outlier=True,
        depth=event.depth,
        type=event.type,
        state_key=event.state_key,
        sender=event.sender,
        origin_server_ts=event.origin_server_ts,
        pdu=event.pdu,
        membership=event.membership if event.type == "m.room.member" else None,
        rejected_reason="rejected in the scenario" if rejected else None,
    )
    EventAuthEdge.objects.bulk_create(
        EventAuthEdge(event=row, auth_event_id=auth_id) for auth_id in event.auth_event_ids
    )
    EventEdge.objects.bulk_create(
        EventEdge(event=row, prev_event_id=prev_id) for prev_id in event.prev_event_ids
    )
    return row


class StoredStore(InMemoryStateResStore):
    """The scenarios' in-memory store, also writing each event it is given to the database."""

    def add(self, event: PDUEvent, *, rejected: bool = False) -> None:
        super().add(event, rejected=rejected)
        store_event(event, rejected=rejected)

    def mark_rejected(self, event_id: str) -> None:
        super().mark_rejected(event_id)
        Event.objects.filter(event_id=event_id).update(rejected_reason="rejected in the scenario")

    def room(self) -> Room | None:
        event_id = next(iter(self._events), None)
        if event_id is None:
            return None
        return Event.objects.select_related("room").get(event_id=event_id).room


class Comparisons:
    """Counts the resolutions of several states made both ways."""

    def __init__(self) -> None:
        self.forks = 0

    def resolve_both(
        self,
        room_version: RoomVersion,
        state_sets: Sequence[Mapping[StateKey, str]],
        store: StateResStore,
    ) -> dict[StateKey, str]:
        in_memory = resolve_state(room_version, state_sets, store)
        if not isinstance(store, StoredStore):
            return in_memory
        room = store.room()
        if room is None:
            # The create event's state before it: nothing is stored yet.
            assert not state_sets
            return in_memory
        orm_store = OrmStateResStore(room)
        assert resolve_state(room_version, state_sets, orm_store) == in_memory
        if len(state_sets) > 1:
            self.forks += 1
            event_id_sets = [set(state_set.values()) for state_set in state_sets]
            every_event = set().union(*event_id_sets)
            sql_chain = orm_store.get_auth_chain(every_event)
            assert sql_chain == auth_chain_by_orm(room, every_event)
            assert sql_chain == store.get_auth_chain(every_event)
            sql_chains = orm_store.get_auth_chains(every_event)
            assert sql_chains == auth_chains_by_orm(room, every_event)
            assert sql_chains == store.get_auth_chains(every_event)
            difference = orm_store.get_auth_chain_difference(event_id_sets)
            assert difference == auth_chain_difference_by_orm(room, event_id_sets)
            assert difference == store.get_auth_chain_difference(event_id_sets)
        return in_memory


# The scenarios: every test of tests/protocol/test_state_res.py that builds a RoomDag and
# resolves forks of it (the building-block tests call the algorithm's parts directly).
_BUILDING_BLOCKS = {
    "test_resolving_one_state_is_the_identity",
    "test_separate_treats_missing_keys_as_conflicted",
    "test_auth_difference_counts_the_state_events_themselves",
    "test_v12_auth_chain_includes_the_implied_create_event",
    "test_reverse_topological_power_ordering",
    "test_mainline_ordering",
}


def _scenario_cases() -> list[Any]:
    cases: list[Any] = []
    for name, function in inspect.getmembers(scenarios, inspect.isfunction):
        if not name.startswith("test_") or name in _BUILDING_BLOCKS:
            continue
        marks = [m for m in getattr(function, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            cases.append(pytest.param(function, {}, id=name))
            continue
        (mark,) = marks
        argnames = mark.args[0]
        names = [argnames] if isinstance(argnames, str) else list(argnames)
        names = [n.strip() for a in names for n in a.split(",")]
        for values, case_id in zip(mark.args[1], mark.kwargs["ids"], strict=True):
            values = values if len(names) > 1 else (values,)
            arguments = dict(zip(names, values, strict=True))
            cases.append(pytest.param(function, arguments, id=f"{name}-{case_id}"))
    return cases


@pytest.mark.parametrize(("scenario", "arguments"), _scenario_cases())
def test_scenario_resolves_the_same_from_the_database(
    monkeypatch: pytest.MonkeyPatch,
    scenario: Callable[..., None],
    arguments: dict[str, Any],
) -> None:
    comparisons = Comparisons()
    monkeypatch.setattr(dag_module, "InMemoryStateResStore", StoredStore)
    monkeypatch.setattr(dag_module, "resolve_state", comparisons.resolve_both)
    monkeypatch.setattr(scenarios, "resolve_state", comparisons.resolve_both)

    scenario(**arguments)

    assert comparisons.forks >= 1
    assert Event.objects.filter(event_id__startswith="$START").exists()


def test_scenario_cases_cover_every_room_version_the_protocol_tests_use() -> None:
    versions = {
        arguments["room_version"].identifier
        for case in _scenario_cases()
        for arguments in [case.values[1]]
        if "room_version" in arguments
    }
    assert versions == {"2", "6", "10", "11", "12"}


@pytest.mark.parametrize("version", ["1", "2", "6", "10", "11", "12"])
def test_auth_chains_from_sql_match_the_orm_and_memory(version: str) -> None:
    """Every event's auth chain, and auth differences of pairs of states, three ways."""
    room_version = KNOWN_ROOM_VERSIONS[version]
    dag = initial_room(room_version)
    dag.add("PA", "m.room.power_levels", ALICE, state_key="", content=dag.power_levels({BOB: 50}))
    dag.add("JR", "m.room.join_rules", BOB, state_key="", content={"join_rule": "invite"})
    dag.add("LEAVE", "m.room.member", BOB, state_key=BOB, content=member("leave"), prev=["START"])
    for event in dag.events.values():
        store_event(event)
    room = Room.objects.get(room_id=dag.room_id)
    orm_store = OrmStateResStore(room)
    for name, event in dag.events.items():
        chain = orm_store.get_auth_chain([event.event_id])
        assert chain == auth_chain_by_orm(room, [event.event_id]), name
        assert chain == dag.store.get_auth_chain([event.event_id]), name
    every_event = [event.event_id for event in dag.events.values()] + ["$unknown"]
    chains = orm_store.get_auth_chains(every_event)
    assert chains == auth_chains_by_orm(room, every_event)
    assert chains == dag.store.get_auth_chains(every_event)
    assert chains["$unknown"] == set()
    states = [set(dag.state_after[name].values()) for name in ("JR", "LEAVE", "START")]
    difference = orm_store.get_auth_chain_difference(states)
    assert difference
    assert difference == auth_chain_difference_by_orm(room, states)
    assert difference == dag.store.get_auth_chain_difference(states)
    # Unknown events have no auth chain; the empty set has no difference.
    assert orm_store.get_auth_chain(["$unknown"]) == set()
    assert orm_store.get_auth_chain_difference([set(), set()]) == set()


def test_a_cycle_of_auth_events_ends() -> None:
    """A malformed graph whose events cite each other: every walk stops."""
    version = KNOWN_ROOM_VERSIONS["11"]
    a = make_event(version, "$a", "m.room.topic", ALICE, state_key="", auth_events=["$b"])
    b = make_event(version, "$b", "m.room.topic", ALICE, state_key="", auth_events=["$a"])
    for event in (a, b):
        store_event(event)
    room = Room.objects.get(room_id=a.room_id)
    assert OrmStateResStore(room).get_auth_chain(["$a"]) == {"$a", "$b"}
    assert auth_chain_by_orm(room, ["$a"]) == {"$a", "$b"}


def test_rejected_events_are_read_and_reported() -> None:
    version = KNOWN_ROOM_VERSIONS["11"]
    good = make_event(version, "$good", "m.room.topic", ALICE, state_key="")
    bad = make_event(version, "$bad", "m.room.topic", ALICE, state_key="")
    store_event(good)
    store_event(bad, rejected=True)
    orm_store = OrmStateResStore(Room.objects.get(room_id=good.room_id))
    assert set(orm_store.get_events(["$good", "$bad", "$nope"])) == {"$good", "$bad"}
    assert orm_store.get_rejected_event_ids(["$good", "$bad", "$nope"]) == {"$bad"}


@pytest.mark.parametrize("version", ["11", "12"])
def test_resolve_groups(version: str) -> None:
    """One state, or the same state in several groups, comes back as it is; two states are
    resolved (the ban wins the race with the join)."""
    room_version = KNOWN_ROOM_VERSIONS[version]
    dag = initial_room(room_version)
    evelyn = "@evelyn:example.com"
    dag.add("ME", "m.room.member", evelyn, state_key=evelyn, content=member("join"))
    dag.add("BAN", "m.room.member", ALICE, state_key=evelyn, content=member("ban"), prev=["START"])
    for event in dag.events.values():
        store_event(event)
    room = Room.objects.get(room_id=dag.room_id)
    joined = create_state_group_from_map(room, dag.state_after["ME"]).pk
    same = create_state_group_from_map(room, dag.state_after["ME"]).pk
    banned = create_state_group_from_map(room, dag.state_after["BAN"]).pk

    assert resolve_groups(room, []) == {}
    assert resolve_groups(room, [joined]) == dag.state_after["ME"]
    assert resolve_groups(room, [joined, same]) == dag.state_after["ME"]
    resolved = resolve_groups(room, [joined, banned])
    assert resolved == dag.resolve("ME", "BAN")
    assert resolved[("m.room.member", evelyn)] == dag.id("BAN")
