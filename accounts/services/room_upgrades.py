"""A user's account data about a room, carried to its replacement when the room is
upgraded (as Synapse does; the spec leaves it to clients, "Room Upgrades", and clients
that do not do it would lose a DM or a favourite to every upgrade)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import AccountData, User
from accounts.selectors import local_user
from accounts.services.account_data import write_account_data
from accounts.services.tags import TAG_TYPE

DIRECT_TYPE = "m.direct"


def do_carry_room_account_data(user_id: str, old_room_id: str, new_room_id: str) -> None:
    """The old room's tags become the new room's (unless it has some), and each
    m.direct entry listing the old room lists the new one too. Locks the user row."""
    with transaction.atomic():
        user = local_user(user_id)
        if user is None:
            return
        # The user's row lock, as a tag change takes it (accounts.services.tags).
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        rows = {
            (room_id, data_type): content
            for room_id, data_type, content in AccountData.objects.filter(
                user=user,
                type__in=(TAG_TYPE, DIRECT_TYPE),
                room_id__in=("", old_room_id, new_room_id),
            ).values_list("room_id", "type", "content")
        }
        tags = rows.get((old_room_id, TAG_TYPE))
        if isinstance(tags, dict) and tags.get("tags") and (new_room_id, TAG_TYPE) not in rows:
            write_account_data(user, TAG_TYPE, tags, new_room_id)
        direct = rows.get(("", DIRECT_TYPE))
        if isinstance(direct, dict):
            carried = _with_replacement(direct, old_room_id, new_room_id)
            if carried != direct:
                write_account_data(user, DIRECT_TYPE, carried, "")


def _with_replacement(
    direct: dict[str, Any], old_room_id: str, new_room_id: str
) -> dict[str, Any]:
    carried = {}
    for other, room_ids in direct.items():
        if isinstance(room_ids, list) and old_room_id in room_ids and new_room_id not in room_ids:
            room_ids = [*room_ids, new_room_id]
        carried[other] = room_ids
    return carried
