"""Whatever order a forked room's PDUs arrive in, the homeserver ends where the protocol says.

Each example takes one scenario of tests/graph/scenarios.py (concurrent power level changes,
a ban against a join, topic races, a kicked moderator's late events; each ending in an event
merging all tips) in room version 10, 11 or 12, delivers its PDUs to
rooms.services.incoming.receive_pdu in an order hypothesis chooses, and compares the stored
room with the reference (tests/graph/reference.py): the current state, the rejected events,
and that no soft-failed or rejected event shows in the timeline /messages and /sync read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rooms.models import Event
from rooms.state import load_state
from tests.graph.delivery import (
    current_state,
    deliver_all,
    fresh_database_state,
    install_keys,
    rejected_event_ids,
    soft_failed_event_ids,
    stored_room,
    timeline_event_ids,
)
from tests.graph.remote import RemoteRoom
from tests.graph.scenarios import SCENARIOS
from tests.graph_check import room_graph_problems

VERSIONS = ("10", "11", "12")
EXAMPLES = settings(max_examples=25, deadline=None, database=None)

# Each scenario is built once per version: its PDUs are the same in every example.
_built: dict[tuple[str, str], RemoteRoom] = {}


def scenario(name: str, version: str) -> RemoteRoom:
    if (name, version) not in _built:
        _built[(name, version)] = SCENARIOS[name](version)
    return _built[(name, version)]


rooms = st.builds(scenario, st.sampled_from(sorted(SCENARIOS)), st.sampled_from(VERSIONS))


@st.composite
def causal_deliveries(draw: st.DrawFn) -> tuple[RemoteRoom, list[str]]:
    """A room and an order of its event IDs in which every event comes after its prev and
    auth events."""
    room = draw(rooms)
    events = room.reference.events
    parents = {e: {*events[e].prev_event_ids, *events[e].auth_event_ids} for e in events}
    order: list[str] = []
    delivered: set[str] = set()
    remaining = list(room.reference.order)
    while remaining:
        ready = [e for e in remaining if parents[e] <= delivered]
        chosen = draw(st.sampled_from(ready))
        order.append(chosen)
        delivered.add(chosen)
        remaining.remove(chosen)
    return room, order


@dataclass(frozen=True)
class Delivery:
    room: RemoteRoom
    order: list[str]
    # Whether receive_pdu first fetches an event's missing prev events from the source
    # (else it asks for the state after them, GET /state_ids).
    fill_gap: bool = True


@st.composite
def any_deliveries(draw: st.DrawFn) -> Delivery:
    """A room and any order of its events after the create event: an event may come before
    its prev or auth events, which the sender's server answers for.

    Either the room's beginning (its events up to START) comes first, in the order it was
    made, as a server knows a room from its join on, and the forks' events follow in any
    order, with or without the pipeline filling gaps from the source (without, the state
    after a missing prev event comes from GET /state_ids). Or everything after the create
    event comes in any order, and the pipeline fills each gap from the source before the
    event is judged against the current state: an event taken in while the current state
    is only the create event would rightly be soft-failed (check 6) and never become a
    forward extremity."""
    room = draw(rooms)
    order = room.reference.order
    if draw(st.booleans()):
        known = order.index(room.id("START")) + 1
        fill_gap = draw(st.booleans())
    else:
        known, fill_gap = 1, True
    return Delivery(room, [*order[:known], *draw(st.permutations(order[known:]))], fill_gap)


def assert_converged(room: RemoteRoom, order: Sequence[str]) -> None:
    delivered = " ".join(room.label(e) for e in order)
    reference = room.reference

    assert room.named_state(current_state(room)) == room.named_state(reference.resolved_state()), (
        f"current state after delivering {delivered}"
    )
    assert room.named_state(load_state(stored_room(room).current_state_group_id)) == (
        room.named_state(reference.resolved_state())
    ), f"the room's current state group after delivering {delivered}"
    # Each event's state group is the state after it (for a rejected one, the state before
    # it, which the reference's state after is too); soft-failed ones are no exception.
    rows = Event.objects.filter(room=stored_room(room), outlier=False)
    for event_id, group_id in rows.values_list("event_id", "state_group_id"):
        assert room.named_state(load_state(group_id)) == room.named_state(
            reference.state_after[event_id]
        ), f"the state after {room.label(event_id)}, delivering {delivered}"
    rejected = rejected_event_ids(room)
    assert room.labelled(rejected) == room.labelled(reference.rejected), (
        f"rejected events after delivering {delivered}"
    )
    stored = set(Event.objects.filter(room=stored_room(room)).values_list("event_id", flat=True))
    assert room.labelled(set(room.pdus) - stored) == set(), f"not stored: {delivered}"
    for event_id in reference.redacted:
        pdu = Event.objects.get(event_id=event_id).pdu
        assert pdu["content"] == reference.events[event_id].content, (
            f"{room.label(event_id)} (content hash mismatch) stored unredacted: {delivered}"
        )
    problems = room_graph_problems()
    assert not problems, f"rooms.graph_check after delivering {delivered}: {problems}"
    hidden = soft_failed_event_ids(room) | rejected
    assert room.labelled(timeline_event_ids(room) & hidden) == set(), (
        f"soft-failed or rejected events in the timeline after delivering {delivered}"
    )


@pytest.mark.django_db
@EXAMPLES
@given(delivery=causal_deliveries())
def test_delivery_in_any_causal_order_converges(delivery: tuple[RemoteRoom, list[str]]) -> None:
    room, order = delivery
    with fresh_database_state():
        install_keys(room)
        deliver_all(room, [room.pdus[e] for e in order])
        assert_converged(room, order)
        # Each event came after its prev events: none is left an outlier.
        outliers = Event.objects.filter(room=stored_room(room), outlier=True)
        assert room.labelled(outliers.values_list("event_id", flat=True)) == set()


@pytest.mark.django_db
@EXAMPLES
@given(delivery=any_deliveries())
def test_delivery_in_any_order_converges(delivery: Delivery) -> None:
    room, order = delivery.room, delivery.order
    with fresh_database_state():
        install_keys(room)
        deliver_all(room, [room.pdus[e] for e in order], fill_gap=delivery.fill_gap)
        assert_converged(room, order)
