"""What another server may see of a room: its ACL standing, whether it is in the room,
and which events it may see (history visibility for servers).

Server-Server API, "Server Access Control Lists (ACLs)": every request naming a room
from a server the room's m.room.server_acl denies is refused with 403 M_FORBIDDEN.

History visibility for servers (Client-Server API, "History visibility", applied to a
server the way Synapse's filter_events_for_server does): a server may see an event if
one of its users could, using the state at that event:

1. ``world_readable`` or ``shared``: visible (any server in the room may be sent it, as
   a user who joins later may read it).
2. ``invited``: visible if one of the server's users was invited or joined.
3. ``joined``: visible if one of the server's users was joined.

As for users, an m.room.history_visibility event is judged by the visibility before
*or* after it, and a server's own users' m.room.member events by their membership
before *or* after them: for every state event both states count.

Erasure (Client-Server API, "Account deactivation": "any users (or servers) which join
the room after the erasure request are served redacted copies"): an erased sender's event
is served redacted to a server none of whose users was joined at it, as to a user
(``rooms.selectors.filter_visible``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.conf import settings

from accounts.selectors import erased_user_ids
from protocol.errors import MatrixError, forbidden, not_found
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from protocol.server_acl import server_allowed
from rooms import event_cache
from rooms.models import Event, Membership, Room
from rooms.state import StateKey, load_state

SERVER_ACL_KEY: StateKey = ("m.room.server_acl", "")
HISTORY_VISIBILITY_KEY: StateKey = ("m.room.history_visibility", "")
# History visibilities that any server in the room may see.
_OPEN = ("world_readable", "shared")


def _users_of(server_name: str) -> str:
    """The suffix every user ID of ``server_name`` ends with."""
    return ":" + server_name


def server_acl_in(state_group: int | None) -> Mapping[str, Any] | None:
    """The content of the m.room.server_acl in a state group; None if it has none."""
    acl_id = load_state(state_group).get(SERVER_ACL_KEY)
    if acl_id is None:
        return None
    acl = event_cache.get_events([acl_id]).get(acl_id)
    return acl.content if acl is not None else None


def is_server_allowed(room: Room, server_name: str) -> bool:
    """The room's current m.room.server_acl lets ``server_name`` in (or there is none)."""
    return server_allowed(server_acl_in(room.current_state_group_id), server_name)


def check_server_allowed(room: Room, server_name: str) -> None:
    if not is_server_allowed(room, server_name):
        raise forbidden("Server is banned from this room by its ACL")


def access_room(room_id: str, server_name: str) -> Room:
    """The room, for a request of ``server_name`` naming it: 404 M_NOT_FOUND if it is
    unknown here, 403 M_FORBIDDEN if its ACL denies the server."""
    room = Room.objects.filter(room_id=room_id).first()
    if room is None:
        raise not_found(f"Unknown room {room_id}")
    check_server_allowed(room, server_name)
    return room


def check_full_state(room: Room) -> None:
    """404 M_NOT_FOUND while this server has only partial state of the room (joined
    moments ago, rooms.services.partial_state): its state and memberships are served by
    the servers that have them whole, as Synapse refuses them too."""
    if room.partial_state:
        raise not_found(f"This server does not have the whole state of {room.room_id} yet")


def is_server_in_room(room: Room, server_name: str) -> bool:
    """One of the server's users is joined to the room now."""
    return Membership.objects.filter(
        room=room, membership="join", user_id__endswith=_users_of(server_name)
    ).exists()


def every_local_user_left(room: Room) -> bool:
    """Local users were in the room, and none of them is joined now (they left, were
    kicked or banned, or are only invited): this server is out of the room, takes no
    more of its events and sends it none, until a local user joins again (through
    another server, rooms.services.remote_membership)."""
    memberships = set(
        Membership.objects.filter(room=room, user_id__endswith=_users_of(settings.SERVER_NAME))
        .values_list("membership", flat=True)
        .distinct()
    )
    return bool(memberships) and "join" not in memberships


def access_room_as_member(room_id: str, server_name: str) -> Room:
    """:func:`access_room`, and 403 M_FORBIDDEN unless the server is in the room (404
    while this server's state of the room is partial: who is in it is not known yet)."""
    room = access_room(room_id, server_name)
    check_full_state(room)
    if not is_server_in_room(room, server_name):
        raise forbidden("Server is not in this room")
    return room


def room_id_of_event(event_id: str) -> str:
    """The room of a known event; 404 M_NOT_FOUND for an unknown one."""
    room_id = Event.objects.filter(event_id=event_id).values_list("room__room_id", flat=True)
    if not room_id:
        raise not_found(f"Could not find event {event_id}")
    return room_id[0]


def state_before(row: Event) -> dict[StateKey, str]:
    """The room's state before the event (its group holds the state after it)."""
    state = dict(load_state(row.state_group_id))
    if row.state_key is not None and row.rejected_reason is None and not row.outlier:
        key = (row.type, row.state_key)
        if row.replaces_state is None:
            state.pop(key, None)
        else:
            state[key] = row.replaces_state
    return state


class ServerVisibility:
    """Which events one server may see, the state of each group looked at once."""

    def __init__(self, server_name: str) -> None:
        self.server_name = server_name
        # By state group (-1: no group).
        self._by_group: dict[int, bool] = {}
        self._joined_in_group: dict[int, bool] = {}

    def _server_memberships(self, state: Mapping[StateKey, str]) -> set[str | None]:
        suffix = _users_of(self.server_name)
        member_ids = [
            event_id
            for (etype, skey), event_id in state.items()
            if etype == "m.room.member" and skey.endswith(suffix)
        ]
        events = event_cache.get_events(member_ids)
        return {events[e].membership for e in member_ids if e in events}

    def _joined_at(self, row: Event) -> bool:
        """Was one of the server's users joined at the event (the state after it)?"""
        if row.state_group_id is None:
            return False
        if row.state_group_id not in self._joined_in_group:
            memberships = self._server_memberships(load_state(row.state_group_id))
            self._joined_in_group[row.state_group_id] = "join" in memberships
        return self._joined_in_group[row.state_group_id]

    def _allowed_by(self, state: Mapping[StateKey, str]) -> bool:
        hv_id = state.get(HISTORY_VISIBILITY_KEY)
        visibility = "shared"
        hv = event_cache.get_events([hv_id]).get(hv_id) if hv_id else None
        if hv is not None and isinstance(hv.content.get("history_visibility"), str):
            visibility = hv.content["history_visibility"]
        if visibility not in ("invited", "joined"):
            # Unknown values count as shared ("History visibility", server behaviour).
            return True
        memberships = self._server_memberships(state)
        return "join" in memberships or (visibility == "invited" and "invite" in memberships)

    def _allowed_in_group(self, group: int | None) -> bool:
        key = -1 if group is None else group
        if key not in self._by_group:
            self._by_group[key] = self._allowed_by(load_state(group))
        return self._by_group[key]

    def can_see(self, row: Event) -> bool:
        if row.state_group_id is None:
            # Known only with its auth chain (an outlier): a state event is material of
            # auth chains any server in the room may ask for; anything else is not shown.
            return row.state_key is not None
        if self._allowed_in_group(row.state_group_id):
            return True
        if row.state_key is not None:
            return self._allowed_by(state_before(row))
        return False

    def filter(self, rows: Sequence[Event]) -> list[Event]:
        return [row for row in rows if self.can_see(row)]

    def pdus(self, rows: Sequence[Event]) -> list[dict[str, Any]]:
        """The rows' PDUs, those the server may not see redacted (it still needs them to
        follow the room's graph, as Synapse serves backfill and missing events), and
        those of erased senders where none of its users was joined at them."""
        served = []
        erased = erased_user_ids({row.sender for row in rows})
        for row in rows:
            if self.can_see(row) and (row.sender not in erased or self._joined_at(row)):
                served.append(row.pdu)
            else:
                room_version = KNOWN_ROOM_VERSIONS[row.room.room_version]
                served.append(redact_event(row.pdu, room_version))
        return served


def access_event(room: Room, event_id: str, server_name: str) -> Event:
    """An event of the room the server may see: 404 M_NOT_FOUND if it is unknown here,
    403 M_FORBIDDEN if the server may not see it."""
    row = Event.objects.filter(room=room, event_id=event_id).first()
    if row is None:
        raise not_found(f"Could not find event {event_id}")
    if not ServerVisibility(server_name).can_see(row):
        raise MatrixError("M_FORBIDDEN", "You do not have permission to access this event")
    return row
