"""Rejection, soft failure and dropped PDUs, each through the store (receive_pdu).

content/server-server-api.md#checks-performed-on-receipt-of-a-pdu: a PDU with a bad signature
is dropped; one whose content hash fails is redacted and carries on; one failing the auth rules
against its auth events or the state before it is rejected; one failing them only against the
current state is soft-failed, stored but kept out of clients' timelines.
"""

from __future__ import annotations

import pytest

from protocol.events import Event as ProtocolEvent
from protocol.redaction import redact_event
from rooms import state
from rooms.models import Event
from rooms.services.incoming import InvalidPDU, receive_pdu
from tests.graph.delivery import (
    current_state,
    deliver,
    deliver_all,
    install_keys,
    timeline_event_ids,
)
from tests.graph.remote import RemoteRoom
from tests.graph.scenarios import (
    SERVER_A,
    alice,
    base_room,
    bob,
    dave,
    eve,
    message,
    topic,
)

pytestmark = pytest.mark.django_db


def delivered_base_room(version: str = "11") -> RemoteRoom:
    room = base_room(version)
    install_keys(room)
    deliver_all(room, room.delivery_pdus())
    return room


def stored(room: RemoteRoom, name: str) -> Event:
    return Event.objects.get(event_id=room.id(name))


@pytest.mark.parametrize("version", ["10", "11", "12"])
def test_event_citing_wrong_auth_events_is_rejected(version: str) -> None:
    """bob, a moderator, sets the topic citing the room's first power levels, under which he
    had no power: the state before it allows it, its own auth events do not (check 4).
    Rejected."""
    room = delivered_base_room(version)
    stale_auth = [room.id("POWER"), room.id("JOIN_BOB")]
    if room.room_version.create_event_in_auth_events:
        stale_auth.append(room.id("CREATE"))
    deliver(room, topic(room, bob(room), "TOPIC_BOB", auth=stale_auth))

    assert room.reference.rejected[room.id("TOPIC_BOB")].startswith("auth events")
    event = stored(room, "TOPIC_BOB")
    assert event.rejected_reason
    assert ("m.room.topic", "") not in current_state(room)
    assert current_state(room) == room.reference.resolved_state()
    assert room.id("TOPIC_BOB") not in timeline_event_ids(room)


def test_event_rejected_by_the_state_before_it() -> None:
    """dave, kicked, talks again citing his old membership: his auth events allow it, the
    state before it (after the kick) does not. The state recorded for a rejected event is
    the state before it."""
    room = delivered_base_room()
    deliver(room, room.member(alice(room), dave(room), "leave", name="KICK_DAVE"))
    stale_auth = [room.id("CREATE"), room.id("PL_MODS"), room.id("JOIN_DAVE")]
    deliver(room, message(room, dave(room), "MSG_DAVE", auth=stale_auth))

    assert room.reference.rejected[room.id("MSG_DAVE")].startswith("state before")
    event = stored(room, "MSG_DAVE")
    assert event.rejected_reason
    assert not event.soft_failed
    state_before = room.reference.state_before[event.event_id]
    assert dict(state.load_state(event.state_group_id)) == state_before
    assert room.id("MSG_DAVE") not in timeline_event_ids(room)
    assert room.id("KICK_DAVE") in timeline_event_ids(room)


def test_banned_users_late_message_is_soft_failed() -> None:
    """eve joins; alice bans her; on a fork that does not know of the ban eve talks. The
    message is allowed by the state before it, so it is not rejected, but not by the
    current state: soft-failed, stored, shown neither by /messages nor by /sync."""
    room = delivered_base_room()
    deliver(room, room.member(eve(room), eve(room), "join", name="JOIN_EVE"))
    deliver(room, room.member(alice(room), eve(room), "ban", name="BAN_EVE"))
    late = message(room, eve(room), "MSG_EVE_LATE", prev=["JOIN_EVE"])
    deliver(room, late)

    assert room.id("MSG_EVE_LATE") not in room.reference.rejected
    event = stored(room, "MSG_EVE_LATE")
    assert event.soft_failed
    assert event.rejected_reason is None
    timeline = timeline_event_ids(room)
    assert room.id("MSG_EVE_LATE") not in timeline
    assert room.id("BAN_EVE") in timeline
    assert current_state(room) == room.reference.resolved_state()


def test_content_hash_mismatch_is_stored_redacted() -> None:
    """bob's server changed the message after hashing it: the signature, over the redacted
    form, holds, so the event is kept, redacted."""
    room = delivered_base_room()
    tampered = message(room, bob(room), "TAMPERED", content_after_hashing={"body": "swapped"})
    deliver(room, tampered)

    event = stored(room, "TAMPERED")
    assert event.rejected_reason is None
    redacted = redact_event(tampered, room.room_version)
    assert event.pdu["content"] == redacted["content"] == {}
    assert {k: v for k, v in event.pdu.items() if k != "unsigned"} == redacted


def test_bad_signature_is_dropped() -> None:
    room = delivered_base_room()
    honest = room.build(bob(room), "m.room.message", {"body": "hello"})
    with pytest.raises(InvalidPDU):
        deliver(room, room.forge_bad_signature(honest))
    assert not Event.objects.filter(event_id=event_id_of(room, honest)).exists()


def test_event_signed_only_by_another_server_than_the_senders_is_dropped() -> None:
    room = delivered_base_room()
    server_a = room.servers[SERVER_A]
    foreign = room.build(bob(room), "m.room.message", {"body": "hi"}, signer=server_a)
    with pytest.raises(InvalidPDU):
        receive_pdu(foreign, origin=SERVER_A, source=server_a)
    assert not Event.objects.filter(event_id=event_id_of(room, foreign)).exists()


def event_id_of(room: RemoteRoom, pdu: dict) -> str:
    return ProtocolEvent(pdu, room.room_version).event_id
