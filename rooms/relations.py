"""Event relationships: child events, threads, bundled aggregations, context, timestamps.

Client-Server API, "Forming relationships between events": a child names its parent in
``content["m.relates_to"]`` with a ``rel_type`` and an ``event_id`` (both required: a
rich reply alone is not a relationship here). The send path stores both in
``Event.relates_to`` / ``Event.rel_type``; every read below is a batched query on them.

Rules applied in one place:
- A child must be in the parent's room, in the timeline, not rejected, not soft-failed.
- A redacted child has lost its ``m.relates_to``, so the relationship is broken
  ("Aggregations of child events": the server de-aggregates it).
- Children sent by users the viewer ignores are left out ("Ignoring users").
- History visibility is applied through ``selectors.filter_visible``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet

from accounts.models import AccountData
from accounts.services.account_data import IGNORED_USER_LIST
from protocol.errors import MatrixError
from protocol.identifiers import parse_user_id
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms import history, selectors, storage
from rooms.models import Event, Room
from rooms.serialize import client_events
from rooms.services.events import SendContext, find_by_txn
from rooms.state import load_state
from rooms.storage import TOPOLOGICAL

REPLACE = "m.replace"
ANNOTATION = "m.annotation"
THREAD = "m.thread"
REFERENCE = "m.reference"
# The thread_id of the main timeline (receipts, notification counts).
MAIN_THREAD = "main"


def thread_root(
    rel_type: str | None,
    relates_to: str | None,
    parent_relation: Callable[[str], tuple[str | None, str | None] | None],
) -> str:
    """The thread an event is in ("Threaded read receipts"): the root of its m.thread
    relation, one hop further for an event related to a threaded event, else the main
    timeline. ``parent_relation(event_id)`` gives the related event's (rel_type,
    relates_to) when it is in the room, None otherwise; it is asked only when needed."""
    if not relates_to:
        return MAIN_THREAD
    if rel_type == THREAD:
        return relates_to
    parent = parent_relation(relates_to)
    if parent is not None and parent[0] == THREAD and parent[1]:
        return parent[1]
    return MAIN_THREAD


# relations.yaml, ``recurse``: "Homeservers SHOULD traverse at least 3 levels".
MAX_RECURSION_DEPTH = 3
# Candidates scanned per request by timestamp_to_event before answering 404.
TIMESTAMP_SCAN = 100

Bundles = dict[str, dict[str, Any]]


def _timeline(room: Room | None = None) -> QuerySet[Event]:
    return storage.timeline_events(room)


def _children() -> QuerySet[Event]:
    return storage.live_children()


def ignored_users(user_id: str) -> frozenset[str]:
    """The users in ``user_id``'s ``m.ignored_user_list`` account data."""
    try:
        ident = parse_user_id(user_id)
    except ValueError:
        return frozenset()
    if ident.domain != settings.SERVER_NAME:
        return frozenset()
    content = (
        AccountData.objects.filter(
            user__localpart=ident.localpart, room_id="", type=IGNORED_USER_LIST
        )
        .values_list("content", flat=True)
        .first()
    )
    return ignored_in(content)


def ignored_in(content: object) -> frozenset[str]:
    """The users an ``m.ignored_user_list`` content names (none, for anything else)."""
    ignored = content.get("ignored_users") if isinstance(content, dict) else None
    return frozenset(ignored) if isinstance(ignored, dict) else frozenset()


def _visible(rows: Iterable[Event], user_id: str) -> list[Event]:
    """``filter_visible`` for rows of any rooms: one call per room, order kept."""
    by_room: dict[int, list[Event]] = defaultdict(list)
    ordered = list(rows)
    for row in ordered:
        by_room[row.room_id].append(row)
    # By primary key, the row as it is served (an erased sender's may be a redacted copy).
    kept: dict[int, Event] = {}
    for room_rows in by_room.values():
        kept.update((row.pk, row) for row in selectors.filter_visible(room_rows, user_id))
    return [kept[row.pk] for row in ordered if row.pk in kept]


# --- Bundled aggregations ---------------------------------------------------------


def _may_have_bundles(row: Event) -> bool:
    # "State events do not currently receive bundled aggregations"; an edit or an
    # annotation may not be the parent of another relationship (Synapse does the same),
    # so their own bundles are not computed. Rows read through storage.with_child_flag() say
    # whether they have children at all.
    return (
        row.state_key is None
        and row.rel_type not in (REPLACE, ANNOTATION)
        and getattr(row, "has_children", True)
    )


def _is_valid_edit(original: Event, edit: Event) -> bool:
    """Event replacements, "Validity of replacement events"."""
    if edit.room_id != original.room_id or edit.sender != original.sender:
        return False
    if edit.type != original.type or edit.state_key is not None:
        return False
    if original.state_key is not None or original.rel_type == REPLACE:
        return False
    if edit.type == "m.room.encrypted":
        # m.new_content is inside the ciphertext; the server cannot check it.
        return True
    return isinstance(edit.pdu.get("content", {}).get("m.new_content"), dict)


def _edit_order(edit: Event) -> tuple[int, str]:
    # "The most recent event is determined by comparing origin_server_ts; if two or more
    # replacement events have identical origin_server_ts, the event with the
    # lexicographically largest event_id is treated as more recent."
    return edit.origin_server_ts, edit.event_id


def bundled_aggregations(
    rows: Sequence[Event],
    user_id: str,
    *,
    viewer_device: tuple[str, str | None] | None = None,
    ignored: frozenset[str] | None = None,
) -> Bundles:
    """``unsigned["m.relations"]`` for each of ``rows`` that has any, by event ID.

    A bounded number of queries for the whole batch, whatever its size:
    - ``m.replace``: the most recent valid edit, in client format. Not bundled with a
      redacted original (the serializer drops it: the original's threads remain).
    - ``m.thread``: ``latest_event`` (in client format, with its own bundles),
      ``count`` and ``current_user_participated``.
    - ``m.reference``: ``{"chunk": [{"event_id": ...}, ...]}`` in stream order.
    - ``m.annotation`` is not aggregated by the server (Event annotations, "Server-side
      aggregation of m.annotation relationships").

    ``ignored`` is the viewer's ignored users when the caller has read them already.
    """
    if not any(_may_have_bundles(row) for row in rows):
        return {}
    if ignored is None:
        ignored = ignored_users(user_id)
    return _bundles(rows, user_id, ignored, viewer_device, with_threads=True)


def _bundles(
    rows: Sequence[Event],
    user_id: str,
    ignored: frozenset[str],
    viewer_device: tuple[str, str | None] | None,
    *,
    with_threads: bool,
) -> Bundles:
    parents = {row.event_id: row for row in rows if _may_have_bundles(row)}
    if not parents:
        return {}
    # One grouped query tells which parents have children of which kind: per parent and
    # rel_type, the count, the latest child and whether the viewer sent any of them.
    # Most pages have none, and then this is the only query.
    kinds = (REPLACE, REFERENCE, THREAD) if with_threads else (REPLACE, REFERENCE)
    groups = _child_groups(parents, kinds, ignored, user_id)
    if not groups:
        return {}
    bundles: Bundles = defaultdict(dict)
    with_edits_or_refs = [g["relates_to"] for g in groups if g["rel_type"] != THREAD]
    # By parent only, as in _child_groups; a child in another room is skipped below.
    edits_and_refs = (
        list(
            _children()
            .filter(rel_type__in=(REPLACE, REFERENCE), relates_to__in=with_edits_or_refs)
            .exclude(sender__in=ignored)
            .order_by("stream_ordering")
        )
        if with_edits_or_refs
        else []
    )
    thread_roots = {row.event_id for row in parents.values() if row.rel_type is None}
    threads = [g for g in groups if g["rel_type"] == THREAD and g["relates_to"] in thread_roots]
    latest_rows = (
        list(_timeline().filter(stream_ordering__in=[t["latest"] for t in threads]))
        if threads
        else []
    )
    # By primary key, as served (an erased sender's child may be a redacted copy).
    visible = {row.pk: row for row in _visible([*edits_and_refs, *latest_rows], user_id)}

    best_edit: dict[str, Event] = {}
    for stored in edits_and_refs:
        child = visible.get(stored.pk)
        if child is None or child.relates_to is None:
            continue
        parent = parents[child.relates_to]
        if child.room_id != parent.room_id:
            continue
        if child.rel_type == REFERENCE:
            reference = bundles[parent.event_id].setdefault(REFERENCE, {"chunk": []})
            reference["chunk"].append({"event_id": child.event_id})
        elif not parent.redacted_by and _is_valid_edit(parent, child):
            current = best_edit.get(parent.event_id)
            if current is None or _edit_order(child) > _edit_order(current):
                best_edit[parent.event_id] = child
    if best_edit:
        edits = list(best_edit.items())
        formatted = client_events([edit for _, edit in edits])
        for (parent_id, _), event in zip(edits, formatted, strict=True):
            bundles[parent_id][REPLACE] = event

    if threads:
        latest_by_root = _latest_visible_in_threads(threads, latest_rows, visible, user_id)
        latest_list = list(latest_by_root.values())
        # The latest event's own children are aggregated too; it is an m.thread child,
        # so it cannot be a thread root itself and the recursion stops here.
        latest_bundles = _bundles(latest_list, user_id, ignored, viewer_device, with_threads=False)
        formatted = client_events(latest_list, viewer_device=viewer_device, bundles=latest_bundles)
        latest_events = {
            row.event_id: event for row, event in zip(latest_list, formatted, strict=True)
        }
        for thread in threads:
            root_id = thread["relates_to"]
            latest = latest_by_root.get(root_id)
            if latest is None:
                continue
            bundles[root_id][THREAD] = {
                "latest_event": latest_events[latest.event_id],
                "count": thread["count"],
                # Threading, "current_user_participated": the viewer sent the root or
                # an m.thread child of it.
                "current_user_participated": thread["mine"] > 0
                or parents[root_id].sender == user_id,
            }
    return dict(bundles)


def _child_groups(
    parents: dict[str, Event],
    kinds: Sequence[str],
    ignored: frozenset[str],
    user_id: str,
) -> list[dict[str, Any]]:
    """Per parent and rel_type among ``kinds``: the live children's count, the latest
    one's stream ordering and how many the viewer sent; ignored users' left out, and
    children in another room than their parent's (rooms.storage.child_groups, which
    leaves the room out of its SQL for a reason it gives)."""
    return [
        {"relates_to": parent, "rel_type": kind, "count": count, "latest": latest, "mine": mine}
        for parent, kind, room_pk, count, latest, mine in storage.child_groups(
            list(parents), kinds, ignored, user_id
        )
        if parents[parent].room_id == room_pk
    ]


def _latest_visible_in_threads(
    threads: list[dict[str, Any]],
    latest_rows: list[Event],
    visible: dict[int, Event],
    user_id: str,
) -> dict[str, Event]:
    """The most recent child the viewer may see, per thread root."""
    by_position = {row.stream_ordering: row for row in latest_rows}
    found: dict[str, Event] = {}
    hidden: list[str] = []
    for thread in threads:
        row = by_position.get(thread["latest"])
        if row is not None and row.pk in visible:
            found[thread["relates_to"]] = visible[row.pk]
        else:
            hidden.append(thread["relates_to"])
    if hidden:
        # Rare: the newest reply is outside the viewer's history (they left). Look
        # through those threads' replies, newest first, in one query.
        candidates = list(
            _children().filter(rel_type=THREAD, relates_to__in=hidden).order_by("-stream_ordering")
        )
        for row in _visible(candidates, user_id):
            if row.relates_to is not None:
                found.setdefault(row.relates_to, row)
    return found


# --- GET /relations ---------------------------------------------------------------


@dataclass
class RelationsPage:
    chunk: list[Event]
    next_batch: str | None
    prev_batch: str | None
    recursion_depth: int | None


def _descendant_parents(room: Room, event_id: str, recurse: bool) -> list[str]:
    """The event itself, and with ``recurse`` the IDs of its children down to the
    maximum depth: events relating to any of these are the result set."""
    parents = [event_id]
    if not recurse:
        return parents
    seen = {event_id}
    frontier = [event_id]
    for _depth in range(1, MAX_RECURSION_DEPTH):
        found = list(
            _children()
            .filter(room=room, relates_to__in=frontier)
            .values_list("event_id", flat=True)
        )
        frontier = [child for child in found if child not in seen]
        if not frontier:
            break
        seen.update(frontier)
        parents.extend(frontier)
    return parents


def relations_for_event(
    room: Room,
    event_id: str,
    user_id: str,
    *,
    rel_type: str | None,
    event_type: str | None,
    from_token: str | None,
    to_token: str | None,
    direction: str,
    limit: int,
    recurse: bool | None,
) -> RelationsPage:
    """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].

    In topological order, as /messages: tokens are rooms.history's (``t<depth>-<stream>``,
    or a /sync ``s<N>``): backwards from one yields children at or before it, newest
    first; forwards those after it, oldest first.
    """
    # 404 if the parent is unknown or outside the viewer's history.
    selectors.get_event_for_user(room, event_id, user_id)
    position = history.parse_token(from_token, room) if from_token else None
    bound = history.parse_token(to_token, room) if to_token else None
    parents = _descendant_parents(room, event_id, bool(recurse))
    query = (
        _children()
        .filter(room=room, relates_to__in=parents)
        .exclude(sender__in=ignored_users(user_id))
    )
    if rel_type is not None:
        query = query.filter(rel_type=rel_type)
    if event_type is not None:
        query = query.filter(type=event_type)
    backwards = direction == "b"
    after, upto = (bound, position) if backwards else (position, bound)
    if after is not None:
        query = query.filter(storage.after_q(TOPOLOGICAL, after))
    if upto is not None:
        query = query.filter(storage.upto_q(TOPOLOGICAL, upto))
    query = query.order_by(*storage.order_by(TOPOLOGICAL, newest_first=backwards))
    rows = list(query[: limit + 1])
    more, rows = len(rows) > limit, rows[:limit]
    next_batch = None
    if more and rows:
        last = rows[-1]
        next_batch = history.make_token(
            history.just_before(last) if backwards else storage.position_of(last, TOPOLOGICAL)
        )
    return RelationsPage(
        chunk=selectors.filter_visible(rows, user_id),
        next_batch=next_batch,
        prev_batch=from_token,
        # Present whenever the client passed ``recurse``: one level (direct children)
        # without recursion.
        recursion_depth=None if recurse is None else (MAX_RECURSION_DEPTH if recurse else 1),
    )


# --- GET /threads -----------------------------------------------------------------


@dataclass
class ThreadsPage:
    roots: list[Event]
    next_batch: str | None
    # Roots sent by users the viewer ignores: served redacted (threads_list.yaml).
    ignored_roots: set[str] = field(default_factory=set)


def thread_roots(
    room: Room, user_id: str, *, include: str, from_token: str | None, limit: int
) -> ThreadsPage:
    """GET /_matrix/client/v1/rooms/{roomId}/threads: roots ordered by latest reply.

    A token ``s<N>`` continues with threads whose latest reply is at or before stream
    position N (a ``t<depth>-<stream>`` token is read for its stream part).
    """
    membership = selectors.membership_row(room, user_id)
    if not selectors.is_world_readable(room) and (membership is None or membership.forgotten):
        raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room")
    ignored = ignored_users(user_id)
    threads = (
        _children()
        .filter(room=room, rel_type=THREAD)
        .exclude(sender__in=ignored)
        .values("relates_to")
        .annotate(latest=Max("stream_ordering"), mine=Count("pk", filter=Q(sender=user_id)))
    )
    if include == "participated":
        sent_by_user = Event.objects.filter(room=room, sender=user_id).values("event_id")
        threads = threads.filter(Q(mine__gt=0) | Q(relates_to__in=sent_by_user))
    if from_token:
        threads = threads.filter(latest__lte=history.stream_position(from_token))
    found = list(threads.order_by("-latest")[: limit + 1])
    more, found = len(found) > limit, found[:limit]
    order = {thread["relates_to"]: index for index, thread in enumerate(found)}
    # A thread cannot start from an event that itself relates to another (Threading),
    # so such "roots" are not threads.
    roots = sorted(
        _timeline(room).filter(event_id__in=list(order), rel_type__isnull=True),
        key=lambda row: order[row.event_id],
    )
    next_batch = history.make_stream_token(found[-1]["latest"] - 1) if more else None
    visible = selectors.filter_visible(roots, user_id)
    return ThreadsPage(
        roots=visible,
        next_batch=next_batch,
        ignored_roots={row.event_id for row in visible if row.sender in ignored},
    )


def redact_ignored(events: list[dict[str, Any]], rows: Sequence[Event], ignored: set[str]) -> None:
    """Replace, in place, the content of formatted events whose ID is in ``ignored``
    with their redacted content (threads_list.yaml: roots by ignored users)."""
    for event, row in zip(events, rows, strict=True):
        if row.event_id in ignored:
            version = KNOWN_ROOM_VERSIONS[row.room.room_version]
            event["content"] = dict(redact_event(row.pdu, version).get("content", {}))


# --- GET /context -----------------------------------------------------------------


@dataclass
class Context:
    event: Event
    events_before: list[Event]
    events_after: list[Event]
    start: str
    end: str
    state: list[Event]


def event_context(
    room: Room,
    event_id: str,
    user_id: str,
    *,
    limit: int,
    room_filter: dict[str, Any] | None,
) -> Context:
    """GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}.

    ``limit`` is shared by the events before and after (half each, rounding in favour
    of the later ones). The filter applies to those and to the state, not to the event.
    """
    reader = history.reader_of(room, user_id)
    # Synapse and sytest ("/context/ on non world readable room does not work"): 403 for
    # a room the user may not read at all, before asking whether the event exists.
    history.check_may_read(reader)
    event = selectors.get_event_for_user(room, event_id, user_id)
    timeline_filter = dict(room_filter or {})
    lazy_members = bool(timeline_filter.pop("lazy_load_members", False))
    before_limit = limit // 2
    # Before and after in topological order, as /messages pages.
    before = history.paginate(
        reader,
        from_token=history.make_token(history.just_before(event)),
        to_token=None,
        direction="b",
        limit=before_limit,
        room_filter=timeline_filter,
    )
    after = history.paginate(
        reader,
        from_token=history.make_token(storage.position_of(event, TOPOLOGICAL)),
        to_token=None,
        direction="f",
        limit=limit - before_limit,
        room_filter=timeline_filter,
    )
    oldest = before.chunk[-1] if before.chunk else event
    last = after.chunk[-1] if after.chunk else event
    returned = [*before.chunk, event, *after.chunk]
    return Context(
        event=event,
        events_before=before.chunk,
        events_after=after.chunk,
        start=before.end or history.make_token(history.just_before(oldest)),
        end=after.end or history.make_token(storage.position_of(last, TOPOLOGICAL)),
        state=selectors.as_served(
            _state_at(last, timeline_filter, lazy_members, {row.sender for row in returned}),
            user_id,
        ),
    )


def _state_at(
    event: Event, room_filter: dict[str, Any], lazy_members: bool, senders: set[str]
) -> list[Event]:
    """The room state after ``event``, filtered; with lazy-loading, only the member
    events of the returned events' senders ("Lazy-loading room members")."""
    state = load_state(event.state_group_id)
    wanted = [
        event_id
        for (etype, skey), event_id in state.items()
        if not lazy_members or etype != "m.room.member" or skey in senders
    ]
    return list(
        _timeline()
        .filter(event_id__in=wanted)
        .filter(selectors.event_filter_q(room_filter))
        .order_by("stream_ordering")
    )


# --- GET /timestamp_to_event ------------------------------------------------------


def event_at_timestamp(room: Room, user_id: str, ts: int, direction: str) -> Event:
    """GET /_matrix/client/v1/rooms/{roomId}/timestamp_to_event.

    The visible event closest to ``ts``: the first at or after it (``f``) or the last
    at or before it (``b``), on the (room, origin_server_ts) index.
    """
    membership = selectors.membership_row(room, user_id)
    if not selectors.is_world_readable(room) and (membership is None or membership.forgotten):
        raise MatrixError("M_FORBIDDEN", "You are not allowed to view this room")
    query = _timeline(room)
    if direction == "f":
        query = query.filter(origin_server_ts__gte=ts).order_by(
            "origin_server_ts", "stream_ordering"
        )
    else:
        query = query.filter(origin_server_ts__lte=ts).order_by(
            "-origin_server_ts", "-stream_ordering"
        )
    candidates = list(query[:TIMESTAMP_SCAN])
    visible = selectors.filter_visible(candidates, user_id)
    if not visible:
        where = "forward" if direction == "f" else "backward"
        raise MatrixError("M_NOT_FOUND", f"Unable to find event from {ts} in {where} direction")
    return visible[0]


# --- Checks on the send path ------------------------------------------------------


def check_relation(
    room_id: str, ctx: SendContext, event_type: str, content: dict[str, Any]
) -> None:
    """Refuse relations the spec asks the server to refuse, before sending.

    - Event annotations, "Avoiding duplicate annotations": a second annotation by the
      same user, with the same event type and key, to the same event (unless the first
      was redacted) is refused with 400 M_DUPLICATE_ANNOTATION.
    - Threading, "Validation of m.thread relationships": a thread cannot start from an
      event that itself has a relationship: 400 M_UNKNOWN.

    A retried transaction is never refused: it answers with the event it created.
    """
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, dict):
        return
    rel_type, parent_id = relates_to.get("rel_type"), relates_to.get("event_id")
    if rel_type not in (ANNOTATION, THREAD) or not isinstance(parent_id, str):
        return
    room = Room.objects.filter(room_id=room_id).first()
    if room is None or find_by_txn(ctx, room, event_type) is not None:
        return
    if rel_type == ANNOTATION:
        key = relates_to.get("key")
        earlier = _children().filter(
            room__room_id=room_id,
            relates_to=parent_id,
            rel_type=ANNOTATION,
            sender=ctx.sender,
            type=event_type,
        )
        for row in earlier:
            if row.pdu.get("content", {}).get("m.relates_to", {}).get("key") == key:
                raise MatrixError(
                    "M_DUPLICATE_ANNOTATION", "You have already sent this annotation"
                )
    else:
        parent_has_relation = Event.objects.filter(
            room__room_id=room_id, event_id=parent_id, rel_type__isnull=False
        ).exists()
        if parent_has_relation:
            raise MatrixError(
                "M_UNKNOWN", "Cannot start a thread from an event with a relation", status=400
            )
