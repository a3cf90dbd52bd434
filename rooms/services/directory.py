"""The published room directory (Client-Server API, "Published room directory").

A room is listed when ``Room.is_public`` is set (createRoom ``visibility`` or PUT
/directory/list/room). /publicRooms builds every entry from current state in a fixed
number of queries: the published rooms with their joined counts, the current state rows
of the directory's event types, and the events not yet in the event cache. Other servers
read the same list (GET and POST /_matrix/federation/v1/publicRooms), without the rooms
created with ``m.federate: false``; another server's list is read over federation
(rooms.federation.remote).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Q

from protocol.errors import forbidden, invalid_param
from protocol.identifiers import is_valid_server_name
from rooms import event_cache, selectors
from rooms.models import CurrentState, Room
from rooms.services.aliases import can_edit_aliases

PUBLIC, PRIVATE = "public", "private"

# The state a directory entry is built from (public_rooms_chunk.yaml).
DIRECTORY_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.topic",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.join_rules",
    "m.room.history_visibility",
    "m.room.guest_access",
)

# Without a limit, at most this many rooms are answered per request.
MAX_LIMIT = 500


def get_visibility(room_id: str) -> str:
    """GET /directory/list/room/{roomId}"""
    return PUBLIC if selectors.get_room(room_id).is_public else PRIVATE


def do_set_visibility(room_id: str, user_id: str, visibility: str, *, is_admin: bool) -> None:
    """PUT /directory/list/room/{roomId}.

    Server admins, and members with the power to send m.room.canonical_alias (the level
    Synapse's ``check_can_change_room_list`` asks for), may (un)publish a room.
    """
    room = selectors.get_room(room_id)
    if not can_edit_aliases(room, user_id, is_admin=is_admin):
        raise forbidden("You may not change this room's visibility in the directory")
    Room.objects.filter(pk=room.pk).update(is_public=visibility == PUBLIC)


def do_move_listing(old_room: Room, new_room: Room) -> None:
    """Room upgrades: a published old room is replaced in the directory by its successor."""
    if old_room.is_public:
        Room.objects.filter(pk=old_room.pk).update(is_public=False)
        Room.objects.filter(pk=new_room.pk).update(is_public=True)


@dataclass(frozen=True)
class PublicRoomsQuery:
    limit: int | None = None
    since: str | None = None
    server: str | None = None
    generic_search_term: str | None = None
    # None: no filter. Otherwise the room types to list; None inside means "no type".
    room_types: Sequence[str | None] | None = None
    # Accepted and passed on to other servers: with no application services there is
    # only this server's own network to list here.
    include_all_networks: bool = False
    third_party_instance_id: str | None = None
    # For another server: only the rooms it could take part in (m.federate not false).
    federated_only: bool = False

    @property
    def is_filtered(self) -> bool:
        return self.room_types is not None or bool(self.generic_search_term)

    @property
    def is_remote(self) -> bool:
        """The query names another server's directory."""
        return self.server is not None and self.server != settings.SERVER_NAME


@dataclass
class _Entry:
    chunk: dict[str, Any]
    # Text that generic_search_term is matched against, lower-cased.
    search_text: list[str] = field(default_factory=list)
    # Other servers may join (m.room.create's m.federate is not false).
    federate: bool = True


def check_server(server: str | None) -> None:
    if server is not None and not is_valid_server_name(server):
        raise invalid_param(f"Invalid server name {server!r}")


def _parse_since(since: str | None) -> int:
    if since is None:
        return 0
    # ASCII digits only (str.isdigit also accepts "²", which int() refuses), and few
    # enough for int() and the database.
    if not re.fullmatch(r"o[0-9]{1,18}", since):
        raise invalid_param(f"Invalid pagination token {since!r}")
    return int(since[1:])


def _text(content: dict[str, Any], key: str) -> str | None:
    value = content.get(key)
    return value if isinstance(value, str) and value else None


def _entries(rooms: list[tuple[int, str, int]]) -> list[_Entry]:
    """Directory entries for (pk, room_id, joined count) rows, in their order."""
    rows = CurrentState.objects.filter(
        room_id__in=[pk for pk, _, _ in rooms], type__in=DIRECTORY_STATE_TYPES, state_key=""
    ).values_list("room_id", "type", "event_id")
    events = event_cache.get_events(event_id for _, _, event_id in rows)
    content_by_room: dict[int, dict[str, dict[str, Any]]] = {}
    for room_pk, event_type, event_id in rows:
        event = events.get(event_id)
        if event is not None:
            content_by_room.setdefault(room_pk, {})[event_type] = event.content
    entries = []
    for pk, room_id, joined in rooms:
        state = content_by_room.get(pk, {})
        history = state.get("m.room.history_visibility", {}).get("history_visibility")
        guest = state.get("m.room.guest_access", {}).get("guest_access")
        chunk: dict[str, Any] = {
            "room_id": room_id,
            "num_joined_members": joined,
            "world_readable": history == "world_readable",
            "guest_can_join": guest == "can_join",
        }
        values = {
            "name": _text(state.get("m.room.name", {}), "name"),
            "topic": _text(state.get("m.room.topic", {}), "topic"),
            "canonical_alias": _text(state.get("m.room.canonical_alias", {}), "alias"),
            "avatar_url": _text(state.get("m.room.avatar", {}), "url"),
            "join_rule": _text(state.get("m.room.join_rules", {}), "join_rule"),
            "room_type": _text(state.get("m.room.create", {}), "type"),
        }
        chunk.update({key: value for key, value in values.items() if value is not None})
        search_text = [
            text.lower()
            for key in ("name", "topic", "canonical_alias")
            if (text := values[key]) is not None
        ]
        alt_aliases = state.get("m.room.canonical_alias", {}).get("alt_aliases")
        if isinstance(alt_aliases, list):
            search_text.extend(a.lower() for a in alt_aliases if isinstance(a, str))
        federate = state.get("m.room.create", {}).get("m.federate", True) is not False
        entries.append(_Entry(chunk, search_text, federate))
    return entries


def room_chunks(rooms: list[tuple[int, str, int]]) -> list[dict[str, Any]]:
    """Room summaries (public_rooms_chunk.yaml) for (pk, room_id, joined count) rows, as
    the directory shows them; the space hierarchy shows its rooms so too."""
    return [entry.chunk for entry in _entries(rooms)]


def _matches(entry: _Entry, query: PublicRoomsQuery) -> bool:
    if query.federated_only and not entry.federate:
        return False
    if query.room_types is not None and entry.chunk.get("room_type") not in query.room_types:
        return False
    term = (query.generic_search_term or "").strip().lower()
    return not term or any(term in text for text in entry.search_text)


def public_rooms(query: PublicRoomsQuery) -> dict[str, Any]:
    """GET and POST /publicRooms: this server's published rooms, largest first
    (``query.server`` is not looked at: another server's list is
    rooms.federation.remote.public_rooms).

    Tokens are offsets into that order (``o<N>``); which token the client passes back
    (``next_batch`` or ``prev_batch``) sets the direction.
    """
    offset = _parse_since(query.since)
    limit = MAX_LIMIT if not query.limit else min(query.limit, MAX_LIMIT)
    published = list(
        Room.objects.filter(is_public=True)
        .annotate(joined=Count("memberships", filter=Q(memberships__membership="join")))
        .order_by("-joined", "room_id")
        .values_list("pk", "room_id", "joined")
    )
    if query.is_filtered or query.federated_only:
        entries = [e for e in _entries(published) if _matches(e, query)]
        total = len(entries)
        page = entries[offset : offset + limit]
    else:
        total = len(published)
        page = _entries(published[offset : offset + limit])
    response: dict[str, Any] = {
        "chunk": [entry.chunk for entry in page],
        "total_room_count_estimate": total,
    }
    if offset + limit < total:
        response["next_batch"] = f"o{offset + limit}"
    if offset > 0:
        response["prev_batch"] = f"o{max(0, offset - limit)}"
    return response
