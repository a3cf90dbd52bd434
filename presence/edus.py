"""Other servers' users' presence: the m.presence EDU (Server-Server API, "Presence";
federation.edus hands it here, registered in presence.apps).

Each update of the EDU's ``push`` list is taken only for a user of the sending server
who shares a room with a local user (joined to a room a local user is joined to):
nobody here could see anyone else's, and a server may speak only for its own users.
Malformed updates are skipped, the others taken (the spec gives EDUs no error). With
presence off nothing is taken.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from presence import services
from presence.models import STATES
from protocol.identifiers import is_valid_user_id, parse_user_id
from rooms.models import Membership

logger = logging.getLogger(__name__)

PRESENCE = "m.presence"


def receive_presence(origin: str, content: Mapping[str, Any]) -> None:
    """An m.presence EDU: ``{"push": [{"user_id", "presence", "last_active_ago",
    "currently_active"?, "status_msg"?}]}``."""
    if not settings.PRESENCE_ENABLED:
        return
    push = content.get("push")
    if not isinstance(push, list):
        logger.info("ignored a malformed m.presence EDU from %s", origin)
        return
    updates: dict[str, Mapping[str, Any]] = {}
    for update in push:
        if not _well_formed(update):
            logger.info("ignored a malformed presence update from %s", origin)
            continue
        user_id = update["user_id"]
        if parse_user_id(user_id).domain != origin:
            logger.info("ignored the presence of %s sent by %s", user_id, origin)
            continue
        # Of several updates for one user, the last stands.
        updates[user_id] = update
    seen = _sharing_a_room_with_a_local_user(list(updates))
    for user_id, update in updates.items():
        if user_id not in seen:
            logger.info("ignored the presence of %s: no room shared here", user_id)
            continue
        services.do_set_remote_presence(
            user_id,
            update["presence"],
            update.get("status_msg"),
            update.get("last_active_ago", 0),
            update.get("currently_active") is True,
        )


def _well_formed(update: Any) -> bool:
    if not isinstance(update, dict):
        return False
    user_id, last_active_ago = update.get("user_id"), update.get("last_active_ago", 0)
    status_msg = update.get("status_msg")
    return (
        isinstance(user_id, str)
        and is_valid_user_id(user_id)
        and update.get("presence") in STATES
        and isinstance(last_active_ago, int)
        and not isinstance(last_active_ago, bool)
        and last_active_ago >= 0
        and (
            status_msg is None
            or (
                isinstance(status_msg, str)
                and len(status_msg.encode("utf-8", "replace")) <= services.MAX_STATUS_MSG_BYTES
            )
        )
    )


def _sharing_a_room_with_a_local_user(user_ids: list[str]) -> set[str]:
    """Those of ``user_ids`` joined to a room a local user is joined to (two queries)."""
    if not user_ids:
        return set()
    joined = list(
        Membership.objects.filter(user_id__in=user_ids, membership="join").values_list(
            "user_id", "room_id"
        )
    )
    if not joined:
        return set()
    with_local = set(
        Membership.objects.filter(
            room_id__in={room for _, room in joined},
            membership="join",
            user_id__endswith=":" + settings.SERVER_NAME,
        ).values_list("room_id", flat=True)
    )
    return {user_id for user_id, room in joined if room in with_local}
