"""Room names as clients compute them (Client-Server API, "Calculating the display name
for a room"): the state that names a room before a client falls back on the heroes."""

from __future__ import annotations

from typing import Any

from protocol.identifiers import parse_room_alias

# The state a client names a room from before it falls back on the heroes.
ROOM_NAMING_STATE = frozenset({("m.room.name", ""), ("m.room.canonical_alias", "")})


def names_room(event_type: str, content: Any) -> bool:
    """Whether this m.room.name or m.room.canonical_alias content gives the room a name
    (steps 1 and 2 of "Calculating the display name for a room")."""
    if not isinstance(content, dict):
        return False
    if event_type == "m.room.name":
        name = content.get("name")
        return isinstance(name, str) and name != ""
    alias = content.get("alias")
    if not isinstance(alias, str):
        return False
    try:
        parse_room_alias(alias)
    except ValueError:
        return False
    return True
