"""Typing notifications (Client-Server API, "Typing Notifications").

The typing set of a room lives in the ``Typing`` table, so every web process sees the
same one. A change of the set (someone starts, stops, or times out) takes a position on
the ``typing`` stream and wakes the room's long-polls on commit; a keep-alive from
someone already typing only pushes their expiry back, without moving the stream.

Expiry needs no timer per user: a reader treats a row whose ``expires_at_ms`` has
passed as not typing, and :func:`do_expire_typing` (run by the sync hub's once-a-second
poll while anyone waits) marks such rows stopped with a new stream position, which
wakes the waiters, who then see the typist gone.

Other servers: a local user's change (and, now and then, keep-alive) is queued as an
m.typing EDU for the other servers in the room, in the transaction of the change
(rooms.federation_out.queue_typing); so is a local typist's expiry. Remote users' typing
comes from their servers' EDUs (rooms.federation.edus) through
:func:`do_set_remote_typing`, into the same table and stream, and is never sent on.

Locks: every stream-moving write takes the ``typing`` stream position first (the stream
row lock serialises them) and only then touches rows; the keep-alive is one
conditional UPDATE that never waits for the stream lock.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from accounts.clock import now_ms
from rooms import federation_out
from rooms.models import Room, Typing
from streams import notifier
from streams import positions as streams

# Longest a single PUT /typing keeps a user typing; clients re-send every 20-30 s.
MAX_TYPING_TIMEOUT_MS = 30_000
DEFAULT_TYPING_TIMEOUT_MS = 30_000
# How long a remote user's typing lasts without news from their server. m.typing EDUs
# carry no timeout; Synapse forgets a remote typist after 60 s (its FEDERATION_TIMEOUT)
# and, typing, re-sends every 40 s, so anything shorter would flicker.
FEDERATION_TYPING_TIMEOUT_MS = 60_000


def _notify_on_commit(position: int, room_ids: set[str]) -> None:
    def notify() -> None:
        for room_id in room_ids:
            notifier.notify_stream_moved(streams.TYPING, position, room_id=room_id)

    transaction.on_commit(notify)


def do_set_typing(room: Room, user_id: str, typing: bool, timeout_ms: int) -> None:
    """Start (for ``timeout_ms``, capped) or stop the local user ``user_id`` typing in
    ``room``, and tell the other servers in the room.

    The caller has checked that the user is joined to the room.
    """
    with transaction.atomic():
        changed = _set_typing(room, user_id, typing, min(timeout_ms, MAX_TYPING_TIMEOUT_MS))
        if changed or typing:
            federation_out.queue_typing(room, user_id, typing, keep_alive=not changed)


def do_set_remote_typing(
    room: Room, user_id: str, typing: bool, timeout_ms: int = FEDERATION_TYPING_TIMEOUT_MS
) -> None:
    """Start (for ``timeout_ms``, capped at FEDERATION_TYPING_TIMEOUT_MS) or stop a remote
    user typing in ``room``, as their server told us (rooms.federation.edus has checked
    the user is of that server and joined)."""
    _set_typing(room, user_id, typing, min(timeout_ms, FEDERATION_TYPING_TIMEOUT_MS))


def _set_typing(room: Room, user_id: str, typing: bool, timeout_ms: int) -> bool:
    """Start or stop ``user_id`` typing; whether the room's typing set changed (a
    keep-alive only pushes the expiry back)."""
    now = now_ms()
    if typing:
        expires_at_ms = now + max(0, timeout_ms)
        # Keep-alive: still typing, so the set does not change and the stream stays.
        still_typing = Typing.objects.filter(
            room=room, user_id=user_id, expires_at_ms__gt=now
        ).update(expires_at_ms=expires_at_ms)
        if still_typing:
            return False
    else:
        expires_at_ms = 0
        listed = Typing.objects.filter(room=room, user_id=user_id, expires_at_ms__gt=0)
        if not listed.exists():
            return False
    with transaction.atomic():
        position = streams.next_position(streams.TYPING)
        Typing.objects.update_or_create(
            room=room,
            user_id=user_id,
            defaults={"expires_at_ms": expires_at_ms, "stream_id": position},
        )
        _notify_on_commit(position, {room.room_id})
    return True


def do_expire_typing() -> int:
    """Mark typists whose timeout passed as stopped, in one stream position.

    Cheap when nothing expired (one indexed EXISTS), so the sync hub may call it every
    second. Returns how many typists were stopped.
    """
    now = now_ms()
    expired = Typing.objects.filter(expires_at_ms__gt=0, expires_at_ms__lte=now)
    if not expired.exists():
        return 0
    with transaction.atomic():
        position = streams.next_position(streams.TYPING)
        rows = list(expired.values_list("pk", "room__room_id", "user_id"))
        stopped = Typing.objects.filter(
            pk__in=[pk for pk, _, _ in rows], expires_at_ms__gt=0, expires_at_ms__lte=now
        ).update(expires_at_ms=0, stream_id=position)
        if not stopped:
            # Another process swept them first: give the position back.
            transaction.set_rollback(True)
            return 0
        _notify_on_commit(position, {room_id for _, room_id, _ in rows})
        _federate_expiry(rows)
    return stopped


def _federate_expiry(rows: list[tuple[int, str, str]]) -> None:
    """Tell the other servers in their rooms that the local typists among ``rows``
    stopped (a remote typist's own server tells the others)."""
    local_suffix = ":" + settings.SERVER_NAME
    local = [(room_id, user_id) for _, room_id, user_id in rows if user_id.endswith(local_suffix)]
    if not local:
        return
    rooms = Room.objects.in_bulk({room_id for room_id, _ in local}, field_name="room_id")
    for room_id, user_id in local:
        if room_id in rooms:
            federation_out.queue_typing(rooms[room_id], user_id, False)
