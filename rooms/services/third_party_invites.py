"""Invites by third-party identifier (Client-Server API, "Third-party invites";
Server-Server API, "Third-party invites").

Inviting: the inviter's homeserver asks the identity server the client names whom the
address is bound to (a hashed lookup). A bound address gets a plain invite of that user.
Otherwise the identity server stores the invite (POST /store-invite) and this server sends
an ``m.room.third_party_invite`` state event whose state key is the identity server's
token, with the keys the identity server will sign with.

Redeeming: once someone binds the address, the identity server tells their homeserver
(PUT /_matrix/federation/v1/3pid/onbind) with, for each pending invite, a ``signed``
object (mxid, token, signatures). That homeserver makes the ``m.room.member`` invite, as
the original inviter, carrying ``third_party_invite: {display_name, signed}``: here if
it is in the room, else by asking a server that is (PUT /exchange_third_party_invite).
Before making it, the server in the room checks that ``signed`` verifies with a key of
the room's ``m.room.third_party_invite`` and that the identity server still vouches for
that key at its ``key_validity_url``; a wrong signature, a revoked key or an identity
server that cannot be asked is 403 M_FORBIDDEN. The auth rules check the signature again
when the event is built (rule 4.4.1). A user may also redeem the ``signed`` object
themselves: POST /join with ``third_party_signed``.

Identity servers and other servers are asked with no transaction open.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import transaction

from accounts.services import identity_client
from federation.client import FederationError, request_json
from protocol import auth_rules
from protocol.errors import MatrixError, bad_json, forbidden, invalid_param, not_found
from protocol.identifiers import is_valid_server_name, is_valid_user_id, require_room_id
from protocol.third_party_invites import keys_that_signed
from rooms import event_cache, federation_out
from rooms.models import Membership, Room
from rooms.services.events import (
    SendContext,
    auth_state_for,
    do_send_event,
    room_version_of,
)
from rooms.services.membership import INVITE, JOIN, do_update_membership, is_local_user
from rooms.services.out_of_band import is_resident
from rooms.state import load_state

logger = logging.getLogger(__name__)

THIRD_PARTY_INVITE = "m.room.third_party_invite"
MEMBER = "m.room.member"
# One onbind notice makes at most this many invites (each may ask other servers).
MAX_INVITES_PER_BIND = 50


# --- inviting ------------------------------------------------------------------------------


def do_invite_by_threepid(
    room_id: str,
    ctx: SendContext,
    *,
    id_server: str,
    id_access_token: str,
    medium: str,
    address: str,
) -> None:
    """POST /rooms/{roomId}/invite with a third-party identifier (see the module's
    docstring). The inviter must be allowed to invite before the identity server hears of
    the invite (403 M_FORBIDDEN otherwise)."""
    server = identity_client.identity_server(id_server)
    room = Room.objects.filter(room_id=room_id).first()
    if room is None or room.current_state_group_id is None:
        raise not_found("Unknown room")
    _check_may_invite(room, ctx.sender)
    mxid = identity_client.lookup(server, id_access_token, medium=medium, address=address)
    if mxid is not None and is_valid_user_id(mxid):
        do_update_membership(room_id, ctx, mxid, INVITE)
        return
    stored = identity_client.store_invite(
        server, id_access_token, _store_invite_fields(room, ctx.sender, medium, address)
    )
    content: dict[str, Any] = {
        "display_name": stored.display_name,
        "public_keys": stored.public_keys,
        # For servers that read only the first key (m.room.third_party_invite).
        "public_key": stored.fallback["public_key"],
    }
    if "key_validity_url" in stored.fallback:
        content["key_validity_url"] = stored.fallback["key_validity_url"]
    do_send_event(room_id, ctx, THIRD_PARTY_INVITE, content, state_key=stored.token)


def _check_may_invite(room: Room, sender: str) -> None:
    """Auth rules, m.room.third_party_invite: the sender is joined and has the invite
    level; checked before the identity server stores anything."""
    row = Membership.objects.filter(room=room, user_id=sender).first()
    if row is None or row.membership != JOIN:
        raise forbidden("You are not in the room")
    room_version = room_version_of(room)
    state = load_state(room.current_state_group_id)
    auth_state = auth_state_for(room_version, state, {("m.room.power_levels", "")})
    level = auth_rules.get_user_power_level(room_version, sender, auth_state)
    if level < auth_rules.get_named_level(room_version, auth_state, "invite"):
        raise forbidden("You do not have the power to invite to this room")


def _store_invite_fields(room: Room, sender: str, medium: str, address: str) -> dict[str, Any]:
    """The store-invite request: the invite, and what the identity server may tell the
    invitee about the room and the inviter (Identity Service API, POST /store-invite)."""
    state = load_state(room.current_state_group_id)

    def content_of(event_type: str, state_key: str = "") -> dict[str, Any]:
        event_id = state.get((event_type, state_key))
        if event_id is None:
            return {}
        event = event_cache.get_events([event_id]).get(event_id)
        return event.content if event is not None else {}

    fields: dict[str, Any] = {
        "medium": medium,
        "address": address,
        "room_id": room.room_id,
        "sender": sender,
    }
    optional = {
        "room_alias": content_of("m.room.canonical_alias").get("alias"),
        "room_avatar_url": content_of("m.room.avatar").get("url"),
        "room_join_rules": content_of("m.room.join_rules").get("join_rule"),
        "room_name": content_of("m.room.name").get("name"),
        "room_type": content_of("m.room.create").get("type"),
        "sender_display_name": content_of(MEMBER, sender).get("displayname"),
        "sender_avatar_url": content_of(MEMBER, sender).get("avatar_url"),
    }
    fields.update({key: value for key, value in optional.items() if isinstance(value, str)})
    return fields


# --- redeeming -----------------------------------------------------------------------------


def do_receive_onbind(body: dict[str, Any]) -> None:
    """PUT /_matrix/federation/v1/3pid/onbind: each pending invite of the newly bound
    address becomes an invite of the user who bound it. Every invite is tried; the last
    failure is then raised (as Synapse does)."""
    invites = body.get("invites")
    if invites is None:
        return
    if not isinstance(invites, list):
        raise bad_json("'invites' must be a list")
    if len(invites) > MAX_INVITES_PER_BIND:
        raise invalid_param(f"At most {MAX_INVITES_PER_BIND} invites are taken at once")
    failure: MatrixError | None = None
    for invite in invites:
        try:
            if not isinstance(invite, dict):
                raise bad_json("Each invite must be an object")
            signed = _signed(invite.get("signed"))
            mxid, room_id, sender = (_string(invite, k) for k in ("mxid", "room_id", "sender"))
            if not is_local_user(mxid):
                raise forbidden(f"{mxid} is not a user of this server")
            display_name = invite.get("display_name")
            do_exchange_third_party_invite(
                room_id,
                sender,
                mxid,
                signed,
                display_name=display_name if isinstance(display_name, str) else None,
            )
        except MatrixError as exc:
            where = invite.get("room_id") if isinstance(invite, dict) else None
            logger.info("onbind: invite to %s not made: %s", where, exc.error)
            failure = exc
    if failure is not None:
        raise failure


def _string(invite: dict[str, Any], key: str) -> str:
    value = invite.get(key)
    if not isinstance(value, str):
        raise bad_json(f"An invite needs a string '{key}'")
    return value


def _check_ids(room_id: str, sender: str, mxid: str) -> None:
    require_room_id(room_id)
    if not is_valid_user_id(sender) or not is_valid_user_id(mxid):
        raise invalid_param("'sender' and the invitee must be user IDs")


def _signed(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_json("'signed' must be an object")
    if not isinstance(value.get("mxid"), str) or not isinstance(value.get("token"), str):
        raise bad_json("'signed' needs string 'mxid' and 'token'")
    if not isinstance(value.get("signatures"), dict):
        raise bad_json("'signed' needs 'signatures'")
    return value


def do_exchange_third_party_invite(
    room_id: str,
    sender: str,
    mxid: str,
    signed: dict[str, Any],
    *,
    display_name: str | None = None,
) -> None:
    """Turn an identity server's ``signed`` object into the invite of ``mxid`` by
    ``sender``: here if this server is in the room, else through a server that is (the
    sender's, then the room ID's)."""
    _check_ids(room_id, sender, mxid)
    if _signed(signed)["mxid"] != mxid:
        raise forbidden("The signed invite is for another user")
    room = Room.objects.filter(room_id=room_id).first()
    if is_resident(room):
        do_make_third_party_invite(room_id, sender, mxid, signed)
        return
    _forward(room_id, sender, mxid, signed, display_name)


def do_make_third_party_invite(
    room_id: str, sender: str, mxid: str, signed: dict[str, Any]
) -> None:
    """Make the invite in a room this server is in (onbind, /join with
    third_party_signed, or another server's PUT /exchange_third_party_invite): checks the
    signature and the key's validity first (no lock held), then sends the member event
    as ``sender``. A user already joined stays joined."""
    _check_ids(room_id, sender, mxid)
    token = _signed(signed)["token"]
    if signed["mxid"] != mxid:
        raise forbidden("The signed invite is for another user")
    room = Room.objects.filter(room_id=room_id).first()
    if room is None or room.current_state_group_id is None:
        raise not_found("Unknown room")
    invite_id = load_state(room.current_state_group_id).get((THIRD_PARTY_INVITE, token))
    invite = event_cache.get_events([invite_id]).get(invite_id) if invite_id else None
    if invite is None:
        raise forbidden("No third-party invite in the room matches the token")
    if invite.sender != sender:
        raise forbidden("The third-party invite was sent by someone else")
    check_signed_by_valid_key(signed, invite.content)
    current = Membership.objects.filter(room=room, user_id=mxid).first()
    if current is not None and current.membership == JOIN:
        return
    third_party_invite = {"display_name": invite.content.get("display_name", ""), "signed": signed}
    row = do_update_membership(
        room_id,
        SendContext(sender=sender),
        mxid,
        INVITE,
        extra_content={"third_party_invite": third_party_invite},
    )
    if not is_local_user(sender):
        # Made here on behalf of another server's user: rooms.federation_out sends only
        # events of our own users by itself (Synapse's send_on_behalf_of).
        event = event_cache.get_events([row.event_id])[row.event_id]
        with transaction.atomic():
            federation_out.queue_event(room, event)


def check_signed_by_valid_key(signed: dict[str, Any], invite_content: dict[str, Any]) -> None:
    """403 M_FORBIDDEN unless a signature of ``signed`` verifies with a key of the
    m.room.third_party_invite whose identity server still says it is valid (a key with no
    key_validity_url is valid indefinitely)."""
    keys = keys_that_signed(signed, invite_content)
    if not keys:
        raise forbidden("The signature does not match the third-party invite's keys")
    for key in keys:
        if key.key_validity_url is None:
            return
        if identity_client.key_is_valid(key.key_validity_url, key.public_key):
            return
    raise forbidden("The identity server does not vouch for the third-party invite's key")


def _forward(
    room_id: str, sender: str, mxid: str, signed: dict[str, Any], display_name: str | None
) -> None:
    """PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId} to the sender's
    server, then the room ID's: they make the invite (Server-Server API)."""
    third_party_invite: dict[str, Any] = {"signed": signed}
    if display_name is not None:
        third_party_invite["display_name"] = display_name
    event = {
        "type": MEMBER,
        "room_id": room_id,
        "sender": sender,
        "state_key": mxid,
        "content": {"membership": INVITE, "third_party_invite": third_party_invite},
    }
    servers = [sender.partition(":")[2], room_id.partition(":")[2]]
    path = f"/_matrix/federation/v1/exchange_third_party_invite/{quote(room_id, safe='')}"
    candidates = (s for s in servers if is_valid_server_name(s) and s != settings.SERVER_NAME)
    for server in dict.fromkeys(candidates):
        try:
            request_json(server, "PUT", path, content=event)
            return
        except FederationError as exc:
            logger.info("exchange_third_party_invite through %s failed: %s", server, exc)
    raise MatrixError(
        "M_UNKNOWN", "No server in the room would make the third-party invite", status=502
    )


def check_third_party_signed(user_id: str, value: Any) -> dict[str, Any]:
    """POST /join's ``third_party_signed``: sender, mxid (the joining user), token and
    signatures."""
    signed = _signed(value)
    if not isinstance(signed.get("sender"), str):
        raise bad_json("'third_party_signed' needs a string 'sender'")
    if signed["mxid"] != user_id:
        raise forbidden("The third-party invite was signed for another user")
    return signed
