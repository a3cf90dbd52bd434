"""Building a /sync response from a token (Client-Server API, "Syncing").

An incremental sync is "what changed in my rooms since token T": indexed range queries
over stream positions, a query per changed room at most, never one per event. The
sections other apps feed (typing, receipts, to-device, presence) come from the
providers registered in :mod:`sync.providers`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.db.models import Count, Q
from django.utils.functional import cached_property

from accounts.models import AccountData, User
from accounts.selectors import account_data_defaults
from config import process_caches
from config.lru import LRU
from protocol.event_filters import event_allowed
from protocol.room_names import ROOM_NAMING_STATE, names_room
from push.selectors import unread_counts
from rooms import recent, relations, selectors, storage
from rooms.models import Event, Membership, Receipt, Room
from rooms.serialize import (
    STRIPPED_STATE_TYPES,
    client_events,
    federation_events,
    related_events,
    stripped_state,
)
from rooms.state import StateKey, load_state, rooms_resolved_between, state_group_at_position
from rooms.sync_providers import RECEIPT, wants_ephemeral
from sync import lazy_members, providers
from sync.tokens import SyncToken

DEFAULT_TIMELINE_LIMIT = 10
MAX_TIMELINE_LIMIT = 500
# Batches of a timeline read when history visibility hides events of the first.
TIMELINE_BATCHES = 5
MEMBER = "m.room.member"
NAMING_TYPES = frozenset(event_type for event_type, _ in ROOM_NAMING_STATE)


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
    def include_redundant_members(self) -> bool:
        return self.section_filter("state").get("include_redundant_members") is True

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


def _state_at_position(room: Room, position: int, *, settled: bool = False) -> dict[StateKey, str]:
    """The room's state at stream ``position`` (``settled``: see state_group_at_position)."""
    return dict(load_state(state_group_at_position(room, position, settled=settled)))


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
    # Joined since the token (or full_state): the client gets the room afresh.
    afresh: bool = False


def _named_rooms(rooms: Sequence[tuple[RoomPlan, Mapping[StateKey, str]]]) -> set[str]:
    """The IDs of the rooms that, at the end of their timeline, have an m.room.name with
    a non-empty ``name`` or an m.room.canonical_alias with a valid ``alias`` (their
    state before the timeline, updated by the timeline's state events): one query."""
    naming: dict[str, str] = {}
    for plan, state in rooms:
        current = {key: state[key] for key in ROOM_NAMING_STATE if key in state}
        for row in plan.timeline:
            if (row.type, row.state_key) in ROOM_NAMING_STATE and not row.rejected_reason:
                current[(row.type, "")] = row.event_id
        naming.update((event_id, plan.room.room_id) for event_id in current.values())
    if not naming:
        return set()
    return {
        naming[row.event_id]
        for row in storage.events_by_id(naming).values()
        if names_room(row.type, row.pdu.get("content"))
    }


# user ID -> (account data stream position, the user's ignored users at that position)
_ignored_lists: LRU[str, tuple[int, frozenset[str]]] = LRU(10_000)


@process_caches.register
def forget_cached_ignore_lists() -> None:
    """For tests, whose rolled-back databases hand out stream positions again."""
    _ignored_lists.clear()


class SyncBuilder:
    def __init__(self, request: SyncRequest, now: SyncToken | None = None) -> None:
        self.now = now if now is not None else SyncToken.current_for(request)
        if request.since is not None and request.since.is_ahead_of(self.now):
            # Positions this server never handed out (a database restored from a
            # backup, an edited token): what the client has is unknown, so it gets an
            # initial sync rather than silence until the streams catch up.
            request = replace(request, since=None)
        self.request = request
        self.sent_key = lazy_members.device_key(request.user_id, request.device_id, request.filter)

    # Django's cached_property: functools' (Python < 3.12) holds one lock for every
    # instance while it computes, so concurrent builds queued behind one another's query.
    @cached_property
    def ignored(self) -> frozenset[str]:
        """Ignoring Users: their events leave timelines (state events stay) and their
        invites are not sent. Every account data write moves the account data stream,
        so a list read at the current position of that stream is still the list."""
        user_id = self.request.user_id
        cached = _ignored_lists.get(user_id)
        if cached is not None and cached[0] == self.now.account_data:
            return cached[1]
        ignored = relations.ignored_users(user_id)
        _ignored_lists.put(user_id, (self.now.account_data, ignored))
        return ignored

    # --- rooms ------------------------------------------------------------------------

    @cached_property
    def news(self) -> tuple[Event, ...] | None:
        """The events between the token and now, read once for every request of the
        process (rooms.recent); None for an initial sync or a range too long to keep."""
        since = self.request.since
        if since is None:
            return None
        return recent.events_between(since.events, self.now.events)

    @cached_property
    def resolved_rooms(self) -> frozenset[int]:
        """Rooms whose state changed since the token by resolution, which their timeline
        does not carry (a fork's state won): they get the difference of the state."""
        since = self.request.since
        if since is None:
            return frozenset()
        return rooms_resolved_between(since.events, self.now.events, settled=True)

    def _timeline(
        self, room: Room, upper: int, lower: int | None, *, joined: bool = False
    ) -> tuple[list[Event], bool]:
        """The last events of a room in (lower, upper] of stream order, newest ``limit``,
        oldest first. Never below position 0: history fetched from the past (backfill)
        has negative positions and stays out of /sync, even of an initial one; /messages
        finds it in topological order. ``joined``: the user is joined at ``upper``, and
        so is given the room's state there (see _visible)."""
        limit = self.request.timeline_limit
        since = self.request.since
        news = self.news if since is not None and lower == since.events else None
        if news is not None and upper == self.now.events:
            return self._timeline_from(
                room, recent.copies_in_room(news, room), limit, joined=joined
            )
        conditions = selectors.event_filter_q(self.request.section_filter("timeline"))
        visible: list[Event] = []
        upto = upper
        batch = limit
        # History visibility may hide some of the newest events (a room joined since
        # with "joined" or "invited" history): older ones then fill the timeline, a few
        # larger batches at most, as Synapse does.
        for _ in range(TIMELINE_BATCHES):
            rows = storage.timeline_batch(
                room,
                order=storage.STREAM,
                conditions=conditions,
                ignored=self.ignored,
                after=(lower if lower is not None else 0,),
                upto=(upto,),
                newest_first=True,
                count=batch + 1,
            )
            more = len(rows) > batch
            rows = rows[:batch]
            rows.reverse()
            visible = self._visible(room, rows, upper, joined=joined) + visible
            if not more or len(visible) >= limit:
                break
            upto = (rows[0].stream_ordering or 1) - 1
            batch = max(2 * limit, 10)
        limited = more or len(visible) > limit
        return visible[len(visible) - limit :] if len(visible) > limit else visible, limited

    def _visible(self, room: Room, rows: list[Event], upper: int, *, joined: bool) -> list[Event]:
        """The rows the user may see; in a room the user is ``joined`` to at ``upper``,
        also the state events among them that are the room's state there, whatever the
        history visibility: the client is given that state anyway, and a client that
        saw another member join only in ``state`` would not know when (as Synapse keeps
        them; sytest 31sync/06state, "Current state appears in timeline in private
        history")."""
        visible = selectors.filter_visible(rows, self.request.user_id)
        if not joined or len(visible) == len(rows) or all(row.state_key is None for row in rows):
            return visible
        kept = {row.event_id for row in visible}
        current = set(_state_at_position(room, upper, settled=upper <= self.now.events).values())
        return [
            row
            for row in rows
            if row.event_id in kept or (row.state_key is not None and row.event_id in current)
        ]

    def _timeline_from(
        self, room: Room, rows: list[Event], limit: int, *, joined: bool
    ) -> tuple[list[Event], bool]:
        """_timeline's answer from the room's rows of the range, oldest first: the
        same conditions, applied here rather than in SQL."""
        timeline_filter = self.request.section_filter("timeline")
        ignored = self.ignored
        kept = [
            row
            for row in rows
            if storage.in_timeline(row)
            and event_allowed(timeline_filter, row.type, row.sender)
            and not (row.sender in ignored and row.state_key is None)
        ]
        limited = len(kept) > limit
        kept = kept[len(kept) - limit :] if limited else kept
        return self._visible(room, kept, self.now.events, joined=joined), limited

    def _state_ids(
        self,
        room: Room,
        timeline: Sequence[Event],
        *,
        full: bool,
        since_position: int | None,
        upper: int,
    ) -> list[str]:
        """State event IDs for the room's ``state`` (or ``state_after``) section.

        ``state``: the state at the start of the timeline, less what the client had at
        ``since_position``. A change after the start that the timeline does not carry
        (a filtered timeline) is given with its value at the end, so that state plus
        timeline still add up to the current state. ``state_after``: the state at the end
        of the timeline, less what the client had.
        """
        end_state = _state_at_position(room, upper, settled=upper <= self.now.events)
        in_timeline = {row.event_id for row in timeline}
        state_after = self.request.use_state_after
        if state_after or not timeline:
            target = dict(end_state)
        else:
            start_state = _state_before(timeline[0])
            target = {
                key: start_state[key] if event_id in in_timeline else event_id
                for key, event_id in end_state.items()
                if event_id not in in_timeline or key in start_state
            }
        incremental = not full and since_position is not None
        if incremental:
            before = _state_at_position(
                room, since_position, settled=since_position <= self.now.events
            )
            wanted = {k: v for k, v in target.items() if before.get(k) != v}
        else:
            wanted = target
        lazy = self.request.lazy_load_members
        senders = {row.sender for row in timeline}
        ids = []
        for (event_type, state_key), event_id in wanted.items():
            if event_id in in_timeline and not state_after:
                continue
            # Lazy loading ("Syncing"): a full state gives the members of the timeline's
            # senders and the syncing user's own; an incremental one every membership
            # change in the gap, redundant or not.
            lazily_left_out = (
                event_type == MEMBER
                and lazy
                and not incremental
                and state_key not in senders
                and state_key != self.request.user_id
            )
            if lazily_left_out:
                continue
            ids.append(event_id)
        if lazy and incremental:
            # Members of the timeline's senders whom the client may not know yet. A gap
            # (a limited timeline) changes nothing for them: what GET /sync sends
            # "regardless as to whether or not they are redundant" is the membership
            # events in the gap, which ``wanted`` holds already.
            for sender in senders:
                event_id = target.get((MEMBER, sender))
                unknown = event_id and event_id not in ids and event_id not in in_timeline
                if unknown and not self._already_sent(room, sender, event_id):
                    ids.append(event_id)
        return ids

    def _already_sent(self, room: Room, state_key: str, event_id: str) -> bool:
        since = self.request.since
        if since is None or self.request.include_redundant_members:
            return False
        return lazy_members.already_sent(
            self.sent_key, room.room_id, state_key, event_id, since.events
        )

    def _plan_joined(self, row: Membership, newly_joined: bool) -> RoomPlan:
        """A joined room with news. ``newly_joined``: not joined at ``since``, so the
        client gets the room afresh (full state, the latest timeline)."""
        since = self.request.since
        room = row.room
        full = self.request.full_state or since is None or newly_joined
        lower = None if (since is None or newly_joined) else since.events
        timeline, limited = self._timeline(room, self.now.events, lower, joined=True)
        if newly_joined and timeline and timeline[0].type != "m.room.create":
            # A room joined since the token comes with the state at the start of its
            # timeline, and an incremental sync's state "will therefore be empty unless
            # the timeline was limited" ("Syncing"): whatever came before that start is
            # a gap to the client, which has nothing of the room.
            limited = True
        plan = RoomPlan(
            room, "join", timeline=timeline, limited=limited, membership_row=row, afresh=full
        )
        if timeline:
            first = timeline[0].stream_ordering or 0
            plan.prev_batch = f"s{first - 1}"
        else:
            plan.prev_batch = f"s{self.now.events}"
        whole_timeline = (
            not limited and not self._timeline_filtered() and room.pk not in self.resolved_rooms
        )
        if lower is not None and whole_timeline and not full and not self.request.use_state_after:
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
                if self.request.lazy_load_members and timeline
                else []
            )
        else:
            plan.state_ids = self._state_ids(
                room,
                timeline,
                full=full,
                since_position=None if full else lower,
                upper=self.now.events,
            )
        return plan

    def _timeline_filtered(self) -> bool:
        timeline_filter = self.request.section_filter("timeline")
        return any(
            isinstance(timeline_filter.get(key), list)
            for key in ("types", "not_types", "senders", "not_senders")
        )

    @staticmethod
    def _timeline_start(timeline: Sequence[Event]) -> int | None:
        if not timeline:
            return None
        return (timeline[0].stream_ordering or 1) - 1

    def _plan_left(self, row: Membership, *, afresh: bool = False) -> RoomPlan:
        """A room the user left or was banned from: history up to the membership change.
        ``afresh``: joined and left since the token, so its state is given whole."""
        since = self.request.since
        room = row.room
        leave = storage.events_by_id([row.event_id]).get(row.event_id)
        if leave is not None and storage.is_out_of_band(leave):
            # A rejected remote invite, a rescinded knock: none of the room's history is
            # here, and the leave, which is not in a timeline, is the one event to give
            # (as Synapse does).
            plan = RoomPlan(room, "leave", timeline=[leave], membership_row=row)
            plan.prev_batch = f"s{row.stream_ordering - 1}"
            return plan
        lower = since.events if since is not None else None
        timeline, limited = self._timeline(room, row.stream_ordering, lower)
        plan = RoomPlan(room, "leave", timeline=timeline, limited=limited, membership_row=row)
        first = timeline[0].stream_ordering if timeline else row.stream_ordering
        plan.prev_batch = f"s{(first or 1) - 1}"
        plan.state_ids = self._state_ids(
            room,
            timeline,
            full=since is None or self.request.full_state or afresh,
            since_position=since.events if since is not None else None,
            upper=row.stream_ordering,
        )
        if plan.state_ids and not self._left_from_join(row):
            # A rejected or withdrawn invite, a withdrawn knock, a ban while not joined:
            # the user had no view of the room's state just before, so its state section
            # holds only the events history visibility lets them see (their own
            # membership at least), as the timeline does.
            rows = list(storage.events_by_id(plan.state_ids).values())
            visible = {e.event_id for e in selectors.filter_visible(rows, self.request.user_id)}
            plan.state_ids = [event_id for event_id in plan.state_ids if event_id in visible]
        return plan

    @staticmethod
    def _left_from_join(row: Membership) -> bool:
        """Was the user joined just before this leave or ban?"""
        replaced = Event.objects.filter(event_id=row.event_id).values("replaces_state")
        return Event.objects.filter(event_id__in=replaced, membership="join").exists()

    def _room_plans(self) -> list[RoomPlan]:
        since = self.request.since
        rows = [
            row
            for row in selectors.memberships_of(self.request.user_id)
            if self.request.wants_room(row.room.room_id)
        ]
        rows = self._memberships_at_now(rows)
        joined = [row for row in rows if row.membership == "join"]
        changed_rooms: set[int] = set()
        if since is not None and joined and self.news is not None:
            changed_rooms = {row.room_id for row in self.news}
        elif since is not None and joined:
            changed_rooms = storage.rooms_with_events_between(
                [row.room_id for row in joined], since.events, self.now.events
            )
        if since is not None and joined and since.events < self.now.events:
            # A state change without an event of its own (the whole state of a room
            # joined with partial state arriving, rooms.services.partial_state).
            changed_rooms |= self.resolved_rooms
        newly_joined = self._newly_joined(
            [row for row in joined if since is not None and row.stream_ordering > since.events]
        )
        # Rooms joined and left since the token: the client never had their state.
        unknown_left = self._joined_and_left_since(
            [
                row
                for row in rows
                if row.membership in ("leave", "ban")
                and since is not None
                and row.stream_ordering > since.events
            ]
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
                plans.append(self._plan_joined(row, row.room_id in newly_joined))
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
                    plans.append(self._plan_left(row, afresh=row.room_id in unknown_left))
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

    def _memberships_at_now(self, rows: list[Membership]) -> list[Membership]:
        """The user's memberships as of ``self.now``: a row changed after the token was
        read stands for the member event before it (or for nothing, if none)."""
        ahead = {row.room_id: row for row in rows if row.stream_ordering > self.now.events}
        if not ahead:
            return rows
        earlier: dict[int, Membership] = {}
        for room_pk, membership, event_id, position, _ in storage.member_events_of(
            self.request.user_id, list(ahead), after=None, upto=self.now.events, newest_first=True
        ):
            if room_pk not in earlier:
                earlier[room_pk] = Membership(
                    room=ahead[room_pk].room,
                    user_id=self.request.user_id,
                    membership=membership or "leave",
                    event_id=event_id,
                    stream_ordering=position,
                )
        return [
            earlier[row.room_id] if row.room_id in ahead else row
            for row in rows
            if row.room_id not in ahead or row.room_id in earlier
        ]

    def _joined_and_left_since(self, rows: Sequence[Membership]) -> set[int]:
        """Of the rooms left since the token, those the user was not joined to at the
        token and joined in between: two queries."""
        since = self.request.since
        if since is None or not rows:
            return set()
        first_replaced: dict[int, str | None] = {}
        joined_since: set[int] = set()
        for room_pk, membership, _, _, replaces in storage.member_events_of(
            self.request.user_id,
            [row.room_id for row in rows],
            after=since.events,
            upto=self.now.events,
            newest_first=False,
        ):
            first_replaced.setdefault(room_pk, replaces)
            if membership == "join":
                joined_since.add(room_pk)
        earlier = dict(
            Event.objects.filter(
                event_id__in=[e for e in first_replaced.values() if e]
            ).values_list("event_id", "membership")
        )
        return {
            row.room_id
            for row in rows
            if row.room_id in joined_since
            and earlier.get(first_replaced.get(row.room_id) or "") != "join"
        }

    def _newly_joined(self, rows: Sequence[Membership]) -> set[int]:
        """Of the joined rooms whose membership row changed since the token, those the
        user was not joined to at the token, or left and rejoined since: two queries.

        A profile change re-sends the join event; the room is not new to the client.
        """
        since = self.request.since
        if since is None or not rows:
            return set()
        newly: set[int] = set()
        first_replaced: dict[int, str | None] = {}
        for room_pk, membership, _, _, replaces in storage.member_events_of(
            self.request.user_id,
            [row.room_id for row in rows],
            after=since.events,
            upto=self.now.events,
            newest_first=False,
        ):
            if membership != "join":
                newly.add(room_pk)
            first_replaced.setdefault(room_pk, replaces)
        earlier = dict(
            Event.objects.filter(
                event_id__in=[e for e in first_replaced.values() if e]
            ).values_list("event_id", "membership")
        )
        for row in rows:
            replaced = first_replaced.get(row.room_id)
            if replaced is None or earlier.get(replaced) != "join":
                newly.add(row.room_id)
        return newly

    # --- sections from other apps -----------------------------------------------------

    def _account_data(
        self, afresh_room_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
        """Account data changed since the token; all of it for rooms given afresh (a
        room joined since the token has the account data set while away)."""
        since = self.request.since
        if (
            since is not None
            and since.account_data >= self.now.account_data
            and not afresh_room_ids
        ):
            # Nobody's account data changed since the token.
            return [], {}
        query = AccountData.objects.filter(
            user=self.request.user, stream_id__lte=self.now.account_data
        )
        if since is not None:
            query = query.filter(
                Q(stream_id__gt=since.account_data) | Q(room_id__in=list(afresh_room_ids))
            )
        global_filter = self.request.filter.get("account_data")
        room_filter = self.request.section_filter("account_data")
        global_events: list[dict[str, Any]] = []
        per_room: dict[str, list[dict[str, Any]]] = defaultdict(list)
        rows = list(query.values_list("room_id", "type", "content"))
        if since is None:
            # Server-managed account data never written yet (m.push_rules: the default
            # push rules) is in every initial sync all the same.
            written = {data_type for room_id, data_type, _ in rows if not room_id}
            defaults = account_data_defaults(self.request.user_id, written)
            rows.extend(("", data_type, content) for data_type, content in defaults)
        for room_id, data_type, content in rows:
            event = {"type": data_type, "content": content}
            if room_id:
                if event_allowed(room_filter, data_type, self.request.user_id):
                    per_room[room_id].append(event)
            elif not isinstance(global_filter, dict) or event_allowed(
                global_filter, data_type, self.request.user_id
            ):
                global_events.append(event)
        return global_events, per_room

    # --- assembling -------------------------------------------------------------------

    def build(self) -> SyncResult:
        request = self.request
        # No stream has moved since the token: no room has news (the top-level
        # sections below still run; they carry counts every response must have).
        unchanged = request.since == self.now and not request.full_state
        plans = [] if unchanged else self._room_plans()
        global_account_data, room_account_data = self._account_data(
            [p.room.room_id for p in plans if p.afresh]
        )
        joined_ids = [p.room.room_id for p in plans if p.section == "join"]
        ephemeral = providers.ephemeral(request, self.request.since, self.now, joined_ids)
        summaries = self._summaries([p for p in plans if p.section == "join"])
        if request.lazy_load_members:
            self._add_hero_members(plans, summaries)

        state_ids = [event_id for plan in plans for event_id in plan.state_ids]
        loaded = storage.events_by_id(state_ids, with_room=True)
        # Every room's state as served to the user (erasure), in one query at most.
        state_rows = dict(
            zip(loaded, selectors.as_served(list(loaded.values()), request.user_id), strict=True)
        )
        viewer = (request.user_id, request.device_id)
        all_timeline = [row for plan in plans for row in plan.timeline]
        bundles = (
            relations.bundled_aggregations(
                all_timeline, request.user_id, viewer_device=viewer, ignored=self.ignored
            )
            if all_timeline
            else {}
        )
        state_filter = request.section_filter("state")
        federation_format = request.filter.get("event_format") == "federation"
        # What the timelines and states replaced or were redacted by, for every room at
        # once (prev_content, redacted_because: the client format only).
        related = (
            {}
            if federation_format
            else related_events([*all_timeline, *state_rows.values()], request.user_id)
        )

        rooms: dict[str, dict[str, Any]] = {"join": {}, "invite": {}, "leave": {}, "knock": {}}
        # use_state_after: "state_after", required even when empty; "state" omitted.
        state_section = "state_after" if request.use_state_after else "state"
        sent_members: list[tuple[str, str, str]] = []
        invited_or_knocked = [p for p in plans if p.section in ("invite", "knock")]
        stripped = self._stripped(invited_or_knocked) if invited_or_knocked else {}
        for plan in plans:
            room_id = plan.room.room_id
            if plan.section in ("invite", "knock"):
                rooms[plan.section][room_id] = stripped[room_id]
                continue
            state = [
                state_rows[event_id]
                for event_id in plan.state_ids
                if event_id in state_rows
                and event_allowed(
                    state_filter, state_rows[event_id].type, state_rows[event_id].sender
                )
            ]
            if request.lazy_load_members:
                sent_members.extend(
                    (room_id, row.state_key, row.event_id)
                    for row in (*state, *plan.timeline)
                    if row.type == MEMBER and row.state_key is not None
                )
            if federation_format:
                timeline = federation_events(plan.timeline)
                state_events = federation_events(state)
            else:
                timeline = client_events(
                    plan.timeline, viewer_device=viewer, bundles=bundles, related=related
                )
                state_events = client_events(state, viewer=request.user_id, related=related)
            entry: dict[str, Any] = {
                "timeline": {
                    "events": timeline,
                    "limited": plan.limited,
                    "prev_batch": plan.prev_batch or f"s{self.now.events}",
                },
                state_section: {"events": state_events},
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
        # Joined rooms whose only news is account data or ephemeral events.
        quiet_ids = [
            room_id
            for room_id in [*room_account_data, *(r for r, events in ephemeral.items() if events)]
            if room_id in joined_rows and room_id not in rooms["join"]
        ]
        for room_id in dict.fromkeys(quiet_ids):
            rooms["join"][room_id] = self._quiet_entry(
                state_section, room_account_data.get(room_id, []), ephemeral.get(room_id, [])
            )

        for room_id in self._rooms_read_since([p.room.pk for p in joined_rows.values()]):
            if room_id in joined_rows and room_id not in rooms["join"]:
                rooms["join"][room_id] = self._quiet_entry(state_section, [], [])
        self._add_unread_counts(rooms["join"], joined_rows)
        if sent_members:
            lazy_members.record_sent(self.sent_key, sent_members, self.now.events)
        extra, extra_updates, held_back = providers.top_level(request, request.since, self.now)
        body: dict[str, Any] = {"next_batch": str(replace(self.now, **held_back))}
        has_updates = (
            request.since is None
            or bool(global_account_data)
            or any(rooms.values())
            or extra_updates
        )
        body["rooms"] = {key: value for key, value in rooms.items() if value}
        body["account_data"] = {"events": global_account_data}
        body.update(extra)
        return SyncResult(body, has_updates, list(joined_rows))

    def _quiet_entry(
        self,
        state_section: str,
        account_data: list[dict[str, Any]],
        ephemeral: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """A joined room without timeline or state news."""
        return {
            "timeline": {"events": [], "limited": False, "prev_batch": f"s{self.now.events}"},
            state_section: {"events": []},
            "account_data": {"events": account_data},
            "ephemeral": {"events": ephemeral},
            "summary": {},
        }

    def _rooms_read_since(self, room_pks: list[int]) -> list[str]:
        """Rooms where the user's own receipt moved since the token, when the ephemeral
        filter keeps receipts out of the response: their notification counts changed, and
        a room's counts are only sent with the room (otherwise the m.receipt event
        carries the room in already). One query, only then."""
        since = self.request.since
        if since is None or since.receipts >= self.now.receipts or not room_pks:
            return []
        if wants_ephemeral(self.request, RECEIPT):
            return []
        return list(
            Receipt.objects.filter(
                room_id__in=room_pks,
                user_id=self.request.user_id,
                stream_id__gt=since.receipts,
                stream_id__lte=self.now.receipts,
            )
            .values_list("room__room_id", flat=True)
            .distinct()
        )

    def _add_unread_counts(
        self, joined: dict[str, dict[str, Any]], plans: Mapping[str, RoomPlan]
    ) -> None:
        """``unread_notifications`` (and, when the timeline filter asks, the per-thread
        ``unread_thread_notifications``) for every joined room of the response: one
        query for all of them (push.selectors)."""
        if not joined:
            return
        by_thread = self.request.section_filter("timeline").get("unread_thread_notifications")
        counts = unread_counts(
            self.request.user_id,
            [plans[room_id].room for room_id in joined],
            by_thread=by_thread is True,
        )
        for room_id, entry in joined.items():
            entry.update(counts.get(room_id, {}))

    def _stripped(self, plans: Sequence[RoomPlan]) -> dict[str, dict[str, Any]]:
        """The stripped state of each invite and knock, as it was at the invite or knock
        (as Synapse keeps it), by room ID: two queries for all of them.

        An invite is sent once: were later changes shown, an initial sync would hold
        state that no incremental sync ever delivered.
        """
        member_ids = [p.membership_row.event_id for p in plans if p.membership_row is not None]
        members = storage.events_by_id(member_ids)
        # An invite or knock of a room this server is not in: the stripped state the
        # other server sent is all there is.
        out_of_band = storage.out_of_band_stripped_state(
            e for e, member in members.items() if storage.is_out_of_band(member)
        )
        wanted: dict[str, list[str]] = {}
        for plan in plans:
            row = plan.membership_row
            member = members.get(row.event_id) if row is not None else None
            if member is not None and member.event_id in out_of_band:
                wanted[plan.room.room_id] = []
                continue
            state = load_state(member.state_group_id if member is not None else None)
            keys = [(t, "") for t in STRIPPED_STATE_TYPES]
            if member is not None and member.sender != self.request.user_id:
                # Whoever invited: their own member event, as Synapse gives it (a client
                # shows who the invite is from; sytest's third-party invite tests look).
                keys.append((MEMBER, member.sender))
            wanted[plan.room.room_id] = [state[key] for key in keys if key in state]
        all_ids = {event_id for ids in wanted.values() for event_id in ids}
        by_id = storage.events_by_id(all_ids)
        sections: dict[str, dict[str, Any]] = {}
        for plan in plans:
            room_id = plan.room.room_id
            rows = [by_id[event_id] for event_id in wanted[room_id] if event_id in by_id]
            row = plan.membership_row
            if row is not None and row.event_id in members:
                rows.append(members[row.event_id])
            events = stripped_state(rows)
            if row is not None and row.event_id in out_of_band:
                own = (MEMBER, self.request.user_id)
                given = out_of_band[row.event_id]
                events = [e for e in given if (e.get("type"), e.get("state_key")) != own] + events
            key = "invite_state" if plan.section == "invite" else "knock_state"
            sections[room_id] = {key: {"events": events}}
        return sections

    def _add_hero_members(
        self, plans: Sequence[RoomPlan], summaries: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Lazy loading: the member events of the summary's heroes go in ``state``
        (Client-Server API, the room summary's "m.heroes"). An incremental sync adds them
        only when the heroes may have changed: a member event in the timeline, or a gap.

        A room with a name or a canonical alias needs none: clients name a room from its
        heroes only when it has neither (Instant Messaging, "Calculating the display
        name for a room"), so there lazy loading carries the timeline's senders only."""
        state_after = self.request.use_state_after
        wanting: list[tuple[RoomPlan, list[str], dict[StateKey, str]]] = []
        for plan in plans:
            # A named room's summary has no heroes (see _summaries).
            heroes = summaries.get(plan.room.room_id, {}).get("m.heroes")
            news = plan.afresh or plan.limited or any(row.type == MEMBER for row in plan.timeline)
            if plan.section != "join" or not heroes or not news:
                continue
            if plan.timeline and not state_after:
                state = _state_before(plan.timeline[0])
            else:
                state = _state_at_position(plan.room, self.now.events, settled=True)
            wanting.append((plan, heroes, state))
        for plan, heroes, state in wanting:
            # Events of the timeline are already sent (unless state_after wants them too).
            known = set(plan.state_ids)
            if not state_after:
                known.update(row.event_id for row in plan.timeline)
            for hero in heroes:
                event_id = state.get((MEMBER, hero))
                if event_id is None or event_id in known:
                    continue
                if plan.afresh or not self._already_sent(plan.room, hero, event_id):
                    plan.state_ids.append(event_id)
                    known.add(event_id)

    def _summaries(self, plans: Sequence[RoomPlan]) -> dict[str, dict[str, Any]]:
        """m.joined_member_count, m.invited_member_count and m.heroes, for rooms whose
        timeline or state carries membership or naming news (or all, on an initial sync).

        m.heroes is "required if the room's m.room.name or m.room.canonical_alias state
        events are unset or empty" (GET /sync): a room they name gets none, as clients
        name it from them (and a change of them sends the summary again)."""
        wanted = [
            p
            for p in plans
            if self.request.since is None
            or any(row.type == MEMBER or row.type in NAMING_TYPES for row in p.timeline)
            or p.state_ids
        ]
        if not wanted:
            return {}
        named = _named_rooms(
            [(p, _state_at_position(p.room, self.now.events, settled=True)) for p in wanted]
        )
        room_pks = [p.room.pk for p in wanted]
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for room_pk, membership, count in (
            Membership.objects.filter(room_id__in=room_pks, membership__in=("join", "invite"))
            .values_list("room_id", "membership")
            .annotate(n=Count("id"))
        ):
            counts[room_pk][membership] = count
        # m.heroes: the first 5 joined or invited members by stream ordering, never the
        # user; when there are none, the members who left or were banned.
        present: dict[int, list[str]] = defaultdict(list)
        departed: dict[int, list[str]] = defaultdict(list)
        for room_pk, user_id, membership in (
            Membership.objects.filter(room_id__in=room_pks)
            .exclude(user_id=self.request.user_id)
            .order_by("room_id", "stream_ordering")
            .values_list("room_id", "user_id", "membership")
        ):
            group = present if membership in ("join", "invite") else departed
            if membership != "knock" and len(group[room_pk]) < 5:
                group[room_pk].append(user_id)
        heroes = {pk: present.get(pk) or departed.get(pk, []) for pk in room_pks}
        summaries: dict[str, dict[str, Any]] = {}
        for p in wanted:
            summary: dict[str, Any] = (
                {} if p.room.room_id in named else {"m.heroes": heroes.get(p.room.pk, [])}
            )
            summary["m.joined_member_count"] = counts[p.room.pk].get("join", 0)
            summary["m.invited_member_count"] = counts[p.room.pk].get("invite", 0)
            summaries[p.room.room_id] = summary
        return summaries


def build_sync(request: SyncRequest, now: SyncToken | None = None) -> SyncResult:
    """The response to ``request`` as of ``now`` (the streams' current positions, read
    here, with the request's read-alongs, unless the caller just read them)."""
    return SyncBuilder(request, now).build()
