"""State resolution for room version 1.

Spec: content/rooms/v1.md#state-resolution. The algorithm is known to reset state (fixed by v2)
and is kept for the rooms that still use it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

from protocol.auth_rules import (
    JOIN_RULES,
    MEMBER,
    POWER_LEVELS_KEY,
    AuthError,
    StateKey,
    auth_types_for,
    check_auth_rules,
)
from protocol.events import Event
from protocol.room_versions import RoomVersion
from protocol.state_res.store import EventCache, StateResStore


def resolve_v1(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    store: StateResStore,
) -> dict[StateKey, str]:
    """Resolve `state_sets` with the room version 1 algorithm."""
    # A conflict is a key for which the state sets hold different events; a key some state
    # sets lack is not a conflict. R starts as the union without the conflicting keys.
    candidates: dict[StateKey, set[str]] = {}
    for state_set in state_sets:
        for key, event_id in state_set.items():
            candidates.setdefault(key, set()).add(event_id)
    resolved = {key: next(iter(ids)) for key, ids in candidates.items() if len(ids) == 1}
    conflicted = {key: ids for key, ids in candidates.items() if len(ids) > 1}
    if not conflicted:
        return resolved

    events = EventCache(store)
    events.load(event_id for ids in conflicted.values() for event_id in ids)

    def known(event_ids: Iterable[str]) -> list[Event]:
        return [event for event in map(events.get, event_ids) if event is not None]

    def allowed(event: Event) -> bool:
        """Whether the auth rules allow `event` in a room whose state is `resolved`."""
        auth_state: dict[StateKey, Event] = {}
        for key in auth_types_for(room_version, event):
            if key in resolved:
                state_event = events.get(resolved[key])
                if state_event is not None:
                    auth_state[key] = state_event
        try:
            check_auth_rules(room_version, event, auth_state)
        except AuthError:
            return False
        return True

    def resolve_auth_key(key: StateKey) -> None:
        """Power levels, join rules and member events: oldest first, then each later event
        while the auth rules allow it."""
        ordered = sorted(known(conflicted[key]), key=lambda e: (e.depth, _negated_sha1(e)))
        if not ordered:
            return
        resolved[key] = ordered[0].event_id
        for event in ordered[1:]:
            if not allowed(event):
                break
            resolved[key] = event.event_id

    if POWER_LEVELS_KEY in conflicted:
        resolve_auth_key(POWER_LEVELS_KEY)
    for key in sorted(k for k in conflicted if k[0] == JOIN_RULES):
        resolve_auth_key(key)
    for key in sorted(k for k in conflicted if k[0] == MEMBER):
        resolve_auth_key(key)

    # Everything else: the highest depth, then lowest sha1(event_id), that passes auth in R.
    for key in sorted(conflicted):
        if key == POWER_LEVELS_KEY or key[0] in (JOIN_RULES, MEMBER):
            continue
        ordered = sorted(known(conflicted[key]), key=lambda e: (-e.depth, _sha1(e)))
        for event in ordered:
            if allowed(event):
                resolved[key] = event.event_id
                break
    return resolved


def _sha1(event: Event) -> str:
    return hashlib.sha1(event.event_id.encode("utf-8")).hexdigest()


def _negated_sha1(event: Event) -> tuple[int, ...]:
    """Sort key for descending sha1(event_id)."""
    return tuple(-byte for byte in hashlib.sha1(event.event_id.encode("utf-8")).digest())
