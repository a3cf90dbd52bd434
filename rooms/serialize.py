"""Events in the client format (Client-Server API, "Room Event Format")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from accounts.clock import now_ms
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.models import Event
from rooms.selectors import as_served

# The fields of a PDU that a client sees, besides content and unsigned.
_CLIENT_KEYS = ("event_id", "origin_server_ts", "sender", "type", "state_key")


def client_events(
    rows: Sequence[Event],
    *,
    viewer: str | None = None,
    viewer_device: tuple[str, str | None] | None = None,
    bundles: dict[str, dict[str, Any]] | None = None,
    related: dict[str, Event] | None = None,
) -> list[dict[str, Any]]:
    """Format events as served to a client, in two extra queries at most for the batch
    (``related_events``; none when ``related`` is given, read for several batches).

    ``viewer`` is the user they are served to (by default the user of ``viewer_device``):
    the events they replaced, whose content is their ``unsigned.prev_content``, are
    served as to that user too. Without either, as stored (the operators' API).
    ``viewer_device`` is (user_id, device_id) of the requester: their own events carry
    ``unsigned.transaction_id``. ``bundles`` maps event IDs to bundled aggregations.
    """
    if viewer is None and viewer_device is not None:
        viewer = viewer_device[0]
    if related is None:
        related = related_events(rows, viewer)
    now = now_ms()
    out = []
    for row in rows:
        out.append(_client_event(row, now, viewer_device, related, bundles))
    return out


def related_events(rows: Iterable[Event], viewer: str | None) -> dict[str, Event]:
    """By event ID, the events that ``rows`` replaced in the state (``prev_content``)
    and their redactions (``redacted_because``): one query. The replaced events as served
    to ``viewer`` (``rooms.selectors.as_served``: an erased sender's redacted where the
    viewer was not joined at it; one more query), as stored without a viewer."""
    prev_ids: set[str] = set()
    redaction_ids: set[str] = set()
    for row in rows:
        if row.replaces_state:
            prev_ids.add(row.replaces_state)
        if row.redacted_by:
            redaction_ids.add(row.redacted_by)
    if not (prev_ids or redaction_ids):
        return {}
    related = {
        row.event_id: row
        for row in Event.objects.filter(event_id__in=prev_ids | redaction_ids).select_related(
            "room"
        )
    }
    previous = [related[event_id] for event_id in prev_ids if event_id in related]
    if viewer is not None and previous:
        related.update((row.event_id, row) for row in as_served(previous, viewer))
    return related


def federation_events(rows: Sequence[Event]) -> list[dict[str, Any]]:
    """Events in the federation format (a filter's ``event_format: federation``): "the
    raw event as received over federation", redacted if it was, with its ``event_id``
    (which PDUs of room versions 3 and later leave to be computed) and the room's
    ``room_id`` (which a room version 12 m.room.create leaves out)."""
    out = []
    for row in rows:
        pdu = row.pdu
        if row.redacted_by:
            pdu = redact_event(pdu, KNOWN_ROOM_VERSIONS[row.room.room_version])
        event = {"event_id": row.event_id, "room_id": row.room.room_id, **pdu}
        if row.redacted_by:
            event["unsigned"] = {**event.get("unsigned", {}), "redacted_by": row.redacted_by}
        out.append(event)
    return out


def _content_of(row: Event) -> dict[str, Any]:
    if row.redacted_by:
        room_version = KNOWN_ROOM_VERSIONS[row.room.room_version]
        return dict(redact_event(row.pdu, room_version).get("content", {}))
    return dict(row.pdu.get("content", {}))


def _client_event(
    row: Event,
    now: int,
    viewer_device: tuple[str, str | None] | None,
    related: dict[str, Event],
    bundles: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": row.event_id, "room_id": row.room.room_id}
    pdu = row.pdu
    for key in _CLIENT_KEYS[1:]:
        if key in pdu:
            event[key] = pdu[key]
    event["content"] = _content_of(row)
    if row.type == "m.room.redaction" and row.redacts:
        event["redacts"] = row.redacts
    unsigned: dict[str, Any] = {"age": max(0, now - row.origin_server_ts)}
    if row.replaces_state and row.replaces_state in related:
        previous = related[row.replaces_state]
        unsigned["replaces_state"] = previous.event_id
        unsigned["prev_content"] = _content_of(previous)
    if row.redacted_by and row.redacted_by in related:
        redaction = related[row.redacted_by]
        unsigned["redacted_because"] = _client_event(redaction, now, None, {}, None)
    if (
        viewer_device is not None
        and row.txn_id is not None
        and row.sender == viewer_device[0]
        and row.sender_device_id == viewer_device[1]
    ):
        unsigned["transaction_id"] = row.txn_id
    if bundles and row.event_id in bundles:
        relations = bundles[row.event_id]
        if row.redacted_by:
            # Event replacements, "Server-side aggregation of m.replace relationships":
            # a redacted original gets no edit bundled; its other children remain.
            relations = {k: v for k, v in relations.items() if k != "m.replace"}
        if relations:
            unsigned["m.relations"] = relations
    event["unsigned"] = unsigned
    return event


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


def stripped_state(rows: Iterable[Event]) -> list[dict[str, Any]]:
    """Stripped state events (for invites and knocks): type, state_key, sender, content."""
    return [
        {
            "type": row.type,
            "state_key": row.state_key,
            "sender": row.sender,
            "content": row.pdu.get("content", {}),
        }
        for row in rows
    ]


# The unsigned keys the legacy endpoints (GET /events, /initialSync,
# /rooms/{roomId}/initialSync) also give at the top level of an event, with ``user_id``
# beside ``sender``: the event format of the Client-Server API before r0, which clients
# of those endpoints read (and Synapse gives them). Extra keys to the spec's ClientEvent.
_V1_COPIED_UNSIGNED = ("age", "redacted_because", "replaces_state", "prev_content")


def legacy_client_event(event: dict[str, Any]) -> dict[str, Any]:
    """A client-format event (``client_events``) in the legacy endpoints' format."""
    legacy = dict(event)
    if "sender" in legacy:
        legacy["user_id"] = legacy["sender"]
    unsigned = legacy.get("unsigned", {})
    for key in _V1_COPIED_UNSIGNED:
        if key in unsigned:
            legacy[key] = unsigned[key]
    return legacy


def legacy_client_events(
    rows: Sequence[Event],
    *,
    viewer: str | None = None,
    viewer_device: tuple[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    return [
        legacy_client_event(e)
        for e in client_events(rows, viewer=viewer, viewer_device=viewer_device)
    ]
