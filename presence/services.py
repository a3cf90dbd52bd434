"""The write path of presence: local users' (PUT /presence, /sync's ``set_presence``),
sent on to the servers sharing a room with them (presence.federation_out), and other
servers' users' (the m.presence EDU, presence.edus)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from config import process_caches
from config.lru import LRU
from presence import federation_out, selectors
from presence.models import OFFLINE, STATES, Presence
from protocol.errors import bad_json
from protocol.identifiers import check_bounded
from streams import notifier
from streams import positions as streams

MAX_STATUS_MSG_BYTES = 1024
# A /sync marks its user active at most this often (a write per sync would be a write
# per long-poll).
ACTIVITY_GRANULARITY_MS = 60 * 1000
# What this process last wrote or read of a user's presence is believed this long, so a
# client syncing in a loop does not read its presence row on every sync. A change made
# by another process (PUT /presence there) is seen here at most this much later.
SEEN_TRUST_S = 5.0

# user ID -> (state, last_active_ts, monotonic time this process wrote or read them)
_seen: LRU[str, tuple[str, int, float]] = LRU(10_000)


@process_caches.register
def forget_seen() -> None:
    """For tests, whose databases are rolled back under the memo."""
    _seen.clear()


def check_presence(state: str) -> str:
    if state not in STATES:
        raise bad_json(f"'presence' must be one of {', '.join(STATES)}")
    return state


def check_status_msg(status_msg: str | None) -> str | None:
    """A status message is a line shown next to a name, sent to everyone sharing a room
    with the user on every change; the spec sets no limit, so it gets a display name's
    order of size (Synapse allows 256 characters there), in bytes: 1 KiB."""
    if status_msg is not None:
        check_bounded(status_msg, "'status_msg'", limit=MAX_STATUS_MSG_BYTES)
    return status_msg


def _visible(content: dict[str, object]) -> tuple[object, ...]:
    """What co-members are told about: a change here moves the presence stream."""
    return content["presence"], content.get("currently_active"), content.get("status_msg")


def _write(user_id: str, state: str, status_msg: str | None, *, keep_status: bool) -> None:
    """Set the state, mark the user active now, and move the presence stream if what
    others see changed. Locks the user's presence row."""
    now = now_ms()
    with transaction.atomic():
        Presence.objects.get_or_create(user_id=user_id)
        row = Presence.objects.select_for_update().get(user_id=user_id)
        before = _visible(selectors.presence_content(row, now)) if row.stream_id else None
        row.state = state
        if not keep_status:
            row.status_msg = status_msg
        row.last_active_ts = now
        content = selectors.presence_content(row, now)
        if _visible(content) != before:
            _move_stream(row)
            federation_out.queue_presence(user_id, content)
        row.save()
    _seen.put(user_id, (state, now, time.monotonic()))


def _move_stream(row: Presence) -> None:
    """Give the row's change a new position, and wake those who see it once committed."""
    row.stream_id = streams.next_position(streams.PRESENCE)
    position, user_id = row.stream_id, row.user_id
    transaction.on_commit(
        lambda: notifier.notify_stream_moved(
            streams.PRESENCE, position, user_ids=selectors.users_sharing_a_room(user_id)
        )
    )


def do_set_presence(user_id: str, state: str, status_msg: str | None) -> None:
    """PUT /presence/{userId}/status. With presence off the request is accepted and
    ignored (as Synapse does with presence disabled)."""
    check_presence(state)
    check_status_msg(status_msg)
    if not settings.PRESENCE_ENABLED:
        return
    _write(user_id, state, status_msg, keep_status=False)


def do_record_sync(user_id: str, set_presence: str) -> None:
    """/sync's ``set_presence``: ``online`` or ``unavailable`` set the state and mark the
    user active, ``offline`` leaves presence alone (sync.yaml). Writes only when the
    state changes or the last activity is older than a minute."""
    if set_presence == OFFLINE or not settings.PRESENCE_ENABLED:
        return
    now = now_ms()
    seen = _seen.get(user_id)
    if (
        seen is not None
        and seen[0] == set_presence
        and now - seen[1] < ACTIVITY_GRANULARITY_MS
        and time.monotonic() - seen[2] < SEEN_TRUST_S
    ):
        return
    row = Presence.objects.filter(user_id=user_id).only("state", "last_active_ts").first()
    fresh = row is not None and now - row.last_active_ts < ACTIVITY_GRANULARITY_MS
    if row is not None and row.state == set_presence and fresh:
        _seen.put(user_id, (row.state, row.last_active_ts, time.monotonic()))
        return
    _write(user_id, set_presence, None, keep_status=True)


def do_set_remote_presence(
    user_id: str,
    state: str,
    status_msg: str | None,
    last_active_ago: int,
    currently_active: bool,
) -> None:
    """The presence of a user of another server, as their server sent it (an m.presence
    EDU, checked by presence.edus): stored like a local user's, ``last_active_ago``
    turned into a time here, and shown to local users sharing a room with them when
    what they see changed. Locks the user's presence row."""
    now = now_ms()
    with transaction.atomic():
        Presence.objects.get_or_create(user_id=user_id)
        row = Presence.objects.select_for_update().get(user_id=user_id)
        before = _visible(selectors.presence_content(row, now)) if row.stream_id else None
        row.state = state
        row.status_msg = status_msg
        row.last_active_ts = now - last_active_ago
        row.currently_active = currently_active
        if _visible(selectors.presence_content(row, now)) != before:
            _move_stream(row)
        row.save()
