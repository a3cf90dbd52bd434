"""State resolution v2 (room versions 2..11) and v2.1 (room version 12).

Spec: content/rooms/fragments/v2-state-res.md and content/rooms/v12.md#state-resolution (the
v2.1 changes: iterative auth checks in step 2 start from an empty map, and the full conflicted
set also holds the conflicted state subgraph).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence

from protocol.auth_rules import (
    CREATE_KEY,
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS,
    POWER_LEVELS_KEY,
    AuthError,
    PowerLevel,
    StateKey,
    auth_types_for,
    check_auth_rules,
    get_user_power_level,
)
from protocol.events import Event
from protocol.room_versions import RoomVersion, StateResolutionVersion
from protocol.state_res.store import (
    BatchedStateResStore,
    EventCache,
    StateResStore,
    auth_chain_difference,
    auth_edges,
)


def resolve_v2(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    store: StateResStore,
) -> dict[StateKey, str]:
    """Resolve `state_sets` (maps of `(type, state_key)` to event ID) into one state map."""
    unconflicted, conflicted = separate(state_sets)
    if not conflicted:
        return dict(unconflicted)

    events = EventCache(store)
    conflicted_ids = {event_id for event_ids in conflicted.values() for event_id in event_ids}
    full_conflicted = conflicted_ids | auth_difference(state_sets, store)
    if room_version.state_res is StateResolutionVersion.V2_1:
        full_conflicted |= conflicted_state_subgraph(conflicted_ids, store, events)
    events.load(full_conflicted)
    # Events we do not have cannot be replayed; they drop out as Synapse's do.
    full_conflicted = {event_id for event_id in full_conflicted if event_id in events}

    # Step 1: the power events, with the parts of their auth chains that are also conflicted,
    # in reverse topological power ordering.
    power_events = {event_id for event_id in full_conflicted if is_power_event(events[event_id])}
    events.load_auth_chains(power_events)
    power_closure = set(power_events)
    for event_id in power_events:
        power_closure |= events.auth_chain(event_id) & full_conflicted
    events.load_auth_chains(power_closure)
    sorted_power = reverse_topological_power_ordering(room_version, power_closure, events)
    # Whether each replayed event's auth events were rejected, read at once.
    events.rejected({p for event_id in full_conflicted for p in auth_edges(events[event_id])})

    # Step 2: iterative auth checks from the unconflicted map (v2) or an empty map (v2.1).
    base_state: dict[StateKey, str] = (
        {} if room_version.state_res is StateResolutionVersion.V2_1 else dict(unconflicted)
    )
    partial = iterative_auth_checks(room_version, sorted_power, base_state, events)

    # Step 3: everything else in mainline order of the resolved power levels.
    others = full_conflicted - power_closure
    sorted_others = mainline_ordering(others, partial.get(POWER_LEVELS_KEY), events)

    # Step 4: iterative auth checks on top of the partially resolved state.
    resolved = iterative_auth_checks(room_version, sorted_others, partial, events)

    # Step 5: the unconflicted state map wins.
    resolved.update(unconflicted)
    return resolved


def separate(
    state_sets: Sequence[Mapping[StateKey, str]],
) -> tuple[dict[StateKey, str], dict[StateKey, set[str]]]:
    """Split into the unconflicted state map and the conflicted state set (keyed by state key).

    A key is unconflicted when every state set has it with the same event; a key missing from
    some state set is conflicted.
    """
    unconflicted: dict[StateKey, str] = {}
    conflicted: dict[StateKey, set[str]] = {}
    all_keys = {key for state_set in state_sets for key in state_set}
    for key in all_keys:
        values = [state_set.get(key) for state_set in state_sets]
        present = {value for value in values if value is not None}
        if len(present) == 1 and None not in values:
            unconflicted[key] = present.pop()
        else:
            conflicted[key] = present
    return unconflicted, conflicted


def auth_difference(
    state_sets: Sequence[Mapping[StateKey, str]], store: StateResStore
) -> set[str]:
    """The auth difference: the union of the state sets' full auth chains minus their
    intersection.

    A state set's full auth chain here includes the state events themselves as well as their
    auth chains, as Synapse computes it. (Taken literally the spec's wording leaves the state
    events out; conflicted state events join the full conflicted set either way.) A store
    that can compute the difference itself (a database, in one query) is asked to.
    """
    event_id_sets = [set(state_set.values()) for state_set in state_sets]
    if isinstance(store, BatchedStateResStore):
        return store.get_auth_chain_difference(event_id_sets)
    return auth_chain_difference(store, event_id_sets)


def conflicted_state_subgraph(
    conflicted_ids: set[str], store: StateResStore, events: EventCache
) -> set[str]:
    """v2.1: every event on an `auth_events` path from one conflicted event to another.

    That is the events that are both reachable from a conflicted event (or are one) and can
    reach a conflicted event (or are one), endpoints included.
    """
    reachable = conflicted_ids | store.get_auth_chain(conflicted_ids)
    events.load(reachable)
    reaches_conflicted: dict[str, bool] = {}
    in_progress: set[str] = set()
    for start in reachable:
        stack = [start]
        while stack:
            current = stack[-1]
            if current in reaches_conflicted:
                stack.pop()
                continue
            event = events.get(current)
            parents = [p for p in auth_edges(event) if p in reachable] if event else []
            pending = [p for p in parents if p not in reaches_conflicted]
            if pending and current not in in_progress:
                in_progress.add(current)
                stack.extend(pending)
                continue
            reaches_conflicted[current] = current in conflicted_ids or any(
                reaches_conflicted.get(p, False) for p in parents
            )
            in_progress.discard(current)
            stack.pop()
    return {event_id for event_id, reaches in reaches_conflicted.items() if reaches}


def is_power_event(event: Event) -> bool:
    """Power levels, join rules, and kicks/bans (a leave or ban sent about someone else)."""
    if event.state_key is None:
        return False
    if (event.type, event.state_key) in (POWER_LEVELS_KEY, (JOIN_RULES, "")):
        return True
    if event.type == MEMBER:
        return event.content.get("membership") in ("leave", "ban") and (
            event.sender != event.state_key
        )
    return False


def reverse_topological_power_ordering(
    room_version: RoomVersion, event_ids: Iterable[str], events: EventCache
) -> list[str]:
    """Kahn's algorithm over the auth DAG, auth events first; among the ready events the one
    whose sender has the highest power level (from its own auth events), then the smallest
    `origin_server_ts`, then the smallest event ID, goes next.
    """
    todo = set(event_ids)
    # Edges are "is in the auth chain of", restricted to the events being sorted. Using the
    # whole auth chain rather than direct auth_events keeps the order right when the path
    # between two sorted events runs through events outside the set.
    depends_on = {event_id: events.auth_chain(event_id) & todo for event_id in todo}
    dependents: dict[str, list[str]] = {event_id: [] for event_id in todo}
    for event_id, parents in depends_on.items():
        for parent in parents:
            dependents[parent].append(event_id)

    def sort_key(event_id: str) -> tuple[PowerLevel, int, str]:
        event = events[event_id]
        return (-sender_power_level(room_version, event, events), event.origin_server_ts, event_id)

    waiting = {event_id: len(parents) for event_id, parents in depends_on.items()}
    ready = [(sort_key(event_id), event_id) for event_id, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[str] = []
    while ready:
        _, event_id = heapq.heappop(ready)
        ordered.append(event_id)
        for child in dependents[event_id]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (sort_key(child), child))
    return ordered


def sender_power_level(room_version: RoomVersion, event: Event, events: EventCache) -> PowerLevel:
    """The sender's power level according to the event's own auth events (v12: the creators'
    is infinite)."""
    auth_state: dict[StateKey, Event] = {}
    for auth_event_id in auth_edges(event):
        auth_event = events.get(auth_event_id)
        if auth_event is None or auth_event.state_key is None:
            continue
        key = (auth_event.type, auth_event.state_key)
        if key in (POWER_LEVELS_KEY, CREATE_KEY):
            auth_state[key] = auth_event
    return get_user_power_level(room_version, event.sender, auth_state)


def iterative_auth_checks(
    room_version: RoomVersion,
    event_ids: Sequence[str],
    base_state: Mapping[StateKey, str],
    events: EventCache,
) -> dict[StateKey, str]:
    """Apply each event in order to the state if the auth rules allow it there.

    Auth state comes from the state being built; keys it lacks are filled from the event's own
    auth events, unless those were rejected.
    """
    state = dict(base_state)
    for event_id in event_ids:
        event = events[event_id]
        if event.state_key is None:
            continue
        auth_state: dict[StateKey, Event] = {}
        parents = auth_edges(event)
        rejected = events.rejected(parents)
        for auth_event_id in parents:
            auth_event = events.get(auth_event_id)
            if auth_event is None or auth_event.state_key is None or auth_event_id in rejected:
                continue
            auth_state[(auth_event.type, auth_event.state_key)] = auth_event
        for key in auth_types_for(room_version, event):
            if key in state:
                state_event = events.get(state[key])
                if state_event is not None:
                    auth_state[key] = state_event
        try:
            check_auth_rules(room_version, event, auth_state)
        except AuthError:
            continue
        state[(event.type, event.state_key)] = event_id
    return state


def mainline_ordering(
    event_ids: Iterable[str], power_levels_event_id: str | None, events: EventCache
) -> list[str]:
    """Order events by mainline position relative to `power_levels_event_id` (older base
    first), then `origin_server_ts`, then event ID."""
    mainline: dict[str, int] = {}
    current = power_levels_event_id
    while current is not None and current not in mainline:
        mainline[current] = len(mainline)
        current = _power_levels_auth_event(current, events)

    positions: dict[str, float] = {}

    def mainline_position(event_id: str) -> float:
        """Position of the first mainline event on `event_id`'s power levels ancestry,
        starting from its power levels auth event (not itself); infinity if none is."""
        walked: list[str] = []
        position: float = math.inf
        current = _power_levels_auth_event(event_id, events)
        while current is not None:
            if current in mainline:
                position = mainline[current]
                break
            if current in positions:
                position = positions[current]
                break
            if current in walked:
                break
            walked.append(current)
            current = _power_levels_auth_event(current, events)
        # Every power levels event walked past reaches the mainline at the same place.
        for walked_id in walked:
            positions[walked_id] = position
        return position

    def sort_key(event_id: str) -> tuple[float, int, str]:
        return (-mainline_position(event_id), events[event_id].origin_server_ts, event_id)

    return sorted(event_ids, key=sort_key)


def _power_levels_auth_event(event_id: str, events: EventCache) -> str | None:
    event = events.get(event_id)
    if event is None:
        return None
    for auth_event_id in event.auth_event_ids:
        auth_event = events.get(auth_event_id)
        if auth_event is not None and (auth_event.type, auth_event.state_key) == (
            POWER_LEVELS,
            "",
        ):
            return auth_event_id
    return None
