"""`Event`: a PDU (federation-format event) read through its room version.

The wrapper is cheap: it keeps a shallow copy of the PDU dict and computes the event ID (a
reference hash in room versions 3+) only when first asked. Treat `event.pdu` as read-only; the
cached event ID would not follow a mutation.

Spec: PDU formats in data/api/server-server/definitions/pdu_v1.yaml .. pdu_v12.yaml.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from protocol.canonical_json import CanonicalJSONError, check_canonical_json_values
from protocol.hashing import compute_event_id, compute_room_id_from_create_event
from protocol.identifiers import MAX_ID_BYTES, byte_length
from protocol.room_versions import RoomVersion

# Client-Server API, "Size limits": besides the 64 KiB of the whole event, these keys
# are at most 255 bytes each (sender, room_id and event_id by the identifier grammar).
SIZE_LIMITED_KEYS = ("type", "state_key", "sender", "room_id", "event_id")


class EventFormatError(ValueError):
    """A PDU field is missing or has the wrong type for its room version."""


def check_event_json_values(pdu: Mapping[str, Any], room_version: RoomVersion) -> None:
    """Raise EventFormatError if `pdu` breaks the room version's canonical JSON rules.

    v6+ (fragments/v6-canonical-json.md): no floats, integers within ±(2**53-1); such events are
    dropped over federation and refused with M_BAD_JSON on the client API. v1..v5 only need values
    that are encodable at all.
    """
    try:
        check_canonical_json_values(pdu, strict=room_version.strict_canonical_json)
    except CanonicalJSONError as e:
        raise EventFormatError(str(e)) from e


def oversized_key(pdu: Mapping[str, Any]) -> str | None:
    """The first of ``SIZE_LIMITED_KEYS`` whose value is over 255 bytes, or None."""
    for key in SIZE_LIMITED_KEYS:
        value = pdu.get(key)
        if isinstance(value, str) and byte_length(value) > MAX_ID_BYTES:
            return key
    return None


def oversized_relation_field(content: Mapping[str, Any]) -> str | None:
    """The relation field of ``content`` that is over 255 bytes, or None.

    ``m.relates_to.event_id`` and ``m.in_reply_to.event_id`` name events, whose IDs are at
    most 255 bytes (appendices, "Event IDs"), and ``rel_type`` is a type like an event's:
    a longer value cannot name anything, and a server indexes all three.
    """
    relates_to = content.get("m.relates_to")
    if not isinstance(relates_to, Mapping):
        return None
    in_reply_to = relates_to.get("m.in_reply_to")
    fields = {
        "m.relates_to.event_id": relates_to.get("event_id"),
        "m.relates_to.rel_type": relates_to.get("rel_type"),
        "m.relates_to.m.in_reply_to.event_id": (
            in_reply_to.get("event_id") if isinstance(in_reply_to, Mapping) else None
        ),
    }
    for name, value in fields.items():
        if isinstance(value, str) and byte_length(value) > MAX_ID_BYTES:
            return name
    return None


class Event:
    """One PDU together with its `RoomVersion`.

    Equality and hashing use the event ID, so events can live in sets and dict keys.
    """

    __slots__ = ("_auth_ids", "_event_id", "_pdu", "_prev_ids", "_room_id", "room_version")

    def __init__(
        self,
        pdu: Mapping[str, Any],
        room_version: RoomVersion,
        *,
        event_id: str | None = None,
    ) -> None:
        """Wrap `pdu`.

        `event_id`, when given, is trusted as the already-known ID (e.g. loaded from the database)
        and saves recomputing the reference hash.
        """
        self._pdu: dict[str, Any] = dict(pdu)
        self.room_version = room_version
        self._event_id = event_id
        self._room_id: str | None = None
        # The cited event IDs, read from the PDU once (the pipeline asks for them many
        # times per event); handed out as copies.
        self._prev_ids: tuple[str, ...] | None = None
        self._auth_ids: tuple[str, ...] | None = None

    @property
    def event_id(self) -> str:
        if self._event_id is None:
            try:
                self._event_id = compute_event_id(self._pdu, self.room_version)
            except ValueError as e:
                raise EventFormatError(str(e)) from e
        return self._event_id

    @property
    def room_id(self) -> str:
        """The room ID; derived from the event's own hash for a v12 `m.room.create`."""
        if self._room_id is None:
            if self.room_version.room_id_is_create_event_hash and self.type == "m.room.create":
                # content/rooms/v12.md: the create event has no room_id; the room ID is its event
                # ID with `!` instead of `$`.
                if self._event_id is not None:
                    self._room_id = "!" + self._event_id[1:]
                else:
                    self._room_id = compute_room_id_from_create_event(self._pdu, self.room_version)
            else:
                self._room_id = self._get_str("room_id")
        return self._room_id

    @property
    def pdu(self) -> dict[str, Any]:
        """The PDU dict. Do not mutate it."""
        return self._pdu

    @property
    def type(self) -> str:
        return self._get_str("type")

    @property
    def sender(self) -> str:
        return self._get_str("sender")

    @property
    def state_key(self) -> str | None:
        """The state key, or None for a non-state event (absent key)."""
        state_key = self._pdu.get("state_key")
        if state_key is None or isinstance(state_key, str):
            return state_key
        raise EventFormatError("state_key must be a string")

    @property
    def content(self) -> dict[str, Any]:
        content = self._pdu.get("content", {})
        if not isinstance(content, dict):
            raise EventFormatError("content must be an object")
        return content

    @property
    def origin_server_ts(self) -> int:
        return self._get_int("origin_server_ts")

    @property
    def depth(self) -> int:
        return self._get_int("depth")

    @property
    def hashes(self) -> dict[str, Any]:
        hashes = self._pdu.get("hashes", {})
        return hashes if isinstance(hashes, dict) else {}

    @property
    def signatures(self) -> dict[str, Any]:
        signatures = self._pdu.get("signatures", {})
        return signatures if isinstance(signatures, dict) else {}

    @property
    def unsigned(self) -> dict[str, Any]:
        unsigned = self._pdu.get("unsigned", {})
        return unsigned if isinstance(unsigned, dict) else {}

    @property
    def membership(self) -> str | None:
        """`content.membership` for `m.room.member` events, else None."""
        if self.type != "m.room.member":
            return None
        membership = self.content.get("membership")
        return membership if isinstance(membership, str) else None

    @property
    def redacts(self) -> str | None:
        """The event an `m.room.redaction` redacts: `content.redacts` in v11+, else top-level."""
        if self.type != "m.room.redaction":
            return None
        if self.room_version.redacts_in_content:
            redacts = self.content.get("redacts")
        else:
            redacts = self._pdu.get("redacts")
        return redacts if isinstance(redacts, str) else None

    @property
    def prev_event_ids(self) -> list[str]:
        if self._prev_ids is None:
            self._prev_ids = tuple(self._event_references("prev_events"))
        return list(self._prev_ids)

    @property
    def auth_event_ids(self) -> list[str]:
        if self._auth_ids is None:
            self._auth_ids = tuple(self._event_references("auth_events"))
        return list(self._auth_ids)

    def is_state(self) -> bool:
        return "state_key" in self._pdu

    def state_key_tuple(self) -> tuple[str, str]:
        """`(type, state_key)`, the key of this event in a state map. Only for state events."""
        state_key = self.state_key
        if state_key is None:
            raise EventFormatError("not a state event")
        return (self.type, state_key)

    def _get_str(self, key: str) -> str:
        value = self._pdu.get(key)
        if not isinstance(value, str):
            raise EventFormatError(f"{key} must be a string")
        return value

    def _get_int(self, key: str) -> int:
        value = self._pdu.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise EventFormatError(f"{key} must be an integer")
        return value

    def _event_references(self, key: str) -> list[str]:
        """Event IDs from `prev_events`/`auth_events` (v1/v2 pairs or plain IDs)."""
        references = self._pdu.get(key, [])
        if not isinstance(references, list):
            raise EventFormatError(f"{key} must be an array")
        event_ids: list[str] = []
        if self.room_version.event_format.event_references_are_pairs:
            # v1/v2: [[event_id, {"sha256": ...}], ...]
            for reference in references:
                if (
                    not isinstance(reference, list)
                    or not reference
                    or not isinstance(reference[0], str)
                ):
                    raise EventFormatError(f"{key} entries must be [event_id, hashes] pairs")
                event_ids.append(reference[0])
        else:
            for reference in references:
                if not isinstance(reference, str):
                    raise EventFormatError(f"{key} entries must be event IDs")
                event_ids.append(reference)
        return event_ids

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return self.event_id == other.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

    def __repr__(self) -> str:
        event_id = self._event_id or self._pdu.get("event_id", "<unhashed>")
        state = f" state_key={self._pdu.get('state_key')!r}" if self.is_state() else ""
        return f"<Event {event_id} type={self._pdu.get('type')!r}{state}>"
