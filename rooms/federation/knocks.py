"""Knocks from other servers' users (Server-Server API, "Knocking upon a room"): the
resident side of GET /make_knock and PUT /send_knock.

make_knock answers a template of the knock on the room's current tips (prev_events, the
auth events its room version selects, depth), refused when the user is not the requesting
server's, when the server cannot take the room's version (400
M_INCOMPATIBLE_ROOM_VERSION), or when the room does not take knocks or the auth rules
refuse this one (403). send_knock takes the signed knock back, checks what the spec says a
server MUST check, runs it through the event pipeline (it must be accepted, not
soft-failed), queues it for the other servers in the room, and answers the stripped state
the knocking user's client is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction

from protocol.errors import MatrixError, forbidden, not_found
from protocol.events import EventFormatError
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms import event_cache, federation_out
from rooms.federation import access
from rooms.models import Event, Room
from rooms.services import out_of_band
from rooms.services.events import SendContext, lock_room, prepare_in_locked_room
from rooms.services.incoming import InvalidPDU, checked_event, receive_pdu
from rooms.state import load_state

JOIN_RULES = ("m.room.join_rules", "")


def _resident_room(room_id: str, origin: str) -> Room:
    """The room, for a knocking server: known here with this server in it (404
    otherwise), its ACL letting the server in (403 otherwise)."""
    room = access.access_room(room_id, origin)
    if not out_of_band.is_resident(room):
        raise not_found(f"Unknown room {room_id}")
    access.check_full_state(room)
    return room


def _check_takes_knocks(room: Room) -> None:
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    if not room_version.knock_join_rule:
        raise forbidden("This room's version does not support knocking")
    rules_id = load_state(room.current_state_group_id).get(JOIN_RULES)
    rules = event_cache.get_events([rules_id]).get(rules_id) if rules_id else None
    join_rule = rules.content.get("join_rule") if rules is not None else None
    takes = ["knock"] + (["knock_restricted"] if room_version.knock_restricted_join_rule else [])
    if join_rule not in takes:
        raise forbidden("This room does not take knocks")


def make_knock(origin: str, room_id: str, user_id: str, versions: Sequence[str]) -> dict[str, Any]:
    """GET /make_knock's answer: the room version and the knock's template."""
    room = _resident_room(room_id, origin)
    if out_of_band.server_of(user_id) != origin:
        raise forbidden("The user is not a user of the requesting server")
    if room.room_version not in versions:
        raise MatrixError(
            "M_INCOMPATIBLE_ROOM_VERSION",
            "Your server does not support this room's version",
            room_version=room.room_version,
        )
    _check_takes_knocks(room)
    with transaction.atomic():
        room = lock_room(room_id)
        # Built and authorised as a local event would be, then handed over without this
        # server's hashes and signature: the knocking server hashes and signs it.
        prepared = prepare_in_locked_room(
            room, SendContext(sender=user_id), "m.room.member", {"membership": "knock"}, user_id
        )
    template = {
        key: value
        for key, value in prepared.event.pdu.items()
        if key not in ("hashes", "signatures", "event_id")
    }
    return {"room_version": room.room_version, "event": template}


def _invalid(error: str) -> MatrixError:
    # "A specific error code is not mandated, but servers SHOULD return M_INVALID_PARAM".
    return MatrixError("M_INVALID_PARAM", error)


def _check_knock_shape(pdu: Mapping[str, Any], origin: str) -> None:
    content = pdu.get("content")
    if pdu.get("type") != "m.room.member":
        raise _invalid("The event is not an m.room.member event")
    if not isinstance(content, Mapping) or content.get("membership") != "knock":
        raise _invalid("The event's membership is not 'knock'")
    sender = pdu.get("sender")
    if not isinstance(sender, str) or out_of_band.server_of(sender) != origin:
        raise _invalid("The sender is not a user of the requesting server")
    if pdu.get("state_key") != sender:
        raise _invalid("The state_key is not the sender")


def do_receive_knock(origin: str, room_id: str, event_id: str, pdu: Any) -> dict[str, Any]:
    """PUT /send_knock: the knock, accepted into the room and sent on; the answer with its
    ``knock_room_state``."""
    room = _resident_room(room_id, origin)
    if not isinstance(pdu, Mapping):
        raise MatrixError("M_BAD_JSON", "The body must be an event")
    _check_knock_shape(pdu, origin)
    try:
        event = checked_event(pdu)
        checked_id, checked_room = event.event_id, event.room_id
    except (InvalidPDU, EventFormatError) as exc:
        raise _invalid(f"The knock fails its checks: {exc}") from None
    if checked_id != event_id or checked_room != room_id:
        raise _invalid("The knock is not the event the path names")
    _check_takes_knocks(room)
    # A retried request: accepted already, and sent on then.
    known = Event.objects.filter(event_id=event_id, outlier=False).exists()
    try:
        # No source: its prev and auth events are this server's (make_knock's template);
        # one that cites others stays an outlier and is refused below.
        row = receive_pdu(pdu, origin=origin, source=None)
    except InvalidPDU as exc:
        raise _invalid(f"The knock fails its checks: {exc}") from None
    if row.outlier or row.rejected_reason is not None or row.soft_failed:
        raise forbidden("The knock is not allowed in this room")
    if not known:
        with transaction.atomic():
            federation_out.queue_event(room, event)
    state_group = Event.objects.filter(pk=row.pk).values_list("state_group_id", flat=True)[0]
    return {"knock_room_state": out_of_band.room_state_pdus(state_group)}
