"""Rooms joined with partial state, and the fetch of the rest (Synapse's "faster joins").

A server joining a room through another asks send_join with ``omit_members=true``
(Server-Server API, "Joining Rooms"): the resident server may then leave the member
events out of the state before the join (keeping the heroes' and the joining user's
own) and the state's events out of the auth chain, and says which servers are in the
room. For a room of a thousand members that halves what is checked and stored before
the user is in. rooms.services.remote_membership stores such an answer
(rooms.services.incoming.receive_joined_room with ``servers_in_room``), which records the
room as partial (``PartialStateRoom``, ``Room.partial_state``) in the join's own
transaction.

Then, in a worker, ``resync`` asks a server of the room for the whole state before the
join (``GET /state``), checks and stores the events it did not have, gives the join the
state group of the whole state and fills the current state with the member events it
was missing: a change of the current state "by resolution" (a ``RoomStateChange`` with
``resolved``), so /sync sends the members to the clients that already have the room.

Until then (usually well under a second):

- the room's inbound PDUs stay in their queue: the worker holding the room's queue
  (rooms.federation.transactions.process_room_queue) runs ``resync`` before taking
  them, so no event is ever judged against a state with members missing;
- a local event (a message, a second local user's join, a leave) waits for it
  (rooms.partial.retrying): built on the partial state, it could cite a member event
  that is not known here, and its auth checks would miss the members;
- the member lists (/members, /joined_members) wait for it too
  (rooms.partial.wait_for_full_state);
- other servers are not served the room's state or memberships through this server
  (404, as for a room this server is not in): they ask another.

If no server can answer, the room stays partial and the periodic resume
(rooms.tasks.resume_inbound_pdus) tries again; a restart resumes it the same way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import transaction
from django.db.models import F

from federation.client import FederationError, send_request
from protocol.identifiers import is_valid_server_name
from rooms import event_cache
from rooms.models import Event, PartialStateRoom, Room
from rooms.services import graph
from rooms.services.incoming import InvalidPDU, state_verdict, store_state_answer
from rooms.state import StateKey, load_state
from streams import notifier
from streams import positions as streams

logger = logging.getLogger(__name__)

MEMBER = "m.room.member"
CREATE_KEY = ("m.room.create", "")
# At most this many of the servers a partial answer names are kept to ask.
MAX_SERVERS = 20
# The whole state of a big room is as big as a send_join answer.
STATE_REQUEST: dict[str, Any] = {"timeout_s": 300.0, "max_bytes": 512 * 1024 * 1024}


# --- the join ---------------------------------------------------------------------------------


def checked_servers(value: Any, origin: str) -> list[str]:
    """A send_join answer's ``servers_in_room``: the servers to ask for the rest of the
    state, the one that answered first; this server and names that are not server
    names left out. None given (it is required with ``members_omitted``): InvalidPDU."""
    if not isinstance(value, list):
        raise InvalidPDU("servers_in_room is required when members are omitted")
    named = [origin, *(server for server in value if isinstance(server, str))]
    kept = [
        server
        for server in dict.fromkeys(named)
        if server != settings.SERVER_NAME and is_valid_server_name(server)
    ]
    return kept[:MAX_SERVERS]


def partial_rooms() -> list[str]:
    """The rooms whose state is still partial (for the periodic resume)."""
    return list(PartialStateRoom.objects.values_list("room__room_id", flat=True))


# --- the fetch of the rest ----------------------------------------------------------------------


def resync(room_id: str) -> bool:
    """Fetch the room's whole state at the partial join and make it the join's and the
    room's (see the module's docstring); whether the room's state is whole now. Run by
    the worker that holds the room's inbound queue, so nothing else judges the room's
    events meanwhile; safe to run again after a crash at any point."""
    pending = PartialStateRoom.objects.select_related("room").filter(room__room_id=room_id).first()
    if pending is None:
        return True
    join = Event.objects.filter(room=pending.room, event_id=pending.join_event_id).first()
    if join is None or join.state_group_id is None:
        # Nothing stored to complete (the join was purged with the room's history).
        logger.warning("%s: partial join %s is gone; dropped", room_id, pending.join_event_id)
        _finish(pending.room, pending, None, None)
        return True
    errors = []
    for server in pending.servers:
        try:
            state = _whole_state_from(server, pending.room, join)
        except (FederationError, InvalidPDU) as exc:
            errors.append(f"{server}: {exc}")
            logger.info("%s: the state at %s from %s: %s", room_id, join.event_id, server, exc)
            continue
        _finish(pending.room, pending, join, state)
        logger.info("%s: state fetched from %s (%d entries)", room_id, server, len(state))
        return True
    PartialStateRoom.objects.filter(pk=pending.pk).update(
        attempts=F("attempts") + 1, last_error="; ".join(errors)[:4000] or "no server to ask"
    )
    return False


def _whole_state_from(server: str, room: Room, join: Event) -> dict[StateKey, str]:
    """GET /state at the join from ``server``: the state before the join, its unknown
    events checked and stored as outliers (those failing their checks left out)."""
    path = (
        f"/_matrix/federation/v1/state/{quote(room.room_id, safe='')}?"
        f"{urlencode({'event_id': join.event_id})}"
    )
    response = send_request(server, "GET", path, **STATE_REQUEST)
    if response.status != 200:
        raise FederationError(f"answered /state with {response.status}", status=response.status)
    try:
        answer = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FederationError("answered /state with something that is not JSON") from exc
    if not isinstance(answer, dict):
        raise FederationError("answered /state with something that is not an object")
    pdus, chain = answer.get("pdus"), answer.get("auth_chain")
    if not isinstance(pdus, list) or not isinstance(chain, list):
        raise FederationError("answered /state without pdus and auth_chain")
    state = store_state_answer(room.room_id, room.room_version, pdus, chain, server)
    if CREATE_KEY not in state:
        raise InvalidPDU("the state it gave has no create event")
    return state


def _finish(
    room: Room,
    pending: PartialStateRoom,
    join: Event | None,
    before: Mapping[StateKey, str] | None,
) -> None:
    """Under the room lock: the join's state group becomes the whole state after it,
    the current state gains the member events it was missing (at a stream position of
    its own, marked resolved for /sync), and the room is no longer partial."""
    position = None
    subjects: list[str] = []
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room.pk)
        if join is not None and before is not None:
            partial_group = join.state_group_id
            after = dict(before)
            after[(MEMBER, join.state_key or "")] = join.event_id
            event = event_cache.get_events([join.event_id])[join.event_id]
            reason = state_verdict(event.room_version, event, after, "whole state")
            if reason is not None:
                # The resident accepted the join on a state it did not give in whole;
                # the join stands here as it does there, and is logged.
                logger.warning(
                    "%s: %s fails against the whole state: %s", room.room_id, join, reason
                )
            whole = graph.group_for_map(room, after, base=partial_group)
            Event.objects.filter(pk=join.pk).update(state_group_id=whole)
            current_group = room.current_state_group_id
            if current_group == partial_group:
                new_group = whole
            else:
                # Something was persisted on top of the join meanwhile (nothing local
                # is, see the module's docstring, but an event of a past life of the
                # room might): only the keys the partial state lacked are filled.
                partial_after = load_state(partial_group)
                current = load_state(current_group)
                filled = {k: v for k, v in after.items() if k not in partial_after}
                new_group = graph.group_for_map(room, {**filled, **current}, base=current_group)
            change = graph.set_current_state(room, new_group, resolved=True)
            if change is not None:
                position = streams.next_position(streams.EVENTS)
                subjects = change.write(position)
        PartialStateRoom.objects.filter(pk=pending.pk).delete()
        Room.objects.filter(pk=room.pk).update(partial_state=False)
        if position is not None:
            room_id, moved = room.room_id, position
            transaction.on_commit(
                lambda: notifier.notify_stream_moved(streams.EVENTS, moved, room_id, subjects)
            )
