"""Concurrent writers to one room: the room lock serialises them, nothing is lost or
doubled (STYLE, "Hot paths": one transaction per send, the room row as mutex).

These tests commit for real (``transaction=True``) and send from threads, each with its
own Django test client and database connection. On SQLite the IMMEDIATE transaction
mode serialises writers; on PostgreSQL the room row lock does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from rooms.models import Event, EventEdge, ForwardExtremity, Membership
from tests.conftest import MatrixTestClient, Persona, Response
from tests.rooms.helpers import create_room, join, room_path, state_map

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def run_concurrently(jobs: list[Callable[[MatrixTestClient], Response]]) -> list[Response]:
    """Run each job in its own thread with its own client, all released at once."""
    barrier = threading.Barrier(len(jobs))
    results: list[Response | BaseException | None] = [None] * len(jobs)

    def worker(index: int) -> None:
        client = MatrixTestClient()
        try:
            barrier.wait(timeout=30)
            results[index] = jobs[index](client)
        except BaseException as exc:  # reported below, in the test's thread
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a sender hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, Response)]


def sender(
    token: str, room: str, txn_id: str, body: Any
) -> Callable[[MatrixTestClient], Response]:
    path = room_path(room, "send", "m.room.message", txn_id)
    return lambda client: client.put(path, {"msgtype": "m.text", "body": body}, token=token)


def assert_linear_dag(room: str) -> None:
    """One forward extremity; each event after the create cites exactly the one before it."""
    rows = list(
        Event.objects.filter(room__room_id=room)
        .order_by("stream_ordering")
        .values_list("event_id", "stream_ordering", "depth")
    )
    assert len({so for _, so, _ in rows}) == len(rows)
    assert [depth for _, _, depth in rows] == list(range(1, len(rows) + 1))
    extremities = list(ForwardExtremity.objects.filter(room__room_id=room))
    assert [e.event_id for e in extremities] == [rows[-1][0]]
    for (previous, _, _), (event_id, _, _) in itertools.pairwise(rows):
        prev_ids = list(
            EventEdge.objects.filter(event__event_id=event_id).values_list(
                "prev_event_id", flat=True
            )
        )
        assert prev_ids == [previous]


def test_many_concurrent_sends_all_persist_in_one_line(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    events_before = Event.objects.filter(room__room_id=room).count()
    jobs = [
        sender(who.access_token, room, f"t{n}", f"{who.localpart} {n}")
        for n in range(THREADS // 2)
        for who in (alice, bob)
    ]

    responses = run_concurrently(jobs)

    assert [r.status for r in responses] == [200] * len(jobs)
    event_ids = {r.body["event_id"] for r in responses}
    assert len(event_ids) == len(jobs)
    stored = Event.objects.filter(room__room_id=room, type="m.room.message")
    assert set(stored.values_list("event_id", flat=True)) == event_ids
    assert sorted(e.pdu["content"]["body"] for e in stored) == sorted(
        f"{who} {n}" for n in range(THREADS // 2) for who in ("alice", "bob")
    )
    assert Event.objects.filter(room__room_id=room).count() == events_before + len(jobs)
    assert_linear_dag(room)


def test_a_transaction_retried_concurrently_persists_once(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice)
    jobs = [sender(alice.access_token, room, "retried", "only once") for _ in range(THREADS)]

    responses = run_concurrently(jobs)

    assert [r.status for r in responses] == [200] * THREADS
    assert len({r.body["event_id"] for r in responses}) == 1
    assert Event.objects.filter(room__room_id=room, txn_id="retried").count() == 1
    assert_linear_dag(room)


def test_concurrent_retries_mixed_with_new_sends(
    api: MatrixTestClient, alice: Persona, bob: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    join(api, bob, room)
    retries = [sender(alice.access_token, room, "same", "retry") for _ in range(THREADS // 2)]
    fresh = [sender(bob.access_token, room, f"b{n}", f"new {n}") for n in range(THREADS // 2)]

    responses = run_concurrently([x for pair in zip(retries, fresh, strict=True) for x in pair])

    assert all(r.status == 200 for r in responses)
    retried_ids = {r.body["event_id"] for r in responses[0::2]}
    fresh_ids = {r.body["event_id"] for r in responses[1::2]}
    assert len(retried_ids) == 1
    assert len(fresh_ids) == THREADS // 2
    assert Event.objects.filter(room__room_id=room, type="m.room.message").count() == (
        1 + THREADS // 2
    )
    assert_linear_dag(room)


def test_concurrent_joins_all_land_in_the_current_state(
    api: MatrixTestClient, alice: Persona
) -> None:
    room = create_room(api, alice, preset="public_chat")
    joiners = [api.register(f"user{n}") for n in range(THREADS)]
    path = f"join/{room}"
    jobs = [
        (lambda token: lambda client: client.post(path, {}, token=token))(who.access_token)
        for who in joiners
    ]

    responses = run_concurrently(jobs)

    assert [r.status for r in responses] == [200] * THREADS
    state = state_map(api, alice, room)
    for who in joiners:
        assert state[("m.room.member", who.user_id)]["content"]["membership"] == "join"
    assert Membership.objects.filter(room__room_id=room, membership="join").count() == (
        THREADS + 1
    )
    assert_linear_dag(room)
