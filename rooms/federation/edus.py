"""The room EDUs other servers send us: m.typing and m.receipt (federation.edus hands them
here; registered in rooms.apps).

Server-Server API, "Typing Notifications" and "Receipts": the receiving server checks
that the user is one of the sending server's and is in the room. "Server Access Control
Lists": a typing notification for a room whose m.room.server_acl denies the sender is
ignored, and so are all of a receipt EDU's receipts for such a room. Anything failing a
check is ignored (logged), as Synapse does: the spec gives EDUs no error.

What passes goes through the services local clients use (rooms.services.typing and
receipts), into the same tables and streams, so local /sync shows it and long-polls
wake; it is not sent on to other servers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from accounts.clock import now_ms
from protocol.identifiers import is_valid_event_id
from rooms.federation.access import is_server_allowed
from rooms.federation_out import server_of
from rooms.models import Event, Membership, Room
from rooms.relations import MAIN_THREAD
from rooms.services import receipts, typing

logger = logging.getLogger(__name__)

TYPING = "m.typing"
RECEIPT = "m.receipt"


def _room_for(origin: str, room_id: Any) -> Room | None:
    """The room an EDU of ``origin`` names, if it is known here and its ACL lets the
    origin in."""
    if not isinstance(room_id, str):
        return None
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        logger.info("ignored an EDU from %s for unknown room %s", origin, room_id)
        return None
    if not is_server_allowed(room, origin):
        logger.info("ignored an EDU from %s, denied by the ACL of %s", origin, room_id)
        return None
    return room


def _joined(room: Room, user_ids: list[str]) -> set[str]:
    """Those of ``user_ids`` joined to ``room`` now."""
    if not user_ids:
        return set()
    return set(
        Membership.objects.filter(room=room, membership="join", user_id__in=user_ids).values_list(
            "user_id", flat=True
        )
    )


def receive_typing(origin: str, content: Mapping[str, Any]) -> None:
    """An m.typing EDU: ``{"room_id", "user_id", "typing"}``. The typist lasts for
    FEDERATION_TYPING_TIMEOUT_MS unless a ``timeout`` (not in the spec) asks for less."""
    user_id, is_typing = content.get("user_id"), content.get("typing")
    if not isinstance(user_id, str) or not isinstance(is_typing, bool):
        logger.info("ignored a malformed m.typing EDU from %s", origin)
        return
    if server_of(user_id) != origin:
        logger.info("ignored typing of %s sent by %s", user_id, origin)
        return
    room = _room_for(origin, content.get("room_id"))
    if room is None:
        return
    if user_id not in _joined(room, [user_id]):
        logger.info("ignored typing of %s, not joined to %s", user_id, room.room_id)
        return
    timeout = content.get("timeout")
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0:
        typing.do_set_remote_typing(room, user_id, is_typing, timeout)
    else:
        typing.do_set_remote_typing(room, user_id, is_typing)


def receive_receipts(origin: str, content: Mapping[str, Any]) -> None:
    """An m.receipt EDU: ``{room_id: {"m.read": {user_id: {"event_ids": [...], "data":
    {"ts", "thread_id"?}}}}}``. Only m.read receipts travel between servers (private
    ones never do); other receipt types are ignored."""
    for room_id, by_type in content.items():
        if not isinstance(by_type, dict) or not isinstance(by_type.get(receipts.READ), dict):
            continue
        room = _room_for(origin, room_id)
        if room is None:
            continue
        _receive_room_receipts(origin, room, by_type[receipts.READ])


def _receive_room_receipts(origin: str, room: Room, by_user: Mapping[str, Any]) -> None:
    wanted: dict[str, tuple[list[str], Mapping[str, Any]]] = {}
    for user_id, receipt in by_user.items():
        if server_of(user_id) != origin:
            logger.info("ignored the receipt of %s sent by %s", user_id, origin)
            continue
        if not isinstance(receipt, dict):
            continue
        event_ids = receipt.get("event_ids")
        data = receipt.get("data")
        if not isinstance(event_ids, list) or not event_ids:
            continue
        if not all(is_valid_event_id(e) for e in event_ids):
            continue
        wanted[user_id] = (event_ids, data if isinstance(data, dict) else {})
    joined = _joined(room, list(wanted))
    if len(joined) < len(wanted):
        logger.info(
            "ignored receipts of %s, not joined to %s", sorted(set(wanted) - joined), room.room_id
        )
    if not joined:
        return
    # Where each event is, if it is stored here: (room pk, stream ordering).
    known = {
        event_id: (room_pk, order)
        for event_id, room_pk, order in Event.objects.filter(
            event_id__in={e for user_id in joined for e in wanted[user_id][0]}
        ).values_list("event_id", "room_id", "stream_ordering")
    }
    for user_id in sorted(joined):
        event_ids, data = wanted[user_id]
        if any(e in known and known[e][0] != room.pk for e in event_ids):
            logger.info("ignored the receipt of %s for an event of another room", user_id)
            continue
        # One event by the spec; of several, the latest known stands for them.
        ordered = [e for e in event_ids if e in known]
        event_id = max(ordered, key=lambda e: known[e][1] or 0) if ordered else event_ids[0]
        order = known[event_id][1] if event_id in known else None
        ts = data.get("ts")
        receipts.do_receive_remote_receipt(
            room,
            user_id,
            event_id,
            order or None,
            _thread_id(data.get("thread_id")),
            ts if isinstance(ts, int) and not isinstance(ts, bool) else now_ms(),
        )


def _thread_id(value: Any) -> str:
    """A receipt's thread: "main", a thread root's event ID, or "" (unthreaded, also for
    anything else, as Synapse takes an invalid thread ID as missing)."""
    if value == MAIN_THREAD or is_valid_event_id(value):
        return str(value)
    return ""
