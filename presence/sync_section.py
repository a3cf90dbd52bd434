"""The ``presence`` section of /sync: m.presence events of the users sharing a room
with the syncing user (and their own), for changes since the token.

A /sync is also activity: :func:`record_sync` records its ``set_presence`` (default
``online``) before the response's token is read, so the change is in that response.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings

from accounts.clock import now_ms
from presence import selectors, services
from presence.models import Presence
from protocol.event_filters import event_allowed, type_allowed

if TYPE_CHECKING:
    from sync.builder import SyncRequest
    from sync.tokens import SyncToken

EVENT_TYPE = "m.presence"


def record_sync(request: SyncRequest) -> None:
    services.do_record_sync(request.user_id, request.set_presence)


def presence_section(
    request: SyncRequest, since: SyncToken | None, now: SyncToken
) -> tuple[dict[str, Any], bool]:
    if not settings.PRESENCE_ENABLED:
        return {}, False
    event_filter = request.filter.get("presence")
    if not isinstance(event_filter, dict):
        event_filter = {}
    after = since.presence if since is not None else 0
    if not type_allowed(event_filter, EVENT_TYPE):
        return {"presence": {"events": []}}, False
    # Users who began to share a room with the user since the token: their presence is
    # news to the client even if it did not change (an initial sync has everyone's).
    newly: set[str] = set()
    if since is not None and since.events < now.events:
        newly = selectors.newly_sharing(request.user_id, after=since.events, upto=now.events)
        newly.discard(request.user_id)
    if after >= now.presence and not newly:
        # Nothing changed on the stream since the token.
        return {"presence": {"events": []}}, False
    rows = (
        selectors.presence_changes(request.user_id, after=after, upto=now.presence)
        if after < now.presence
        else []
    )
    read_at = now_ms()
    current: list[tuple[str, Presence | None]] = []
    if newly:
        # Their presence as of the token's position; a user without any is offline.
        known = selectors.presence_of(sorted(newly))
        changed = {row.user_id for row in rows}
        for user_id in sorted(newly - changed):
            row = known.get(user_id)
            # A change after the token's position is the next sync's news.
            current.append((user_id, row if row and row.stream_id <= now.presence else None))
    events = [
        {
            "type": EVENT_TYPE,
            "sender": user_id,
            "content": selectors.presence_content(row, read_at),
        }
        for user_id, row in [*current, *((row.user_id, row) for row in rows)]
        if event_allowed(event_filter, EVENT_TYPE, user_id)
    ]
    limit = event_filter.get("limit")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
        # The most recent changes matter most.
        events = events[-limit:] if limit else []
    return {"presence": {"events": events}}, bool(events)
