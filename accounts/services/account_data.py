"""Client config: global and per-room account data."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import AccountData, User
from protocol.errors import MatrixError
from streams import notifier
from streams import positions as streams

# Client-Server API, PUT /user/{userId}/account_data/{type}: these types are managed
# by the server through their own APIs and cannot be set here.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
MAX_TYPE_LENGTH = 255


def do_set_account_data(
    user: User, data_type: str, content: dict[str, Any], room_id: str = ""
) -> None:
    if data_type in SERVER_MANAGED_TYPES:
        raise MatrixError("M_BAD_JSON", f"Cannot set {data_type} through this API", status=405)
    if not data_type or len(data_type) > MAX_TYPE_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Invalid account data type")
    write_account_data(user, data_type, content, room_id)


def write_account_data(
    user: User, data_type: str, content: dict[str, Any], room_id: str = ""
) -> None:
    """Store account data (server-managed types included) and move the stream."""
    with transaction.atomic():
        position = streams.next_position(streams.ACCOUNT_DATA)
        AccountData.objects.update_or_create(
            user=user,
            room_id=room_id,
            type=data_type,
            defaults={"content": content, "stream_id": position},
        )
    user_id = user.user_id
    transaction.on_commit(
        lambda: notifier.notify_stream_moved(streams.ACCOUNT_DATA, position, user_ids=[user_id])
    )
