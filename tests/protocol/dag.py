"""Build room DAGs by hand for auth rule and state resolution tests.

Events get readable, explicit event IDs (`$NAME:example.com` in room versions 1 and 2, `$NAME`
later), so nothing depends on hashing. `RoomDag` works like a small homeserver that trusts
everything it is given: each event's auth events are selected from the state before it (the
resolution of the states after its prev events), and the state after a state event includes it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from protocol.auth_rules import StateKey, auth_types_for_event
from protocol.events import Event
from protocol.room_versions import RoomVersion
from protocol.state_res import InMemoryStateResStore, resolve_state

ALICE = "@alice:example.com"
BOB = "@bob:example.com"
CHARLIE = "@charlie:example.com"
EVELYN = "@evelyn:example.com"
ZARA = "@zara:example.com"
REMOTE_RITA = "@rita:remote.example"

SERVER = "example.com"
ROOM_ID = "!room:example.com"

_timestamps = itertools.count(1000)


def event_id_for(room_version: RoomVersion, name: str) -> str:
    """A readable event ID; room versions 1 and 2 need the `:server` suffix."""
    if room_version.event_format.event_id_in_pdu:
        return f"${name}:{SERVER}"
    return f"${name}"


def room_id_for(room_version: RoomVersion, create_name: str = "CREATE") -> str:
    """v12: the room ID is the create event ID with `!` for `$`; earlier a fixed room ID."""
    if room_version.room_id_is_create_event_hash:
        return "!" + event_id_for(room_version, create_name)[1:]
    return ROOM_ID


def make_event(
    room_version: RoomVersion,
    event_id: str,
    event_type: str,
    sender: str,
    *,
    state_key: str | None = None,
    content: Mapping[str, Any] | None = None,
    room_id: str | None = None,
    auth_events: Sequence[str] = (),
    prev_events: Sequence[str] = (),
    origin_server_ts: int | None = None,
    depth: int = 1,
    redacts: str | None = None,
    signatures: Mapping[str, Any] | None = None,
) -> Event:
    """One PDU in the room version's format, wrapped with an explicit event ID."""
    pdu: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": dict(content or {}),
        "origin_server_ts": next(_timestamps) if origin_server_ts is None else origin_server_ts,
        "depth": depth,
        "hashes": {"sha256": "not checked here"},
        "signatures": dict(signatures or {_domain(sender): {"ed25519:a": "not checked"}}),
    }
    if room_version.event_format.event_references_are_pairs:
        pdu["event_id"] = event_id
        pdu["auth_events"] = [[e, {"sha256": "x"}] for e in auth_events]
        pdu["prev_events"] = [[e, {"sha256": "x"}] for e in prev_events]
    else:
        pdu["auth_events"] = list(auth_events)
        pdu["prev_events"] = list(prev_events)
    is_v12_create = room_version.room_id_is_create_event_hash and event_type == "m.room.create"
    if not is_v12_create:
        pdu["room_id"] = room_id if room_id is not None else room_id_for(room_version)
    if state_key is not None:
        pdu["state_key"] = state_key
    if redacts is not None:
        if room_version.redacts_in_content:
            pdu["content"]["redacts"] = redacts
        else:
            pdu["redacts"] = redacts
    return Event(pdu, room_version, event_id=event_id)


def state_map(*events: Event) -> dict[StateKey, Event]:
    """A state map of events, later events winning."""
    return {event.state_key_tuple(): event for event in events}


def _domain(user_id: str) -> str:
    return user_id.partition(":")[2]


class RoomDag:
    """A room's event graph, built one named event at a time."""

    def __init__(self, room_version: RoomVersion) -> None:
        self.room_version = room_version
        self.room_id = room_id_for(room_version)
        self.store = InMemoryStateResStore()
        self.events: dict[str, Event] = {}
        self.names: dict[str, str] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        self.prev_names: dict[str, list[str]] = {}
        self._last: str | None = None

    def id(self, name: str) -> str:
        return self.events[name].event_id

    def add(
        self,
        name: str,
        event_type: str,
        sender: str,
        *,
        state_key: str | None = None,
        content: Mapping[str, Any] | None = None,
        prev: Sequence[str] | None = None,
        origin_server_ts: int | None = None,
    ) -> Event:
        """Add an event after `prev` (by name; default: the last event added)."""
        if prev is None:
            prev = [self._last] if self._last is not None else []
        content = dict(content or {})
        state_before = self.state_before(prev)
        auth_types = auth_types_for_event(
            self.room_version, event_type, sender, state_key, content
        )
        auth_events = sorted(state_before[key] for key in auth_types if key in state_before)
        depth = max((self.events[p].depth for p in prev), default=0) + 1
        event = make_event(
            self.room_version,
            event_id_for(self.room_version, name),
            event_type,
            sender,
            state_key=state_key,
            content=content,
            room_id=self.room_id,
            auth_events=auth_events,
            prev_events=[self.id(p) for p in prev],
            origin_server_ts=origin_server_ts,
            depth=depth,
        )
        self.events[name] = event
        self.names[event.event_id] = name
        self.store.add(event)
        state_after = dict(state_before)
        if state_key is not None:
            state_after[(event_type, state_key)] = event.event_id
        self.state_after[name] = state_after
        self.prev_names[name] = list(prev)
        self._last = name
        return event

    def state_before(self, prev: Sequence[str]) -> dict[StateKey, str]:
        """The resolution of the states after each of `prev`."""
        return resolve_state(self.room_version, [self.state_after[p] for p in prev], self.store)

    def resolve(self, *names: str) -> dict[StateKey, str]:
        """The state a new event with prev events `names` would see."""
        return self.state_before(list(names))

    def named(self, state: Mapping[StateKey, str]) -> dict[StateKey, str]:
        """`state` with event IDs replaced by the names they were added under."""
        return {key: self.names.get(event_id, event_id) for key, event_id in state.items()}

    def power_levels(self, users: Mapping[str, int], **extra: Any) -> dict[str, Any]:
        """Power levels content giving `users` their levels, plus the creator alice at 100
        before room version 12 (where creators may not be listed)."""
        all_users = dict(users)
        if not self.room_version.creators_have_infinite_power:
            all_users = {ALICE: 100, **all_users}
        return {"users": all_users, **extra}


def member(membership: str, **extra: Any) -> dict[str, Any]:
    return {"membership": membership, **extra}


def initial_room(room_version: RoomVersion) -> RoomDag:
    """The room every Synapse-style scenario starts from.

    alice creates a public room and holds power level 100 (v12: as creator); bob, charlie and
    zara join; zara sends START. Scenarios hang events off START and merge at END.
    """
    dag = RoomDag(room_version)
    create_content: dict[str, Any] = {"room_version": room_version.identifier}
    if not room_version.implicit_room_creator:
        create_content["creator"] = ALICE
    dag.add("CREATE", "m.room.create", ALICE, state_key="", content=create_content, prev=[])
    dag.add("IMA", "m.room.member", ALICE, state_key=ALICE, content=member("join"))
    dag.add("IPOWER", "m.room.power_levels", ALICE, state_key="", content=dag.power_levels({}))
    dag.add("IJR", "m.room.join_rules", ALICE, state_key="", content={"join_rule": "public"})
    dag.add("IMB", "m.room.member", BOB, state_key=BOB, content=member("join"))
    dag.add("IMC", "m.room.member", CHARLIE, state_key=CHARLIE, content=member("join"))
    dag.add("IMZ", "m.room.member", ZARA, state_key=ZARA, content=member("join"))
    dag.add("START", "m.room.message", ZARA, content={"body": "start"})
    return dag
