"""Deliver a remote room's PDUs to the homeserver and read back what it made of them."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from django.db import transaction
from django.db.models import Q

from protocol.auth_rules import StateKey
from rooms import storage
from rooms.models import CurrentState, Event, Room
from rooms.services.incoming import receive_pdu
from tests.conftest import forget_process_caches
from tests.graph.remote import RemoteRoom, server_of


@contextmanager
def fresh_database_state() -> Iterator[None]:
    """Run a block whose database changes are rolled back afterwards (a savepoint inside
    the test's transaction), with the process caches emptied before and after, so each
    hypothesis example starts from the same empty homeserver."""
    forget_process_caches()
    try:
        with transaction.atomic():
            yield
            transaction.set_rollback(True)
    finally:
        forget_process_caches()


def install_keys(room: RemoteRoom) -> None:
    for server in room.servers.values():
        server.install_keys()


def deliver(room: RemoteRoom, pdu: Mapping[str, Any], *, fill_gap: bool = True) -> Event:
    """One PDU, sent by its sender's server, which also answers for missing events."""
    origin = server_of(pdu["sender"])
    return receive_pdu(
        copy.deepcopy(dict(pdu)), origin=origin, source=room.servers[origin], fill_gap=fill_gap
    )


def deliver_all(
    room: RemoteRoom, pdus: Sequence[Mapping[str, Any]], *, fill_gap: bool = True
) -> None:
    for pdu in pdus:
        deliver(room, pdu, fill_gap=fill_gap)


def stored_room(room: RemoteRoom) -> Room:
    return Room.objects.get(room_id=room.room_id)


def current_state(room: RemoteRoom) -> dict[StateKey, str]:
    """The homeserver's current state of the room (its CurrentState rows)."""
    rows = CurrentState.objects.filter(room=stored_room(room))
    return {(row.type, row.state_key): row.event_id for row in rows}


def rejected_event_ids(room: RemoteRoom) -> set[str]:
    rows = Event.objects.filter(room=stored_room(room), rejected_reason__isnull=False)
    return set(rows.values_list("event_id", flat=True))


def soft_failed_event_ids(room: RemoteRoom) -> set[str]:
    rows = Event.objects.filter(room=stored_room(room), soft_failed=True)
    return set(rows.values_list("event_id", flat=True))


def timeline_event_ids(room: RemoteRoom) -> set[str]:
    """The room's events clients are shown: all of its timeline as /messages reads it
    (topological order) and as /sync does (stream order, and rooms.storage.in_timeline for
    the events /sync has at hand). The three must agree."""
    stored = stored_room(room)
    by_order = [
        {
            row.event_id
            for row in storage.timeline_batch(
                stored,
                order=order,
                conditions=Q(),
                ignored=frozenset(),
                after=None,
                upto=None,
                newest_first=True,
                count=10_000,
            )
        }
        for order in (storage.TOPOLOGICAL, storage.STREAM)
    ]
    rows = Event.objects.filter(room=stored)
    at_hand = {row.event_id for row in rows if storage.in_timeline(row)}
    assert by_order[0] == by_order[1] == at_hand, "/messages and /sync disagree on the timeline"
    return at_hand
