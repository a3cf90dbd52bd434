"""The sections of /sync that end-to-end encryption adds: ``to_device`` (Client-Server
API, "Send-to-Device messaging"), and ``device_lists``, ``device_one_time_keys_count``
and ``device_unused_fallback_key_types`` ("End-to-End Encryption", "Extensions to /sync").

To-device delivery is acknowledged by the token: a /sync whose ``since`` reached a message's
position deletes it, so a retry with the same ``since`` receives the same messages
again, and a client never receives a message twice from one token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from e2ee import selectors
from e2ee.services import to_device
from streams import positions as streams

if TYPE_CHECKING:
    from sync.builder import SyncRequest
    from sync.tokens import SyncToken

# The spec recommends limiting each response; 100 is its suggestion.
MAX_PER_SYNC = 100


def to_device_section(
    request: SyncRequest, since: SyncToken | None, now: SyncToken
) -> tuple[dict[str, Any], bool, dict[str, int]]:
    after = since.to_device if since is not None else 0
    if after:
        to_device.do_acknowledge(request.user_id, request.device_id, after)
    if after >= now.to_device:
        # Nothing was sent to any device since the token.
        return {"to_device": {"events": []}}, False, {}
    pending = selectors.pending_messages(
        request.user_id, request.device_id, after=after, upto=now.to_device, limit=MAX_PER_SYNC
    )
    caps: dict[str, int] = {}
    if len(pending) == MAX_PER_SYNC:
        # More may wait: the next token starts after the last message delivered here.
        caps[streams.TO_DEVICE] = pending[-1][0]
    return {"to_device": {"events": [event for _, event in pending]}}, bool(pending), caps


def device_lists_section(
    request: SyncRequest, since: SyncToken | None, now: SyncToken
) -> tuple[dict[str, Any], bool]:
    """``device_lists`` ("Extensions to /sync"): only on an incremental sync; clients
    use /keys/query after an initial one."""
    if since is None:
        return {}, False
    changes = selectors.device_list_changes(
        request.user_id,
        events=(since.events, now.events),
        device_lists=(since.device_lists, now.device_lists),
        events_final=True,
    )
    news = bool(changes.changed or changes.left)
    return {"device_lists": {"changed": changes.changed, "left": changes.left}}, news


# The read-along (sync.providers) of one_time_keys_section.
KEY_COUNTS = "e2ee.key_counts"


def key_counts_along(request: SyncRequest) -> tuple[str, list[Any]]:
    return selectors.key_counts_query(request.user_id, request.device_id)


def one_time_keys_section(
    request: SyncRequest, since: SyncToken | None, now: SyncToken
) -> tuple[dict[str, Any], bool]:
    """``device_one_time_keys_count`` and ``device_unused_fallback_key_types`` of the
    syncing device: always present, never news by themselves (a claim does not wake)."""
    counts, unused_fallback_types = selectors.key_counts(
        request.user_id, request.device_id, now.readings.get(KEY_COUNTS)
    )
    return {
        "device_one_time_keys_count": counts,
        "device_unused_fallback_key_types": unused_fallback_types,
    }, False
