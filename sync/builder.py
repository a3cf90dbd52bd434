"""Building a /sync response from a token (Client-Server API, "Syncing").

An incremental sync is "what changed in my rooms since token T": indexed range queries
over stream positions, a query per changed room at most, never one per event. The
sections other apps feed (typing, receipts, to-device, presence) come from the
providers registered in :mod:`sync.providers`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Count

from accounts.models import AccountData, User
from rooms import relations, selectors
from rooms.models import Event, Membership, Room
from rooms.serialize import client_events, stripped_state
from rooms.state import StateKey, load_state
from sync import providers
from sync.tokens import SyncToken

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 500
MEMBER = "m.room.member"
# Stripped state given with invites and knocks (Client-Server API, "Stripped state").
STRIPPED_STATE_TYPES = (
    "m.room.create",
    "m.room.name",
    "m.room.avatar",
    "m.room.topic",
    "m.room.join_rules",
    "m.room.canonical_alias",
    "m.room.encryption",
)


@dataclass
class SyncRequest:
    user: User
    device_id: str
    since: SyncToken | None
    filter: dict[str, Any] = field(default_factory=dict)
    full_state: bool = False
    use_state_after: bool = False
    set_presence: str = "online"

    @property
    def user_id(self) -> str:
        return self.user.user_id

    def room_filter(self) -> dict[str, Any]:
        value = self.filter.get("room")
        return value if isinstance(value, dict) else {}

    def section_filter(self, name: str) -> dict[str, Any]:
        value = self.room_filter().get(name)
        return value if isinstance(value, dict) else {}

    @property
    def timeline_limit(self) -> int:
        limit = self.section_filter("timeline").get("limit", DEFAULT_TIMELINE_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            return DEFAULT_TIMELINE_LIMIT
        return min(limit, MAX_TIMELINE_LIMIT)

    @property
    def lazy_load_members(self) -> bool:
        return self.section_filter("state").get("lazy_load_members") is True

    @property
    def include_leave(self) -> bool:
        return self.room_filter().get("include_leave") is True

    def wants_room(self, room_id: str) -> bool:
        room_filter = self.room_filter()
        rooms = room_filter.get("rooms")
        if isinstance(rooms, list) and room_id not in rooms:
            return False
        not_rooms = room_filter.get("not_rooms")
        return not (isinstance(not_rooms, list) and room_id in not_rooms)


@dataclass
class SyncResult:
    body: dict[str, Any]
    has_updates: bool
    joined_room_ids: list[str]


def _matches(event_filter: Mapping[str, Any], event_type: str, sender: str) -> bool:
    """Does an event pass an EventFilter's types/not_types/senders/not_senders?"""

    def match_any(patterns: Iterable[Any], value: str) -> bool:
        for pattern in patterns:
            if not isinstance(pattern, str):
                continue
            if pattern.endswith("*") and value.startswith(pattern[:-1]):
                return True
            if pattern == value:
                return True
        return False

    types = event_filter.get("types")
    if isinstance(types, list) and not match_any(types, event_type):
        return False
    not_types = event_filter.get("not_types")
    if isinstance(not_types, list) and match_any(not_types, event_type):
        return False
    senders = event_filter.get("senders")
    if isinstance(senders, list) and sender not in senders:
        return False
    not_senders = event_filter.get("not_senders")
    return not (isinstance(not_senders, list) and sender in not_senders)


def _state_before(row: Event) -> dict[StateKey, str]:
    """The room state just before ``row``: its state group, with its own entry undone."""
    state = dict(load_state(row.state_group_id))
    if row.state_key is not None:
        key = (row.type, row.state_key)
        if row.replaces_state:
            state[key] = row.replaces_state
        else:
            state.pop(key, None)
    return state


def _state_at_position(room: Room, position: int) -> dict[StateKey, str]:
    group = (
        room.events.filter(stream_ordering__lte=position, stream_ordering__isnull=False)
        .order_by("-stream_ordering")
        .values_list("state_group_id", flat=True)
        .first()
    )
    return dict(load_state(group))


@dataclass
class RoomPlan:
    """What one room contributes: its timeline rows and the state event IDs to send."""

    room: Room
    section: str
    timeline: list[Event] = field(default_factory=list)
    limited: bool = False
    prev_batch: str | None = None
    state_ids: list[str] = field(default_factory=list)
    membership_row: Membership | None = None


class SyncBuilder:
    def __init__(self, request: SyncRequest) -> None:
        self.request = request
        self.now = SyncToken.current()
        # Ignoring Users: their events leave timelines (state events stay) and their
        # invites are not sent.
        self.ignored = relations.ignored_users(request.user_id)

    # --- rooms ------------------------------------------------------------------------

    def _timeline(self, room: Room, upper: int, lower: int | None) -> tuple[list[Event], bool]:
        """The last events of a room in (lower, upper], newest ``limit``, oldest first."""
        limit = self.request.timeline_limit
        query = Event.objects.select_related("room").filter(
            room=room,
            stream_ordering__lte=upper,
            rejected_reason__isnull=True,
            soft_failed=False,
        )
        if lower is not None:
            query = query.filter(stream_ordering__gt=lower)
        query = query.filter(selectors.event_filter_q(self.request.section_filter("timeline")))
        if self.ignored:
            query = query.exclude(sender__in=self.ignored, state_key__isnull=True)
        rows = list(query.order_by("-stream_ordering")[: limit + 1])
        limited = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return selectors.filter_visible(rows, self.request.user_id), limited

    def _state_ids(
        self,
        room: Room,
        timeline: Sequence[Event],
        *,
        full: bool,
        since_position: int | None,
        upper: int,
    ) -> list[str]:
        """State event IDs for the room's ``state`` section (before the timeline)."""
        if timeline and not self.request.use_state_after:
            start_state = _state_before(timeline[0])
        else:
            start_state = _state_at_position(room, upper)
        if full or since_position is None:
            wanted = dict(start_state)
        else:
            before = _state_at_position(room, since_position)
            wanted = {k: v for k, v in start_state.items() if before.get(k) != v}
        in_timeline = {row.event_id for row in timeline}
        ids = []
        senders = {row.sender for row in timeline}
        for (event_type, state_key), event_id in wanted.items():
            if event_id in in_timeline and not self.request.use_state_after:
                continue
            if event_type == MEMBER and self.request.lazy_load_members:
                keep = state_key in senders or (full and state_key == self.request.user_id)
                if not keep:
                    continue
            ids.append(event_id)
        if self.request.lazy_load_members and not full and since_position is not None:
            # Members of the timeline's senders whom the client may not know yet.
            for sender in senders:
                event_id = start_state.get((MEMBER, sender))
                if event_id and event_id not in ids and event_id not in in_timeline:
                    ids.append(event_id)
        return ids

    def _plan_joined(self, row: Membership, changed: bool) -> RoomPlan | None:
        since = self.request.since
        room = row.room
        full = self.request.full_state or since is None or changed
        lower = None if (since is None or changed) else since.events
        timeline, limited = self._timeline(room, self.now.events, lower)
        if lower is not None and not timeline and not self.request.full_state:
            return RoomPlan(room, "join", membership_row=row)
        plan = RoomPlan(room, "join", timeline=timeline, limited=limited, membership_row=row)
        if timeline:
            first = timeline[0].stream_ordering or 0
            plan.prev_batch = f"s{first - 1}"
        else:
            plan.prev_batch = f"s{self.now.events}"
        if since is not None and not changed and not limited and not self.request.full_state:
            # Every change since the token is in the timeline; only lazily loaded
            # members of its senders may be missing.
            plan.state_ids = (
                self._state_ids(
                    room,
                    timeline,
                    full=False,
                    since_position=self._timeline_start(timeline),
                    upper=self.now.events,
                )
                if self.request.lazy_load_members
                else []
            )
        else:
            plan.state_ids = self._state_ids(
                room,
                timeline,
                full=full,
                since_position=None if full else since.events if since else None,
                upper=self.now.events,
            )
        return plan

    @staticmethod
    def _timeline_start(timeline: Sequence[Event]) -> int | None:
        if not timeline:
            return None
        return (timeline[0].stream_ordering or 1) - 1

    def _plan_left(self, row: Membership) -> RoomPlan:
        """A room the user left or was banned from: history up to the membership change."""
        since = self.request.since
        room = row.room
        lower = since.events if since is not None else None
        timeline, limited = self._timeline(room, row.stream_ordering, lower)
        plan = RoomPlan(room, "leave", timeline=timeline, limited=limited, membership_row=row)
        first = timeline[0].stream_ordering if timeline else row.stream_ordering
        plan.prev_batch = f"s{(first or 1) - 1}"
        plan.state_ids = self._state_ids(
            room,
            timeline,
            full=since is None or self.request.full_state,
            since_position=since.events if since is not None else None,
            upper=row.stream_ordering,
        )
        return plan

    def _room_plans(self) -> list[RoomPlan]:
        since = self.request.since
        rows = [
            row
            for row in Membership.objects.select_related("room").filter(
                user_id=self.request.user_id
            )
            if self.request.wants_room(row.room.room_id) and row.stream_ordering <= self.now.events
        ]
        joined = [row for row in rows if row.membership == "join"]
        changed_rooms: set[int] = set()
        if since is not None and joined:
            changed_rooms = set(
                Event.objects.filter(
                    room_id__in=[row.room_id for row in joined],
                    stream_ordering__gt=since.events,
                    stream_ordering__lte=self.now.events,
                )
                .values_list("room_id", flat=True)
                .distinct()
            )
        plans: list[RoomPlan] = []
        for row in rows:
            membership_changed = since is not None and row.stream_ordering > since.events
            if row.membership == "join":
                unchanged = (
                    since is not None
                    and not membership_changed
                    and not self.request.full_state
                    and row.room_id not in changed_rooms
                )
                if unchanged:
                    # Still listed, so its account data or ephemeral events can be sent.
                    plans.append(RoomPlan(row.room, "join", membership_row=row))
                    continue
                plan = self._plan_joined(row, membership_changed)
                if plan is not None:
                    plans.append(plan)
            elif row.membership in ("invite", "knock"):
                if since is None or membership_changed:
                    plans.append(RoomPlan(row.room, row.membership, membership_row=row))
            elif row.membership in ("leave", "ban") and not row.forgotten:
                wanted = (
                    self.request.include_leave
                    if since is None
                    else membership_changed
                    or (self.request.full_state and self.request.include_leave)
                )
                if wanted:
                    plans.append(self._plan_left(row))
        return self._without_ignored_invites(plans)

    def _without_ignored_invites(self, plans: list[RoomPlan]) -> list[RoomPlan]:
        invite_ids = [
            p.membership_row.event_id
            for p in plans
            if p.section == "invite" and p.membership_row is not None
        ]
        if not self.ignored or not invite_ids:
            return plans
        dropped = set(
            Event.objects.filter(event_id__in=invite_ids, sender__in=self.ignored).values_list(
                "event_id", flat=True
            )
        )
        return [
            p
            for p in plans
            if not (p.membership_row is not None and p.membership_row.event_id in dropped)
        ]

    # --- sections from other apps -----------------------------------------------------

    def _account_data(self) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        since = self.request.since
        query = AccountData.objects.filter(
            user=self.request.user, stream_id__lte=self.now.account_data
        )
        if since is not None:
            query = query.filter(stream_id__gt=since.account_data)
        global_filter = self.request.filter.get("account_data")
        room_filter = self.request.section_filter("account_data")
        global_events: list[dict[str, Any]] = []
        per_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for room_id, data_type, content in query.values_list("room_id", "type", "content"):
            event = {"type": data_type, "content": content}
            if room_id:
                if _matches(room_filter, data_type, self.request.user_id):
                    per_room[room_id].append(event)
            elif not isinstance(global_filter, dict) or _matches(
                global_filter, data_type, self.request.user_id
            ):
                global_events.append(event)
        return global_events, per_room

    # --- assembling -------------------------------------------------------------------

    def build(self) -> SyncResult:
        request = self.request
        plans = self._room_plans()
        global_account_data, room_account_data = self._account_data()
        joined_ids = [p.room.room_id for p in plans if p.section == "join"]
        ephemeral = providers.ephemeral(request, self.request.since, self.now, joined_ids)

        state_ids = [event_id for plan in plans for event_id in plan.state_ids]
        state_rows = (
            {
                row.event_id: row
                for row in Event.objects.select_related("room").filter(event_id__in=state_ids)
            }
            if state_ids
            else {}
        )
        viewer = (request.user_id, request.device_id)
        all_timeline = [row for plan in plans for row in plan.timeline]
        bundles = relations.bundled_aggregations(
            all_timeline, request.user_id, viewer_device=viewer
        )
        state_filter = request.section_filter("state")

        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        summaries = self._summaries([p for p in plans if p.section == "join"])
        for plan in plans:
            room_id = plan.room.room_id
            if plan.section in ("invite", "knock"):
                rooms[plan.section][room_id] = self._stripped(plan)
                continue
            state = [
                state_rows[event_id]
                for event_id in plan.state_ids
                if event_id in state_rows
                and _matches(state_filter, state_rows[event_id].type, state_rows[event_id].sender)
            ]
            timeline = client_events(plan.timeline, viewer_device=viewer, bundles=bundles)
            entry: dict[str, Any] = {
                "timeline": {
                    "events": timeline,
                    "limited": plan.limited,
                    "prev_batch": plan.prev_batch or f"s{self.now.events}",
                },
                "state_after" if request.use_state_after else "state": {
                    "events": client_events(state)
                },
                "account_data": {"events": room_account_data.pop(room_id, [])},
            }
            if plan.section == "join":
                entry["ephemeral"] = {"events": ephemeral.get(room_id, [])}
                entry["summary"] = summaries.get(room_id, {})
                empty = (
                    not timeline
                    and not state
                    and not entry["account_data"]["events"]
                    and not entry["ephemeral"]["events"]
                    and request.since is not None
                    and not request.full_state
                )
                if empty:
                    continue
            rooms[plan.section][room_id] = entry
        # Account data of joined rooms without other news.
        joined_rows = {p.room.room_id: p for p in plans if p.section == "join"}
        for room_id, events in room_account_data.items():
            if room_id in joined_rows and room_id not in rooms["join"]:
                rooms["join"][room_id] = {
                    "timeline": {
                        "events": [],
                        "limited": False,
                        "prev_batch": f"s{self.now.events}",
                    },
                    "state": {"events": []},
                    "account_data": {"events": events},
                    "ephemeral": {"events": ephemeral.get(room_id, [])},
                    "summary": {},
                }
        for room_id, events in ephemeral.items():
            if room_id in joined_rows and room_id not in rooms["join"] and events:
                rooms["join"][room_id] = {
                    "timeline": {
                        "events": [],
                        "limited": False,
                        "prev_batch": f"s{self.now.events}",
                    },
                    "state": {"events": []},
                    "account_data": {"events": []},
                    "ephemeral": {"events": events},
                    "summary": {},
                }

        extra, extra_updates, held_back = providers.top_level(request, request.since, self.now)
        body: dict[str, Any] = {"next_batch": str(replace(self.now, **held_back))}
        has_updates = bool(global_account_data) or any(rooms.values()) or extra_updates
        body["rooms"] = {key: value for key, value in rooms.items() if value}
        body["account_data"] = {"events": global_account_data}
        body.update(extra)
        return SyncResult(body, has_updates, list(joined_rows))

    def _stripped(self, plan: RoomPlan) -> dict[str, Any]:
        room = plan.room
        state = load_state(room.current_state_group_id)
        ids = [state[(t, "")] for t in STRIPPED_STATE_TYPES if (t, "") in state]
        row = plan.membership_row
        if row is not None:
            ids.append(row.event_id)
        rows = list(Event.objects.filter(event_id__in=ids))
        key = "invite_state" if plan.section == "invite" else "knock_state"
        return {key: {"events": stripped_state(rows)}}

    def _summaries(self, plans: Sequence[RoomPlan]) -> dict[str, dict[str, Any]]:
        """m.joined_member_count, m.invited_member_count and m.heroes, for rooms whose
        timeline or state carries membership news (or all, on an initial sync)."""
        wanted = [
            p
            for p in plans
            if self.request.since is None
            or any(row.type == MEMBER for row in p.timeline)
            or p.state_ids
        ]
        if not wanted:
            return {}
        room_pks = [p.room.pk for p in wanted]
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for room_pk, membership, count in (
            Membership.objects.filter(room_id__in=room_pks, membership__in=("join", "invite"))
            .values_list("room_id", "membership")
            .annotate(n=Count("id"))
        ):
            counts[room_pk][membership] = count
        heroes: dict[int, list[str]] = defaultdict(list)
        for room_pk, user_id in (
            Membership.objects.filter(room_id__in=room_pks, membership__in=("join", "invite"))
            .exclude(user_id=self.request.user_id)
            .order_by("room_id", "stream_ordering")
            .values_list("room_id", "user_id")
        ):
            if len(heroes[room_pk]) < 5:
                heroes[room_pk].append(user_id)
        return {
            p.room.room_id: {
                "m.heroes": heroes.get(p.room.pk, []),
                "m.joined_member_count": counts[p.room.pk].get("join", 0),
                "m.invited_member_count": counts[p.room.pk].get("invite", 0),
            }
            for p in wanted
        }


def build_sync(request: SyncRequest) -> SyncResult:
    return SyncBuilder(request).build()
