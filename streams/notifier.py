"""Wake-ups after commit: "stream X moved", never the payload (STYLE habit 5)."""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

SYNC_GROUP = "sync.wakeup"


def notify_stream_moved(
    stream: str,
    position: int,
    room_id: str | None = None,
    user_ids: list[str] | None = None,
) -> None:
    """Tell long-polling /sync requests that ``stream`` reached ``position``.

    ``room_id`` wakes the members of a room, ``user_ids`` those users; neither wakes
    everyone.

    Called from ``transaction.on_commit``. A lost wake-up only delays a client until its
    long-poll times out, so failures are logged, not raised.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "stream.moved",
        "stream": stream,
        "position": position,
        "room_id": room_id,
        "user_ids": user_ids or [],
    }
    try:
        async_to_sync(layer.group_send)(SYNC_GROUP, message)
    except Exception:
        logger.warning("Could not publish a sync wake-up", exc_info=True)
