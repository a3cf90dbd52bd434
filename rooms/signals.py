"""Receivers of account signals and of persisted events: membership follows the
account, and guests follow the room's guest access."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from rooms.hooks import PersistingEvent
from rooms.services import guests, membership, user_directory
from rooms.state import load_state
from rooms.tasks import propagate_profile, remove_guests


def leave_all_rooms_on_deactivation(sender: Any, user_id: str, **kwargs: Any) -> None:
    """A deactivated user leaves every room they are in, invited to or knocking on.

    Done inside the deactivation transaction: the account is never left deactivated
    but still joined.
    """
    membership.do_leave_all_rooms(user_id)
    user_directory.do_remove_user(user_id)


def propagate_profile_change(sender: Any, user_id: str, key: str, **kwargs: Any) -> None:
    """New displayname/avatar_url: refresh the user's member events, in the worker."""
    if key not in ("displayname", "avatar_url"):
        return
    # The directory shows the profile at once; the member events follow from the worker.
    user_directory.do_update_local_user(user_id)
    transaction.on_commit(lambda: propagate_profile.delay(user_id))


def remove_guests_on_revocation(persisting: PersistingEvent) -> None:
    """Event-persisting hook: an m.room.guest_access event that ends can_join, made
    here or received, has the room's local guests leave once it is committed (the task
    looks at the current state then: a later can_join keeps them). One that follows no
    can_join (a new room's, say) has no guest to remove: none could join."""
    event = persisting.event
    if (event.type, event.state_key) != guests.GUEST_ACCESS_KEY:
        return None
    if event.content.get("guest_access") == guests.CAN_JOIN:
        return None
    if persisting.state_before is None or not guests.guest_can_join(
        load_state(persisting.state_before)
    ):
        return None
    room_id = persisting.room.room_id
    transaction.on_commit(lambda: remove_guests.delay(room_id))
    return None
