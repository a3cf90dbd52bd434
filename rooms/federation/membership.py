"""The resident server's part of joining and leaving over federation (Server-Server API,
"Joining Rooms" and "Leaving Rooms"): another server asks this one, which is in the room,
for a template of its user's membership event (``make_join``, ``make_leave``), signs it
and sends it back (``do_send_join``, ``do_send_leave``) to be accepted into the room's
graph, sent on to the other servers in the room, and, for a join, answered with the
room's state.

Every request naming a room is checked against the room's server ACL, and the user must
be one of the requesting server's. This server must be in the room (a local member
joined): the templates are built on its forward extremities and current state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from federation.keys import server_signing_key
from federation.outbound import enqueue_pdu
from protocol import auth_rules
from protocol.errors import MatrixError, forbidden, invalid_param, not_found
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.identifiers import is_valid_user_id
from protocol.room_names import ROOM_NAMING_STATE
from protocol.room_versions import RoomVersion
from protocol.signing import hash_and_sign_event, sign_event
from rooms import event_cache
from rooms.federation import access, serving
from rooms.federation_out import destinations_of, server_of
from rooms.graph_store import OrmStateResStore
from rooms.models import Event, Membership, Room
from rooms.services.events import (
    check_size_and_values,
    draft_in_locked_room,
    lock_room,
    new_pdu,
    room_version_of,
)
from rooms.services.incoming import InvalidPDU, check_signed_by, receive_pdu
from rooms.services.membership import INVITE, JOIN, LEAVE, restricted_join_authoriser
from rooms.state import StateKey, load_state

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
AUTHORISING_USER = "join_authorised_via_users_server"
# Client-Server API, the room summary: at most this many heroes.
MAX_HEROES = 5


# --- make_join, make_leave ----------------------------------------------------------------


def _check_user_of(user_id: str, origin: str) -> None:
    """The user must be one of the requesting server's (403 M_FORBIDDEN)."""
    if not is_valid_user_id(user_id):
        raise invalid_param(f"Invalid user ID {user_id!r}")
    if server_of(user_id) != origin:
        raise forbidden(f"{user_id} is not a user of {origin}")


def access_resident_room(room_id: str, origin: str) -> Room:
    """The room for a membership request of ``origin``: 404 M_NOT_FOUND unless this
    server is in it, 403 M_FORBIDDEN if its ACL denies ``origin``."""
    room = access.access_room(room_id, origin)
    if room.current_state_group_id is None or not access.is_server_in_room(
        room, settings.SERVER_NAME
    ):
        raise not_found(f"This server is not in the room {room_id}")
    access.check_full_state(room)
    return room


def make_join(room_id: str, user_id: str, origin: str, versions: Iterable[str]) -> dict[str, Any]:
    """GET /make_join: the room version and a template of the user's join.

    400 M_INCOMPATIBLE_ROOM_VERSION (with ``room_version``) when the joining server does
    not support the room's version; for a restricted room, the local member who
    authorises the join is named in ``join_authorised_via_users_server`` (or the
    refusals of ``restricted_join_authoriser``); 403 M_FORBIDDEN when the auth rules
    would refuse the join.
    """
    _check_user_of(user_id, origin)
    room = access_resident_room(room_id, origin)
    room_version = room_version_of(room)
    if room_version.identifier not in set(versions):
        raise MatrixError(
            "M_INCOMPATIBLE_ROOM_VERSION",
            f"Your server does not support the room's version {room_version.identifier}",
            room_version=room_version.identifier,
        )
    content: dict[str, Any] = {"membership": JOIN}
    with transaction.atomic():
        room = lock_room(room_id)
        state = load_state(room.current_state_group_id)
        if _membership_in(state, user_id) not in (JOIN, INVITE):
            # Restricted rooms (v8+): the authorising user goes in the template, so the
            # send_join must come back here, where that user can be signed for.
            authoriser = restricted_join_authoriser(room, state, user_id)
            if authoriser is not None:
                content[AUTHORISING_USER] = authoriser
        template = _template(room, user_id, content)
    return {"room_version": room_version.identifier, "event": template}


def make_leave(room_id: str, user_id: str, origin: str) -> dict[str, Any]:
    """GET /make_leave: the room version and a template of the user's leave; 403
    M_FORBIDDEN when the user may not leave (is not in the room)."""
    _check_user_of(user_id, origin)
    room = access_resident_room(room_id, origin)
    with transaction.atomic():
        room = lock_room(room_id)
        template = _template(room, user_id, {"membership": LEAVE})
    return {"room_version": room.room_version, "event": template}


def _membership_in(state: Mapping[StateKey, str], user_id: str) -> str | None:
    event_id = state.get((MEMBER, user_id))
    if event_id is None:
        return None
    event = event_cache.get_events([event_id]).get(event_id)
    return event.membership if event is not None else None


def _template(room: Room, user_id: str, content: dict[str, Any]) -> dict[str, Any]:
    """An unsigned membership event of ``user_id`` on the room's forward extremities
    and current state, checked against the auth rules (403 M_FORBIDDEN); under the room
    lock."""
    room_version = room_version_of(room)
    draft = draft_in_locked_room(room, user_id, MEMBER, content, user_id)
    pdu = new_pdu(
        room_version,
        room_id=room.room_id,
        sender=user_id,
        event_type=MEMBER,
        content=content,
        state_key=user_id,
        prev_events=draft.prev_events,
        auth_events=draft.auth_events,
        depth=draft.depth,
    )
    # Checked as this server will see it: signed by it (the signature a restricted
    # join's authoriser's server adds, which the auth rules look for).
    signed = hash_and_sign_event(pdu, settings.SERVER_NAME, server_signing_key(), room_version)
    try:
        auth_rules.check_auth_rules(room_version, PDUEvent(signed, room_version), draft.auth_state)
    except auth_rules.AuthError as exc:
        raise forbidden(f"The auth rules refuse the membership: {exc.reason}") from None
    # The joining server signs it, with its own event ID (room versions 1 and 2) and
    # origin: this server's are placeholders.
    pdu.pop("event_id", None)
    pdu["origin"] = settings.SERVER_NAME
    return pdu


# --- send_join, send_leave ----------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A membership event taken into the room: its row, and the PDU as this server
    signed it (None when it did not sign it)."""

    row: Event
    signed_pdu: dict[str, Any] | None


def do_send_join(
    room_id: str, event_id: str, pdu: Any, origin: str, *, omit_members: bool = False
) -> dict[str, Any]:
    """PUT /send_join: accept the join (see ``_accept``) and answer with the room's state
    before it and the auth chain of that state and of the join. ``omit_members``: the
    joining server can take partial state (Server-Server API, ``omit_members``): member
    events are left out of ``state`` except the heroes' (when no name or canonical alias
    names the room) and the joining user's own earlier one, and the events of ``state``
    out of ``auth_chain``; ``servers_in_room`` lists the servers with joined members
    before the join."""
    room = access_resident_room(room_id, origin)
    accepted = _accept(room, event_id, pdu, origin, JOIN)
    row = accepted.row
    before = access.state_before(row)
    state_ids = set(before.values())
    if omit_members:
        state_ids = _partial_state_ids(room, before, row.state_key or "")
    chain_ids = _auth_chain_ids(room, state_ids, row.event_id)
    if omit_members:
        chain_ids -= state_ids
    answer: dict[str, Any] = {
        "origin": settings.SERVER_NAME,
        "state": serving.pdus_of(sorted(state_ids)),
        "auth_chain": serving.pdus_in_auth_order(chain_ids),
        "members_omitted": omit_members,
    }
    if omit_members:
        answer["servers_in_room"] = sorted(_servers_joined_in(before))
    if accepted.signed_pdu is not None:
        answer["event"] = accepted.signed_pdu
    return answer


def do_send_leave(room_id: str, event_id: str, pdu: Any, origin: str) -> dict[str, Any]:
    """PUT /send_leave: accept the leave (see ``_accept``); the answer is empty."""
    room = access_resident_room(room_id, origin)
    _accept(room, event_id, pdu, origin, LEAVE)
    return {}


def _accept(room: Room, event_id: str, pdu: Any, origin: str, membership: str) -> Accepted:
    """Check a membership event another server sends us for its user, sign it when it
    names a local user as the authoriser of a restricted join, run it through the event
    pipeline and send it to the other servers in the room.

    400 M_INVALID_PARAM when it is not the ``membership`` of a user of ``origin`` in
    this room under this event ID, or fails its signature or hash checks (as the spec
    suggests); 403 M_FORBIDDEN when the auth rules reject it, now or against the
    current state (soft failure).
    """
    room_version = room_version_of(room)
    event = _checked_membership_event(pdu, room_version, room, event_id, origin, membership)
    signed_pdu = None
    if membership == JOIN:
        signed_pdu = _countersigned(room, event, room_version)
    already = Event.objects.filter(
        event_id=event.event_id, outlier=False, rejected_reason__isnull=True, soft_failed=False
    ).first()
    try:
        row = receive_pdu(signed_pdu or event.pdu, origin=origin)
    except MatrixError as exc:
        # InvalidPDU: its format, signatures, hashes or auth events do not hold (a
        # malformed event is M_BAD_JSON, as sytest and Synapse have it).
        errcode = "M_BAD_JSON" if exc.errcode == "M_BAD_JSON" else "M_INVALID_PARAM"
        raise MatrixError(errcode, f"The {membership} event is invalid: {exc.error}") from None
    if row.outlier:
        raise invalid_param(f"The {membership} event's prev events are unknown here")
    if row.rejected_reason is not None or row.soft_failed:
        raise forbidden(f"The {membership} event is not allowed: {row.rejected_reason or ''}")
    if already is None:
        _send_on(room, row, origin)
    return Accepted(row, signed_pdu)


def _checked_membership_event(
    pdu: Any, room_version: RoomVersion, room: Room, event_id: str, origin: str, membership: str
) -> PDUEvent:
    """send_join's and send_leave's checks before anything is stored (400
    M_INVALID_PARAM): the ``membership`` event of a user of ``origin``, about that user,
    in this room under this event ID."""
    if not isinstance(pdu, dict):
        raise invalid_param("The event must be an object")
    bare = {k: v for k, v in pdu.items() if k != "unsigned"}
    # Its signature first, as Synapse checks it (403 when the origin did not sign it).
    sender = bare.get("sender")
    if not isinstance(sender, str) or server_of(sender) != origin:
        raise invalid_param(f"The sender is not a user of {origin}")
    try:
        check_signed_by(bare, origin, room_version)
    except InvalidPDU as exc:
        if exc.errcode == "M_FORBIDDEN":
            error = f"The {membership} event's signature does not hold: {exc.error}"
            raise forbidden(error) from None
        raise MatrixError(
            "M_BAD_JSON", f"The {membership} event is invalid: {exc.error}"
        ) from None
    # The room version's JSON rules (no floats, integers in range from v6) before the
    # event is compared with the request: an event no server may accept is M_BAD_JSON,
    # whatever else is wrong with it (as Synapse and sytest have it).
    if not isinstance(bare.get("content"), dict):
        raise MatrixError("M_BAD_JSON", "The event's content must be an object")
    check_size_and_values(bare, room_version)
    event = PDUEvent(bare, room_version)
    try:
        if event.event_id != event_id:
            raise invalid_param(f"The event's ID is {event.event_id}, not {event_id}")
        if event.room_id != room.room_id:
            raise invalid_param(f"The event is not in the room {room.room_id}")
        if event.type != MEMBER:
            raise invalid_param(f"The event is not an {MEMBER} event")
        if event.content.get("membership") != membership:
            raise invalid_param(f"The event's membership is not {membership!r}")
        if server_of(event.sender) != origin:
            raise invalid_param(f"The sender is not a user of {origin}")
        if event.state_key != event.sender:
            raise invalid_param("The state_key is not the sender")
    except EventFormatError as exc:
        raise MatrixError("M_BAD_JSON", f"The event is malformed: {exc}") from None
    return event


def _countersigned(
    room: Room, event: PDUEvent, room_version: RoomVersion
) -> dict[str, Any] | None:
    """A restricted join naming a local user as its authoriser, signed by this server
    (the signature the authorising user's server must add before the event is sent or
    persisted), once the join rules' conditions hold for the user: None for any other
    join."""
    authoriser = event.content.get(AUTHORISING_USER)
    if not room_version.restricted_join_rule or not isinstance(authoriser, str):
        return None
    if server_of(authoriser) != settings.SERVER_NAME:
        return None
    state = load_state(room.current_state_group_id)
    if _membership_in(state, event.sender) not in (JOIN, INVITE):
        restricted_join_authoriser(room, state, event.sender)
    return sign_event(event.pdu, settings.SERVER_NAME, server_signing_key(), room_version)


def _send_on(room: Room, row: Event, origin: str) -> None:
    """Send the accepted event to the other servers in the room (Server-Server API: the
    resident server must send it on), but not back to the server that sent it."""
    event = event_cache.get_events([row.event_id])[row.event_id]
    with transaction.atomic():
        destinations = destinations_of(room, event) - {origin}
        if destinations:
            enqueue_pdu(event, destinations)


# --- the state a join is answered with ------------------------------------------------------


def _auth_chain_ids(room: Room, state_ids: set[str], join_id: str) -> set[str]:
    """The auth chain of the join and of the state events: the events they cite, and
    theirs (a state event another cites is in it too; the join is not)."""
    return OrmStateResStore(room).get_auth_chain(state_ids | {join_id}) - {join_id}


def _partial_state_ids(room: Room, before: Mapping[StateKey, str], user_id: str) -> set[str]:
    """The state for ``omit_members`` (as Synapse answers it): all but the member events,
    plus the joining user's own earlier member event, and the heroes' when nothing names
    the room."""
    kept = {event_id for (etype, _skey), event_id in before.items() if etype != MEMBER}
    own = before.get((MEMBER, user_id))
    if own is not None:
        kept.add(own)
    if not any(key in before for key in ROOM_NAMING_STATE):
        for hero in _heroes(room, before, user_id):
            kept.add(before[(MEMBER, hero)])
    return kept


def _heroes(room: Room, before: Mapping[StateKey, str], user_id: str) -> list[str]:
    """The room summary's ``m.heroes`` for the joining user: the first joined or invited
    members by stream ordering (if none, those who left or were banned), at most
    MAX_HEROES, never the user."""
    present: list[str] = []
    departed: list[str] = []
    rows = (
        Membership.objects.filter(room=room)
        .exclude(user_id=user_id)
        .order_by("stream_ordering", "user_id")
        .values_list("user_id", "membership")
    )
    for member, membership in rows:
        if len(present) == MAX_HEROES:
            break
        if (MEMBER, member) not in before or membership == "knock":
            continue
        group = present if membership in (JOIN, INVITE) else departed
        if len(group) < MAX_HEROES:
            group.append(member)
    return present or departed


def _servers_joined_in(state: Mapping[StateKey, str]) -> set[str]:
    """The servers with a member joined in ``state``."""
    member_ids = [event_id for (etype, _skey), event_id in state.items() if etype == MEMBER]
    events = event_cache.get_events(member_ids)
    return {
        server
        for event in events.values()
        if event.membership == JOIN and (server := server_of(event.state_key or ""))
    }
