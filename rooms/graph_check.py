"""Consistency checks of a room's stored event graph (``manage.py check_room_graph``).

Each check reads the database and reports what it finds wrong as one readable line; an
empty list means the room is sound. The rules:

- every stored event's auth events are stored too (room version 12: so is the create
  event the room ID names), and its auth edge rows are the ``auth_events`` of its PDU,
  but for those of another room, which a rejected event may cite (auth rule 2.5) and has
  no edge to (rooms.services.incoming);
- the forward extremities are stored events that are neither outliers, rejected nor
  soft-failed, and are exactly those such events that no other such event cites as a
  prev event, directly or through events that are rejected or soft-failed (backfilled
  history is never a forward extremity);
- the current state, both the CurrentState rows and the map of
  ``Room.current_state_group``, is the resolution of the extremities' states;
- the Membership rows are the ``m.room.member`` entries of the current state, except a
  row that points at an out-of-band membership of its user (rooms.storage: an invite
  received over federation, a knock through another server, their rejection or
  rescinding; the room's graph and state need not be here at all, and the auth events
  such an event cites need not be stored).
- the backward extremities are exactly the prev events that events in the graph (not
  outliers, not rejected) cite and the graph does not hold, each at the depth of its
  deepest citing event.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.auth_rules import CREATE, MEMBER, StateKey
from protocol.events import Event as PDUEvent
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.graph_store import resolve_groups
from rooms.models import (
    BackwardExtremity,
    CurrentState,
    Event,
    EventAuthEdge,
    EventEdge,
    ForwardExtremity,
    Room,
)
from rooms.state import load_state
from rooms.storage import out_of_band_q

# Events read at a time when comparing auth edges with the PDUs.
_BATCH = 500


def check_room(room: Room) -> list[str]:
    """Every problem found in the room's graph, current state and membership view."""
    problems = check_auth_events(room)
    problems += check_forward_extremities(room)
    problems += check_current_state(room)
    problems += check_memberships(room)
    problems += check_backward_extremities(room)
    return problems


def check_auth_events(room: Room) -> list[str]:
    problems: list[str] = []
    stored = Event.objects.filter(room=room)
    missing = (
        EventAuthEdge.objects.filter(event__room=room)
        .exclude(event__outlier=True, event__stream_ordering__isnull=False)
        .exclude(auth_event_id__in=stored.values("event_id"))
        .values_list("event__event_id", "auth_event_id")
        .order_by("event__event_id", "auth_event_id")
    )
    for event_id, auth_event_id in missing:
        problems.append(f"event {event_id}: auth event {auth_event_id} is not stored")
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    if room_version.room_id_is_create_event_hash and _has_graph(room):
        create_event_id = "$" + room.room_id[1:]
        if not stored.filter(event_id=create_event_id).exists():
            problems.append(f"the create event {create_event_id} the room ID names is not stored")
    # The edge rows are what auth chains are walked by: they must say what the PDUs say.
    edges: dict[int, list[str]] = {}
    for event_pk, auth_event_id in EventAuthEdge.objects.filter(event__room=room).values_list(
        "event_id", "auth_event_id"
    ):
        edges.setdefault(event_pk, []).append(auth_event_id)
    # Rejected events whose edges leave out some of their auth events: sound if those
    # are all of other rooms (read at once below).
    left_out: list[tuple[str, list[str], list[str]]] = []
    rows = stored.order_by("pk").values_list("pk", "event_id", "type", "rejected_reason", "pdu")
    for pk, event_id, etype, rejected_reason, pdu in rows.iterator(chunk_size=_BATCH):
        cited = sorted(PDUEvent(pdu, room_version, event_id=event_id).auth_event_ids)
        have = sorted(edges.get(pk, []))
        if cited != have:
            if rejected_reason is not None and set(have) < set(cited):
                left_out.append((event_id, have, cited))
            else:
                problems.append(
                    f"event {event_id}: auth edges {have} differ from its auth_events {cited}"
                )
        # Only the create event may cite no auth events at all (before room version 12).
        if not cited and etype != CREATE and not room_version.room_id_is_create_event_hash:
            problems.append(f"event {event_id} cites no auth events")
    foreign = set(
        Event.objects.filter(
            event_id__in={aid for _e, have, cited in left_out for aid in set(cited) - set(have)}
        )
        .exclude(room=room)
        .values_list("event_id", flat=True)
    )
    for event_id, have, cited in left_out:
        if not set(cited) - set(have) <= foreign:
            problems.append(
                f"event {event_id}: auth edges {have} differ from its auth_events {cited}"
            )
    return problems


def _has_graph(room: Room) -> bool:
    """Some of the room's graph is stored here: an event that is not an out-of-band
    membership."""
    return Event.objects.filter(room=room).exclude(out_of_band_q()).exists()


def expected_forward_extremities(room: Room) -> set[str]:
    """The events that should be the room's forward extremities: shown events (not
    outliers, not rejected, not soft-failed, not backfilled) that no shown event cites,
    directly or through events that are not shown (rooms.services.graph)."""
    rows = Event.objects.filter(room=room, outlier=False).values_list(
        "pk", "event_id", "rejected_reason", "soft_failed", "stream_ordering"
    )
    shown: dict[int, str] = {}
    hidden: dict[str, int] = {}
    backfilled: set[str] = set()
    for pk, event_id, rejected_reason, soft_failed, stream_ordering in rows:
        if rejected_reason is None and not soft_failed:
            shown[pk] = event_id
            if stream_ordering is not None and stream_ordering < 0:
                backfilled.add(event_id)
        else:
            hidden[event_id] = pk
    prevs: dict[int, list[str]] = {}
    for pk, prev_event_id in EventEdge.objects.filter(
        event__room=room, event__outlier=False
    ).values_list("event_id", "prev_event_id"):
        prevs.setdefault(pk, []).append(prev_event_id)
    covered = {prev for pk in shown for prev in prevs.get(pk, ())}
    todo = [event_id for event_id in covered if event_id in hidden]
    while todo:
        for prev in prevs.get(hidden[todo.pop()], ()):
            if prev not in covered:
                covered.add(prev)
                if prev in hidden:
                    todo.append(prev)
    return set(shown.values()) - covered - backfilled


def check_forward_extremities(room: Room) -> list[str]:
    problems: list[str] = []
    recorded = set(ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True))
    rows = {
        row[0]: row[1:]
        for row in Event.objects.filter(room=room, event_id__in=recorded).values_list(
            "event_id", "outlier", "rejected_reason", "soft_failed"
        )
    }
    for event_id in sorted(recorded):
        if event_id not in rows:
            problems.append(f"forward extremity {event_id} is not a stored event")
            continue
        outlier, rejected_reason, soft_failed = rows[event_id]
        if outlier:
            problems.append(f"forward extremity {event_id} is an outlier")
        if rejected_reason is not None:
            problems.append(f"forward extremity {event_id} was rejected ({rejected_reason})")
        if soft_failed:
            problems.append(f"forward extremity {event_id} was soft-failed")
    expected = expected_forward_extremities(room)
    for event_id in sorted(expected - recorded):
        problems.append(f"event {event_id} is cited by no event but is not a forward extremity")
    for event_id in sorted(recorded - expected):
        # (Those not stored, outliers, rejected or soft-failed are reported above.)
        if rows.get(event_id) == (False, None, False):
            problems.append(f"forward extremity {event_id} is cited as a prev event")
    if not recorded and _has_graph(room):
        problems.append("the room has events but no forward extremities")
    return problems


def expected_backward_extremities(room: Room) -> dict[str, int]:
    """The prev events the graph cites and does not hold, to the depth of the deepest
    event citing each (rooms.services.graph.record_backward_extremities)."""
    held = set(Event.objects.filter(room=room, outlier=False).values_list("event_id", flat=True))
    expected: dict[str, int] = {}
    for prev_event_id, depth in EventEdge.objects.filter(
        event__room=room, event__outlier=False, event__rejected_reason__isnull=True
    ).values_list("prev_event_id", "event__depth"):
        if prev_event_id not in held:
            expected[prev_event_id] = max(depth, expected.get(prev_event_id, depth))
    return expected


def check_backward_extremities(room: Room) -> list[str]:
    recorded = dict(BackwardExtremity.objects.filter(room=room).values_list("event_id", "depth"))
    expected = expected_backward_extremities(room)
    problems = []
    for event_id in sorted(recorded.keys() | expected.keys()):
        have, want = recorded.get(event_id), expected.get(event_id)
        if want is None:
            problems.append(f"backward extremity {event_id} is not a missing prev event")
        elif have is None:
            problems.append(f"missing prev event {event_id} is not a backward extremity")
        elif have != want:
            problems.append(
                f"backward extremity {event_id} is at depth {have}, its deepest citer at {want}"
            )
    return problems


def check_current_state(room: Room) -> list[str]:
    problems: list[str] = []
    extremity_ids = ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
    groups = dict(
        Event.objects.filter(room=room, event_id__in=extremity_ids).values_list(
            "event_id", "state_group_id"
        )
    )
    for event_id, group_id in sorted(groups.items()):
        if group_id is None:
            problems.append(f"forward extremity {event_id} has no state group")
    group_ids = sorted({group_id for group_id in groups.values() if group_id is not None})
    if not group_ids:
        return problems
    resolved = resolve_groups(room, group_ids)
    rows = {
        (etype, skey): event_id
        for etype, skey, event_id in CurrentState.objects.filter(room=room).values_list(
            "type", "state_key", "event_id"
        )
    }
    problems += _state_differences("the CurrentState rows", rows, resolved)
    if room.current_state_group_id is None:
        problems.append("the room has no current state group")
    else:
        group_state = load_state(room.current_state_group_id)
        problems += _state_differences(
            f"current state group {room.current_state_group_id}", group_state, resolved
        )
    return problems


def _state_differences(
    what: str, actual: Mapping[StateKey, str], resolved: Mapping[StateKey, str]
) -> list[str]:
    problems = []
    for key in sorted(actual.keys() | resolved.keys()):
        have, want = actual.get(key), resolved.get(key)
        if have != want:
            problems.append(
                f"{what}: {key[0]}/{key[1]} is {have or 'missing'}, "
                f"the extremities' resolved state has {want or 'none'}"
            )
    return problems


def check_memberships(room: Room) -> list[str]:
    problems: list[str] = []
    state = load_state(room.current_state_group_id)
    members = {skey: event_id for (etype, skey), event_id in state.items() if etype == MEMBER}
    memberships = dict(
        Event.objects.filter(room=room, event_id__in=members.values()).values_list(
            "event_id", "membership"
        )
    )
    rows = {
        user_id: (membership, event_id)
        for user_id, membership, event_id in room.memberships.values_list(
            "user_id", "membership", "event_id"
        )
    }
    out_of_band = {
        event_id: (state_key, membership)
        for event_id, state_key, membership in Event.objects.filter(
            out_of_band_q(), room=room, event_id__in=[e for _, e in rows.values()]
        ).values_list("event_id", "state_key", "membership")
    }
    for user_id in sorted(members.keys() | rows.keys()):
        row = rows.get(user_id)
        if row is not None and row[1] in out_of_band:
            state_key, membership = out_of_band[row[1]]
            if (state_key, membership or "leave") != (user_id, row[0]):
                problems.append(
                    f"membership of {user_id}: the row says {row[0]} ({row[1]}), "
                    f"that out-of-band event is the {membership} of {state_key}"
                )
            continue
        event_id = members.get(user_id)
        if event_id is None:
            problems.append(f"membership of {user_id}: a row, but no member event in the state")
            continue
        if event_id not in memberships:
            problems.append(f"membership of {user_id}: member event {event_id} is not stored")
            continue
        want = (memberships[event_id] or "leave", event_id)
        have = rows.get(user_id)
        if have is None:
            problems.append(f"membership of {user_id}: no row for member event {event_id}")
        elif have != want:
            problems.append(
                f"membership of {user_id}: the row says {have[0]} ({have[1]}), "
                f"the current state {want[0]} ({want[1]})"
            )
    return problems
