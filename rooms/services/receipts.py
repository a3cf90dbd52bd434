"""Receipts and the fully read marker (Client-Server API, "Receipts", "Read markers").

A receipt is an "up to" marker: one row per (room, user, receipt type, thread), moved
in place. Like Synapse, a receipt for an event older (in stream order) than the one it
already points at is ignored, so a receipt only moves forwards; the same holds for the
fully read marker, kept as ``m.fully_read`` room account data.

Other servers: a local user's m.read receipt that moved is queued as an m.receipt EDU
for the other servers in the room, in the same transaction
(rooms.federation_out.queue_receipt); m.read.private receipts never leave this server.
Remote users' receipts come from their servers' EDUs (rooms.federation.edus) through
:func:`do_receive_remote_receipt`, into the same table and stream, and are not sent on.

Locks: ``do_send_receipt`` takes the ``receipts`` stream position first (the stream row
lock serialises receipt writers), then reads and moves the row; an ignored receipt
rolls the position back.
"""

from __future__ import annotations

from django.db import transaction

from accounts.clock import now_ms
from accounts.models import AccountData, User
from accounts.services.account_data import write_account_data
from protocol.errors import MatrixError
from rooms import federation_out, hooks
from rooms.models import Event, Receipt, Room
from rooms.relations import MAIN_THREAD, thread_root
from streams import notifier
from streams import positions as streams

READ = "m.read"
READ_PRIVATE = "m.read.private"
FULLY_READ = "m.fully_read"
RECEIPT_TYPES = (READ, READ_PRIVATE)


def _invalid_thread(error: str) -> MatrixError:
    return MatrixError("M_INVALID_PARAM", error)


def _thread_of(event: Event) -> str:
    """The thread an event is in (rooms.relations.thread_root), its parent read here."""

    def parent_relation(event_id: str) -> tuple[str | None, str | None] | None:
        return (
            Event.objects.filter(room_id=event.room_id, event_id=event_id)
            .values_list("rel_type", "relates_to")
            .first()
        )

    return thread_root(event.rel_type, event.relates_to, parent_relation)


def check_thread_id(receipt_type: str, thread_id: object, event: Event) -> str:
    """Validate a receipt's ``thread_id`` (POST /receipt, 400 cases); "" if unthreaded."""
    if thread_id is None:
        return ""
    if receipt_type == FULLY_READ:
        raise _invalid_thread("thread_id is not allowed for m.fully_read")
    if not isinstance(thread_id, str) or not thread_id:
        raise _invalid_thread("thread_id field must be a non-empty string")
    if thread_id != MAIN_THREAD and not thread_id.startswith("$"):
        raise _invalid_thread("thread_id must be 'main' or a thread root's event ID")
    # A thread root is in the main timeline, and is also where its thread starts.
    if thread_id != _thread_of(event) and thread_id != event.event_id:
        raise _invalid_thread("The event is not in the given thread")
    return thread_id


def do_send_receipt(
    room: Room, user_id: str, receipt_type: str, event: Event, thread_id: str = ""
) -> bool:
    """Move the local user ``user_id``'s receipt of ``receipt_type`` (m.read or
    m.read.private) in ``thread_id`` to ``event``, and send an m.read one to the other
    servers in the room; False if it already points at a later event."""
    ts = now_ms()
    with transaction.atomic():
        moved = _move_receipt(
            room, user_id, receipt_type, event.event_id, event.stream_ordering or 0, thread_id, ts
        )
        if moved and receipt_type == READ:
            federation_out.queue_receipt(room, user_id, event.event_id, ts=ts, thread_id=thread_id)
        if moved:
            hooks.receipt_moved(user_id)
    return moved


def do_receive_remote_receipt(
    room: Room, user_id: str, event_id: str, event_order: int | None, thread_id: str, ts: int
) -> bool:
    """A remote user's m.read receipt, as their server sent it (rooms.federation.edus has
    checked the user is of that server and joined): moved like a local one, except that
    an event not (yet) stored here (``event_order`` None: most often one in the same
    transaction, still queued for its room's worker) is taken as Synapse takes it, as
    the newest; False if the receipt already points at a later event."""
    return _move_receipt(room, user_id, READ, event_id, event_order, thread_id, ts)


def _move_receipt(
    room: Room,
    user_id: str,
    receipt_type: str,
    event_id: str,
    event_order: int | None,
    thread_id: str,
    ts: int,
) -> bool:
    with transaction.atomic():
        position = streams.next_position(streams.RECEIPTS)
        row = Receipt.objects.filter(
            room=room, user_id=user_id, receipt_type=receipt_type, thread_id=thread_id
        ).first()
        if row is not None and not row.event_stream_ordering:
            # A remote receipt taken for an event not stored then: where is it now?
            row.event_stream_ordering = (
                Event.objects.filter(room=room, event_id=row.event_id)
                .values_list("stream_ordering", flat=True)
                .first()
            ) or 0
        if row is not None and (
            row.event_id == event_id
            or (event_order is not None and row.event_stream_ordering >= event_order)
        ):
            transaction.set_rollback(True)
            return False
        if row is None:
            row = Receipt(
                room=room, user_id=user_id, receipt_type=receipt_type, thread_id=thread_id
            )
        row.event_id = event_id
        row.event_stream_ordering = event_order or 0
        row.ts = ts
        row.stream_id = position
        row.save()
        room_id = room.room_id
        if receipt_type == READ_PRIVATE:
            # Private receipts reach their owner only ("Private read receipts").
            transaction.on_commit(
                lambda: notifier.notify_stream_moved(
                    streams.RECEIPTS, position, user_ids=[user_id]
                )
            )
        else:
            transaction.on_commit(
                lambda: notifier.notify_stream_moved(streams.RECEIPTS, position, room_id=room_id)
            )
    return True


def do_set_fully_read(user: User, room: Room, event: Event) -> bool:
    """Move the user's m.fully_read marker in ``room`` to ``event``, forwards only."""
    current = (
        AccountData.objects.filter(user=user, room_id=room.room_id, type=FULLY_READ)
        .values_list("content", flat=True)
        .first()
    )
    if isinstance(current, dict) and isinstance(current.get("event_id"), str):
        old_order = (
            Event.objects.filter(room=room, event_id=current["event_id"])
            .values_list("stream_ordering", flat=True)
            .first()
        )
        if old_order is not None and old_order >= (event.stream_ordering or 0):
            return False
    write_account_data(user, FULLY_READ, {"event_id": event.event_id}, room.room_id)
    return True


def do_set_read_markers(
    user: User,
    room: Room,
    *,
    fully_read: Event | None = None,
    read: Event | None = None,
    read_private: Event | None = None,
) -> None:
    """POST /read_markers: the fully read marker and the read receipts, together."""
    with transaction.atomic():
        if fully_read is not None:
            do_set_fully_read(user, room, fully_read)
        if read is not None:
            do_send_receipt(room, user.user_id, READ, read)
        if read_private is not None:
            do_send_receipt(room, user.user_id, READ_PRIVATE, read_private)
