"""What state resolution reads from storage, and an in-memory implementation of it.

The app implements `StateResStore` over the ORM; tests and one-off resolutions use
`InMemoryStateResStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Protocol, runtime_checkable

from protocol.auth_rules import CREATE
from protocol.events import Event


class StateResStore(Protocol):
    """Read access to a room's events for state resolution."""

    def get_events(self, event_ids: Iterable[str]) -> Mapping[str, Event]:
        """The events among `event_ids` that are known, rejected ones included.

        Unknown IDs are left out of the result.
        """
        ...

    def get_rejected_event_ids(self, event_ids: Iterable[str]) -> Set[str]:
        """Those of `event_ids` that were rejected (checks 4 and 5 on receipt of a PDU)."""
        ...

    def get_auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        """The union of the auth chains of `event_ids`.

        The auth chain of an event is everything reachable through `auth_events`, not including
        the event itself (unless it is reachable from another of `event_ids`). In room version
        12, where events do not cite the create event, the create event named by the room ID
        counts as an auth event of every other event (see `auth_edges`).
        """
        ...


@runtime_checkable
class BatchedStateResStore(StateResStore, Protocol):
    """A `StateResStore` that also answers in one read what state resolution would otherwise
    ask a piece at a time (optional: the algorithms use these when the store has them)."""

    def get_auth_chain_difference(self, state_sets: Sequence[Set[str]]) -> set[str]:
        """The events in some but not all of the sets' full auth chains.

        A set's full auth chain is its events together with the union of their auth chains
        (as `get_auth_chain` gives it).
        """
        ...

    def get_auth_chains(self, event_ids: Iterable[str]) -> dict[str, set[str]]:
        """The auth chain of each of `event_ids` (as `get_auth_chain` gives it for that event
        alone); unknown events have an empty one."""
        ...


def auth_chain_difference(store: StateResStore, state_sets: Sequence[Set[str]]) -> set[str]:
    """What `BatchedStateResStore.get_auth_chain_difference` answers, from
    `get_auth_chain`: the union of the full auth chains minus their intersection."""
    if not state_sets:
        return set()
    chains = [set(event_ids) | store.get_auth_chain(event_ids) for event_ids in state_sets]
    union = set().union(*chains)
    intersection = set(chains[0]).intersection(*chains[1:])
    return union - intersection


def auth_edges(event: Event) -> list[str]:
    """The events `event` is authorised by: its `auth_events`, plus in room version 12 the
    create event its room ID names (content/rooms/v12.md: the room ID implies it)."""
    auth_event_ids = list(event.auth_event_ids)
    if event.room_version.room_id_is_create_event_hash and event.type != CREATE:
        room_id = event.room_id
        if room_id.startswith("!") and len(room_id) > 1:
            create_event_id = "$" + room_id[1:]
            if create_event_id not in auth_event_ids:
                auth_event_ids.append(create_event_id)
    return auth_event_ids


class InMemoryStateResStore:
    """A `StateResStore` over a dict of events, with memoised auth chains."""

    def __init__(self, events: Iterable[Event] = (), rejected: Iterable[str] = ()) -> None:
        self._events: dict[str, Event] = {}
        self._rejected: set[str] = set(rejected)
        self._auth_chains: dict[str, frozenset[str]] = {}
        for event in events:
            self.add(event)

    def add(self, event: Event, *, rejected: bool = False) -> None:
        self._events[event.event_id] = event
        if rejected:
            self._rejected.add(event.event_id)

    def mark_rejected(self, event_id: str) -> None:
        self._rejected.add(event_id)

    def get_events(self, event_ids: Iterable[str]) -> dict[str, Event]:
        return {
            event_id: self._events[event_id] for event_id in event_ids if event_id in self._events
        }

    def get_rejected_event_ids(self, event_ids: Iterable[str]) -> set[str]:
        return {event_id for event_id in event_ids if event_id in self._rejected}

    def get_auth_chain(self, event_ids: Iterable[str]) -> set[str]:
        chain: set[str] = set()
        for event_id in event_ids:
            chain |= self._auth_chain(event_id)
        return chain

    def get_auth_chain_difference(self, state_sets: Sequence[Set[str]]) -> set[str]:
        return auth_chain_difference(self, state_sets)

    def get_auth_chains(self, event_ids: Iterable[str]) -> dict[str, set[str]]:
        return {event_id: set(self._auth_chain(event_id)) for event_id in event_ids}

    def _auth_chain(self, event_id: str) -> frozenset[str]:
        """The auth chain of one event, memoised; iterative so long chains do not recurse."""
        if event_id in self._auth_chains:
            return self._auth_chains[event_id]
        stack = [event_id]
        in_progress: set[str] = set()
        while stack:
            current = stack[-1]
            if current in self._auth_chains:
                stack.pop()
                continue
            event = self._events.get(current)
            parents = auth_edges(event) if event is not None else []
            pending = [p for p in parents if p not in self._auth_chains and p in self._events]
            if pending and current not in in_progress:
                in_progress.add(current)
                stack.extend(pending)
                continue
            # All parents are done (or, for a malformed cyclic graph, as done as they get).
            chain: set[str] = set()
            for parent in parents:
                chain.add(parent)
                chain |= self._auth_chains.get(parent, frozenset())
            self._auth_chains[current] = frozenset(chain)
            in_progress.discard(current)
            stack.pop()
        return self._auth_chains[event_id]


class EventCache:
    """Events, auth chains and rejection flags read through a `StateResStore` and kept for the
    length of one resolution."""

    def __init__(self, store: StateResStore) -> None:
        self._store = store
        self._events: dict[str, Event] = {}
        self._unknown: set[str] = set()
        self._auth_chains: dict[str, set[str]] = {}
        self._rejected: dict[str, bool] = {}

    def load(self, event_ids: Iterable[str]) -> None:
        wanted = [
            event_id
            for event_id in event_ids
            if event_id not in self._events and event_id not in self._unknown
        ]
        if not wanted:
            return
        found = self._store.get_events(wanted)
        self._events.update(found)
        self._unknown.update(event_id for event_id in wanted if event_id not in found)

    def get(self, event_id: str) -> Event | None:
        self.load([event_id])
        return self._events.get(event_id)

    def __getitem__(self, event_id: str) -> Event:
        event = self.get(event_id)
        if event is None:
            raise KeyError(event_id)
        return event

    def __contains__(self, event_id: object) -> bool:
        return isinstance(event_id, str) and self.get(event_id) is not None

    def load_auth_chains(self, event_ids: Iterable[str]) -> None:
        """Read the auth chains of `event_ids` at once, if the store can."""
        wanted = [event_id for event_id in event_ids if event_id not in self._auth_chains]
        if wanted and isinstance(self._store, BatchedStateResStore):
            chains = self._store.get_auth_chains(wanted)
            for event_id in wanted:
                self._auth_chains[event_id] = set(chains.get(event_id, ()))

    def auth_chain(self, event_id: str) -> set[str]:
        if event_id not in self._auth_chains:
            self._auth_chains[event_id] = self._store.get_auth_chain([event_id])
        return self._auth_chains[event_id]

    def rejected(self, event_ids: Iterable[str]) -> set[str]:
        event_ids = list(event_ids)
        unknown = [event_id for event_id in event_ids if event_id not in self._rejected]
        if unknown:
            rejected = self._store.get_rejected_event_ids(unknown)
            for event_id in unknown:
                self._rejected[event_id] = event_id in rejected
        return {event_id for event_id in event_ids if self._rejected[event_id]}
