"""Typing notifications (Client-Server API, "Typing Notifications").

The typing set of a room lives in the ``Typing`` table, so every web process sees the
same one. A change of the set (someone starts, stops, or times out) takes a position on
the ``typing`` stream and wakes the room's long-polls on commit; a keep-alive from
someone already typing only pushes their expiry back, without moving the stream.

Expiry needs no timer per user: a reader treats a row whose ``expires_at_ms`` has
passed as not typing, and :func:`do_expire_typing` (run by the sync hub's once-a-second
poll while anyone waits) marks such rows stopped with a new stream position, which
wakes the waiters, who then see the typist gone.

Locks: every stream-moving write takes the ``typing`` stream position first (the stream
row lock serialises them) and only then touches rows; the keep-alive is one
conditional UPDATE that never waits for the stream lock.
"""

from __future__ import annotations

from django.db import transaction

from accounts.clock import now_ms
from rooms.models import Room, Typing
from streams import notifier
from streams import positions as streams

# Longest a single PUT /typing keeps a user typing; clients re-send every 20-30 s.
MAX_TYPING_TIMEOUT_MS = 30_000
DEFAULT_TYPING_TIMEOUT_MS = 30_000


def _notify_on_commit(position: int, room_ids: set[str]) -> None:
    def notify() -> None:
        for room_id in room_ids:
            notifier.notify_stream_moved(streams.TYPING, position, room_id=room_id)

    transaction.on_commit(notify)


def do_set_typing(room: Room, user_id: str, typing: bool, timeout_ms: int) -> None:
    """Start (for ``timeout_ms``, capped) or stop ``user_id`` typing in ``room``.

    The caller has checked that the user is joined to the room.
    """
    now = now_ms()
    if typing:
        expires_at_ms = now + max(0, min(timeout_ms, MAX_TYPING_TIMEOUT_MS))
        # Keep-alive: still typing, so the set does not change and the stream stays.
        still_typing = Typing.objects.filter(
            room=room, user_id=user_id, expires_at_ms__gt=now
        ).update(expires_at_ms=expires_at_ms)
        if still_typing:
            return
    else:
        expires_at_ms = 0
        listed = Typing.objects.filter(room=room, user_id=user_id, expires_at_ms__gt=0)
        if not listed.exists():
            return
    with transaction.atomic():
        position = streams.next_position(streams.TYPING)
        Typing.objects.update_or_create(
            room=room,
            user_id=user_id,
            defaults={"expires_at_ms": expires_at_ms, "stream_id": position},
        )
        _notify_on_commit(position, {room.room_id})


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
        rows = list(expired.values_list("pk", "room__room_id"))
        stopped = Typing.objects.filter(
            pk__in=[pk for pk, _ in rows], expires_at_ms__gt=0, expires_at_ms__lte=now
        ).update(expires_at_ms=0, stream_id=position)
        if not stopped:
            # Another process swept them first: give the position back.
            transaction.set_rollback(True)
            return 0
        _notify_on_commit(position, {room_id for _, room_id in rows})
    return stopped
