"""Operator actions on the server as a whole: server notices, federation connections.

Server notices (Client-Server API, "Server Notices"): a notice reaches a user in a room
of its own, made by the system user (``settings.SERVER_NOTICES_LOCALPART``) when the
first notice is sent, the user invited and the room tagged ``m.server_notice`` for them,
nobody but the system user allowed to speak (users_default -10, as Synapse makes it).
The same room is used while the user is joined or invited; once they left, the next
notice makes a new one.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from accounts.models import User
from accounts.selectors import local_user
from accounts.services import tags
from federation import outbound
from federation.models import Destination
from operators.services import audit
from protocol.errors import MatrixError, invalid_param
from rooms.models import Event, Room
from rooms.services import creation, membership
from rooms.services.events import SendContext, do_send_event, find_by_txn

SERVER_NOTICE_TAG = "m.server_notice"
NOTICES_ROOM_NAME = "Server Notices"


def system_user_id() -> str:
    return membership.server_notices_user_id()


def _system_user() -> User:
    user, _ = User.objects.get_or_create(
        localpart=settings.SERVER_NOTICES_LOCALPART,
        defaults={"profile": {"displayname": NOTICES_ROOM_NAME}},
    )
    if user.has_usable_password():
        # Made here: nobody logs in as the system user.
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def notices_room_of(user_id: str) -> str | None:
    """The user's server notices room: made by the system user, the user joined or
    invited."""
    return (
        Room.objects.filter(
            creator=system_user_id(),
            memberships__user_id=user_id,
            memberships__membership__in=("join", "invite"),
        )
        .order_by("-id")
        .values_list("room_id", flat=True)
        .first()
    )


def _notices_room_for(user: User) -> str:
    room_id = notices_room_of(user.user_id)
    if room_id is not None:
        return room_id
    _system_user()
    room = creation.do_create_room(
        creation.RoomSpec(
            creator=system_user_id(),
            preset="private_chat",
            name=NOTICES_ROOM_NAME,
            invite=[user.user_id],
            power_level_content_override={"users_default": -10},
        )
    )
    tags.do_add_tag(user, room.room_id, SERVER_NOTICE_TAG, {})
    return room.room_id


def send_server_notice(
    user_id: str,
    content: dict[str, Any],
    *,
    actor: str,
    via: str = "api",
    ip: str = "",
    event_type: str = "m.room.message",
    state_key: str | None = None,
    txn_id: str | None = None,
) -> Event:
    """Send ``content`` to a local user in their server notices room; with ``txn_id``, a
    retransmission returns the first attempt's event (transaction IDs are scoped to the
    admin who sends)."""
    user = local_user(user_id)
    if user is None:
        if user_id.endswith(f":{settings.SERVER_NAME}"):
            raise MatrixError("M_NOT_FOUND", "User not found")
        raise invalid_param("Server notices can only be sent to local users")
    if not user.is_active:
        raise invalid_param("The user is deactivated")
    ctx = SendContext(
        sender=system_user_id(), txn_id=f"{actor}/{txn_id}" if txn_id is not None else None
    )
    if txn_id is not None:
        existing = find_by_txn(ctx, None, event_type)
        if existing is not None:
            return existing
    room_id = _notices_room_for(user)
    with transaction.atomic():
        event = do_send_event(room_id, ctx, event_type, content, state_key)
        audit.record(actor, "server_notice.send", user_id, via=via, ip=ip, event_id=event.event_id)
    return event


# --- federation ---------------------------------------------------------------------------


def reset_destination(server_name: str, *, actor: str, via: str = "api", ip: str = "") -> None:
    """End a destination's backoff and send to it now (reset_connection). 404 for a
    server never sent to, 400 when nothing failed."""
    destination = Destination.objects.filter(server_name=server_name).first()
    if destination is None:
        raise MatrixError("M_NOT_FOUND", "Unknown destination")
    if not destination.failures and destination.retry_at_ts is None:
        raise invalid_param("The retry timing does not need to be reset for this destination.")
    with transaction.atomic():
        outbound.do_reset_backoff(server_name)
        audit.record(actor, "destination.reset", server_name, via=via, ip=ip)
