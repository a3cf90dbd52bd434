"""State resolution over the stored graph (provisional: level-by-level auth chains)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.state_res import auth_edges, resolve_state
from rooms import event_cache
from rooms.models import Event, EventAuthEdge, Room
from rooms.state import StateKey, load_state


class RoomStateResStore:
    def get_events(self, event_ids: Iterable[str]) -> Mapping[str, PDUEvent]:
        return event_cache.get_events(event_ids)

    def get_rejected_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        return set(
            Event.objects.filter(
                event_id__in=list(event_ids), rejected_reason__isnull=False
            ).values_list("event_id", flat=True)
        )

    def get_auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        chain: set[str] = set()
        frontier = set(event_ids)
        while frontier:
            parents = set(
                EventAuthEdge.objects.filter(event__event_id__in=frontier).values_list(
                    "auth_event_id", flat=True
                )
            )
            for event in event_cache.get_events(frontier).values():
                parents.update(auth_edges(event))
            frontier = parents - chain
            chain |= parents
        return chain


def resolve_maps(room: Room, maps: Sequence[Mapping[StateKey, str]]) -> dict[StateKey, str]:
    return resolve_state(KNOWN_ROOM_VERSIONS[room.room_version], maps, RoomStateResStore())


def resolve_groups(room: Room, group_ids: Sequence[int]) -> dict[StateKey, str]:
    return resolve_maps(room, [load_state(group) for group in group_ids])
