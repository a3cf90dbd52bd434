"""Building, authorising and persisting events: the one write path into a room's DAG.

``do_send_event`` is the hot path (STYLE, "Hot paths"): in one transaction it locks the
room, builds the event from the current state and forward extremities, runs the auth
rules, hashes and signs, inserts the event with its edges and state delta, moves the
extremities and current state, then takes the stream position and inserts the event row
and its edges (only these last steps queue behind writers in other rooms, see
streams.positions), and on commit wakes /sync.
"""

from __future__ import annotations

import json
from collections.abc import Set
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from accounts.clock import now_ms
from federation.keys import server_signing_key
from protocol import auth_rules
from protocol.canonical_json import CanonicalJSONError, encode_canonical_json
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.events import (
    EventFormatError,
    oversized_key,
    oversized_relation_field,
)
from protocol.hashing import generate_opaque_event_id
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import hash_and_sign_event
from rooms import event_cache, hooks
from rooms.models import CurrentState, Event, EventAuthEdge, EventEdge, ForwardExtremity, Room
from rooms.partial import PartialState, retrying
from rooms.services import graph, search_index
from rooms.state import StateKey, create_state_group, load_state
from streams import notifier
from streams import positions as streams

# Client-Server API, "Size limits": a PDU may be at most 65536 bytes of canonical JSON.
MAX_PDU_BYTES = 65536
# At most this many forward extremities are cited as prev_events of a new event.
MAX_PREV_EVENTS = 10

CREATE_KEY: StateKey = ("m.room.create", "")


@dataclass(frozen=True)
class SendContext:
    """Who sends, from which device and transaction (for idempotency)."""

    sender: str
    device_id: str | None = None
    txn_id: str | None = None
    # The sender is a guest account of this server (Client-Server API, "Guest access").
    guest: bool = False


def room_version_of(room: Room) -> RoomVersion:
    return KNOWN_ROOM_VERSIONS[room.room_version]


def lock_room(room_id: str) -> Room:
    """The room row, locked until the end of the transaction (the per-room mutex)."""
    room = Room.objects.select_for_update().filter(room_id=room_id).first()
    if room is None:
        raise MatrixError("M_NOT_FOUND", "Unknown room")
    return room


def find_by_txn(
    ctx: SendContext, room: Room | None = None, event_type: str | None = None
) -> Event | None:
    """The event an earlier request with this transaction ID created. A transaction ID is
    scoped to a device and a request path, so the same ID in another room, or for another
    event type, is a new request ("Transaction identifiers")."""
    if ctx.txn_id is None:
        return None
    query = Event.objects.filter(
        sender=ctx.sender, sender_device_id=ctx.device_id, txn_id=ctx.txn_id
    )
    if room is not None:
        query = query.filter(room=room)
    if event_type is not None:
        query = query.filter(type=event_type)
    return query.first()


def _reference(event: PDUEvent, room_version: RoomVersion) -> Any:
    """How an event is cited in prev_events/auth_events for the room version."""
    if room_version.event_format.event_references_are_pairs:
        return [event.event_id, event.hashes]
    return event.event_id


def check_size_and_values(pdu: dict[str, Any], room_version: RoomVersion) -> None:
    # Views refuse over-long path parameters first (M_INVALID_PARAM); this catches every
    # other way in (createRoom's initial_state, upgrades), as Synapse's size check does.
    key = oversized_key(pdu)
    if key is not None:
        raise MatrixError("M_TOO_LARGE", f"'{key}' is longer than 255 bytes")
    field = oversized_relation_field(pdu["content"])
    if field is not None:
        raise MatrixError("M_BAD_JSON", f"'{field}' is longer than 255 bytes")
    try:
        # Encoding checks the room version's value rules (check_event_json_values's)
        # on the way: one walk of the event, not two.
        size = len(encode_canonical_json(pdu, strict=room_version.strict_canonical_json))
    except (CanonicalJSONError, EventFormatError, ValueError) as exc:
        raise MatrixError("M_BAD_JSON", f"Event is not valid canonical JSON: {exc}") from None
    if size > MAX_PDU_BYTES:
        raise MatrixError("M_TOO_LARGE", "Event is larger than 65536 bytes")


def new_pdu(
    room_version: RoomVersion,
    *,
    room_id: str | None,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None,
    prev_events: list[PDUEvent],
    auth_events: list[PDUEvent],
    depth: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A new PDU in the room version's format, not yet hashed or signed (what
    ``build_event`` signs, and the template a resident server answers make_join with)."""
    pdu: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "content": content,
        "origin_server_ts": now_ms(),
        "depth": depth,
        "prev_events": [_reference(e, room_version) for e in prev_events],
        "auth_events": [_reference(e, room_version) for e in auth_events],
    }
    if room_id is not None:
        pdu["room_id"] = room_id
    if state_key is not None:
        pdu["state_key"] = state_key
    if not room_version.updated_redaction_rules:
        # Room versions 1-10 still carry the (unused) origin field.
        pdu["origin"] = settings.SERVER_NAME
    if room_version.event_format.event_id_in_pdu:
        pdu["event_id"] = generate_opaque_event_id(settings.SERVER_NAME)
    if extra:
        pdu.update(extra)
    return pdu


def build_event(
    room_version: RoomVersion,
    *,
    room_id: str | None,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None,
    prev_events: list[PDUEvent],
    auth_events: list[PDUEvent],
    depth: int,
    extra: dict[str, Any] | None = None,
) -> PDUEvent:
    """Assemble, hash and sign a new PDU in the room version's format."""
    pdu = new_pdu(
        room_version,
        room_id=room_id,
        sender=sender,
        event_type=event_type,
        content=content,
        state_key=state_key,
        prev_events=prev_events,
        auth_events=auth_events,
        depth=depth,
        extra=extra,
    )
    check_size_and_values(pdu, room_version)
    signed = hash_and_sign_event(pdu, settings.SERVER_NAME, server_signing_key(), room_version)
    return PDUEvent(signed, room_version)


def relation_of(content: dict[str, Any]) -> tuple[str | None, str | None]:
    """The event ID and rel_type an event's ``m.relates_to`` names (a reply's event ID,
    without a rel_type), as the Event row keeps them."""
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, dict):
        return None, None
    event_id = relates_to.get("event_id")
    rel_type = relates_to.get("rel_type")
    if not isinstance(event_id, str):
        # A reply without a rel_type still points at an event.
        in_reply_to = relates_to.get("m.in_reply_to")
        if isinstance(in_reply_to, dict) and isinstance(in_reply_to.get("event_id"), str):
            return in_reply_to["event_id"], None
        return None, None
    return event_id, rel_type if isinstance(rel_type, str) else None


@dataclass(frozen=True)
class Verdict:
    """How the pipeline judged an event before persisting it (rooms.services.incoming).

    ``rejected_reason``: it failed the auth rules (checks 4 and 5 on receipt of a PDU);
    stored, never shown, never state. ``soft_failed``: it passed them but fails against
    the current state (check 6); stored and used as state by its descendants, but not
    shown and not built upon. ``backfilled``: history from the past, ordered before
    everything the room has, which never moves the extremities or the current state.
    """

    rejected_reason: str | None = None
    soft_failed: bool = False
    backfilled: bool = False

    @property
    def visible(self) -> bool:
        """Shown in the room's timeline (rooms.visibility has the same rule for rows)."""
        return self.rejected_reason is None and not self.soft_failed


LOCAL = Verdict()


def persist_event(
    room: Room,
    event: PDUEvent,
    *,
    state_before: int | None,
    ctx: SendContext | None = None,
    verdict: Verdict = LOCAL,
    extremities_before: list[str] | None = None,
    outlier_row: Event | None = None,
    apply_redaction: bool = True,
    presolved: graph.Presolved | None = None,
) -> Event:
    """Persist an event whose state before it is known. Caller holds the room lock.

    ``state_before`` is the ID of the state group before the event. ``verdict`` says
    how the pipeline judged it (a local event: accepted). ``extremities_before``: the
    room's forward extremities as the caller read them under the lock, when it built
    the event on them (the local send path), which saves reading them again.
    ``outlier_row``: the event is stored already as an outlier and becomes a timeline
    event now (de-outliered). ``apply_redaction``: a redaction marks its target redacted
    here (the caller checked that its sender may; rooms.services.incoming checks after).
    ``presolved``: the tips' resolution, worked out before the lock (graph.presolve).

    The forward extremities move only for an event that is shown (not rejected, not
    soft-failed, not backfilled), and the current state is the resolution of the
    extremities' states (a local event on the room's extremities: the state after it).

    The stream position is taken as late as it can be (streams.positions): after the state
    group, the extremities and the current state are written, just before the event row
    and the rows that cite it. The events stream is locked only from there to the commit,
    so writers in other rooms do not queue behind this one's work.
    """
    group_id = state_before
    replaces = None
    rejected = verdict.rejected_reason is not None
    if event.is_state() and not rejected:
        key = event.state_key_tuple()
        replaces = load_state(state_before).get(key)
        group_id = create_state_group(room, state_before, {key: event.event_id}).pk
    relates_to, rel_type = relation_of(event.content)
    on_the_tips = extremities_before is not None and set(event.prev_event_ids) == set(
        extremities_before
    )
    if outlier_row is None and not on_the_tips and not verdict.backfilled:
        # Not simply the room's next event: the tips' state may need resolving, which
        # reads the graph from the database, so the event is there first (an outlier
        # until this transaction gives it its position).
        outlier_row = insert_row(room, event, ctx, outlier=True)
    state_change = None
    if not verdict.backfilled:
        state_change = graph.move_room_tips(
            room,
            event.event_id,
            event.prev_event_ids,
            shown=verdict.visible,
            group_after=group_id,
            state_before=state_before,
            extremities_before=extremities_before,
            presolved=presolved,
        )
    if apply_redaction and verdict.visible and event.type == "m.room.redaction" and event.redacts:
        Event.objects.filter(room=room, event_id=event.redacts, redacted_by__isnull=True).update(
            redacted_by=event.event_id
        )
        search_index.unindex_events([event.redacts])
    # Other apps' work on the event (push rules): the slow part now, the writes that need
    # the position below; all committed with the event.
    finishes = []
    if verdict.visible and not verdict.backfilled:
        finishes = hooks.event_persisting(
            hooks.PersistingEvent(room, event, state_before, relates_to, rel_type)
        )
    # From here to the commit the events stream is locked: only the rows that need the
    # position or cite the event row.
    if verdict.backfilled:
        position = streams.next_backfill_position()
    else:
        position = streams.next_position(streams.EVENTS)
    fields: dict[str, Any] = {
        "stream_ordering": position,
        "state_group_id": group_id,
        "replaces_state": replaces,
        "outlier": False,
        "rejected_reason": verdict.rejected_reason,
        "soft_failed": verdict.soft_failed,
    }
    if outlier_row is not None:
        Event.objects.filter(pk=outlier_row.pk).update(**fields)
        for name, value in fields.items():
            setattr(outlier_row, name, value)
        row = outlier_row
    else:
        row = insert_row(room, event, ctx, **fields)
    if verdict.visible:
        search_index.index_event(row.pk, room.pk, event.type, event.content)
    subjects: list[str] = []
    if state_change is not None:
        subjects = state_change.write(position)
    event_cache.remember(event)
    for finish in finishes:
        finish(position)
    if verdict.backfilled or (not verdict.visible and state_change is None):
        return row
    room_id = room.room_id
    # A member event also wakes its subject, who may not be in the room yet (invites).
    transaction.on_commit(
        lambda: notifier.notify_stream_moved(streams.EVENTS, position, room_id, subjects)
    )
    return row


def insert_row(
    room: Room,
    event: PDUEvent,
    ctx: SendContext | None = None,
    *,
    foreign_auth: Set[str] = frozenset(),
    **fields: Any,
) -> Event:
    """The event's row and its edges; ``fields`` set the rest (position, flags, state).
    ``foreign_auth``: auth events it cites that are stored in another room, which get no
    edge (``_insert_edges``)."""
    row = _event_row(room, event, ctx, fields)
    row.save(force_insert=True)
    _insert_edges([event], foreign_auth)
    event_cache.remember(event)
    return row


def insert_rows(
    room: Room,
    events: list[tuple[PDUEvent, dict[str, Any]]],
    *,
    foreign_auth: Set[str] = frozenset(),
) -> None:
    """``insert_row`` for many events at once (each with its ``fields``): their rows as
    one executemany of the values Django would insert (bulk_create spent longer compiling
    the SQL of a send_join answer's thousands of rows than the database took to store
    them), and their edges (none to the ``foreign_auth`` events, as in ``insert_row``)."""
    if not events:
        return
    columns = [field for field in Event._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(Event._meta.db_table)} "
        f"({', '.join(quote(field.column) for field in columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    # The values as Django would prepare them, without a model instance per row: plain
    # columns as they are, defaults once, and only the JSON column through its field.
    defaults = {field.attname: field.get_default() for field in columns}
    pdu_field = Event._meta.get_field("pdu")
    values = []
    for event, fields in events:
        if not fields.keys() <= defaults.keys():
            raise TypeError(f"not Event columns: {sorted(fields.keys() - defaults.keys())}")
        row = {**defaults, **_event_values(room, event, None), **fields}
        row["pdu"] = pdu_field.get_db_prep_save(row["pdu"], connection)
        values.append([row[field.attname] for field in columns])
    with connection.cursor() as cursor:
        cursor.executemany(sql, values)
    _insert_edges([event for event, _fields in events], foreign_auth)
    for event, _fields in events:
        event_cache.remember(event)


def _event_row(
    room: Room, event: PDUEvent, ctx: SendContext | None, fields: dict[str, Any]
) -> Event:
    """The event's row, not saved yet."""
    values = _event_values(room, event, ctx)
    values.pop("room_id")
    return Event(room=room, **values, **fields)


def _event_values(room: Room, event: PDUEvent, ctx: SendContext | None) -> dict[str, Any]:
    """The event's columns (by attribute name) that come from the event itself."""
    relates_to, rel_type = relation_of(event.content)
    return {
        "event_id": event.event_id,
        "room_id": room.pk,
        "depth": event.depth,
        "type": event.type,
        "state_key": event.state_key,
        "sender": event.sender,
        "origin_server_ts": event.origin_server_ts,
        "pdu": event.pdu,
        "membership": event.membership if event.type == "m.room.member" else None,
        "redacts": event.redacts if event.type == "m.room.redaction" else None,
        "relates_to": relates_to,
        "rel_type": rel_type,
        "sender_device_id": ctx.device_id if ctx else None,
        "txn_id": ctx.txn_id if ctx else None,
    }


def _insert_edges(events: list[PDUEvent], foreign_auth: Set[str] = frozenset()) -> None:
    """The stored events' prev_events and auth_events edges, but none to the
    ``foreign_auth`` events: auth events of another room, which a received event may cite
    (and is rejected for, auth rule 2.5). The auth chains walked by their edges
    (rooms.graph_store, the auth chains served over federation) then stay in the room,
    and every edge names an event of the room or one not stored yet."""
    prev_edges = [(prev, e.event_id) for e in events for prev in e.prev_event_ids]
    auth_edges = [
        (auth, e.event_id) for e in events for auth in e.auth_event_ids if auth not in foreign_auth
    ]
    row_ids = _row_ids([e.event_id for e in events]) if len(events) > 1 else None
    _insert_edge_rows(EventEdge, "prev_event_id", prev_edges, row_ids)
    _insert_edge_rows(EventAuthEdge, "auth_event_id", auth_edges, row_ids)


def _row_ids(event_ids: list[str]) -> dict[str, int]:
    """The row IDs of these stored events, read in a few queries."""
    row_ids: dict[str, int] = {}
    for start in range(0, len(event_ids), 1000):
        row_ids.update(
            Event.objects.filter(event_id__in=event_ids[start : start + 1000]).values_list(
                "event_id", "id"
            )
        )
    return row_ids


def _insert_edge_rows(
    model: type[EventEdge | EventAuthEdge],
    column: str,
    edges: list[tuple[str, str]],
    row_ids: dict[str, int] | None,
) -> None:
    """(cited event ID, citing event ID) rows as one executemany of plain tuples: a
    send_join answer brings tens of thousands of edges, and building a model instance
    for each took longer than storing them (as with state group entries). The citing
    event's row is found by its ID in the statement for one event, and from
    ``row_ids`` for many (a lookup per edge cost more than the insert)."""
    if not edges:
        return
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    with connection.cursor() as cursor:
        if row_ids is None:
            cursor.executemany(
                f"INSERT INTO {table} (event_id, {column}) "
                f"SELECT e.id, %s FROM {quote(Event._meta.db_table)} e WHERE e.event_id = %s",
                edges,
            )
            return
        cursor.executemany(
            f"INSERT INTO {table} (event_id, {column}) VALUES (%s, %s)",
            [(row_ids[citing], cited) for cited, citing in edges],
        )


def auth_state_for(
    room_version: RoomVersion, state: dict[StateKey, str] | Any, keys: set[StateKey]
) -> dict[StateKey, PDUEvent]:
    """The current state events an event with these auth types is checked against."""
    wanted = {key: state[key] for key in keys | {CREATE_KEY} if key in state}
    events = event_cache.get_events(wanted.values())
    return {key: events[event_id] for key, event_id in wanted.items() if event_id in events}


@dataclass(frozen=True)
class Draft:
    """Where a new event goes in a room: the tips it follows, the auth events it cites,
    its depth, and the state before it (``draft_in_locked_room``)."""

    prev_events: list[PDUEvent]
    auth_events: list[PDUEvent]
    # The state the auth rules check it against (its auth types' current events).
    auth_state: dict[StateKey, PDUEvent]
    depth: int
    state_before: int | None
    extremity_ids: list[str]


def draft_in_locked_room(
    room: Room,
    sender: str,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None = None,
) -> Draft:
    """The prev events (the room's forward extremities, at most MAX_PREV_EVENTS of the
    deepest), the auth events (auth events selection, on the state before it) and the
    depth of a new event; the caller holds the room lock."""
    room_version = room_version_of(room)
    state = load_state(room.current_state_group_id)
    keys = auth_rules.auth_types_for_event(room_version, event_type, sender, state_key, content)
    auth_state = auth_state_for(room_version, state, keys)
    extremity_ids = list(
        ForwardExtremity.objects.filter(room=room).values_list("event_id", flat=True)
    )
    prev = sorted(
        event_cache.get_events(extremity_ids).values(), key=lambda e: e.depth, reverse=True
    )[:MAX_PREV_EVENTS]
    depth = max((e.depth for e in prev), default=0) + 1
    state_before = room.current_state_group_id
    if len(prev) < len(extremity_ids):
        # Built on some of the tips only: the state before it is theirs, resolved.
        state_before = graph.state_group_of_tips(
            room,
            Event.objects.filter(
                room=room, event_id__in=[e.event_id for e in prev], state_group__isnull=False
            ).values_list("state_group_id", flat=True),
        )
        state = load_state(state_before)
        auth_state = auth_state_for(room_version, state, keys)
    cited = [event for key, event in auth_state.items() if key in keys]
    return Draft(
        prev_events=prev,
        auth_events=sorted(cited, key=lambda e: e.event_id),
        auth_state=auth_state,
        depth=depth,
        state_before=state_before,
        extremity_ids=extremity_ids,
    )


@dataclass(frozen=True)
class PreparedEvent:
    """An event built and authorised on the room's state, not persisted yet: the state
    group before it, and the forward extremities read when it was built."""

    event: PDUEvent
    state_before: int | None
    extremity_ids: list[str]


def send_in_locked_room(
    room: Room,
    ctx: SendContext,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> Event:
    """Build, authorise and persist an event; the caller holds the room lock."""
    prepared = prepare_in_locked_room(room, ctx, event_type, content, state_key, extra=extra)
    return persist_event(
        room,
        prepared.event,
        state_before=prepared.state_before,
        ctx=ctx,
        extremities_before=prepared.extremity_ids,
    )


def prepare_in_locked_room(
    room: Room,
    ctx: SendContext,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> PreparedEvent:
    """Build and authorise an event on the room's tips; the caller holds the room lock.
    (An invite of a user of another server is countersigned by that server before it is
    persisted: rooms.services.remote_invites.) PartialState while the room's state is
    partial: the event would be judged without the members."""
    if room.partial_state:
        raise PartialState(room.room_id)
    room_version = room_version_of(room)
    draft = draft_in_locked_room(room, ctx.sender, event_type, content, state_key)
    event = build_event(
        room_version,
        room_id=room.room_id,
        sender=ctx.sender,
        event_type=event_type,
        content=content,
        state_key=state_key,
        prev_events=draft.prev_events,
        auth_events=draft.auth_events,
        depth=draft.depth,
        extra=extra,
    )
    try:
        auth_rules.check_auth_rules(room_version, event, draft.auth_state)
    except auth_rules.AuthError as exc:
        raise MatrixError("M_FORBIDDEN", exc.reason) from None
    return PreparedEvent(event, draft.state_before, draft.extremity_ids)


def unchanged_state(
    room: Room, sender: str, event_type: str, state_key: str, content: dict[str, Any]
) -> Event | None:
    """The room's current state event of (type, state_key) if ``sender`` sent it with this
    very content: sending it again would change nothing, so no new event is made and the
    existing one is the answer (Synapse's ``deduplicate_state_event``, and its duplicate
    membership check). Call with the room locked."""
    event_id = (
        CurrentState.objects.filter(room=room, type=event_type, state_key=state_key)
        .values_list("event_id", flat=True)
        .first()
    )
    if event_id is None:
        return None
    current = event_cache.get_events([event_id]).get(event_id)
    if current is None or current.sender != sender:
        return None
    try:
        # Compared as canonical JSON, so 1 and true (equal in Python) stay different.
        same = encode_canonical_json(current.content) == encode_canonical_json(content)
    except CanonicalJSONError:
        return None  # not valid event content: the send refuses it
    if not same:
        return None
    return Event.objects.filter(event_id=event_id).first()


@retrying
def do_send_event(
    room_id: str,
    ctx: SendContext,
    event_type: str,
    content: dict[str, Any],
    state_key: str | None = None,
    *,
    extra: dict[str, Any] | None = None,
) -> Event:
    """Send an event into a room hosted here. Takes the room lock.

    Idempotent per (sender, device, transaction ID): a retried transaction returns the
    event the first attempt created; a state event its sender already set with the same
    content returns that event (``unchanged_state``).
    """
    with transaction.atomic():
        room = lock_room(room_id)
        # Checked under the lock, so a concurrent retry sees the first attempt's event.
        existing = find_by_txn(ctx, room, event_type)
        if existing is not None:
            return existing
        if state_key is not None:
            unchanged = unchanged_state(room, ctx.sender, event_type, state_key, content)
            if unchanged is not None:
                return unchanged
        return send_in_locked_room(room, ctx, event_type, content, state_key, extra=extra)


def content_size_ok(content: dict[str, Any]) -> None:
    """Cheap early refusal of oversized content before any lock is taken."""
    if len(json.dumps(content, ensure_ascii=False).encode()) > MAX_PDU_BYTES:
        raise MatrixError("M_TOO_LARGE", "Event is larger than 65536 bytes")
