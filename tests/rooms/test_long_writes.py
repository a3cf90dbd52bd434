"""A long write must not stall every other write on the server (issue 15, item 6).

Two mechanisms, each tested here: an event takes its stream position last, so a write
in one room that is still working holds no lock another room's writer needs
(streams.positions); and createRoom sends its invites one transaction each, so a room
created with thousands of invitees lets other writers in between (SQLite has one writer
at a time: there, short transactions are what matters).

The concurrency tests commit for real (``transaction=True``) from threads, each with its
own client and connection. Nothing is timed: a writer that would wait for the other is
seen by the other's bounded wait running out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from rooms import state
from rooms.models import Event, Membership, Room
from rooms.services import creation, events
from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, room_path, send, state_map

# Long enough never to run out on a slow machine when nothing blocks.
WAIT_S = 30


def in_thread(
    job: Callable[[MatrixTestClient], Response], name: str = "writer"
) -> tuple[threading.Thread, list[Any]]:
    """Start ``job`` in a thread with its own client and connection; its result (or
    exception) lands in the returned list."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(job(MatrixTestClient()))
        except BaseException as exc:  # re-raised by the test
            result.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name=name)
    thread.start()
    return thread, result


def outcome(thread: threading.Thread, result: list[Any]) -> Response:
    thread.join(timeout=120)
    assert not thread.is_alive(), "a writer hung"
    if isinstance(result[0], BaseException):
        raise result[0]
    response: Response = result[0]
    return response


def message(who: Persona, room: str, txn_id: str) -> Callable[[MatrixTestClient], Response]:
    path = room_path(room, "send", "m.room.message", txn_id)
    return lambda client: client.put(path, {"body": txn_id}, token=who.access_token)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite has one writer at a time by design"
)
def test_a_send_in_another_room_goes_through_while_a_write_is_in_progress(
    api: MatrixTestClient, alice: Persona, bob: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_a = create_room(api, alice)
    room_b = create_room(api, bob)
    paused = threading.Event()
    b_done = threading.Event()
    waited_out: list[bool] = []
    create_group = events.create_state_group

    def slow_create_state_group(*args: Any, **kwargs: Any) -> Any:
        # alice's state event pauses in the middle of its write, with its room locked and
        # its rows half written, until bob's send in another room is done.
        if threading.current_thread().name == "writer-a":
            paused.set()
            waited_out.append(not b_done.wait(timeout=WAIT_S))
        return create_group(*args, **kwargs)

    monkeypatch.setattr(events, "create_state_group", slow_create_state_group)
    topic_path = room_path(room_a, "state", "m.room.topic", "")
    thread_a, result_a = in_thread(
        lambda client: client.put(topic_path, {"topic": "slow"}, token=alice.access_token),
        name="writer-a",
    )
    assert paused.wait(timeout=WAIT_S)

    thread_b, result_b = in_thread(message(bob, room_b, "b1"))
    response_b = outcome(thread_b, result_b)
    b_done.set()
    response_a = outcome(thread_a, result_a)

    assert response_b.status == 200, response_b.body
    assert response_a.status == 200, response_a.body
    assert waited_out == [False], "bob's send waited for alice's write in another room"
    # Positions follow commit order: bob's event committed first, so it has the lower one.
    orders = dict(
        Event.objects.filter(
            event_id__in=[response_a.body["event_id"], response_b.body["event_id"]]
        ).values_list("event_id", "stream_ordering")
    )
    assert orders[response_b.body["event_id"]] < orders[response_a.body["event_id"]]


@pytest.mark.django_db(transaction=True)
def test_other_writes_go_through_between_the_invites_of_a_big_create_room(
    api: MatrixTestClient, alice: Persona, bob: Persona, monkeypatch: pytest.MonkeyPatch
) -> None:
    room_b = create_room(api, bob)
    invitees = [f"@invitee{n}:{api_server_name()}" for n in range(12)]
    paused = threading.Event()
    b_done = threading.Event()
    waited_out: list[bool] = []
    sent: list[str] = []
    send_invite = creation._send_invite

    def pausing_send_invite(room_id: str, spec: creation.RoomSpec, invitee: str) -> None:
        # Halfway through the invites, between two of their transactions, wait for bob.
        if len(sent) == len(invitees) // 2:
            paused.set()
            waited_out.append(not b_done.wait(timeout=WAIT_S))
        send_invite(room_id, spec, invitee)
        sent.append(invitee)

    monkeypatch.setattr(creation, "_send_invite", pausing_send_invite)
    thread_a, result_a = in_thread(
        lambda client: client.post("createRoom", {"invite": invitees}, token=alice.access_token)
    )
    assert paused.wait(timeout=WAIT_S)

    response_b = outcome(*in_thread(message(bob, room_b, "between")))
    b_done.set()
    response_a = outcome(thread_a, result_a)

    assert response_b.status == 200, response_b.body
    assert response_a.status == 200, response_a.body
    assert waited_out == [False], "bob's send waited for the whole createRoom"
    room_a = response_a.body["room_id"]
    invited = Membership.objects.filter(room__room_id=room_a, membership="invite")
    assert sorted(invited.values_list("user_id", flat=True)) == sorted(invitees)
    # bob's message sits between the invites in the stream.
    b_order = Event.objects.get(event_id=response_b.body["event_id"]).stream_ordering
    invite_orders = list(
        Event.objects.filter(
            room__room_id=room_a, type="m.room.member", membership="invite"
        ).values_list("stream_ordering", flat=True)
    )
    assert min(invite_orders) < b_order < max(invite_orders)


def api_server_name() -> str:
    from django.conf import settings

    return str(settings.SERVER_NAME)


# -- createRoom with many invitees -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_create_room_with_2000_invitees_invites_them_all(
    api: MatrixTestClient, alice: Persona
) -> None:
    invitees = [f"@member{n}:{api_server_name()}" for n in range(2000)]

    room = create_room(api, alice, name="everyone", invite=invitees)

    invited = Membership.objects.filter(room__room_id=room, membership="invite")
    assert invited.count() == 2000
    assert set(invited.values_list("user_id", flat=True)) == set(invitees)
    current = state_map(api, alice, room)
    assert all(
        current[("m.room.member", user)]["content"]["membership"] == "invite" for user in invitees
    )
    assert current[("m.room.name", "")]["content"] == {"name": "everyone"}
    # The room still works, and its state maps never filled the process's state cache
    # past its bound.
    send(api, alice, room, "hello everyone")
    assert state._state_cache.weight <= state._CACHE_ENTRIES


def test_an_invitee_named_twice_is_invited_once(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, invite=[bob.user_id, bob.user_id])

    invites = Event.objects.filter(room__room_id=room, type="m.room.member", state_key=bob.user_id)
    assert invites.count() == 1


def test_more_invitees_than_the_cap_are_refused_and_no_room_is_made(
    api: MatrixTestClient, alice: Persona
) -> None:
    invitees = [f"@m{n}:{api_server_name()}" for n in range(creation.MAX_INVITES + 1)]
    rooms_before = Room.objects.count()

    response = api.post("createRoom", {"invite": invitees}, token=alice.access_token)

    assert response.status == 400, response.body
    assert response.errcode == "M_INVALID_PARAM"
    assert str(creation.MAX_INVITES) in response.body["error"]
    assert Room.objects.count() == rooms_before


def test_the_cap_itself_is_allowed_to_be_asked_for(api: MatrixTestClient, alice: Persona) -> None:
    creation.check_invites([f"@m{n}:{api_server_name()}" for n in range(creation.MAX_INVITES)])


def test_a_refused_first_invite_leaves_no_room_behind(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    rooms_before = Room.objects.count()

    response = api.post(
        "createRoom",
        {
            "invite": [bob.user_id, f"@other:{api_server_name()}"],
            "power_level_content_override": {"invite": 101},
            "room_version": "10",
        },
        token=alice.access_token,
    )

    assert response.status == 400, response.body
    assert response.errcode == "M_INVALID_ROOM_STATE"
    assert Room.objects.count() == rooms_before
