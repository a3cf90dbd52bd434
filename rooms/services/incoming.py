"""Receiving an event that was not made here: the one pipeline every such event takes.

The steps are the spec's "Checks performed on receipt of a PDU" (server-server-api.md),
in the order conduwuit's event handler and Synapse's federation_event.py take them:

1. ``checked_event``: the PDU's format and size for the room version, its signatures
   (the keys through federation.keyring) and its content hash (on a mismatch the event is
   kept redacted). A PDU failing here is dropped: ``InvalidPDU``, nothing stored.
2. ``_fetch_auth_events``: the events it cites as auth events, fetched from the
   ``EventSource`` when missing and stored as outliers (known, authorised against their
   own auth events, not in the timeline).
3. ``_fill_gap`` and ``_prev_states``: the state after each prev event. An event
   pushed to us (a transaction's) whose prev events are not in the timeline first has
   the gap filled: one round of ``/get_missing_events``, whose events are received
   oldest first as *pulled* events. A prev event stored in the timeline has its state
   group; for one that is missing (or only an outlier) behind a pulled event, the
   source is asked for the state before it (``/state_ids``), whose unknown events are
   fetched as outliers. A pushed event whose prev events are still missing after that
   is dropped (``InvalidPDU``): its sender can give them, and taking its state from the
   sender instead would let a server name any state it likes for an event that could
   become the room's only extremity (Synapse refuses such events the same way).
   Without a source the event itself is stored as an outlier, to be de-outliered when
   it arrives again with its prev events known.
4. Under the room lock, ``_persist``: the state before the event is the resolution of
   its prev events' states; the event is checked against its auth events (check 4) and
   against that state (check 5), and is stored with ``rejected_reason`` if either
   fails; then against the current state (check 6), soft-failing it if that fails; and
   persisted by rooms.services.events.persist_event, which moves the extremities and
   the current state (rooms.services.graph).

Fetching happens before the room lock is taken, and what was fetched (or what a
send_join answer holds) is then stored in one short transaction (``_store_outliers``:
no query per event), so a slow source never holds the room (or the events stream) for
long.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from federation import keyring
from protocol import auth_rules
from protocol.errors import MatrixError
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.hashing import check_content_hash, compute_event_id, redacted_signable_bytes
from protocol.identifiers import is_valid_event_id, is_valid_room_id, is_valid_user_id
from protocol.redaction import redact_event
from protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion
from protocol.signing import (
    SignatureVerifyError,
    VerifyKey,
    servers_required_to_sign_event,
    verify_event_signature,
)
from rooms import event_cache
from rooms.graph_store import resolve_maps
from rooms.models import Event, ForwardExtremity, PartialStateRoom, Room
from rooms.services import graph, search_index
from rooms.services.events import (
    CREATE_KEY,
    Verdict,
    auth_state_for,
    check_size_and_values,
    insert_row,
    insert_rows,
    persist_event,
)
from rooms.state import StateKey, load_state
from rooms.storage import in_timeline_q

logger = logging.getLogger(__name__)

# Server-Server API: a PDU cites at most 20 prev events and 10 auth events (Synapse
# refuses more as well).
MAX_PREV_EVENTS = 20
MAX_AUTH_EVENTS = 10
# At most this many events are fetched from the source for one PDU.
MAX_FETCHED = 10_000
# At most this many missing prev events are fetched and received before an event.
MAX_GAP = 100
MAX_DEPTH = 2**63 - 1
CREATE = "m.room.create"


class InvalidPDU(MatrixError):
    """The PDU is dropped: nothing of it is stored."""

    def __init__(self, error: str, errcode: str = "M_BAD_JSON") -> None:
        super().__init__(errcode, error)


class EventSource(Protocol):
    """Where missing events and state come from (another server in federation)."""

    def get_events(self, room_id: str, event_ids: list[str]) -> list[dict[str, Any]]:
        """The PDUs it has among ``event_ids``."""
        ...

    def get_state_ids(self, room_id: str, event_id: str) -> tuple[list[str], list[str]]:
        """The state before ``event_id`` (event IDs) and the IDs of its auth chain."""
        ...


def receive_pdu(
    pdu: Mapping[str, Any],
    *,
    origin: str,
    source: EventSource | None = None,
    backfilled: bool = False,
    fill_gap: bool = True,
) -> Event:
    """Run one PDU through the pipeline (see the module's docstring) and return its row.

    Idempotent: an event already in the timeline is returned as stored; one stored as an
    outlier goes through again and joins the timeline if its prev events' states are
    known now. ``backfilled``: history from the past (negative stream position; the
    extremities and the current state stay as they are; /sync is not woken).
    ``fill_gap``: the event was pushed to us (a transaction's): missing prev events are
    first fetched from the source and received, oldest first (``_fill_gap``), and the
    event is dropped if some are still missing; without it (a pulled event) the state
    at a missing prev event is asked of the source.
    """
    event = checked_event(pdu)
    stored = _stored(event.event_id)
    if stored is not None and not stored.outlier:
        return stored
    _fetch_auth_events([event], source, origin)
    if source is not None and fill_gap and not backfilled:
        _fill_gap(event, source, origin)
        still_missing = _missing_prevs(event.room_id, event.prev_event_ids)
        if still_missing:
            raise InvalidPDU(
                f"prev events {sorted(still_missing)} could not be had from {origin}",
                "M_FORBIDDEN",
            )
    prev_states = _prev_states(event, source, origin)
    # Stored first as an outlier (known with its auth chain): so it is kept whatever
    # comes next, and state resolution, which reads the graph from the database, sees
    # it among the tips it resolves.
    with transaction.atomic():
        room = _room_for(event, lock=False)
        stored = _stored(event.event_id) or _insert_outlier(room, event)
    if not stored.outlier:
        return stored
    if prev_states is None:
        logger.info("%s: prev events unknown, kept as an outlier", event.event_id)
        return stored
    # The slow part, resolution and auth, reads only immutable state: done before the
    # room lock (on SQLite, before the write transaction) is taken.
    judgement = _judge(room, event, prev_states, backfilled=backfilled)
    with transaction.atomic():
        room, stored = _locked_outlier(event)
        if not stored.outlier:
            return stored
        return _persist(room, event, judgement, stored, backfilled=backfilled)


def _locked_outlier(event: PDUEvent) -> tuple[Room, Event]:
    """Inside a transaction: the event's room, locked, and its stored row (an outlier
    until persisted, or persisted meanwhile by another worker)."""
    room = _room_for(event, lock=True)
    stored = _stored(event.event_id)
    if stored is None:
        raise InvalidPDU(f"{event.event_id} was deleted while it was received", "M_UNKNOWN")
    return room, stored


def receive_joined_room(
    pdu: Mapping[str, Any],
    state: Iterable[Mapping[str, Any]],
    auth_chain: Iterable[Mapping[str, Any]],
    *,
    origin: str,
    servers_in_room: list[str] | None = None,
) -> Event:
    """A room this server joins through another (the answer to send_join): ``state`` is
    the room's state before the join event ``pdu``, ``auth_chain`` their auth events.
    They are stored as outliers, and the join event is persisted on that state, as the
    room's first event here: with no current state yet, there is nothing to soft-fail it
    against. Events that fail their checks are dropped (a state event among them too:
    the state is what remains).

    ``servers_in_room``: the answer left the member events out (``members_omitted``);
    the join is judged against the partial state with the keys it lacks filled from the
    join's own auth events (as the state resolution's iterative auth checks fill a
    partial state), and the room is recorded as partial, in the join's transaction, for
    rooms.services.partial_state to fetch the rest from these servers."""
    state = list(state)
    # The create event first: it makes the room known, and with it its version.
    for candidate in state:
        if isinstance(candidate, Mapping) and candidate.get("type") == CREATE:
            create = checked_event(candidate)
            with transaction.atomic():
                room = _room_for(create, lock=False)
                if _stored(create.event_id) is None:
                    _insert_outlier(room, create)
    # Every event of the answer is checked in the version of the join's room (those of
    # other rooms are dropped).
    room_version = _room_version_for(pdu)
    event = checked_event(pdu, room_version)
    before = store_state_answer(
        event.room_id, room_version.identifier, state, list(auth_chain), origin
    )
    if servers_in_room is not None:
        own_auth = _auth_ids(event)
        stored_auth = Event.objects.filter(
            event_id__in=own_auth, room__room_id=event.room_id, state_key__isnull=False
        ).values_list("event_id", "type", "state_key")
        before = {**{(t, k): e for e, t, k in stored_auth}, **before}
    with transaction.atomic():
        room = _room_for(event, lock=False)
        stored = _stored(event.event_id) or _insert_outlier(room, event)
    if not stored.outlier:
        return stored
    judgement = _judge(room, event, [before], backfilled=False)
    with transaction.atomic():
        room, stored = _locked_outlier(event)
        if not stored.outlier:
            return stored
        row = _persist(room, event, judgement, stored, backfilled=False, first=True)
        if servers_in_room is not None and row.rejected_reason is None and not row.soft_failed:
            _record_partial_join(room, row.event_id, servers_in_room)
        return row


def _record_partial_join(room: Room, join_event_id: str, servers: list[str]) -> None:
    """The room has partial state since this join (rooms.services.partial_state)."""
    PartialStateRoom.objects.update_or_create(
        room=room,
        defaults={
            "join_event_id": join_event_id,
            "servers": servers,
            "joined_ts": now_ms(),
            "attempts": 0,
            "last_error": "",
        },
    )
    Room.objects.filter(pk=room.pk).update(partial_state=True)
    room.partial_state = True


def store_state_answer(
    room_id: str,
    room_version_id: str,
    state: list[Any],
    auth_chain: list[Any],
    origin: str,
) -> dict[StateKey, str]:
    """A room's state as another server gave it (a send_join answer, GET /state): the
    events not stored yet checked (format, signatures, hashes) and stored as outliers,
    each after its auth events; the state they make, by (type, state_key). Events of
    other rooms and those failing their checks are left out (a state event among them
    too: the state is what remains)."""
    room_version = KNOWN_ROOM_VERSIONS[room_version_id]
    # The IDs the state names, those of events failing their checks too (one may be
    # stored here already).
    state_ids = set()
    candidates = [*state, *auth_chain]
    events: dict[str, PDUEvent] = {}
    for index, (candidate, checked) in enumerate(
        zip(candidates, checked_events(candidates, room_version), strict=True)
    ):
        if isinstance(checked, InvalidPDU):
            logger.info("state from %s dropped: %s", origin, checked)
            if index < len(state) and isinstance(candidate, Mapping):
                with contextlib.suppress(EventFormatError):
                    state_ids.add(PDUEvent(candidate, room_version).event_id)
            continue
        events[checked.event_id] = checked
        if index < len(state):
            state_ids.add(checked.event_id)
    _store_outliers(
        {e: v for e, v in events.items() if v.room_id == room_id}, "state event", origin
    )
    stored_state = Event.objects.filter(
        event_id__in=state_ids, room__room_id=room_id, state_key__isnull=False
    ).values_list("event_id", "type", "state_key")
    return {(etype, skey): event_id for event_id, etype, skey in stored_state}


# --- 1. format, signatures, hashes ------------------------------------------------------


def checked_event(pdu: Mapping[str, Any], room_version: RoomVersion | None = None) -> PDUEvent:
    """The PDU as an event of its room's version, if its format, size, signatures and
    hashes pass (redacted when only the content hash does not). ``room_version``: the
    version of the PDU's room when the caller knows it (many PDUs of one room), or the
    version another server says the room has, for a room not known here (an invite)."""
    checking = _Checking.of(pdu, room_version)
    checking.verify_signatures()
    return checking.finished()


def checked_events(pdus: list[Any], room_version: RoomVersion) -> list[PDUEvent | InvalidPDU]:
    """``checked_event`` of each of many PDUs of one room (a send_join answer, a batch
    fetched): each one's result or the reason it is dropped, in order. The PDUs are
    encoded first; then their ed25519 verifications, about half the work, run in two
    halves at once, one on a helper thread (libsodium releases the GIL; run beside the
    encoding, each verification would wait for the GIL instead)."""
    checkings: list[_Checking | InvalidPDU] = []
    quick: list[tuple[int, _Checking, list[tuple[str, VerifyKey]]]] = []
    for pdu in pdus:
        try:
            checking = _Checking.of(pdu, room_version)
        except InvalidPDU as exc:
            checkings.append(exc)
            continue
        keys = checking.first_keys()
        if keys is not None:
            quick.append((len(checkings), checking, keys))
        checkings.append(checking)
    verified: set[int] = set()
    half = len(quick) // 2
    helper = _verifier().submit(_verify_all, quick[:half]) if half else None
    verified |= _verify_all(quick[half:])
    if helper is not None:
        verified |= helper.result()
    results: list[PDUEvent | InvalidPDU] = []
    for index, checking in enumerate(checkings):
        if isinstance(checking, InvalidPDU):
            results.append(checking)
            continue
        try:
            if index not in verified:
                # Another key of a server, or none: the one-by-one check says which.
                checking.verify_signatures()
            results.append(checking.finished())
        except InvalidPDU as exc:
            results.append(exc)
    return results


def _verify_all(quick: list[tuple[int, _Checking, list[tuple[str, VerifyKey]]]]) -> set[int]:
    """The indexes of those whose signatures verify with the keys given (no database)."""
    return {index for index, checking, keys in quick if checking.verify_with(keys)}


_VERIFIER: concurrent.futures.ThreadPoolExecutor | None = None


def _verifier() -> concurrent.futures.ThreadPoolExecutor:
    global _VERIFIER
    if _VERIFIER is None:
        _VERIFIER = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="pdu-verify")
    return _VERIFIER


@dataclass
class _Checking:
    """A PDU whose format passed, on its way through checks 2 and 3."""

    pdu: dict[str, Any]
    room_version: RoomVersion
    event: PDUEvent
    # The bytes its servers signed, which its event ID is the hash of (encoded once).
    signable: bytes
    servers: list[str]

    @classmethod
    def of(cls, pdu: Any, room_version: RoomVersion | None) -> _Checking:
        if not isinstance(pdu, Mapping):
            raise InvalidPDU("a PDU must be an object")
        if room_version is None:
            room_version = _room_version_for(pdu)
        pdu = {key: value for key, value in pdu.items() if key != "unsigned"}
        _check_format(pdu, room_version)
        try:
            signable = redacted_signable_bytes(pdu, room_version)
            event_id = compute_event_id(pdu, room_version, signable=signable)
            servers = sorted(servers_required_to_sign_event(pdu, room_version))
        except (EventFormatError, ValueError) as exc:
            raise InvalidPDU(str(exc)) from None
        event = PDUEvent(pdu, room_version, event_id=event_id)
        return cls(pdu, room_version, event, signable, servers)

    def verify_signatures(self) -> None:
        """InvalidPDU unless every server that must sign did (each of its keys tried)."""
        for server_name in self.servers:
            _check_signed_by(
                self.pdu,
                server_name,
                self.room_version,
                self.event.origin_server_ts,
                self.signable,
            )

    def first_keys(self) -> list[tuple[str, VerifyKey]] | None:
        """For each server that must sign, the first of its signing keys known here (in
        the order ``verify_signatures`` tries them); None when a server has none."""
        keys = []
        for server_name in self.servers:
            key = next(_signing_keys(self.pdu, server_name, self.event.origin_server_ts), None)
            if key is None:
                return None
            keys.append((server_name, key))
        return keys

    def verify_with(self, keys: list[tuple[str, VerifyKey]]) -> bool:
        """Whether each server's signature verifies with the key given for it (no
        database: safe on another thread)."""
        for server_name, key in keys:
            try:
                verify_event_signature(
                    self.pdu, server_name, key, self.room_version, signable=self.signable
                )
            except (SignatureVerifyError, ValueError):
                return False
        return True

    def finished(self) -> PDUEvent:
        """Check 3: the event, redacted when its content hash does not match."""
        if not check_content_hash(self.pdu):
            logger.warning("%s: content hash mismatch, stored redacted", self.event.event_id)
            return PDUEvent(
                redact_event(self.pdu, self.room_version),
                self.room_version,
                event_id=self.event.event_id,
            )
        return self.event


def _room_version_for(pdu: Mapping[str, Any]) -> RoomVersion:
    room_id = pdu.get("room_id")
    if isinstance(room_id, str):
        version = Room.objects.filter(room_id=room_id).values_list("room_version", flat=True)
        if version:
            return KNOWN_ROOM_VERSIONS[version[0]]
    if pdu.get("type") == CREATE and isinstance(pdu.get("content"), Mapping):
        version_id = pdu["content"].get("room_version", "1")
        if not isinstance(version_id, str) or version_id not in KNOWN_ROOM_VERSIONS:
            raise InvalidPDU(
                f"unsupported room version {version_id!r}", "M_UNSUPPORTED_ROOM_VERSION"
            )
        return KNOWN_ROOM_VERSIONS[version_id]
    raise InvalidPDU(f"unknown room {room_id!r}", "M_NOT_FOUND")


def _check_format(pdu: dict[str, Any], room_version: RoomVersion) -> None:
    """The PDU's shape (server-server-api.md, "PDUs"; the room version's event format)."""
    strings = ["type", "sender"]
    if not (room_version.room_id_is_create_event_hash and pdu.get("type") == CREATE):
        strings.append("room_id")
    for key in strings:
        if not isinstance(pdu.get(key), str):
            raise InvalidPDU(f"'{key}' must be a string")
    for key in ("origin_server_ts", "depth"):
        value = pdu.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DEPTH:
            raise InvalidPDU(f"'{key}' must be a non-negative integer")
    for key in ("content", "hashes", "signatures"):
        if not isinstance(pdu.get(key), dict):
            raise InvalidPDU(f"'{key}' must be an object")
    for key, limit in (("prev_events", MAX_PREV_EVENTS), ("auth_events", MAX_AUTH_EVENTS)):
        if not isinstance(pdu.get(key), list):
            raise InvalidPDU(f"'{key}' must be an array")
        if len(pdu[key]) > limit:
            raise InvalidPDU(f"'{key}' cites more than {limit} events")
    if "state_key" in pdu and not isinstance(pdu["state_key"], str):
        raise InvalidPDU("'state_key' must be a string")
    if not is_valid_user_id(pdu["sender"]):
        raise InvalidPDU("'sender' is not a user ID")
    if "room_id" in strings and not is_valid_room_id(pdu["room_id"]):
        raise InvalidPDU("'room_id' is not a room ID")
    try:
        event = PDUEvent(pdu, room_version)
        cited = event.prev_event_ids + event.auth_event_ids
    except EventFormatError as exc:
        raise InvalidPDU(str(exc)) from None
    if not all(is_valid_event_id(event_id) for event_id in cited):
        raise InvalidPDU("prev_events and auth_events must cite event IDs")
    try:
        check_size_and_values(pdu, room_version)
    except MatrixError as exc:
        raise InvalidPDU(exc.error, exc.errcode) from None


def check_signed_by(pdu: Mapping[str, Any], server_name: str, room_version: RoomVersion) -> None:
    """InvalidPDU (M_FORBIDDEN) unless ``server_name`` signed the PDU with a key it has,
    checked before anything else of it (as Synapse checks a send_join's signatures
    first)."""
    if not isinstance(pdu.get("signatures"), dict):
        raise InvalidPDU(f"not signed by {server_name}", "M_FORBIDDEN")
    ts = pdu.get("origin_server_ts")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise InvalidPDU("'origin_server_ts' must be an integer")
    _check_signed_by(pdu, server_name, room_version, ts)


def _check_signed_by(
    pdu: Mapping[str, Any],
    server_name: str,
    room_version: RoomVersion,
    ts: int,
    signable: bytes | None = None,
) -> None:
    signatures = pdu["signatures"].get(server_name)
    if not isinstance(signatures, dict) or not signatures:
        raise InvalidPDU(f"not signed by {server_name}", "M_FORBIDDEN")
    for key in _signing_keys(pdu, server_name, ts):
        try:
            verify_event_signature(pdu, server_name, key, room_version, signable=signable)
        except (SignatureVerifyError, ValueError) as exc:
            logger.info("signature %s of %s: %s", key.key_id, server_name, exc)
            continue
        return
    raise InvalidPDU(f"no valid signature of {server_name}", "M_FORBIDDEN")


def _signing_keys(pdu: Mapping[str, Any], server_name: str, ts: int) -> Iterator[VerifyKey]:
    """The ed25519 keys ``server_name`` signed the PDU with that can be had here (valid at
    ``ts``), in key ID order, each looked up only when the one before it did not do."""
    signatures = pdu["signatures"].get(server_name)
    if not isinstance(signatures, dict):
        return
    for key_id in sorted(signatures):
        if not key_id.startswith("ed25519:"):
            continue
        try:
            yield keyring.get_verify_key(server_name, key_id, valid_at_ts=ts, for_requests=False)
        except (keyring.KeyUnavailable, ValueError) as exc:
            logger.info("signature %s of %s: %s", key_id, server_name, exc)


# --- 2. auth events, and outliers ---------------------------------------------------------


def _stored(event_id: str) -> Event | None:
    return Event.objects.filter(event_id=event_id).first()


def _known_ids(event_ids: Iterable[str]) -> set[str]:
    return set(
        Event.objects.filter(event_id__in=list(event_ids)).values_list("event_id", flat=True)
    )


def _auth_ids(event: PDUEvent) -> list[str]:
    """The auth events an event needs: those it cites, and in room version 12 the create
    event its room ID names."""
    ids = list(event.auth_event_ids)
    if event.room_version.room_id_is_create_event_hash and event.type != CREATE:
        ids.append("$" + event.room_id[1:])
    return ids


def _fetch_auth_events(events: list[PDUEvent], source: EventSource | None, origin: str) -> None:
    """Fetch the missing auth chains of ``events`` and store them as outliers."""
    missing = {aid for event in events for aid in _auth_ids(event)}
    missing -= _known_ids(missing)
    if missing and source is not None:
        _fetch_outliers(events[0].room_id, missing, source, origin)


def _fetch_outliers(room_id: str, wanted: set[str], source: EventSource, origin: str) -> None:
    """Fetch these events and, transitively, their missing auth events; store them all
    as outliers, each after its auth events."""
    fetched: dict[str, PDUEvent] = {}
    asked: set[str] = set()
    todo = set(wanted)
    while todo and len(asked) < MAX_FETCHED:
        batch = sorted(todo)[: MAX_FETCHED - len(asked)]
        asked.update(batch)
        for pdu in source.get_events(room_id, batch):
            try:
                event = checked_event(pdu)
            except (InvalidPDU, EventFormatError) as exc:
                logger.info("fetched event from %s dropped: %s", origin, exc)
                continue
            if event.event_id in asked and event.room_id == room_id:
                fetched[event.event_id] = event
        needed = {aid for event in fetched.values() for aid in _auth_ids(event)}
        todo = needed - fetched.keys() - asked
        todo -= _known_ids(todo)
    # An event whose own auth events could not be had stays unknown, and so do the
    # events that need it.
    _store_outliers(fetched, "fetched event", origin)


def _store_outliers(events: Mapping[str, PDUEvent], what: str, origin: str) -> None:
    """Store those of ``events`` (of one room) not stored yet as outliers, each after its
    auth events, as ``_insert_outlier`` would one by one, but in one transaction: the
    auth events are found among them or read once, and each is authorised against its
    own in memory (check 4). One whose auth events are missing is dropped (logged as
    ``what`` from ``origin``), and so are the events citing it; one citing auth events of
    another room is stored rejected, with no edges to them (``_auth_verdict``)."""
    if not events:
        return
    known = _known_ids(events)
    todo = [event for event in _auth_order(events) if event.event_id not in known]
    if not todo:
        return
    room_id = todo[0].room_id
    room = Room.objects.filter(room_id=room_id).first()
    if room is None or any(event.room_id != room_id for event in todo):
        # A room made by a create event among them: one by one (_room_for makes it).
        _store_outliers_one_by_one(todo, what, origin)
        return
    new_ids = {event.event_id for event in todo}
    outside = {aid for event in todo for aid in _auth_ids(event)} - new_ids
    auth_events = dict(event_cache.get_events(outside))
    foreign = _foreign_auth(room_id, auth_events)
    rejected = _rejected_ids(outside)
    creates = list(
        Event.objects.filter(room=room, type=CREATE, state_key="").values_list(
            "event_id", flat=True
        )
    )
    rows: list[tuple[PDUEvent, dict[str, Any]]] = []
    for event in todo:
        try:
            if event.type == CREATE and any(c != event.event_id for c in creates):
                raise InvalidPDU(f"{event.room_id} has another create event", "M_FORBIDDEN")
            reason = _auth_verdict(event, auth_events, rejected)
        except InvalidPDU as exc:
            logger.info("%s %s from %s dropped: %s", what, event.event_id, origin, exc)
            continue
        if event.type == CREATE:
            creates.append(event.event_id)
        auth_events[event.event_id] = event
        if reason is not None:
            rejected.add(event.event_id)
        rows.append((event, {"stream_ordering": None, "outlier": True, "rejected_reason": reason}))
    try:
        with transaction.atomic():
            insert_rows(room, rows, foreign_auth=foreign)
    except IntegrityError:
        # Some were stored meanwhile by another worker.
        _store_outliers_one_by_one([event for event, _fields in rows], what, origin)


def _store_outliers_one_by_one(events: list[PDUEvent], what: str, origin: str) -> None:
    for event in events:
        try:
            with transaction.atomic():
                room = _room_for(event, lock=False)
                if _stored(event.event_id) is None:
                    _insert_outlier(room, event)
        except InvalidPDU as exc:
            logger.info("%s %s from %s dropped: %s", what, event.event_id, origin, exc)


def _auth_order(events: Mapping[str, PDUEvent]) -> list[PDUEvent]:
    """``events`` with each after the auth events among them (cycles broken by depth)."""
    ordered: list[PDUEvent] = []
    done: set[str] = set()
    for start in sorted(events.values(), key=lambda e: (e.depth, e.event_id)):
        stack = [(start, False)]
        while stack:
            event, expanded = stack.pop()
            if event.event_id in done:
                continue
            if expanded:
                done.add(event.event_id)
                ordered.append(event)
                continue
            stack.append((event, True))
            for aid in _auth_ids(event):
                parent = events.get(aid)
                if parent is not None and aid not in done:
                    stack.append((parent, False))
    return ordered


def _insert_outlier(room: Room, event: PDUEvent) -> Event:
    """Store an event known only with its auth chain: authorised against its auth events
    (rejected if it fails), no state, no stream position."""
    ids = _auth_ids(event)
    auth_events = event_cache.get_events(ids)
    reason = _auth_verdict(event, auth_events, _rejected_ids(ids))
    try:
        with transaction.atomic():
            row = insert_row(
                room,
                event,
                stream_ordering=None,
                outlier=True,
                rejected_reason=reason,
                foreign_auth=_foreign_auth(event.room_id, auth_events),
            )
    except IntegrityError:
        # Stored meanwhile by another worker.
        stored = _stored(event.event_id)
        if stored is None:
            raise
        return stored
    return row


def _auth_events_verdict(event: PDUEvent) -> str | None:
    """Check 4: the event against the auth events it cites; the reason it fails, if so."""
    ids = _auth_ids(event)
    return _auth_verdict(event, event_cache.get_events(ids), _rejected_ids(ids))


def _rejected_ids(event_ids: Iterable[str]) -> set[str]:
    """Those of ``event_ids`` stored as rejected."""
    return set(
        Event.objects.filter(
            event_id__in=list(event_ids), rejected_reason__isnull=False
        ).values_list("event_id", flat=True)
    )


def _auth_verdict(
    event: PDUEvent, known: Mapping[str, PDUEvent], rejected: set[str]
) -> str | None:
    """Check 4 on the auth events among ``known`` (``rejected``: those rejected):
    InvalidPDU if some are not there.

    An auth event of another room (a server can cite any event it knows of) is there,
    and fails auth rule 2.5 ("If any event in auth_events has a room_id which does not
    match that of the event being authorised, reject"): the event is rejected, not
    dropped, as Synapse rejects it (``check_state_independent_auth_rules``). Stored, it
    is known: the events after it can be placed, and are judged on their own (sytest
    50federation/33room-get-missing-events, outliers whose auth events are in a
    different room); its edges leave such auth events out (``_foreign_auth``)."""
    ids = _auth_ids(event)
    auth_map = {aid: known[aid] for aid in ids if aid in known}
    missing = [aid for aid in ids if aid not in auth_map]
    if missing:
        raise InvalidPDU(f"auth events {missing} are not available", "M_FORBIDDEN")
    try:
        auth_rules.check_event_auth_events(
            event.room_version, event, auth_map, rejected_event_ids=rejected & set(ids)
        )
    except auth_rules.AuthError as exc:
        return f"auth events: {exc.reason}"[:255]
    return None


def _foreign_auth(room_id: str, auth_events: Mapping[str, PDUEvent]) -> set[str]:
    """Those of ``auth_events`` that are of another room than ``room_id``: an event of
    the room citing one is rejected, and stored with no auth edge to it, so that no auth
    chain walked by the edges leaves the room (rooms.services.events.insert_row)."""
    return {aid for aid, auth_event in auth_events.items() if auth_event.room_id != room_id}


def _room_for(event: PDUEvent, *, lock: bool) -> Room:
    """The event's room; a create event for an unknown room creates it."""
    query = Room.objects.filter(room_id=event.room_id)
    room = (query.select_for_update() if lock else query).first()
    if room is not None:
        if (
            event.type == CREATE
            and Event.objects.filter(room=room, type=CREATE, state_key="")
            .exclude(event_id=event.event_id)
            .exists()
        ):
            raise InvalidPDU(f"{event.room_id} has another create event", "M_FORBIDDEN")
        return room
    if event.type != CREATE:
        raise InvalidPDU(f"unknown room {event.room_id}", "M_NOT_FOUND")
    creator = (
        event.content.get("creator") if not event.room_version.updated_redaction_rules else None
    )
    Room.objects.create(
        room_id=event.room_id,
        room_version=event.room_version.identifier,
        creator=creator if isinstance(creator, str) else event.sender,
    )
    room = Room.objects.filter(room_id=event.room_id)
    return (room.select_for_update() if lock else room).get()


# --- 3. the states of the prev events -------------------------------------------------------


def _fill_gap(event: PDUEvent, source: EventSource, origin: str) -> None:
    """Fetch the events missing before a pushed event and receive them oldest first, as
    pulled events (whose own missing prev events then get their state from the source's
    ``/state_ids``): one round of POST /get_missing_events, the events between our tips
    and this one (Synapse's ``_get_missing_events_for_pdu``, which sytest's
    50federation/36state expects: one round, then the state at what is still missing).
    A source that cannot answer /get_missing_events is asked for the missing prev
    events one by one instead (GET /event), back up to MAX_GAP events."""
    room_id = event.room_id
    frontier = _missing_prevs(room_id, event.prev_event_ids)
    if not frontier:
        return
    ask_missing = getattr(source, "get_missing_events", None)
    gap = (
        _missing_events(event, source, origin, ask_missing)
        if ask_missing is not None
        else _walk_prevs(room_id, frontier, source, origin)
    )
    for fetched in sorted(gap.values(), key=lambda e: (e.depth, e.event_id)):
        try:
            receive_pdu(fetched.pdu, origin=origin, source=source, fill_gap=False)
        except InvalidPDU as exc:
            logger.info("missing event %s from %s dropped: %s", fetched.event_id, origin, exc)


def _missing_events(
    event: PDUEvent, source: EventSource, origin: str, ask_missing: Any
) -> dict[str, PDUEvent]:
    """The source's answer to POST /get_missing_events for ``event``, checked."""
    room_id = event.room_id
    tips = ForwardExtremity.objects.filter(room__room_id=room_id).values_list(
        "event_id", flat=True
    )
    gap: dict[str, PDUEvent] = {}
    for pdu in ask_missing(room_id, sorted(tips), [event.event_id], MAX_GAP):
        try:
            fetched = checked_event(pdu)
        except InvalidPDU as exc:
            logger.info("missing event from %s dropped: %s", origin, exc)
            continue
        if fetched.room_id == room_id and fetched.event_id != event.event_id:
            gap[fetched.event_id] = fetched
    return gap


def _walk_prevs(
    room_id: str, frontier: set[str], source: EventSource, origin: str
) -> dict[str, PDUEvent]:
    """The missing prev events and theirs, fetched one by one (up to MAX_GAP)."""
    gap: dict[str, PDUEvent] = {}
    while frontier and len(gap) < MAX_GAP:
        found = []
        for pdu in source.get_events(room_id, sorted(frontier)[: MAX_GAP - len(gap)]):
            try:
                fetched = checked_event(pdu)
            except InvalidPDU as exc:
                logger.info("missing event from %s dropped: %s", origin, exc)
                continue
            if fetched.event_id in frontier and fetched.room_id == room_id:
                gap[fetched.event_id] = fetched
                found.append(fetched)
        cited = {prev for fetched in found for prev in fetched.prev_event_ids}
        frontier = _missing_prevs(room_id, cited - gap.keys())
    return gap


def _missing_prevs(room_id: str, prev_ids: Iterable[str]) -> set[str]:
    """Those of ``prev_ids`` that are not in the room's timeline here."""
    wanted = set(prev_ids)
    known = Event.objects.filter(
        room__room_id=room_id, event_id__in=wanted, outlier=False
    ).values_list("event_id", flat=True)
    return wanted - set(known)


PrevState = Mapping[StateKey, str] | int


def _prev_states(
    event: PDUEvent, source: EventSource | None, origin: str
) -> list[PrevState] | None:
    """The state after each prev event: its state group if it is in the timeline, else a
    state map from the source; None if some cannot be had."""
    prev_ids = event.prev_event_ids
    rows = {
        row.event_id: row
        # A prev event of another room is no prev event of this one.
        for row in Event.objects.filter(event_id__in=prev_ids, room__room_id=event.room_id).only(
            "event_id", "room_id", "outlier", "state_group_id", "stream_ordering"
        )
    }
    states: list[PrevState] = []
    for prev_id in prev_ids:
        row = rows.get(prev_id)
        if row is not None and not row.outlier and row.state_group_id is not None:
            states.append(row.state_group_id)
            continue
        if source is None:
            return None
        fetched = _state_after_from_source(event.room_id, prev_id, source, origin)
        if fetched is None:
            return None
        states.append(fetched)
    return states


def _state_after_from_source(
    room_id: str, prev_id: str, source: EventSource, origin: str
) -> dict[StateKey, str] | None:
    """The state after a missing prev event, as the source has it: the state before it
    (/state_ids) plus the event itself when it is an accepted state event."""
    try:
        state_ids, chain_ids = source.get_state_ids(room_id, prev_id)
    except Exception:
        logger.exception("state before %s from %s", prev_id, origin)
        return None
    wanted = set(state_ids) | set(chain_ids) | {prev_id}
    missing = wanted - _known_ids(wanted)
    if missing:
        _fetch_outliers(room_id, missing, source, origin)
    events = event_cache.get_events(set(state_ids) | {prev_id})
    state: dict[StateKey, str] = {}
    for state_id in state_ids:
        state_event = events.get(state_id)
        if state_event is None or not state_event.is_state() or state_event.room_id != room_id:
            return None
        state[state_event.state_key_tuple()] = state_id
    prev = events.get(prev_id)
    if prev is None or prev.room_id != room_id:
        return None
    prev_rejected = Event.objects.filter(event_id=prev_id, rejected_reason__isnull=False).exists()
    if prev.is_state() and not prev_rejected:
        state[prev.state_key_tuple()] = prev_id
    return state


# --- 4. auth against the state, soft-fail, persist ----------------------------------------


@dataclass(frozen=True)
class Judgement:
    """Checks 4 and 5, made before the room lock: the state before the event (a stored
    group holding it, if one does) and why the event is rejected, if it is."""

    before_group: int | None
    before: Mapping[StateKey, str]
    bases: list[int]
    reason: str | None
    presolved: graph.Presolved | None


def _judge(
    room: Room, event: PDUEvent, prev_states: list[PrevState], *, backfilled: bool
) -> Judgement:
    groups = [state for state in prev_states if isinstance(state, int)]
    maps = [state for state in prev_states if not isinstance(state, int)]
    before_group: int | None
    if not maps and len(set(groups)) <= 1:
        before_group = groups[0] if groups else None
        before = load_state(before_group)
    else:
        before = resolve_maps(room, [load_state(group) for group in set(groups)] + maps)
        before_group = next((g for g in sorted(set(groups)) if load_state(g) == before), None)
    reason = _auth_events_verdict(event)
    if reason is None:
        reason = state_verdict(event.room_version, event, before, "state before")
    presolved = None
    if reason is None and not backfilled and event.type != CREATE:
        after = dict(before)
        if event.is_state():
            after[event.state_key_tuple()] = event.event_id
        presolved = graph.presolve(room, event.event_id, event.prev_event_ids, after)
    return Judgement(before_group, before, groups, reason, presolved)


def _persist(
    room: Room,
    event: PDUEvent,
    judgement: Judgement,
    stored: Event | None,
    *,
    backfilled: bool,
    first: bool = False,
) -> Event:
    """Check 6 and persisting, under the room lock. ``first``: the room's first event
    here (a join's), with no current state yet to check it against."""
    state_before = judgement.before_group
    if state_before is None and judgement.before:
        base = judgement.bases[0] if judgement.bases else room.current_state_group_id
        state_before = graph.group_for_map(room, judgement.before, base=base)
    room_version = event.room_version
    reason = judgement.reason
    soft_failed = False
    if reason is None and not backfilled and not first and event.type != CREATE:
        current = load_state(room.current_state_group_id)
        soft_failed = state_verdict(room_version, event, current, "current state") is not None
        if soft_failed:
            logger.info("%s soft-failed against the current state", event.event_id)
    if reason is None and not soft_failed and _redacts_another_rooms_event(event):
        # "Handling redactions" (room versions 3 and up; rule 11 of versions 1 and 2 says
        # as much): a redaction is sent to clients only once the server would apply it,
        # and one naming an event of another room never will be. Kept as a soft-failed
        # event is: shown to no one, built on by nobody.
        logger.info("%s redacts an event of another room: not shown", event.event_id)
        soft_failed = True
    if reason is not None:
        logger.info("%s rejected: %s", event.event_id, reason)
    verdict = Verdict(rejected_reason=reason, soft_failed=soft_failed, backfilled=backfilled)
    row = persist_event(
        room,
        event,
        state_before=state_before,
        verdict=verdict,
        outlier_row=stored,
        apply_redaction=False,
        presolved=judgement.presolved,
    )
    graph.record_backward_extremities(room, event, rejected=reason is not None)
    if verdict.visible:
        _apply_redactions(room, row, event)
    return row


def _redacts_another_rooms_event(event: PDUEvent) -> bool:
    if event.type != "m.room.redaction" or not event.redacts:
        return False
    target_room = Event.objects.filter(event_id=event.redacts).values_list(
        "room__room_id", flat=True
    )
    return bool(target_room) and target_room[0] != event.room_id


def _apply_redactions(room: Room, row: Event, event: PDUEvent) -> None:
    """A redaction marks its target redacted, and an event that arrives after a redaction
    of it is marked at once, if the redaction's sender may redact it: the target's sender
    is on the same server, or has the ``redact`` level in the state before the redaction
    (room versions 3 and up check this when the redaction is applied, not in auth)."""
    shown = Event.objects.filter(in_timeline_q(), room=room)
    if event.type == "m.room.redaction" and event.redacts:
        target = shown.filter(event_id=event.redacts, redacted_by__isnull=True).first()
        pairs = [(row, target)] if target is not None else []
    else:
        pairs = [
            (redaction, row)
            for redaction in shown.filter(redacts=row.event_id, type="m.room.redaction")
        ]
    for redaction, target in pairs:
        if _may_redact(room, redaction, target):
            Event.objects.filter(pk=target.pk).update(redacted_by=redaction.event_id)
            search_index.unindex_events([target.event_id])
            return


def _may_redact(room: Room, redaction: Event, target: Event) -> bool:
    if _server_of(redaction.sender) == _server_of(target.sender):
        return True
    room_version = KNOWN_ROOM_VERSIONS[room.room_version]
    keys = {("m.room.power_levels", ""), ("m.room.member", redaction.sender), CREATE_KEY}
    auth_state = auth_state_for(room_version, load_state(redaction.state_group_id), keys)
    level = auth_rules.get_user_power_level(room_version, redaction.sender, auth_state)
    return level >= auth_rules.get_named_level(room_version, auth_state, "redact")


def _server_of(user_id: str) -> str:
    return user_id.partition(":")[2]


def state_verdict(
    room_version: RoomVersion, event: PDUEvent, state: Mapping[StateKey, str], what: str
) -> str | None:
    """Checks 5 and 6: the event against a state; the reason it fails, if so."""
    if event.type == CREATE:
        return "a create event must be the room's first" if state else None
    keys = auth_rules.auth_types_for(room_version, event) | {CREATE_KEY}
    try:
        auth_rules.check_auth_rules(room_version, event, auth_state_for(room_version, state, keys))
    except auth_rules.AuthError as exc:
        return f"{what}: {exc.reason}"[:255]
    return None
