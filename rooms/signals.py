"""Receivers of account signals: membership follows the account."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from rooms.services import membership, user_directory
from rooms.tasks import propagate_profile


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
