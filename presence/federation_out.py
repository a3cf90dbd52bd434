"""Local users' presence for other servers (Server-Server API, "Presence": the m.presence
EDU, ``{"push": [{"user_id", "presence", "last_active_ago", "currently_active"?,
"status_msg"?}]}``).

A change others can see (presence.services moves the presence stream) is queued, in the
transaction of the change, for the servers that share a room with the user: those with a
member joined to one of the user's rooms, less those the room's ACL denies
(rooms.federation_out.edu_destinations, cached per room and state group). The EDU is
keyed by the user, so a server that is slow or backing off gets the user's latest
presence once, not every step; the outbound queue sends all the presence EDUs of one
transaction as one m.presence EDU (federation.outbound), so presence travels in batches.

Synapse forgets a remote user's presence (reads them offline) when it has heard nothing
of them for 30 minutes, and re-sends its own users' every 25 (its FEDERATION_TIMEOUT and
FEDERATION_PING_INTERVAL); so does this server (:func:`do_send_presence_pings`, run
periodically), for local users not offline and active within PING_ACTIVE_WITHIN_MS.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from accounts.clock import now_ms
from federation.outbound import enqueue_edus
from presence import selectors
from presence.models import OFFLINE, Presence
from rooms.federation_out import edu_destinations
from rooms.models import Membership, Room

PRESENCE = "m.presence"
# How often the presence of local users who are about is sent again (see above).
PING_INTERVAL_S = 25 * 60
# Users last active longer ago than this are not pinged: others have their last word.
PING_ACTIVE_WITHIN_MS = 24 * 3600 * 1000


def servers_sharing_a_room(user_id: str) -> set[str]:
    """The other servers with a member joined to a room ``user_id`` is joined to (the
    rooms' ACLs applied)."""
    rooms = Room.objects.filter(
        pk__in=Membership.objects.filter(user_id=user_id, membership="join").values("room_id")
    ).only("pk", "room_id", "current_state_group", "partial_state")
    servers: set[str] = set()
    for room in rooms:
        servers |= edu_destinations(room)
    servers.discard(settings.SERVER_NAME)
    return servers


def queue_presence(user_id: str, content: Mapping[str, Any]) -> list[str]:
    """Queue an m.presence EDU with a local user's presence ``content`` (as GET /presence
    gives it) for the servers sharing a room with them; the servers queued for."""
    servers = servers_sharing_a_room(user_id)
    if not servers:
        return []
    item = {"user_id": user_id, **content}
    return enqueue_edus(PRESENCE, {"push": [item]}, servers, key=user_id)


def do_send_presence_pings() -> int:
    """Queue the presence of every local user who is not offline and was active within
    PING_ACTIVE_WITHIN_MS for the servers sharing a room with them; how many users."""
    if not settings.PRESENCE_ENABLED:
        return 0
    now = now_ms()
    rows = (
        Presence.objects.filter(
            user_id__endswith=":" + settings.SERVER_NAME,
            last_active_ts__gte=now - PING_ACTIVE_WITHIN_MS,
        )
        .exclude(state=OFFLINE)
        .order_by("user_id")
    )
    pinged = 0
    for row in rows.iterator():
        if queue_presence(row.user_id, selectors.presence_content(row, now)):
            pinged += 1
    return pinged
