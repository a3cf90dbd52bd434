"""Reads of pending send-to-device messages."""

from __future__ import annotations

from typing import Any

from e2ee.models import ToDeviceMessage


def pending_messages(
    user_id: str, device_id: str, *, after: int, upto: int, limit: int
) -> list[tuple[int, dict[str, Any]]]:
    """The device's messages in (after, upto], in order of arrival, at most ``limit``:
    (stream position, event in /sync's to_device format)."""
    rows = (
        ToDeviceMessage.objects.filter(
            user_id=user_id, device_id=device_id, stream_id__gt=after, stream_id__lte=upto
        )
        .order_by("stream_id")
        .values_list("stream_id", "sender", "type", "content")[:limit]
    )
    return [
        (stream_id, {"sender": sender, "type": event_type, "content": content})
        for stream_id, sender, event_type, content in rows
    ]
