"""Who a room's events are evaluated for, and the room state evaluation reads, per state
group (the state before an event).

State groups never change once written, so what is derived from one is kept in process
memory: a message into a room of 100 members reads no member event and no power levels;
a state event (a new group) rebuilds it from the cached state map and parsed events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings

from config import process_caches
from config.lru import LRU
from protocol import auth_rules
from protocol.events import Event as PDUEvent
from protocol.room_versions import RoomVersion
from rooms import event_cache
from rooms.state import is_pending, load_state

MEMBER = "m.room.member"
CREATE_KEY = auth_rules.CREATE_KEY
POWER_LEVELS_KEY = auth_rules.POWER_LEVELS_KEY


@dataclass
class Audience:
    """The room as of one state group, as push evaluation needs it."""

    # Local users whose membership is join, with their display name in the room (the
    # member event's ``displayname``; contains_display_name matches against it).
    local_members: Mapping[str, str | None]
    # Every joined member, local or not (room_member_count).
    joined_count: int
    # The create and power levels events (a sender's power level), when present.
    auth_state: Mapping[tuple[str, str], PDUEvent]

    def sender_power_level(self, room_version: RoomVersion, sender: str) -> int | float:
        return auth_rules.get_user_power_level(room_version, sender, self.auth_state)

    @cached_property
    def notification_levels(self) -> dict[str, Any]:
        """The power levels' ``notifications`` object (sender_notification_permission);
        its defaults ({"room": 50}) are the evaluator's to apply."""
        power_levels = self.auth_state.get(POWER_LEVELS_KEY)
        levels = power_levels.content.get("notifications") if power_levels else None
        return dict(levels) if isinstance(levels, dict) else {}


_EMPTY = Audience({}, 0, {})
_audiences: LRU[int, Audience] = LRU(2000)


@process_caches.register
def forget() -> None:
    """For tests, whose rolled-back databases hand state group IDs out again."""
    _audiences.clear()


def audience_at(state_group: int | None) -> Audience:
    """The audience of the room in state group ``state_group``."""
    if state_group is None:
        return _EMPTY
    cached = _audiences.get(state_group)
    if cached is not None:
        return cached
    state = load_state(state_group)
    member_ids = [event_id for (kind, _), event_id in state.items() if kind == MEMBER]
    wanted = [state[key] for key in (CREATE_KEY, POWER_LEVELS_KEY) if key in state]
    events = event_cache.get_events([*member_ids, *wanted])
    suffix = ":" + settings.SERVER_NAME
    local: dict[str, str | None] = {}
    joined = 0
    for event_id in member_ids:
        member = events.get(event_id)
        if member is None or member.membership != "join" or member.state_key is None:
            continue
        joined += 1
        if member.state_key.endswith(suffix):
            name = member.content.get("displayname")
            local[member.state_key] = name if isinstance(name, str) else None
    auth_state = {
        key: events[state[key]]
        for key in (CREATE_KEY, POWER_LEVELS_KEY)
        if key in state and state[key] in events
    }
    audience = Audience(local, joined, auth_state)
    # A group of an open transaction may be rolled back and its ID handed out again.
    if not is_pending(state_group):
        _audiences.put(state_group, audience)
    return audience
