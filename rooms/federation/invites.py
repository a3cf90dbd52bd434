"""Invites from other servers (Server-Server API, "Inviting to a room"): PUT
/_matrix/federation/v2/invite/{roomId}/{eventId} and its v1.

The inviting server asks this one to countersign an invite of one of its users. Before
signing, the event is checked as the spec says a server MUST, so that a malicious server
cannot have it sign anything else: an m.room.member with membership ``invite``, sent by a
user of the requesting server, for a user of this one, validly signed by its sender's
server; and the room's version is one this server supports. The invite is then kept for
the invitee as an out-of-band membership (rooms.services.out_of_band) with the stripped
state the inviting server sent, unless this server is in the room already: then the
invite comes again in a transaction, through the event pipeline, like any other event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from accounts.selectors import local_user
from federation.keys import server_signing_key
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import sign_event
from rooms.federation import access
from rooms.models import Room
from rooms.services import blocking, out_of_band
from rooms.services.incoming import InvalidPDU, checked_event

logger = logging.getLogger(__name__)


def _invalid(error: str) -> MatrixError:
    # "A specific error code is not mandated, but servers SHOULD return M_INVALID_PARAM".
    return MatrixError("M_INVALID_PARAM", error)


def supported_room_version(version_id: Any) -> RoomVersion:
    """The room version the inviting server names, if this server supports it (400
    M_INCOMPATIBLE_ROOM_VERSION otherwise, with the version)."""
    version = KNOWN_ROOM_VERSIONS.get(version_id) if isinstance(version_id, str) else None
    if version is None:
        raise MatrixError(
            "M_INCOMPATIBLE_ROOM_VERSION",
            f"This server does not support room version {version_id!r}",
            room_version=version_id if isinstance(version_id, str) else None,
        )
    return version


def check_invite_shape(pdu: Mapping[str, Any], origin: str) -> str:
    """The fields a server must check before signing an invite; the invitee's user ID."""
    content = pdu.get("content")
    if pdu.get("type") != "m.room.member":
        raise _invalid("The event is not an m.room.member event")
    if not isinstance(content, Mapping) or content.get("membership") != "invite":
        raise _invalid("The event's membership is not 'invite'")
    sender = pdu.get("sender")
    if not isinstance(sender, str) or out_of_band.server_of(sender) != origin:
        raise _invalid("The sender is not a user of the requesting server")
    invitee = pdu.get("state_key")
    if not isinstance(invitee, str) or out_of_band.server_of(invitee) != settings.SERVER_NAME:
        raise _invalid("The invitee is not a user of this server")
    user = local_user(invitee)
    # A user ID of this server nobody has registered yet may be invited, as Synapse
    # allows (the invite waits for them); a deactivated account may not.
    if user is not None and not user.is_active:
        raise MatrixError("M_FORBIDDEN", "The invitee's account is deactivated", status=403)
    return invitee


def do_receive_invite(
    origin: str,
    room_id: str,
    event_id: str,
    pdu: Any,
    room_version: RoomVersion,
    invite_room_state: Any,
) -> dict[str, Any]:
    """Check, countersign and keep an invite (see the module's docstring); the event with
    this server's signature added, every other field as it came."""
    if not isinstance(pdu, Mapping):
        raise MatrixError("M_BAD_JSON", "'event' must be an object")
    # Synapse's blocked rooms: no local user is invited to one (403, as Synapse answers).
    blocking.check_not_blocked(room_id)
    known = Room.objects.filter(room_id=room_id).first()
    if known is not None:
        # A server the room's ACL denies is refused before anything else is looked at.
        access.check_server_allowed(known, origin)
    check_invite_shape(pdu, origin)
    try:
        event = checked_event(pdu, room_version)
        checked_id, checked_room = event.event_id, event.room_id
    except InvalidPDU as exc:
        # Not signed by its sender's server: 403, as Synapse; malformed: M_BAD_JSON.
        if exc.errcode == "M_FORBIDDEN":
            raise MatrixError("M_FORBIDDEN", f"The invite fails its checks: {exc.error}") from None
        raise MatrixError("M_BAD_JSON", f"The invite fails its checks: {exc.error}") from None
    except EventFormatError as exc:
        raise MatrixError("M_BAD_JSON", f"The invite is malformed: {exc}") from None
    if event.content != pdu.get("content"):
        raise _invalid("The invite's content does not match its hash")
    if checked_id != event_id or checked_room != room_id:
        raise _invalid("The invite is not the event the path names")
    room = Room.objects.filter(room_id=room_id).first()
    if room is not None and room.room_version != room_version.identifier:
        raise MatrixError(
            "M_INCOMPATIBLE_ROOM_VERSION",
            f"{room_id} is a room of version {room.room_version} here",
            room_version=room.room_version,
        )
    if room is not None:
        access.check_server_allowed(room, origin)
    # The rule for room versions 12 on; a MAY before, where servers older than 1.16
    # still send stripped events.
    stripped_state = out_of_band.checked_room_state(
        invite_room_state,
        room_version,
        room_id,
        strict=room_version.room_id_is_create_event_hash,
        keep_unchecked=True,
        what="invite_room_state",
    )
    signed = sign_event(
        {key: value for key, value in pdu.items() if key != "unsigned"},
        settings.SERVER_NAME,
        server_signing_key(),
        room_version,
    )
    if not out_of_band.is_resident(room):
        out_of_band.do_store_out_of_band_membership(
            PDUEvent(signed, room_version, event_id=event_id),
            stripped_state=stripped_state,
            servers=[origin],
        )
    answer = dict(pdu)
    answer["signatures"] = signed["signatures"]
    return answer
