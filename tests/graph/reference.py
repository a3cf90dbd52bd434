"""What a room's event graph must converge to, computed by protocol/ alone (no Django).

Given a room's PDUs, the reference follows content/server-server-api.md#checks-performed-on-
receipt-of-a-pdu for each event in causal order, the way any correct server must:

* an event whose content hash does not match is used in its redacted form (check 3);
* it is rejected if it fails the auth rules against its own auth events (check 4), or against
  the state before it (check 5), that state being the resolution of the states after its prev
  events;
* the state after a state event that is not rejected includes it; the state after a rejected
  event is the state before it.

The room's final state is the resolution of the states after its tips: the non-rejected events
that no other non-rejected event cites as a prev event. Soft failure (check 6, against the
current state at the time of receipt) depends on the order events arrive in, so it is no part of
the reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from protocol.auth_rules import (
    CREATE_KEY,
    AuthError,
    StateKey,
    auth_types_for,
    check_auth_rules,
    check_event_auth_events,
)
from protocol.events import Event
from protocol.hashing import check_content_hash
from protocol.redaction import redact_event
from protocol.room_versions import RoomVersion
from protocol.state_res import InMemoryStateResStore, resolve_state


class Reference:
    """A room graph checked event by event, in causal order (`add`)."""

    def __init__(self, room_version: RoomVersion) -> None:
        if room_version.event_format.event_id_in_pdu:
            raise ValueError("the reference computes event IDs: room version 3 or later")
        self.room_version = room_version
        self.store = InMemoryStateResStore()
        # Each event as the checks see it: redacted when its content hash does not match.
        self.events: dict[str, Event] = {}
        self.order: list[str] = []
        self.state_before: dict[str, dict[StateKey, str]] = {}
        self.state_after: dict[str, dict[StateKey, str]] = {}
        # event ID -> why it was rejected.
        self.rejected: dict[str, str] = {}
        self.redacted: set[str] = set()

    def add(self, pdu: Mapping[str, Any]) -> Event:
        """Check one PDU whose prev and auth events were all added before it."""
        event = Event(pdu, self.room_version)
        if not check_content_hash(pdu):
            event = Event(redact_event(pdu, self.room_version), self.room_version)
            self.redacted.add(event.event_id)
        event_id = event.event_id
        if event_id in self.events:
            raise ValueError(f"{event_id} was added already")
        missing = [p for p in event.prev_event_ids if p not in self.events]
        if missing:
            raise ValueError(f"{event_id}: prev events {missing} not added yet")

        state_before = self.state_for_prevs(event.prev_event_ids)
        reason = self._auth_events_failure(event) or self._state_failure(event, state_before)

        self.events[event_id] = event
        self.order.append(event_id)
        self.store.add(event, rejected=reason is not None)
        self.state_before[event_id] = state_before
        state_after = dict(state_before)
        if reason is not None:
            self.rejected[event_id] = reason
        elif event.is_state():
            state_after[event.state_key_tuple()] = event_id
        self.state_after[event_id] = state_after
        return event

    def state_for_prevs(self, prev_event_ids: Sequence[str]) -> dict[StateKey, str]:
        """The state an event with these prev events sees: the resolution of their states."""
        return resolve_state(
            self.room_version, [self.state_after[p] for p in prev_event_ids], self.store
        )

    def _auth_events_failure(self, event: Event) -> str | None:
        """Check 4: the event against exactly the auth events it cites."""
        auth_map = self.store.get_events(event.auth_event_ids)
        if self.room_version.room_id_is_create_event_hash and event.type != "m.room.create":
            # v12: the create event is implied by the room ID, not cited.
            auth_map.update(self.store.get_events(["$" + event.room_id[1:]]))
        try:
            check_event_auth_events(
                self.room_version, event, auth_map, rejected_event_ids=set(self.rejected)
            )
        except AuthError as e:
            return f"auth events: {e.reason}"
        return None

    def _state_failure(self, event: Event, state_before: Mapping[StateKey, str]) -> str | None:
        """Check 5: the event against the state before it."""
        if event.type == "m.room.create":
            return None
        keys = auth_types_for(self.room_version, event) | {CREATE_KEY}
        auth_state = {key: self.events[state_before[key]] for key in keys if key in state_before}
        try:
            check_auth_rules(self.room_version, event, auth_state)
        except AuthError as e:
            return f"state before: {e.reason}"
        return None

    def tips(self) -> list[str]:
        """The non-rejected events no other non-rejected event cites as a prev event, in the
        order they were added."""
        accepted = [e for e in self.order if e not in self.rejected]
        cited = {p for e in accepted for p in self.events[e].prev_event_ids}
        return [e for e in accepted if e not in cited]

    def resolved_state(self) -> dict[StateKey, str]:
        """The room's state: the resolution of the states after all tips."""
        return self.state_for_prevs(self.tips())

    def auth_chain_ids(self, event_ids: Iterable[str]) -> set[str]:
        return self.store.get_auth_chain(event_ids)


def causal_order(pdus: Iterable[Mapping[str, Any]], room_version: RoomVersion) -> list[dict]:
    """`pdus` sorted so every event comes after its prev and auth events among them (Kahn's
    algorithm, ties by depth then event ID)."""
    by_id = {Event(pdu, room_version).event_id: dict(pdu) for pdu in pdus}
    parents = {
        event_id: {
            p
            for p in [
                *Event(pdu, room_version).prev_event_ids,
                *Event(pdu, room_version).auth_event_ids,
            ]
            if p in by_id
        }
        for event_id, pdu in by_id.items()
    }
    ordered: list[dict] = []
    done: set[str] = set()
    while len(done) < len(by_id):
        ready = [e for e in by_id if e not in done and parents[e] <= done]
        if not ready:
            raise ValueError("the events' prev and auth edges form a cycle")
        event_id = min(ready, key=lambda e: (by_id[e]["depth"], e))
        ordered.append(by_id[event_id])
        done.add(event_id)
    return ordered


def compute_reference(room_version: RoomVersion, pdus: Iterable[Mapping[str, Any]]) -> Reference:
    """The reference for a room's PDUs given in any order."""
    reference = Reference(room_version)
    for pdu in causal_order(pdus, room_version):
        reference.add(pdu)
    return reference
