"""Room tags (Client-Server API, "Room Tagging"): the ``m.tag`` room account data,
changed one tag at a time."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.models import AccountData, User
from accounts.services.account_data import check_content_size, write_account_data
from protocol.errors import bad_json, invalid_param

TAG_TYPE = "m.tag"
MAX_TAG_BYTES = 255


def get_tags(user: User, room_id: str) -> dict[str, Any]:
    content = (
        AccountData.objects.filter(user=user, room_id=room_id, type=TAG_TYPE)
        .values_list("content", flat=True)
        .first()
    )
    tags = content.get("tags") if isinstance(content, dict) else None
    return tags if isinstance(tags, dict) else {}


def check_tag(tag: str, body: dict[str, Any]) -> dict[str, Any]:
    if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
        raise invalid_param(f"A tag must be 1 to {MAX_TAG_BYTES} bytes")
    if "order" in body:
        order = body["order"]
        # definitions/tag.yaml: a number in [0, 1].
        if isinstance(order, bool) or not isinstance(order, int | float) or not 0 <= order <= 1:
            raise bad_json("'order' must be a number between 0 and 1")
    return body


def _change(user: User, room_id: str, tag: str, info: dict[str, Any] | None) -> None:
    # Read-modify-write of one row: the user's row lock keeps concurrent tag changes
    # from losing each other's tags.
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).values_list("pk").first()
        tags = get_tags(user, room_id)
        if info is None:
            if tag not in tags:
                return
            del tags[tag]
        else:
            tags[tag] = info
        # The tags of a room are one account data object, and share its limit.
        check_content_size({"tags": tags})
        write_account_data(user, TAG_TYPE, {"tags": tags}, room_id)


def do_add_tag(user: User, room_id: str, tag: str, body: dict[str, Any]) -> None:
    """PUT /user/{userId}/rooms/{roomId}/tags/{tag}. Locks the user row."""
    _change(user, room_id, tag, check_tag(tag, body))


def do_remove_tag(user: User, room_id: str, tag: str) -> None:
    """DELETE /user/{userId}/rooms/{roomId}/tags/{tag}; removing a missing tag is fine.
    Locks the user row."""
    _change(user, room_id, tag, None)
