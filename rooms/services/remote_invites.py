"""Inviting a user of another server to a room hosted here (Server-Server API, "Inviting
to a room"): the invitee's server countersigns the invite before it is persisted.

1. Under the room lock, the invite is built on the room's tips and authorised, as any
   local event, but not persisted; the lock is let go.
2. PUT /_matrix/federation/v2/invite/{roomId}/{eventId} to the invitee's server with the
   room's version and stripped state (full PDUs: the stripped state types and the
   inviter's membership). A server that answers v2 with 400 or 404 is asked v1, for rooms
   of versions 1 and 2, as the spec says. The answer must be our event with that server's
   valid signature added, nothing else changed.
3. Under the room lock again, the doubly signed invite is authorised against the current
   state (it may have changed meanwhile) and persisted on the state it was built on; the
   outbound queue sends it to the room's servers and the invitee's (rooms.federation_out).

The invitee's server is never asked while the room is locked: a slow or dead server holds
up only the inviter. Its refusal reaches the client as 403 M_FORBIDDEN; a room version it
cannot take as 400 M_INCOMPATIBLE_ROOM_VERSION (the spec asks that the error be passed on
so that clients can say why); an answer that is no answer (unreachable, a malformed
request by its account, a bad signature) as 502.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from django.db import transaction

from federation import keyring
from federation.client import FederationError, send_request
from protocol import auth_rules
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.room_versions import RoomVersion
from protocol.signing import SignatureVerifyError, verify_event_signature
from rooms.models import Event, ForwardExtremity
from rooms.services import out_of_band
from rooms.services.events import (
    SendContext,
    auth_state_for,
    lock_room,
    persist_event,
    prepare_in_locked_room,
    room_version_of,
)
from rooms.state import load_state

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"


def do_invite_remote_user(
    room_id: str, ctx: SendContext, invitee: str, content: dict[str, Any]
) -> Event:
    """Invite ``invitee``, a user of another server, to a room hosted here (see the
    module's docstring). Takes the room lock twice, never while the other server is
    asked."""
    with transaction.atomic():
        room = lock_room(room_id)
        prepared = prepare_in_locked_room(room, ctx, MEMBER, content, invitee)
        invite_room_state = out_of_band.room_state_pdus(
            prepared.state_before, [(MEMBER, ctx.sender)]
        )
    room_version = room_version_of(room)
    server = out_of_band.server_of(invitee) or ""
    event = countersigned_invite(server, room_version, prepared.event, invite_room_state)
    with transaction.atomic():
        room = lock_room(room_id)
        if room.current_state_group_id != prepared.state_before:
            _check_against_current_state(room_version, event, room.current_state_group_id)
        extremity_ids = list(
            ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
        )
        on_the_tips = set(extremity_ids) == set(event.prev_event_ids)
        return persist_event(
            room,
            event,
            state_before=prepared.state_before,
            ctx=ctx,
            extremities_before=extremity_ids if on_the_tips else None,
        )


def _check_against_current_state(
    room_version: RoomVersion, event: PDUEvent, state_group: int | None
) -> None:
    keys = auth_rules.auth_types_for(room_version, event)
    auth_state = auth_state_for(room_version, load_state(state_group), keys)
    try:
        auth_rules.check_auth_rules(room_version, event, auth_state)
    except auth_rules.AuthError as exc:
        raise MatrixError("M_FORBIDDEN", exc.reason) from None


def countersigned_invite(
    server: str,
    room_version: RoomVersion,
    event: PDUEvent,
    invite_room_state: list[dict[str, Any]],
) -> PDUEvent:
    """Ask ``server`` to sign the invite (PUT /invite, v2 then v1); the event with its
    signature added."""
    room, event_id = quote(event.room_id, safe=""), quote(event.event_id, safe="")
    body = {
        "room_version": room_version.identifier,
        "event": event.pdu,
        "invite_room_state": invite_room_state,
    }
    status, answer = _put(server, f"/_matrix/federation/v2/invite/{room}/{event_id}", body)
    # "Senders which receive a 400 or 404 response to this endpoint should retry using the
    # v1 API as the server may be older, if the room version is "1" or "2"" (the two
    # versions of the first event format).
    if (
        status in (400, 404)
        and room_version.event_format.event_id_in_pdu
        and not _errcode_is(answer, "M_INCOMPATIBLE_ROOM_VERSION", "M_FORBIDDEN")
    ):
        v1_body = {**event.pdu, "unsigned": {"invite_room_state": invite_room_state}}
        status, answer = _put(server, f"/_matrix/federation/v1/invite/{room}/{event_id}", v1_body)
        if status == 200:
            answer = answer[1] if isinstance(answer, list) and len(answer) == 2 else None
    if status != 200:
        raise _refusal(server, status, answer)
    returned = answer.get("event") if isinstance(answer, dict) else None
    return _with_their_signature(server, room_version, event, returned)


def _put(server: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    try:
        response = send_request(server, "PUT", path, content=body)
    except FederationError as exc:
        logger.info("invite through %s: %s", server, exc)
        raise MatrixError(
            "M_UNKNOWN", f"Could not reach {server} to invite its user", status=502
        ) from None
    try:
        return response.status, json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return response.status, None


def _errcode_is(answer: Any, *errcodes: str) -> bool:
    return isinstance(answer, dict) and answer.get("errcode") in errcodes


def _refusal(server: str, status: int, answer: Any) -> MatrixError:
    """The client's error for the invitee's server's (wrapped, never passed through)."""
    logger.info("invite refused by %s: %s %s", server, status, answer)
    if _errcode_is(answer, "M_INCOMPATIBLE_ROOM_VERSION"):
        return MatrixError(
            "M_INCOMPATIBLE_ROOM_VERSION", f"{server} does not support this room's version"
        )
    if status == 403:
        if _errcode_is(answer, "M_INVITE_BLOCKED"):
            return MatrixError("M_INVITE_BLOCKED", f"{server} blocks this invite", status=403)
        return MatrixError("M_FORBIDDEN", f"{server} refused the invite")
    # Including M_MISSING_PARAM and M_INVALID_PARAM: "the Client-Server API request SHOULD
    # fail with a 5xx error rather than being passed through".
    return MatrixError("M_UNKNOWN", f"{server} could not take the invite ({status})", status=502)


def _with_their_signature(
    server: str, room_version: RoomVersion, event: PDUEvent, returned: Any
) -> PDUEvent:
    """Our invite with ``server``'s signature from ``returned``, if ``returned`` is our
    invite (every field but the signatures and unsigned data as sent) validly signed by
    it."""

    def signed_part(pdu: Any) -> Any:
        if not isinstance(pdu, dict):
            return None
        return {k: v for k, v in pdu.items() if k not in ("signatures", "unsigned")}

    bad = MatrixError("M_UNKNOWN", f"{server} answered the invite with another event", status=502)
    if signed_part(returned) != signed_part(event.pdu):
        raise bad
    signatures = returned.get("signatures")
    theirs = signatures.get(server) if isinstance(signatures, dict) else None
    if not isinstance(theirs, dict) or not theirs:
        raise bad
    pdu = {**event.pdu, "signatures": {**event.signatures, server: theirs}}
    for key_id in sorted(theirs):
        try:
            key = keyring.get_verify_key(
                server, key_id, valid_at_ts=event.origin_server_ts, for_requests=False
            )
            verify_event_signature(pdu, server, key, room_version)
        except (keyring.KeyUnavailable, SignatureVerifyError, ValueError) as exc:
            logger.info("invite signature %s of %s: %s", key_id, server, exc)
            continue
        return PDUEvent(pdu, room_version, event_id=event.event_id)
    raise bad
