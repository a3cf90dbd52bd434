"""Operators see what the event pipeline made of other servers' events: rejected events
with their reason and soft-failed ones (filters of the read-only event list), and each
room's current state changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from rooms.models import Event, Room, RoomStateChange
from rooms.services.incoming import receive_pdu
from tests.rooms.test_incoming import ALICE, BOB, ROOM, SERVER, room

__all__ = ["room"]

EVENTS = "/admin/rooms/event/"
STATE_CHANGES = "/admin/rooms/roomstatechange/"
EVE = "@eve:remote.test"


@pytest.fixture
def operator(db: None) -> Client:
    User.objects.create_superuser("operator", "secret-password")
    client = Client()
    assert client.login(username="operator", password="secret-password")
    return client


@pytest.fixture
def refused(room: Any) -> dict[str, str]:
    """The remote room with one rejected event (eve, never joined, speaks) and one
    soft-failed one (bob, banned on another fork, speaks)."""
    signer, chain, state = room
    for event in chain:
        receive_pdu(event.pdu, origin=SERVER)
    tip = chain[-1].event_id
    rejected = signer.make("m.room.message", EVE, {"body": "let me in"}, [tip], state)
    receive_pdu(rejected.pdu, origin=SERVER)
    ban = signer.make("m.room.member", ALICE, {"membership": "ban"}, [tip], state, BOB)
    receive_pdu(ban.pdu, origin=SERVER)
    late = signer.make("m.room.message", BOB, {"body": "hi"}, [tip], state)
    receive_pdu(late.pdu, origin=SERVER)
    assert Event.objects.get(event_id=rejected.event_id).rejected_reason
    assert Event.objects.get(event_id=late.event_id).soft_failed
    return {"rejected": rejected.event_id, "soft_failed": late.event_id, "ban": ban.event_id}


def test_rejected_events_are_listed_with_their_reason(
    operator: Client, refused: dict[str, str]
) -> None:
    listing = operator.get(EVENTS, {"pipeline": "rejected"})

    html = listing.content.decode()
    assert listing.status_code == 200
    assert refused["rejected"] in html
    reason = Event.objects.get(event_id=refused["rejected"]).rejected_reason
    assert reason is not None
    assert reason[:30] in html
    assert refused["soft_failed"] not in html
    assert refused["ban"] not in html


def test_soft_failed_events_are_listed(operator: Client, refused: dict[str, str]) -> None:
    listing = operator.get(EVENTS, {"pipeline": "soft_failed"})

    html = listing.content.decode()
    assert refused["soft_failed"] in html
    assert refused["rejected"] not in html


def test_events_are_searched_and_read_only(operator: Client, refused: dict[str, str]) -> None:
    found = operator.get(EVENTS, {"q": refused["rejected"]})
    row = Event.objects.get(event_id=refused["rejected"])
    detail = operator.get(f"{EVENTS}{row.pk}/change/")
    delete = operator.get(f"{EVENTS}{row.pk}/delete/")

    assert refused["rejected"] in found.content.decode()
    assert detail.status_code == 200
    assert "rejected_reason" in detail.content.decode()
    assert delete.status_code == 403
    assert operator.get(f"{EVENTS}add/").status_code == 403


def test_a_rooms_state_changes_are_visible_from_its_page(
    operator: Client, refused: dict[str, str]
) -> None:
    room_row = Room.objects.get(room_id=ROOM)
    page = operator.get(f"/admin/rooms/room/{room_row.pk}/change/").content.decode()
    listing = operator.get(STATE_CHANGES, {"room__id__exact": room_row.pk})
    rejected = operator.get(EVENTS, {"room__id__exact": room_row.pk, "pipeline": "rejected"})

    assert f"{STATE_CHANGES}?room__id__exact={room_row.pk}" in page
    assert listing.status_code == 200
    changes = RoomStateChange.objects.filter(room=room_row)
    assert changes.exists()
    html = listing.content.decode()
    assert f"{changes.count()} room state change" in html
    assert refused["rejected"] in rejected.content.decode()
    change = changes.first()
    assert change is not None
    assert operator.get(f"{STATE_CHANGES}{change.pk}/delete/").status_code == 403
