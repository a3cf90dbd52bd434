"""Client config: global and per-room account data."""

from __future__ import annotations

from typing import Any

from accounts.models import AccountData, User
from protocol.errors import MatrixError

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
    AccountData.objects.update_or_create(
        user=user, room_id=room_id, type=data_type, defaults={"content": content}
    )
