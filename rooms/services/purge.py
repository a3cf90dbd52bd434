"""Purging a room: every row this server stores for it, gone (Synapse's ``purge_room``).

Used by the admin room deletion once its local users have left. The room's events,
graph edges, state groups, state changes, current state, memberships, aliases, receipts,
typing rows, push actions and the local users' account data for the room are deleted in
one transaction; what other servers hold is untouched. Reports of the room's events are
kept: they are the moderators' record.
"""

from __future__ import annotations

from django.db import transaction

from accounts.models import AccountData
from rooms.models import Event, Room, RoomStateChange, StateGroup


def do_purge_room(room_id: str) -> bool:
    """Delete everything stored for the room; False when there was nothing. Takes the
    room lock, so no event is sent into the room while it goes."""
    with transaction.atomic():
        room = Room.objects.select_for_update().filter(room_id=room_id).first()
        if room is None:
            return False
        # State groups are referenced with PROTECT (by the room, by events, by state
        # changes and by each other): those references go first.
        Room.objects.filter(pk=room.pk).update(current_state_group=None)
        Event.objects.filter(room=room).delete()
        RoomStateChange.objects.filter(room=room).delete()
        StateGroup.objects.filter(room=room).update(prev_group=None)
        StateGroup.objects.filter(room=room).delete()
        AccountData.objects.filter(room_id=room_id).delete()
        Room.objects.filter(pk=room.pk).delete()
    return True
