"""State resolution: one state map from the states after several events.

Spec: content/server-server-api.md#room-state-resolution; the algorithm is the room version's
(content/rooms/v1.md for room version 1, content/rooms/fragments/v2-state-res.md for 2..11,
content/rooms/v12.md#state-resolution for 12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from protocol.auth_rules import StateKey
from protocol.room_versions import RoomVersion, StateResolutionVersion
from protocol.state_res.store import (
    BatchedStateResStore,
    InMemoryStateResStore,
    StateResStore,
    auth_edges,
)
from protocol.state_res.v1 import resolve_v1
from protocol.state_res.v2 import resolve_v2

__all__ = [
    "BatchedStateResStore",
    "InMemoryStateResStore",
    "StateResStore",
    "auth_edges",
    "resolve_state",
]


def resolve_state(
    room_version: RoomVersion,
    state_sets: Sequence[Mapping[StateKey, str]],
    store: StateResStore,
) -> dict[StateKey, str]:
    """Resolve state maps of `(type, state_key)` to event ID into one, per `room_version`.

    The state before an event is the resolution of the states after each of its prev_events;
    resolving a single state gives it back unchanged.
    """
    if not state_sets:
        return {}
    if len(state_sets) == 1:
        return dict(state_sets[0])
    if room_version.state_res is StateResolutionVersion.V1:
        return resolve_v1(room_version, state_sets, store)
    return resolve_v2(room_version, state_sets, store)
