"""Room events for other servers: every event made here goes to each server with a member
in the room (Server-Server API, "PDUs": a server sends the events it creates to the other
servers in the room) through the outbound queue (federation.outbound).

``queue_local_event`` is an event-persisting hook (rooms.hooks): it runs in the transaction
that persists the event, so the event and its queue rows are committed together, and the
sending starts after the commit. It queues an event that is shown (the hook is not called
for rejected, soft-failed or backfilled ones) and was made here (``made_here``). Events
received from other servers are theirs to send; a local user's join, leave or knock made
through another server (send_join and the like) comes back signed by that server too, and
that server sends it on. Other paths that must send an event not made here (the resident
server's part of a remote user's send_join) call ``queue_event``.

The destinations are the servers of the room's joined members (Membership rows: the
current state before the event, which for a kick or a ban still has the target joined),
plus, for a membership event about a user of another server (an invite, a kick, a ban, a
rescinded invite), that user's server.
"""

from __future__ import annotations

from django.conf import settings

from config import process_caches
from config.lru import LRU
from federation.outbound import enqueue_pdu
from protocol.events import Event
from protocol.identifiers import parse_user_id
from rooms.hooks import Finish, PersistingEvent
from rooms.models import Membership, Room
from rooms.state import is_pending


def server_of(user_id: str) -> str | None:
    try:
        return parse_user_id(user_id).domain
    except ValueError:
        return None


def made_here(event: Event) -> bool:
    """The event was created on this server, not received from another: its sender is a
    local user, and no other server signed it, or only the server of a user it is about
    (an invite, countersigned by the invitee's server through /invite). A local user's
    own membership signed by another server was made through that server."""
    if server_of(event.sender) != settings.SERVER_NAME:
        return False
    if set(event.signatures) <= {settings.SERVER_NAME}:
        return True
    return event.type == "m.room.member" and event.state_key != event.sender


# (room pk, state group) -> the other servers with a joined member in that state. A state
# group never changes, and messages share their room's group, so the send path asks the
# database once per membership change, not once per event.
_servers: LRU[tuple[int, int], frozenset[str]] = LRU(10_000)


@process_caches.register
def forget() -> None:
    _servers.clear()


def _servers_with_joined_members(room: Room, state_group: int | None) -> frozenset[str]:
    key = (room.pk, state_group) if state_group is not None else None
    cached = _servers.get(key) if key is not None else None
    if cached is not None:
        return cached
    local_suffix = ":" + settings.SERVER_NAME
    members = (
        Membership.objects.filter(room=room, membership="join")
        .exclude(user_id__endswith=local_suffix)
        .values_list("user_id", flat=True)
    )
    servers = frozenset(server for server in map(server_of, members) if server)
    # A group made by an open transaction may be rolled back and its ID handed out again.
    if key is not None and state_group is not None and not is_pending(state_group):
        _servers.put(key, servers)
    return servers


def destinations_of(room: Room, event: Event, state_group: int | None = None) -> set[str]:
    """The other servers the event goes to (see the module's docstring). ``state_group``:
    the room's current state group, which the Membership rows reflect (when known, the
    answer is cached under it)."""
    servers = set(_servers_with_joined_members(room, state_group))
    if event.type == "m.room.member" and event.state_key:
        target = server_of(event.state_key)
        if target:
            servers.add(target)
    servers.discard(settings.SERVER_NAME)
    return servers


def queue_event(room: Room, event: Event, state_group: int | None = None) -> list[str]:
    """Queue ``event`` for the other servers in ``room``, in the current transaction;
    the servers it was queued for."""
    destinations = destinations_of(room, event, state_group)
    return enqueue_pdu(event, destinations) if destinations else []


def queue_local_event(persisting: PersistingEvent) -> Finish | None:
    """The rooms hook: queue an event made here for the other servers in its room."""
    if made_here(persisting.event):
        room = persisting.room
        # The Membership rows are the current state's, which is the state before a local
        # event on the room's tips (its usual case); otherwise they are read afresh.
        current = room.current_state_group_id
        group = current if current == persisting.state_before else None
        queue_event(room, persisting.event, group)
    return None
