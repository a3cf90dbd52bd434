"""Guest accounts in rooms (Client-Server API, "Guest access", "Server behaviour").

"Servers MUST only allow guest users to join rooms if the m.room.guest_access state
event is present on the room, and has the guest_access value can_join. If the
m.room.guest_access event is changed to stop this from being the case, the server MUST
set those users' m.room.member state to leave."

Whether a user is a guest is this server's own knowledge (``User.is_guest``, loaded with
the session that sends: ``SendContext.guest``); other servers never learn it. Joins
are checked in ``membership.do_update_membership`` and ``remote_membership.do_join``;
a revocation is followed by ``membership.do_remove_guests`` (``rooms.signals``).
"""

from __future__ import annotations

from collections.abc import Mapping

from protocol.errors import MatrixError
from rooms import event_cache
from rooms.models import Room
from rooms.state import StateKey, load_state

GUEST_ACCESS_KEY: StateKey = ("m.room.guest_access", "")
CAN_JOIN = "can_join"


def guest_can_join(state: Mapping[StateKey, str]) -> bool:
    """Whether the room with this state lets guests join."""
    event_id = state.get(GUEST_ACCESS_KEY)
    if event_id is None:
        return False
    event = event_cache.get_events([event_id]).get(event_id)
    return event is not None and event.content.get("guest_access") == CAN_JOIN


def check_guest_may_join(room: Room | None) -> None:
    """403 M_FORBIDDEN unless the room's current state lets guests join (as Synapse
    answers). A room this server knows no state of (a remote room it was never in)
    cannot be shown to allow it, so it does not."""
    state_group = room.current_state_group_id if room is not None else None
    if state_group is None or not guest_can_join(load_state(state_group)):
        raise MatrixError("M_FORBIDDEN", "Guest access is not allowed in this room")
