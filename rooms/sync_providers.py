"""The rooms' ephemeral events in /sync: m.typing and m.receipt.

Each provider answers for all the joined rooms of a response together, with one indexed
range query (``room`` + ``stream_id``), never one per room.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db.models import Q

from accounts.clock import now_ms
from rooms.models import Receipt, Typing
from rooms.services.receipts import READ, READ_PRIVATE

if TYPE_CHECKING:
    from sync.builder import SyncRequest
    from sync.tokens import SyncToken

TYPING = "m.typing"
RECEIPT = "m.receipt"


def wants_ephemeral(request: SyncRequest, event_type: str) -> bool:
    """Does the room ephemeral filter's types/not_types let ``event_type`` through?"""
    ephemeral_filter = request.section_filter("ephemeral")

    def listed(patterns: Any) -> bool:
        return isinstance(patterns, list) and any(
            isinstance(p, str)
            and (p == event_type or (p.endswith("*") and event_type.startswith(p[:-1])))
            for p in patterns
        )

    types = ephemeral_filter.get("types")
    if isinstance(types, list) and not listed(types):
        return False
    return not listed(ephemeral_filter.get("not_types"))


def typing_events(
    request: SyncRequest, since: SyncToken | None, now: SyncToken, room_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """An m.typing event with the current typists, for each room whose typing set
    changed between the tokens (on an initial sync: where anyone is typing)."""
    if not wants_ephemeral(request, TYPING):
        return {}
    clock = now_ms()
    typing_now = Q(expires_at_ms__gt=clock)
    query = Typing.objects.filter(room__room_id__in=room_ids)
    if since is not None:
        # The rows that changed in (since, now], and the current typists of any room.
        changed = Q(stream_id__gt=since.typing, stream_id__lte=now.typing)
        query = query.filter(changed | typing_now)
    else:
        query = query.filter(typing_now)
    changed_rooms: set[str] = set()
    typists: dict[str, list[str]] = defaultdict(list)
    for room_id, user_id, expires_at_ms, stream_id in query.values_list(
        "room__room_id", "user_id", "expires_at_ms", "stream_id"
    ):
        # A typist whose timeout passed is gone already, swept or not.
        if expires_at_ms > clock:
            typists[room_id].append(user_id)
            if since is None:
                changed_rooms.add(room_id)
        if since is not None and since.typing < stream_id <= now.typing:
            changed_rooms.add(room_id)
    return {
        room_id: [{"type": TYPING, "content": {"user_ids": sorted(typists.get(room_id, []))}}]
        for room_id in changed_rooms
    }


def receipt_events(
    request: SyncRequest, since: SyncToken | None, now: SyncToken, room_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """An m.receipt event per room with the receipts that moved between the tokens (all
    of them on an initial sync); m.read.private receipts only to their owner."""
    if not wants_ephemeral(request, RECEIPT):
        return {}
    query = Receipt.objects.filter(room__room_id__in=room_ids, stream_id__lte=now.receipts)
    if since is not None:
        query = query.filter(stream_id__gt=since.receipts)
    query = query.filter(
        Q(receipt_type=READ) | Q(receipt_type=READ_PRIVATE, user_id=request.user_id)
    )
    # "Receipts SHOULD be batched into one event per room and thread": apart, a user's
    # unthreaded and threaded receipts on one event do not overwrite each other.
    content: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for room_id, user_id, receipt_type, thread_id, event_id, ts in query.values_list(
        "room__room_id", "user_id", "receipt_type", "thread_id", "event_id", "ts"
    ).order_by("room_id", "thread_id", "stream_id"):
        receipt: dict[str, Any] = {"ts": ts}
        if thread_id:
            receipt["thread_id"] = thread_id
        by_event = content[room_id].setdefault(thread_id, {})
        by_event.setdefault(event_id, {}).setdefault(receipt_type, {})[user_id] = receipt
    return {
        room_id: [{"type": RECEIPT, "content": receipts} for receipts in threads.values()]
        for room_id, threads in content.items()
    }
