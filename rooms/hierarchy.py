"""The space hierarchy (Client-Server API, "Spaces": GET /rooms/{roomId}/hierarchy).

A depth-first walk over the ``m.space.child`` state of space-rooms, from the requested
room, children in the spec's order ("Ordering of children within a space"). A room is
shown when the requester may preview it (rooms/room_summary.py); children this server
does not know are left out (they would need federation) and loops are walked once.

Pages are offsets into the walk, which is recomputed for each page: the walk is bounded
(``MAX_ROOMS``) and a token carries the parameters it was made with, which must not
change while paginating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from protocol.errors import MatrixError, forbidden
from rooms import event_cache
from rooms.models import CurrentState, Room
from rooms.room_summary import may_preview, summarise

SPACE_CHILD = "m.space.child"
SPACE = "m.space"
# How deep and how far a walk goes at most: "Servers should apply a default value, and
# impose a maximum value to avoid resource exhaustion".
DEFAULT_MAX_DEPTH = MAX_DEPTH = 50
MAX_ROOMS = 1000
DEFAULT_LIMIT, MAX_LIMIT = 50, 100

_VALID_ORDER = re.compile(r"[\x20-\x7e]{1,50}")
_TOKEN = re.compile(r"h(\d{1,6})_([ta])_(\d{1,3})")


@dataclass(frozen=True)
class HierarchyQuery:
    room_id: str
    user_id: str
    suggested_only: bool = False
    max_depth: int = DEFAULT_MAX_DEPTH
    limit: int = DEFAULT_LIMIT
    from_token: str | None = None


@dataclass(frozen=True)
class _Child:
    room_id: str
    order: str | None
    origin_server_ts: int
    suggested: bool
    stripped: dict[str, Any]

    def sort_key(self) -> tuple[int, str, int, str]:
        # Children with a valid order first, by it; then by timestamp; then by room ID.
        has_order = 0 if self.order is not None else 1
        return (has_order, self.order or "", self.origin_server_ts, self.room_id)


def _children(room: Room) -> list[_Child]:
    """The room's valid m.space.child state (a non-empty ``via``), in the spec's order."""
    rows = CurrentState.objects.filter(room=room, type=SPACE_CHILD).values_list(
        "state_key", "event_id"
    )
    events = event_cache.get_events(event_id for _, event_id in rows)
    children = []
    for state_key, event_id in rows:
        event = events.get(event_id)
        if event is None:
            continue
        content = event.content
        via = content.get("via")
        if not isinstance(via, list) or not via:
            continue
        order = content.get("order")
        children.append(
            _Child(
                room_id=state_key,
                order=order if isinstance(order, str) and _VALID_ORDER.fullmatch(order) else None,
                origin_server_ts=event.origin_server_ts,
                suggested=content.get("suggested") is True,
                stripped={
                    "type": SPACE_CHILD,
                    "state_key": state_key,
                    "sender": event.sender,
                    "content": content,
                    "origin_server_ts": event.origin_server_ts,
                },
            )
        )
    return sorted(children, key=_Child.sort_key)


def _walk(query: HierarchyQuery, root: Room, root_chunk: dict[str, Any]) -> list[dict[str, Any]]:
    """Every room the walk shows, in order (at most MAX_ROOMS)."""
    shown: list[dict[str, Any]] = []
    seen: set[str] = set()
    stack: list[tuple[str, int]] = [(root.room_id, 0)]
    while stack and len(shown) < MAX_ROOMS:
        room_id, depth = stack.pop()
        if room_id in seen:
            continue
        seen.add(room_id)
        if room_id == root.room_id:
            room, chunk = root, root_chunk
        else:
            found = Room.objects.filter(room_id=room_id).first()
            if found is None:
                continue  # Not known here: only federation could fill it in.
            room, chunk = found, summarise(found)
            if not may_preview(room, chunk, query.user_id):
                continue
        is_space = chunk.get("room_type") == SPACE
        children = _children(room) if is_space else []
        shown.append({**chunk, "children_state": [child.stripped for child in children]})
        if depth >= query.max_depth:
            continue
        wanted = [c for c in children if c.suggested or not query.suggested_only]
        stack.extend((child.room_id, depth + 1) for child in reversed(wanted))
    return shown


def _offset(query: HierarchyQuery) -> int:
    if query.from_token is None:
        return 0
    match = _TOKEN.fullmatch(query.from_token)
    if match is None:
        raise MatrixError("M_INVALID_PARAM", "Unknown pagination token")
    offset, suggested, depth = match.groups()
    if (suggested == "t") != query.suggested_only or int(depth) != query.max_depth:
        raise MatrixError(
            "M_INVALID_PARAM", "suggested_only and max_depth cannot change on paginated requests"
        )
    return int(offset)


def space_hierarchy(query: HierarchyQuery) -> dict[str, Any]:
    """GET /rooms/{roomId}/hierarchy: one page of the walk."""
    offset = _offset(query)
    root = Room.objects.filter(room_id=query.room_id).first()
    root_chunk = summarise(root) if root is not None else None
    if root is None or root_chunk is None or not may_preview(root, root_chunk, query.user_id):
        raise forbidden("You are not allowed to view this room.")
    shown = _walk(query, root, root_chunk)
    page = shown[offset : offset + query.limit]
    response: dict[str, Any] = {"rooms": page}
    if offset + query.limit < len(shown):
        suggested = "t" if query.suggested_only else "a"
        response["next_batch"] = f"h{offset + query.limit}_{suggested}_{query.max_depth}"
    return response
