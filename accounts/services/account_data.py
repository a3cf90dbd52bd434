"""Client config: global and per-room account data."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import AccountData, User
from protocol.errors import MatrixError, bad_json
from protocol.identifiers import is_valid_user_id
from streams import notifier
from streams import positions as streams

# Client-Server API, PUT /user/{userId}/account_data/{type}: these types are managed
# by the server through their own APIs and cannot be set here.
SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
MAX_TYPE_LENGTH = 255
IGNORED_USER_LIST = "m.ignored_user_list"


def do_set_account_data(
    user: User, data_type: str, content: dict[str, Any], room_id: str = ""
) -> None:
    if data_type in SERVER_MANAGED_TYPES:
        raise MatrixError("M_BAD_JSON", f"Cannot set {data_type} through this API", status=405)
    if not data_type or len(data_type) > MAX_TYPE_LENGTH:
        raise MatrixError("M_INVALID_PARAM", "Invalid account data type")
    if data_type == IGNORED_USER_LIST and not room_id:
        check_ignored_user_list(content)
    write_account_data(user, data_type, content, room_id)


def check_ignored_user_list(content: dict[str, Any]) -> None:
    """m.ignored_user_list: ``ignored_users`` maps user IDs to objects (the servers and
    clients that read the list rely on its shape). An empty object clears the list, as
    clients clear account data."""
    if not content:
        return
    ignored = content.get("ignored_users")
    if not isinstance(ignored, dict):
        raise bad_json("'ignored_users' must be an object")
    for user_id, value in ignored.items():
        if not is_valid_user_id(user_id):
            raise bad_json(f"'ignored_users' keys must be user IDs, not {user_id!r}")
        if not isinstance(value, dict):
            raise bad_json(f"'ignored_users.{user_id}' must be an object")


def write_account_data(
    user: User, data_type: str, content: dict[str, Any], room_id: str = ""
) -> int:
    """Store account data (server-managed types included) and move the stream; returns
    the new position."""
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
    return position
