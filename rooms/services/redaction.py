"""Redacting events (Client-Server API, "Redactions")."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from protocol import auth_rules
from protocol.errors import MatrixError
from rooms.models import Event
from rooms.partial import retrying
from rooms.services.events import (
    SendContext,
    auth_state_for,
    find_by_txn,
    lock_room,
    room_version_of,
    send_in_locked_room,
)
from rooms.state import load_state


def sender_of(room_id: str, event_id: str) -> str | None:
    """Who sent an event of the room (None if there is no such event)."""
    row = Event.objects.filter(room__room_id=room_id, event_id=event_id).only("sender").first()
    return None if row is None else row.sender


@retrying
def do_redact(room_id: str, ctx: SendContext, target_id: str, reason: str | None) -> Event:
    """PUT /rooms/{roomId}/redact/{eventId}/{txnId}.

    Anyone may redact their own events; redacting another's needs the ``redact``
    power level (auth rules; "Handling redactions" from room v3).
    """
    content: dict[str, Any] = {}
    if reason is not None:
        content["reason"] = reason
    with transaction.atomic():
        room = lock_room(room_id)
        # Checked under the lock, so a concurrent retry sees the first attempt's event.
        existing = find_by_txn(ctx, room, "m.room.redaction")
        if existing is not None:
            return existing
        room_version = room_version_of(room)
        target = Event.objects.filter(room=room, event_id=target_id).only("sender").first()
        if target is None:
            if Event.objects.filter(event_id=target_id).exists():
                # Synapse: 400 "Cannot redact event from a different room" (sytest "PUT
                # /redact disallows redaction of event in different room").
                raise MatrixError(
                    "M_INVALID_PARAM", "That event belongs to a different room", status=400
                )
            raise MatrixError("M_NOT_FOUND", "Event not found")
        if target.sender != ctx.sender:
            state = load_state(room.current_state_group_id)
            auth_state = auth_state_for(
                room_version,
                dict(state),
                {("m.room.power_levels", ""), ("m.room.member", ctx.sender)},
            )
            level = auth_rules.get_user_power_level(room_version, ctx.sender, auth_state)
            if level < auth_rules.get_named_level(room_version, auth_state, "redact"):
                raise MatrixError("M_FORBIDDEN", "You may not redact other users' events")
        extra = None
        if room_version.redacts_in_content:
            content["redacts"] = target_id
        else:
            extra = {"redacts": target_id}
        return send_in_locked_room(room, ctx, "m.room.redaction", content, extra=extra)
