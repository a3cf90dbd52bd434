"""The ``to_device`` section of /sync (Client-Server API, "Send-to-Device messaging").

Delivery is acknowledged by the token: a /sync whose ``since`` reached a message's
position deletes it, so a retry with the same ``since`` receives the same messages
again, and a client never receives a message twice from one token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from e2ee import selectors, services
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
        services.do_acknowledge(request.user_id, request.device_id, after)
    pending = selectors.pending_messages(
        request.user_id, request.device_id, after=after, upto=now.to_device, limit=MAX_PER_SYNC
    )
    caps: dict[str, int] = {}
    if len(pending) == MAX_PER_SYNC:
        # More may wait: the next token starts after the last message delivered here.
        caps[streams.TO_DEVICE] = pending[-1][0]
    return {"to_device": {"events": [event for _, event in pending]}}, bool(pending), caps
