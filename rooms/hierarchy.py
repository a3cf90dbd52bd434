"""The space hierarchy: GET /_matrix/client/v1/rooms/{roomId}/hierarchy for our clients,
and GET /_matrix/federation/v1/hierarchy/{roomId} for other servers.

For clients: a depth-first walk over the ``m.space.child`` state of space-rooms, from the
requested room, children in the spec's order ("Ordering of children within a space").
A room this server is in is summarised from its own state and shown when the requester
may preview it (rooms/room_summary.py); a room it is not in is asked of the servers its
``m.space.child`` event names in ``via`` (the requested room itself: of the server in its
ID), whose answer also summarises the children it can (used as they are unless they
are spaces to walk further into), and shown when the user may preview it by what that
summary says (room_summary.may_preview_remote). Children nobody could summarise are left
out and loops are walked once.

Pages are offsets into the walk, which is recomputed for each page (remote answers are
cached, rooms.federation.remote) and stops once the page and one room more are found: the
walk is bounded (``MAX_ROOMS``) and a token carries the parameters it was made with,
which must not change while paginating.

For other servers: the room and its direct children this server is in, each summarised
if the server could peek or join it (room_summary.server_may_preview) and listed in
``inaccessible_children`` if not; not paginated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from protocol.errors import MatrixError, forbidden, not_found
from protocol.identifiers import is_valid_server_name
from rooms import event_cache
from rooms.federation import access, remote
from rooms.models import CurrentState, Room
from rooms.room_summary import may_preview, may_preview_remote, server_may_preview, summarise

SPACE_CHILD = "m.space.child"
SPACE = "m.space"
# How deep and how far a walk goes at most: "Servers should apply a default value, and
# impose a maximum value to avoid resource exhaustion".
DEFAULT_MAX_DEPTH = MAX_DEPTH = 50
MAX_ROOMS = 1000
DEFAULT_LIMIT, MAX_LIMIT = 50, 100
# At most this many spaces are asked of other servers in one walk, and at most this
# many children are summarised for another server (Synapse's MAX_ROOMS_PER_SPACE).
MAX_REMOTE_SPACES_PER_WALK = 20
MAX_CHILDREN_FOR_SERVERS = 50

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
    via: tuple[str, ...]
    stripped: dict[str, Any]

    def sort_key(self) -> tuple[int, str, int, str]:
        # Children with a valid order first, by it; then by timestamp; then by room ID.
        has_order = 0 if self.order is not None else 1
        return (has_order, self.order or "", self.origin_server_ts, self.room_id)


def _child(stripped: dict[str, Any]) -> _Child | None:
    """A valid m.space.child (a non-empty ``via``) from its stripped state event."""
    content = stripped["content"]
    via = content.get("via")
    if not isinstance(via, list) or not via:
        return None
    order = content.get("order")
    return _Child(
        room_id=stripped["state_key"],
        order=order if isinstance(order, str) and _VALID_ORDER.fullmatch(order) else None,
        origin_server_ts=stripped["origin_server_ts"],
        suggested=content.get("suggested") is True,
        via=tuple(v for v in via if isinstance(v, str) and is_valid_server_name(v)),
        stripped=stripped,
    )


def _sorted_children(events: list[dict[str, Any]]) -> list[_Child]:
    children = [child for child in map(_child, events) if child is not None]
    return sorted(children, key=_Child.sort_key)


def _children(room: Room) -> list[_Child]:
    """The room's valid m.space.child state, in the spec's order."""
    rows = CurrentState.objects.filter(room=room, type=SPACE_CHILD).values_list(
        "state_key", "event_id"
    )
    events = event_cache.get_events(event_id for _, event_id in rows)
    return _sorted_children(
        [
            {
                "type": SPACE_CHILD,
                "state_key": state_key,
                "sender": event.sender,
                "content": event.content,
                "origin_server_ts": event.origin_server_ts,
            }
            for state_key, event_id in rows
            if (event := events.get(event_id)) is not None
        ]
    )


def _is_hosted(room: Room | None) -> bool:
    """This server is in the room: its state here is current."""
    return room is not None and access.is_server_in_room(room, settings.SERVER_NAME)


@dataclass
class _Node:
    """A room the walk is to visit: how deep, which servers its parent names, and its
    summary if another server already gave it."""

    room_id: str
    depth: int
    via: tuple[str, ...] = ()
    summary: dict[str, Any] | None = None


@dataclass
class _Entry:
    """A room the walk shows: its summary, and its children if it is a space."""

    chunk: dict[str, Any]
    children: list[_Child]
    # Summaries of the children another server gave with this room's.
    known_children: dict[str, dict[str, Any]]
    inaccessible: frozenset[str] = frozenset()


class _Walk:
    def __init__(self, query: HierarchyQuery) -> None:
        self.query = query
        self.remote_spaces_asked = 0

    def _local(self, room: Room) -> _Entry | None:
        chunk = summarise(room)
        if not may_preview(room, chunk, self.query.user_id):
            return None
        children = _children(room) if chunk.get("room_type") == SPACE else []
        chunk["children_state"] = [child.stripped for child in children]
        return _Entry(chunk, children, {})

    def _ask(self, node: _Node) -> remote.RemoteSpace | None:
        if not node.via or self.remote_spaces_asked >= MAX_REMOTE_SPACES_PER_WALK:
            return None
        self.remote_spaces_asked += 1
        return remote.space_hierarchy(node.room_id, node.via, self.query.suggested_only)

    def _remote(self, node: _Node) -> _Entry | None:
        """A room this server is not in, from what other servers say of it: the summary
        its parent's server gave, unless it is a space to walk into (then, and when
        there is none, asked of the ``via`` servers)."""
        summary = node.summary
        walk_on = node.depth < self.query.max_depth
        space = None
        if summary is None or (summary.get("room_type") == SPACE and walk_on):
            space = self._ask(node)
        if space is not None:
            entry = _Entry(
                space.room,
                _sorted_children(space.room["children_state"]),
                space.children,
                space.inaccessible_children,
            )
        elif summary is not None:
            entry = _Entry(summary, _sorted_children(summary.get("children_state", [])), {})
        else:
            return None
        if not may_preview_remote(node.room_id, entry.chunk, self.query.user_id):
            return None
        if entry.chunk.get("room_type") != SPACE:
            entry.children = []
            entry.chunk = {**entry.chunk, "children_state": []}
        return entry

    def entry(self, node: _Node) -> _Entry | None:
        """The room as the walk shows it, or None if it is not to be shown."""
        node.via = tuple(s for s in node.via if s != settings.SERVER_NAME)
        room = Room.objects.filter(room_id=node.room_id).first()
        if room is not None and (_is_hosted(room) or not node.via):
            return self._local(room)
        return self._remote(node)

    def rooms(self, root: _Entry, wanted: int) -> list[dict[str, Any]]:
        """The rooms the walk shows, in order, until ``wanted`` (at most MAX_ROOMS)."""
        shown: list[dict[str, Any]] = []
        seen: set[str] = set()
        stack: list[_Node] = [_Node(self.query.room_id, 0)]
        while stack and len(shown) < min(wanted, MAX_ROOMS):
            node = stack.pop()
            if node.room_id in seen:
                continue
            seen.add(node.room_id)
            entry = root if node.depth == 0 else self.entry(node)
            if entry is None:
                continue
            shown.append(entry.chunk)
            if node.depth >= self.query.max_depth:
                continue
            seen.update(entry.inaccessible)
            stack.extend(
                _Node(
                    child.room_id,
                    node.depth + 1,
                    child.via,
                    entry.known_children.get(child.room_id),
                )
                for child in reversed(entry.children)
                if child.suggested or not self.query.suggested_only
            )
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


def _server_of_room_id(room_id: str) -> tuple[str, ...]:
    """The server in a room ID (rooms before v12 name the server that created them)."""
    server = room_id.partition(":")[2]
    return (server,) if server and is_valid_server_name(server) else ()


def space_hierarchy(query: HierarchyQuery) -> dict[str, Any]:
    """GET /rooms/{roomId}/hierarchy: one page of the walk."""
    offset = _offset(query)
    walk = _Walk(query)
    root = walk.entry(_Node(query.room_id, 0, _server_of_room_id(query.room_id)))
    if root is None:
        raise forbidden("You are not allowed to view this room.")
    shown = walk.rooms(root, offset + query.limit + 1)
    page = shown[offset : offset + query.limit]
    response: dict[str, Any] = {"rooms": page}
    if offset + query.limit < len(shown):
        suggested = "t" if query.suggested_only else "a"
        response["next_batch"] = f"h{offset + query.limit}_{suggested}_{query.max_depth}"
    return response


def _summary_for_server(
    room: Room, server_name: str, suggested_only: bool
) -> dict[str, Any] | None:
    """The room's summary with its ``children_state`` for another server, or None if the
    server could neither peek nor join it (or the room's ACL denies it)."""
    chunk = summarise(room)
    if not access.is_server_allowed(room, server_name):
        return None
    if not server_may_preview(room, chunk, server_name):
        return None
    children = _children(room) if chunk.get("room_type") == SPACE else []
    wanted = [c for c in children if c.suggested or not suggested_only]
    chunk["children_state"] = [child.stripped for child in wanted]
    return chunk


def federation_hierarchy(room_id: str, server_name: str, suggested_only: bool) -> dict[str, Any]:
    """GET /_matrix/federation/v1/hierarchy/{roomId} for ``server_name``: 404 M_NOT_FOUND
    for a room unknown here or one the server could not peek or join, 403 M_FORBIDDEN if
    the room's ACL denies the server."""
    root = access.access_room(room_id, server_name)
    room = _summary_for_server(root, server_name, suggested_only)
    if room is None:
        raise not_found("Room does not exist.")
    child_ids = [e["state_key"] for e in room["children_state"]][:MAX_CHILDREN_FOR_SERVERS]
    known = {r.room_id: r for r in Room.objects.filter(room_id__in=child_ids)}
    children: list[dict[str, Any]] = []
    inaccessible: list[str] = []
    for child_id in child_ids:
        child = known.get(child_id)
        if child is None or child_id == room_id or not _is_hosted(child):
            continue  # Nothing this server can tell of it.
        summary = _summary_for_server(child, server_name, suggested_only)
        if summary is None:
            inaccessible.append(child_id)
        else:
            children.append(summary)
    return {"room": room, "children": children, "inaccessible_children": inaccessible}
