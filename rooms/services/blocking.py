"""Blocked rooms: local users may not join, be invited to or knock on them.

Synapse refuses such a membership with 403 ("This room has been blocked on this
server"); the spec's errcode for a refused join is M_FORBIDDEN. A leave or a ban is
always allowed, so that a blocked room can be emptied.
"""

from __future__ import annotations

from protocol.errors import MatrixError
from rooms.models import BlockedRoom


def is_room_blocked(room_id: str) -> bool:
    return BlockedRoom.objects.filter(room_id=room_id).exists()


def blocked_by(room_id: str) -> str | None:
    """The admin who blocked the room, or None when it is not blocked."""
    return BlockedRoom.objects.filter(room_id=room_id).values_list("blocked_by", flat=True).first()


def check_not_blocked(room_id: str) -> None:
    if is_room_blocked(room_id):
        raise MatrixError("M_FORBIDDEN", "This room has been blocked on this server", status=403)


def do_block_room(room_id: str, by: str) -> bool:
    """Block the room; True when it was not blocked before."""
    _row, created = BlockedRoom.objects.get_or_create(room_id=room_id, defaults={"blocked_by": by})
    return created


def do_unblock_room(room_id: str) -> bool:
    """Unblock the room; True when it was blocked."""
    count, _ = BlockedRoom.objects.filter(room_id=room_id).delete()
    return bool(count)
