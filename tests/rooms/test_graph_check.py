"""rooms.graph_check and ``manage.py check_room_graph``: rooms made through the API are
sound; each kind of damage is reported."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from rooms.graph_check import check_room
from rooms.models import (
    BackwardExtremity,
    CurrentState,
    Event,
    EventAuthEdge,
    ForwardExtremity,
    Membership,
    Room,
)
from tests.conftest import MatrixTestClient, Persona
from tests.graph_check import assert_room_graphs_sound, room_graph_problems, room_graphs_sound
from tests.rooms.helpers import create_room, join, leave, membership_action, send, set_state

__all__ = ["room_graphs_sound"]


def busy_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, version: str
) -> Room:
    """A room with joins, messages, state changes, a kick, a ban and a leave."""
    room_id = create_room(
        api, alice, room_version=version, preset="public_chat", name="graph", topic="first"
    )
    join(api, bob, room_id)
    join(api, carol, room_id)
    send(api, bob, room_id, "hello")
    set_state(api, alice, room_id, "m.room.topic", {"topic": "second"})
    membership_action(api, alice, room_id, "kick", carol)
    join(api, carol, room_id)
    membership_action(api, alice, room_id, "ban", carol)
    send(api, alice, room_id, "bye")
    leave(api, bob, room_id)
    return Room.objects.get(room_id=room_id)


@pytest.mark.parametrize("version", ["1", "10", "11", "12"])
def test_a_room_made_through_the_api_is_sound(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona, version: str
) -> None:
    room = busy_room(api, alice, bob, carol, version)
    assert check_room(room) == []


def test_an_upgraded_room_and_its_successor_are_sound(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room_id = create_room(api, alice, room_version="10", preset="public_chat")
    join(api, bob, room_id)
    response = api.post(
        f"rooms/{room_id}/upgrade", {"new_version": "12"}, token=alice.access_token
    )
    assert response.status == 200, response.body
    assert Room.objects.count() == 2
    assert_room_graphs_sound()


@pytest.mark.graph_unchecked
def test_a_missing_forward_extremity_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    (tip,) = ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
    ForwardExtremity.objects.filter(room=room).delete()
    problems = check_room(room)
    assert f"event {tip} is cited by no event but is not a forward extremity" in problems
    assert "the room has events but no forward extremities" in problems


@pytest.mark.graph_unchecked
def test_a_wrong_extremity_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    older = send(api, alice, room.room_id, "older")
    send(api, alice, room.room_id, "newer")
    ForwardExtremity.objects.create(room=room, event_id=older)
    ForwardExtremity.objects.create(room=room, event_id="$nowhere")
    problems = check_room(room)
    assert f"forward extremity {older} is cited as a prev event" in problems
    assert "forward extremity $nowhere is not a stored event" in problems


@pytest.mark.graph_unchecked
def test_an_outlier_extremity_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    (tip,) = ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
    Event.objects.filter(event_id=tip).update(soft_failed=True)
    problems = check_room(room)
    assert f"forward extremity {tip} was soft-failed" in problems


@pytest.mark.graph_unchecked
def test_wrong_backward_extremities_are_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    hello = send(api, alice, room.room_id, "hello")
    after = Event.objects.get(event_id=send(api, alice, room.room_id, "after"))
    # Known only as an outlier now: the event after it cites an event the graph lacks.
    Event.objects.filter(event_id=hello).update(outlier=True)
    BackwardExtremity.objects.create(room=room, event_id="$nowhere", depth=1)
    problems = check_room(room)
    assert f"missing prev event {hello} is not a backward extremity" in problems
    assert "backward extremity $nowhere is not a missing prev event" in problems
    BackwardExtremity.objects.create(room=room, event_id=hello, depth=after.depth - 1)
    assert (
        f"backward extremity {hello} is at depth {after.depth - 1}, its deepest citer at "
        f"{after.depth}"
    ) in check_room(room)


@pytest.mark.graph_unchecked
def test_a_wrong_current_state_row_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    first_topic = Event.objects.filter(room=room, type="m.room.topic").order_by("pk").first()
    assert first_topic is not None
    current = CurrentState.objects.get(room=room, type="m.room.topic")
    CurrentState.objects.filter(pk=current.pk).update(event_id=first_topic.event_id)
    name = CurrentState.objects.get(room=room, type="m.room.name")
    name.delete()
    problems = check_room(room)
    assert problems == [
        f"the CurrentState rows: m.room.name/ is missing, the extremities' resolved state has "
        f"{name.event_id}",
        f"the CurrentState rows: m.room.topic/ is {first_topic.event_id}, the extremities' "
        f"resolved state has {current.event_id}",
    ]


@pytest.mark.graph_unchecked
def test_a_wrong_current_state_group_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    name_event = Event.objects.get(room=room, type="m.room.name")
    Room.objects.filter(pk=room.pk).update(current_state_group_id=name_event.state_group_id)
    room.refresh_from_db()
    problems = check_room(room)
    assert any(
        p.startswith(f"current state group {name_event.state_group_id}: m.room.topic/")
        for p in problems
    )


@pytest.mark.graph_unchecked
def test_a_missing_auth_event_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    power_levels = Event.objects.get(room=room, type="m.room.power_levels")
    citing = sorted(
        EventAuthEdge.objects.filter(auth_event_id=power_levels.event_id).values_list(
            "event__event_id", flat=True
        )
    )
    assert citing
    Event.objects.filter(pk=power_levels.pk).delete()
    problems = check_room(room)
    for event_id in citing:
        assert f"event {event_id}: auth event {power_levels.event_id} is not stored" in problems


@pytest.mark.graph_unchecked
def test_auth_edges_that_differ_from_the_pdu_are_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "12")
    message = Event.objects.filter(room=room, type="m.room.message").first()
    assert message is not None
    EventAuthEdge.objects.filter(event=message).delete()
    problems = check_room(room)
    assert len(problems) == 1
    assert problems[0].startswith(f"event {message.event_id}: auth edges [] differ from")


@pytest.mark.graph_unchecked
def test_a_rejected_event_without_an_edge_to_an_auth_event_of_its_room_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    """A rejected event may lack the edges to auth events of other rooms (auth rule 2.5),
    not to those of its own."""
    room = busy_room(api, alice, bob, carol, "11")
    message = Event.objects.filter(room=room, type="m.room.message").first()
    assert message is not None
    Event.objects.filter(pk=message.pk).update(rejected_reason="auth events: test")
    power_levels = Event.objects.get(room=room, type="m.room.power_levels")
    EventAuthEdge.objects.filter(event=message, auth_event_id=power_levels.event_id).delete()
    problems = check_room(room)
    assert len(problems) == 1
    assert problems[0].startswith(f"event {message.event_id}: auth edges ")


@pytest.mark.graph_unchecked
def test_a_v12_room_without_its_create_event_is_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "12")
    Event.objects.filter(room=room, type="m.room.create").delete()
    problems = check_room(room)
    assert f"the create event ${room.room_id[1:]} the room ID names is not stored" in problems


@pytest.mark.graph_unchecked
def test_membership_rows_that_disagree_with_the_state_are_reported(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    room = busy_room(api, alice, bob, carol, "11")
    Membership.objects.filter(room=room, user_id=carol.user_id).update(membership="join")
    Membership.objects.filter(room=room, user_id=bob.user_id).delete()
    Membership.objects.create(
        room=room, user_id="@zed:example.org", membership="join", event_id="$z", stream_ordering=1
    )
    problems = check_room(room)
    carol_ban = Membership.objects.get(room=room, user_id=carol.user_id).event_id
    assert problems == [
        f"membership of {bob.user_id}: no row for member event {_member_event(room, bob.user_id)}",
        f"membership of {carol.user_id}: the row says join ({carol_ban}), "
        f"the current state ban ({carol_ban})",
        "membership of @zed:example.org: a row, but no member event in the state",
    ]


def _member_event(room: Room, user_id: str) -> str:
    event = (
        Event.objects.filter(room=room, type="m.room.member", state_key=user_id)
        .order_by("-pk")
        .first()
    )
    assert event is not None
    return event.event_id


@pytest.mark.graph_unchecked
def test_the_command_reports_problems_and_exits_with_status_1(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    sound = busy_room(api, alice, bob, carol, "11")
    broken = Room.objects.get(room_id=create_room(api, alice))
    ForwardExtremity.objects.filter(room=broken).delete()

    out = StringIO()
    call_command("check_room_graph", sound.room_id, stdout=out)
    assert out.getvalue().splitlines() == [
        f"{sound.room_id}: ok",
        "1 room(s) checked, 0 problem(s)",
    ]

    out = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("check_room_graph", stdout=out)
    assert exit_info.value.code == 1
    lines = out.getvalue().splitlines()
    assert f"{sound.room_id}: ok" in lines
    assert f"{broken.room_id}: 2 problem(s)" in lines
    assert lines[-1] == "2 room(s) checked, 2 problem(s)"

    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("check_room_graph", "!nope:example.org", stdout=out)
    assert out.getvalue().splitlines()[0] == "!nope:example.org: unknown room"


def test_the_guard_fixture_checks_rooms_after_the_test(
    room_graphs_sound: None, api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    busy_room(api, alice, bob, carol, "12")


@pytest.mark.graph_unchecked
def test_the_guard_names_the_broken_rooms(
    api: MatrixTestClient, alice: Persona, bob: Persona, carol: Persona
) -> None:
    busy_room(api, alice, bob, carol, "11")
    broken = Room.objects.get(room_id=create_room(api, alice))
    ForwardExtremity.objects.filter(room=broken).delete()
    assert list(room_graph_problems()) == [broken.room_id]
    with pytest.raises(AssertionError, match="room graphs with problems"):
        assert_room_graphs_sound()
