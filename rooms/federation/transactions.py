"""Transactions other servers send us (PUT /_matrix/federation/v1/send/{txnId}).

Server-Server API, "Transactions": at most 50 PDUs and 100 EDUs; idempotent per origin
and transaction ID. In order:

1. The transaction is stored (federation.models.InboundTransaction) before anything else
   is done with it; a retry of a stored one is answered with the stored answer.
2. Each PDU is checked for what can be told at once: its room must be known here (else
   it is dropped without a result: its event ID depends on the room version), its sender
   must be a user of the origin and the room's ACL must let the origin in, and its
   format, signatures and hashes must pass (rooms.services.incoming.checked_event). A PDU
   failing these gets {"error": ...} and nothing of it is stored.
3. The others are queued (federation.models.InboundPdu, with the answer, in one
   transaction) and the answer, {} for each of them, stored: the sender has its
   acknowledgement once what it sent is durable. The EDUs are applied in that same
   database transaction, each by its type's handler (federation.edus: typing and
   receipts here, rooms.federation.edus): they are ephemeral and cheap, so they take
   effect before the answer, and exactly once, as the answer is stored with them.
4. A worker takes each room's queue in arrival order, one worker per room at a time (a
   lease on the room, rooms.tasks.process_inbound_pdus), and runs each PDU through
   rooms.services.incoming.receive_pdu with the origin as the source of what it is
   missing (federation.event_source). A worker that dies mid-way loses its lease when
   it expires (at once when the worker was on this host: the lease names its process),
   and the periodic rooms.tasks.resume_inbound_pdus picks the queue up again; every
   step of the pipeline is safe to run twice. A room joined with partial state has the
   rest of its state fetched by that worker first
   (rooms.services.partial_state.resync), so none of its PDUs is judged without it.

A room every local user has left takes no more PDUs: each gets an error
(rooms.federation.access.every_local_user_left), at step 2 or when its worker takes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from accounts.clock import now_ms
from federation import leases
from federation.edus import receive_edus
from federation.event_source import FederationEventSource
from federation.models import InboundPdu, InboundRoomLease, InboundTransaction
from protocol.errors import MatrixError, bad_json
from protocol.events import Event as PDUEvent
from protocol.events import EventFormatError
from protocol.room_versions import KNOWN_ROOM_VERSIONS
from rooms.federation.access import every_local_user_left, is_server_allowed
from rooms.models import Room
from rooms.services import partial_state
from rooms.services.incoming import EventSource, checked_event, receive_pdu

logger = logging.getLogger(__name__)

MAX_PDUS = 50
MAX_EDUS = 100
# A room's lease outlives one PDU's fetching with room to spare; renewed at each PDU.
LEASE_MS = 10 * 60 * 1000
# The lease is renewed while a room's queue is worked through, this often (far less than
# LEASE_MS: a worker that dies loses it soon enough; one that lives keeps it).
RENEW_AFTER_S = 60.0
# PDUs queued for longer than this with no worker on their room are resumed.
RESUME_AFTER_MS = 60 * 1000
# The error of a PDU for a room every local user has left: this server no longer takes
# the room's events (a local user joining again goes through make_join).
NOT_IN_ROOM = "This server is no longer in the room"


def check_transaction(body: Mapping[str, Any]) -> None:
    """The transaction's shape and limits: 400 M_BAD_JSON for more than MAX_PDUS PDUs or
    MAX_EDUS EDUs, or lists that are not lists."""
    pdus = body.get("pdus")
    edus = body.get("edus", [])
    if not isinstance(pdus, list):
        raise bad_json("'pdus' must be an array")
    if not isinstance(edus, list):
        raise bad_json("'edus' must be an array")
    if len(pdus) > MAX_PDUS:
        raise bad_json(f"A transaction carries at most {MAX_PDUS} PDUs")
    if len(edus) > MAX_EDUS:
        raise bad_json(f"A transaction carries at most {MAX_EDUS} EDUs")


def do_store_transaction(origin: str, txn_id: str, body: Mapping[str, Any]) -> InboundTransaction:
    """Store the transaction (committed before anything else happens), or return the one
    stored already under (origin, txn_id)."""
    stored = InboundTransaction.objects.filter(origin=origin, txn_id=txn_id).first()
    if stored is not None:
        return stored
    try:
        with transaction.atomic():
            return InboundTransaction.objects.create(
                origin=origin, txn_id=txn_id, body=dict(body), received_ts=now_ms()
            )
    except IntegrityError:
        # The same transaction, retried while the first attempt was being stored.
        return InboundTransaction.objects.get(origin=origin, txn_id=txn_id)


def do_receive_transaction(origin: str, txn_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """Steps 1 to 3 of the module's docstring, then the rooms' queues handed to workers;
    the answer (the stored one for a transaction taken in before)."""
    check_transaction(body)
    stored = do_store_transaction(origin, txn_id, body)
    if stored.response is not None:
        return dict(stored.response)
    accepted: list[_Accepted] = []
    results: dict[str, dict[str, Any]] = {}
    for pdu in stored.body.get("pdus", []):
        outcome = _check(pdu, origin)
        if outcome is None:
            continue
        if isinstance(outcome, _Accepted):
            accepted.append(outcome)
            results[outcome.event_id] = {}
        else:
            results[outcome[0]] = {"error": outcome[1]}
    response = {"pdus": results}
    with transaction.atomic():
        locked = InboundTransaction.objects.select_for_update().get(pk=stored.pk)
        if locked.response is not None:
            # Taken in meanwhile by a concurrent retry.
            return dict(locked.response)
        InboundPdu.objects.bulk_create(
            InboundPdu(
                transaction=locked,
                origin=origin,
                room_id=item.room_id,
                event_id=item.event_id,
                pdu=item.pdu,
            )
            for item in accepted
        )
        receive_edus(origin, stored.body.get("edus", []))
        InboundTransaction.objects.filter(pk=stored.pk).update(response=response)
    _hand_to_workers({item.room_id for item in accepted})
    return response


@dataclass(frozen=True)
class _Accepted:
    room_id: str
    event_id: str
    pdu: dict[str, Any]


def _check(pdu: Any, origin: str) -> _Accepted | tuple[str, str] | None:
    """Step 2: the PDU accepted for its room's queue, or (event ID, error), or None for a
    PDU dropped without a result."""
    if not isinstance(pdu, dict) or not isinstance(pdu.get("room_id"), str):
        logger.info("dropped a PDU from %s without a room ID", origin)
        return None
    room = Room.objects.filter(room_id=pdu["room_id"]).first()
    if room is None:
        logger.info("dropped a PDU from %s for unknown room %s", origin, pdu["room_id"])
        return None
    try:
        event_id = PDUEvent(pdu, KNOWN_ROOM_VERSIONS[room.room_version]).event_id
    except (EventFormatError, ValueError, KeyError, TypeError) as exc:
        logger.info("dropped a PDU of %s whose event ID cannot be had: %s", room.room_id, exc)
        return None
    sender = pdu.get("sender")
    if not isinstance(sender, str) or sender.partition(":")[2] != origin:
        return event_id, f"The sender is not a user of {origin}"
    if not is_server_allowed(room, origin):
        return event_id, f"{origin} is denied by the room's server ACL"
    if every_local_user_left(room):
        return event_id, NOT_IN_ROOM
    try:
        checked_event(pdu)
    except MatrixError as exc:
        # InvalidPDU: dropped, nothing of it stored.
        logger.info("PDU %s from %s refused: %s", event_id, origin, exc.error)
        return event_id, exc.error
    return _Accepted(room.room_id, event_id, pdu)


def _hand_to_workers(room_ids: set[str]) -> None:
    from rooms.tasks import process_inbound_pdus

    for room_id in sorted(room_ids):
        process_inbound_pdus.delay(room_id)


# --- 4. a room's queue, in a worker ---------------------------------------------------------


def _acquire(room_id: str, token: str) -> bool:
    """Take the room's lease, unless another worker holds it (a worker of this host
    that died holding it does not)."""
    now = now_ms()
    lease, _created = InboundRoomLease.objects.get_or_create(room_id=room_id)
    taken = (
        InboundRoomLease.objects.filter(
            leases.free(now, lease.lease_token), room_id=room_id
        ).update(lease_token=token, lease_until_ts=now + LEASE_MS)
        == 1
    )
    return taken


def _renew(room_id: str, token: str) -> bool:
    return (
        InboundRoomLease.objects.filter(room_id=room_id, lease_token=token).update(
            lease_until_ts=now_ms() + LEASE_MS
        )
        == 1
    )


def _release(room_id: str, token: str) -> None:
    InboundRoomLease.objects.filter(room_id=room_id, lease_token=token).update(
        lease_token=None, lease_until_ts=None
    )


def _pending(room_id: str) -> list[InboundPdu]:
    queued = InboundPdu.objects.filter(room_id=room_id, processed_ts__isnull=True)
    return list(queued.order_by("pk")[:MAX_PDUS])


def process_room_queue(room_id: str, *, source: EventSource | None = None) -> int:
    """Run the room's queued PDUs through the pipeline, oldest first, if no other worker
    holds the room; how many were processed."""
    processed = 0
    while True:
        token = leases.new_token()
        if not _acquire(room_id, token):
            return processed
        try:
            if not partial_state.resync(room_id):
                # Joined with partial state, and no server could give the rest yet: the
                # PDUs wait (rooms_to_resume hands the room out again).
                return processed
            renewed = time.monotonic()
            while batch := _pending(room_id):
                # Whether local users are still in the room, once a batch.
                room = Room.objects.filter(room_id=room_id).first()
                left = room is not None and every_local_user_left(room)
                for row in batch:
                    if time.monotonic() - renewed > RENEW_AFTER_S:
                        if not _renew(room_id, token):
                            logger.warning("lost the lease on %s", room_id)
                            return processed
                        renewed = time.monotonic()
                    _process(row, source, left=left)
                    processed += 1
        finally:
            _release(room_id, token)
        # PDUs may have been queued while the lease was held (their worker found it
        # taken): look again now that it is released.
        if not InboundPdu.objects.filter(room_id=room_id, processed_ts__isnull=True).exists():
            return processed


def _process(row: InboundPdu, source: EventSource | None, *, left: bool) -> None:
    result: dict[str, Any] = {}
    try:
        if left:
            # The last local user left after the PDU was queued.
            raise MatrixError("M_FORBIDDEN", NOT_IN_ROOM)
        receive_pdu(row.pdu, origin=row.origin, source=source or FederationEventSource(row.origin))
    except MatrixError as exc:
        logger.info("%s from %s dropped: %s", row.event_id, row.origin, exc.error)
        result = {"error": exc.error}
    InboundPdu.objects.filter(pk=row.pk).update(result=result, processed_ts=now_ms())


def rooms_to_resume() -> list[str]:
    """Rooms with PDUs queued for a while, or with partial state, and no worker holding
    them (a lost hand-over, a worker that died, a state no server could give yet)."""
    now = now_ms()
    stale = InboundPdu.objects.filter(
        processed_ts__isnull=True, transaction__received_ts__lt=now - RESUME_AFTER_MS
    ).values_list("room_id", flat=True)
    held = {
        room_id
        for room_id, token, until in InboundRoomLease.objects.filter(
            lease_until_ts__gte=now
        ).values_list("room_id", "lease_token", "lease_until_ts")
        if not leases.is_free(token, until, now)
    }
    return sorted((set(stale) | set(partial_state.partial_rooms())) - held)
