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
plus, for a leave or ban rescinding the invite of a user of another server, that user's
server (an invite itself reaches the invitee's server by PUT /invite, countersigned, and
is not sent again); less any server the room's m.room.server_acl
denies (Server-Server API, "Server Access Control Lists": a denied server takes no part
in the room, so nothing of it is sent there; an ACL event itself is judged by the ACL it
sets, so a server it denies does not get it).

Local users' typing notifications and read receipts go as EDUs to the same servers
(the current state's, ACL applied): ``queue_typing`` and ``queue_receipt``, called by the
services in the transaction of the change. Both are keyed (federation.outbound), so a
server that is slow or backing off gets the latest typing state of each typist and the
latest receipt of each reader, not every step. Typing is sent when a typist's state
changes (starts, stops, times out: rooms.services.typing), plus a keep-alive while they
go on typing, at most every TYPING_KEEPALIVE_MS: receivers forget a remote typist on
their own after a while (Synapse after 60 s), and a client re-sends PUT /typing every
20-30 s while its user types, so the next one after the interval carries it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache

from config import process_caches
from config.lru import LRU
from federation.outbound import enqueue_edus, enqueue_pdu
from protocol.events import Event
from protocol.identifiers import parse_user_id
from protocol.server_acl import server_allowed
from rooms import event_cache
from rooms.federation.access import server_acl_in
from rooms.hooks import Finish, PersistingEvent
from rooms.models import Membership, Room
from rooms.partial import servers_of_partial_rooms
from rooms.state import is_pending

TYPING = "m.typing"
RECEIPT = "m.receipt"
# A local typist's keep-alive goes out at most this often (see the module's docstring).
TYPING_KEEPALIVE_MS = 20_000


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


def allowed_by_acl(servers: Iterable[str], acl_content: Mapping[str, Any] | None) -> set[str]:
    """The servers an m.room.server_acl of ``acl_content`` lets in (all without one)."""
    if acl_content is None:
        return set(servers)
    return {server for server in servers if server_allowed(acl_content, server)}


def destinations_of(room: Room, event: Event, state_group: int | None = None) -> set[str]:
    """The other servers the event goes to (see the module's docstring). ``state_group``:
    the room's current state group, which the Membership rows reflect (when known, the
    answer is cached under it)."""
    servers = set(_servers_with_joined_members(room, state_group))
    target = _uninvited_server(event)
    if target:
        servers.add(target)
    servers.discard(settings.SERVER_NAME)
    if not servers:
        return servers
    if event.type == "m.room.server_acl" and event.state_key == "":
        acl = event.content
    else:
        acl = server_acl_in(
            state_group if state_group is not None else room.current_state_group_id
        )
    return allowed_by_acl(servers, acl)


def _uninvited_server(event: Event) -> str | None:
    """The server of a user whose invite the event rescinds (a leave or ban of an invited
    user by someone else): that server is told, as Synapse tells it, though none of its
    users is in the room. An invite itself went to the invitee's server by PUT /invite
    (rooms.services.remote_invites), and is not sent again."""
    if event.type != "m.room.member" or not event.state_key or event.state_key == event.sender:
        return None
    if event.content.get("membership") not in ("leave", "ban"):
        return None
    cited = event_cache.get_events(event.auth_event_ids)
    was_invited = any(
        e.type == "m.room.member"
        and e.state_key == event.state_key
        and e.content.get("membership") == "invite"
        for e in cited.values()
    )
    return server_of(event.state_key) if was_invited else None


def edu_destinations(room: Room) -> set[str]:
    """The other servers a local user's typing or receipt in ``room`` goes to: those with
    a joined member now (and, while the room's state is partial, those the join's answer
    named), less those the room's ACL denies."""
    group = room.current_state_group_id
    servers = set(_servers_with_joined_members(room, group))
    if room.partial_state:
        servers |= servers_of_partial_rooms([room.pk])
    if not servers:
        return set()
    return allowed_by_acl(servers, server_acl_in(group))


def _is_local(user_id: str) -> bool:
    return server_of(user_id) == settings.SERVER_NAME


def _keepalive_key(edu_key: str) -> str:
    return "federation-typing-keepalive:" + hashlib.sha256(edu_key.encode()).hexdigest()


def queue_typing(room: Room, user_id: str, typing: bool, *, keep_alive: bool = False) -> list[str]:
    """Queue an m.typing EDU (Server-Server API, "Typing Notifications") about a local
    user for the other servers in ``room``, in the current transaction: a change of the
    user's typing state, or with ``keep_alive`` a typist still typing, sent only if the
    last one went TYPING_KEEPALIVE_MS ago or more. The servers it was queued for."""
    if not _is_local(user_id):
        return []
    servers = edu_destinations(room)
    if not servers:
        return []
    key = json.dumps([room.room_id, user_id])
    pace = _keepalive_key(key)
    if keep_alive:
        if not cache.add(pace, True, TYPING_KEEPALIVE_MS // 1000):
            return []
    elif typing:
        cache.set(pace, True, TYPING_KEEPALIVE_MS // 1000)
    else:
        cache.delete(pace)
    content = {"room_id": room.room_id, "user_id": user_id, "typing": typing}
    return enqueue_edus(TYPING, content, servers, key=key)


def queue_receipt(
    room: Room, user_id: str, event_id: str, *, ts: int, thread_id: str = ""
) -> list[str]:
    """Queue an m.receipt EDU (Server-Server API, "Receipts") with a local user's m.read
    receipt for the other servers in ``room``, in the current transaction; the servers
    it was queued for. Private receipts (m.read.private) are never given here: they
    are their owner's alone."""
    if not _is_local(user_id):
        return []
    servers = edu_destinations(room)
    if not servers:
        return []
    data: dict[str, Any] = {"ts": ts}
    if thread_id:
        data["thread_id"] = thread_id
    content = {room.room_id: {"m.read": {user_id: {"event_ids": [event_id], "data": data}}}}
    key = json.dumps([room.room_id, user_id, thread_id])
    return enqueue_edus(RECEIPT, content, servers, key=key)


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
