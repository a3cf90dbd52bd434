"""Recording that a user's device list changed (Client-Server API, "Tracking the device
list for a user").

A change is a row on the ``device_lists`` stream: a device added, removed, renamed or
re-keyed, or the user's cross-signing keys or signatures changed. /sync's
``device_lists.changed`` and GET /keys/changes read the rows in a token range; the
users sharing a room with the changed users are woken after commit.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from e2ee import selectors
from e2ee.models import DeviceListChange
from streams import notifier
from streams import positions as streams


def do_mark_changed(user_ids: Iterable[str], *, owner_only: bool = False) -> int | None:
    """Record a device list change of each of ``user_ids`` at one new position;
    ``owner_only``: a change that concerns the users themselves alone.

    Runs in the caller's transaction (or its own), so the change is visible exactly
    when what changed is. Returns the position, or None when there was nobody.
    """
    users = sorted(set(user_ids))
    if not users:
        return None
    with transaction.atomic():
        position = streams.next_position(streams.DEVICE_LISTS)
        DeviceListChange.objects.bulk_create(
            DeviceListChange(user_id=user_id, stream_id=position, owner_only=owner_only)
            for user_id in users
        )
        transaction.on_commit(lambda: notify_changed(users, position, owner_only=owner_only))
    return position


def notify_changed(user_ids: list[str], position: int, *, owner_only: bool = False) -> None:
    """Wake the /syncs of the changed users and (unless the change is theirs alone) of
    everyone sharing a room with them."""
    woken = user_ids if owner_only else selectors.users_sharing_a_room_with(user_ids)
    notifier.notify_stream_moved(streams.DEVICE_LISTS, position, user_ids=woken)
